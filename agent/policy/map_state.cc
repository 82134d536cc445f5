// Map-state building blocks: key packing, the flat key set and the deny filter.
#include "agent/policy/map_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>

namespace cilium::policy::detail {

namespace {

struct Unpacked {
  uint32_t identity;
  uint8_t dir;
  uint8_t proto;
  uint16_t port;
  uint8_t prefixlen;
};

Unpacked unpack(uint64_t k) {
  return {static_cast<uint32_t>(k >> 32), static_cast<uint8_t>((k >> 31) & 1),
          static_cast<uint8_t>((k >> 23) & 0xff), static_cast<uint16_t>((k >> 7) & 0xffff),
          static_cast<uint8_t>(k & 0x7f)};
}

}  // namespace

policy_key toPolicyKey(uint64_t packed) {
  Unpacked u = unpack(packed);
  uint8_t bits = u.proto == 0 ? 0 : static_cast<uint8_t>(u.prefixlen - POLICY_PREFIX_ANY_PORT);
  return datapath::policyKey(u.identity, u.dir, u.proto, u.port, bits);
}

datapath::PolicyEntry toPolicyEntry(const PackedEntry& e, const RedirectPorts& ports) {
  datapath::PolicyEntry out;
  out.key = toPolicyKey(e.key);
  out.value.flags = e.deny ? POLICY_F_DENY : 0;
  out.value.prefix_len = static_cast<uint8_t>(out.key.prefixlen);
  if (!e.deny && e.redirect != Redirect::kNone) {
    uint16_t port = ports.portFor(e.redirect, packedDirection(e.key));
    // A redirect without a proxy port would be a plain allow: the engine never builds one
    // (EngineOptions), and this keeps it from ever reaching a map.
    if (port == 0) std::abort();
    out.value.proxy_port = htons(port);
  }
  return out;
}

void KeySet::rehash(size_t n) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(n, Slot{});
  size_ = 0;
  for (const auto& s : old)
    if (s.key != kEmpty) insert(s.key, s.flags);
}

std::vector<std::pair<uint64_t, uint8_t>> KeySet::sorted() const {
  std::vector<std::pair<uint64_t, uint8_t>> out;
  out.reserve(size_);
  for (const auto& s : slots_)
    if (s.key != kEmpty) out.emplace_back(s.key, s.flags);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<PackedEntry> finalize(const std::vector<std::pair<uint64_t, uint8_t>>& sorted) {
  std::vector<PackedEntry> out;
  out.reserve(sorted.size());
  auto find = [&](uint64_t key, size_t lo, size_t hi) -> uint8_t {
    auto first = sorted.begin() + static_cast<std::ptrdiff_t>(lo);
    auto last = sorted.begin() + static_cast<std::ptrdiff_t>(hi);
    auto it = std::lower_bound(first, last, std::pair<uint64_t, uint8_t>{key, 0});
    return it != last && it->first == key ? it->second : 0;
  };
  size_t i = 0;
  while (i < sorted.size()) {
    // One identity's entries are contiguous; only they can cover each other.
    uint32_t id = packedIdentity(sorted[i].first);
    size_t end = i;
    bool any_deny = false;
    while (end < sorted.size() && packedIdentity(sorted[end].first) == id) {
      any_deny |= (sorted[end].second & kDeny) != 0;
      end++;
    }
    for (size_t k = i; k < end; k++) {
      uint64_t key = sorted[k].first;
      uint8_t flags = sorted[k].second;
      if (flags & kDeny) {
        out.push_back({key, true, Redirect::kNone});
        continue;
      }
      bool covered = false;
      if (any_deny) {
        Unpacked u = unpack(key);
        // Candidates: any protocol; this protocol with any port; each shorter port block.
        covered = (find(pack(u.identity, u.dir, KeySpec{}), i, end) & kDeny) != 0;
        if (!covered && u.proto != 0) {
          uint8_t bits = static_cast<uint8_t>(u.prefixlen - POLICY_PREFIX_ANY_PORT);
          for (uint8_t b = 0; b < bits && !covered; b++)
            covered =
                (find(pack(u.identity, u.dir, KeySpec{u.proto, u.port, b}), i, end) & kDeny) != 0;
        }
      }
      if (!covered)
        out.push_back({key, false,
                       (flags & kRedirectHttp)  ? Redirect::kHttp
                       : (flags & kRedirectDns) ? Redirect::kDns
                                                : Redirect::kNone});
    }
    i = end;
  }
  return out;
}

}  // namespace cilium::policy::detail
