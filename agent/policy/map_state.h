// Map-state building blocks for the engine (internal to agent/policy): policy keys packed into
// 64 bits, a flat hash set for deduplication, and the deny-precedence filter of bpf/abi/policy.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "agent/datapath/maps.h"

namespace cilium::policy::detail {

// The protocol/port part of a key. proto 0 = any protocol (port ignored); bits = port prefix
// length (0 = any port, 16 = one port, in between = an aligned block).
struct KeySpec {
  uint8_t proto = 0;
  uint16_t port = 0;
  uint8_t bits = 0;
  bool operator==(const KeySpec&) const = default;
};

// identity:32 | direction:1 | proto:8 | port:16 | prefixlen:7. Sorting packed keys orders them
// by identity, direction, protocol, port, prefix length.
inline uint64_t packLow(uint8_t dir, const KeySpec& s) {
  uint32_t prefixlen;
  uint16_t port = 0;
  if (s.proto == 0) {
    prefixlen = POLICY_PREFIX_ANY_PROTO;
  } else {
    prefixlen = POLICY_PREFIX_ANY_PORT + s.bits;
    port = s.bits == 0 ? 0 : static_cast<uint16_t>(s.port & (0xffffu << (16 - s.bits)));
  }
  return (uint64_t{dir & 1u} << 31) | (uint64_t{s.proto} << 23) | (uint64_t{port} << 7) | prefixlen;
}
inline uint64_t pack(uint32_t identity, uint8_t dir, const KeySpec& s) {
  return (uint64_t{identity} << 32) | packLow(dir, s);
}
inline uint32_t packedIdentity(uint64_t k) { return static_cast<uint32_t>(k >> 32); }

// The spec of a packLow() value.
inline KeySpec unpackSpec(uint64_t low) {
  auto proto = static_cast<uint8_t>((low >> 23) & 0xff);
  auto port = static_cast<uint16_t>((low >> 7) & 0xffff);
  auto prefixlen = static_cast<uint8_t>(low & 0x7f);
  if (proto == 0) return KeySpec{};
  return KeySpec{proto, port, static_cast<uint8_t>(prefixlen - POLICY_PREFIX_ANY_PORT)};
}
inline uint8_t packedDirection(uint64_t k) { return static_cast<uint8_t>((k >> 31) & 1); }

// Whether some packet matches both specs.
inline bool overlaps(const KeySpec& a, const KeySpec& b) {
  if (a.proto == 0 || b.proto == 0) return true;
  if (a.proto != b.proto) return false;
  uint8_t bits = std::min(a.bits, b.bits);
  uint16_t mask = bits == 0 ? 0 : static_cast<uint16_t>(0xffffu << (16 - bits));
  return (a.port & mask) == (b.port & mask);
}

// Which proxy an allow sends its traffic to.
enum class Redirect : uint8_t { kNone = 0, kHttp = 1, kDns = 2 };

struct PackedEntry {
  uint64_t key = 0;
  bool deny = false;
  Redirect redirect = Redirect::kNone;
  bool operator==(const PackedEntry&) const = default;
};

// The proxy port an entry's redirect uses, by direction (0 = none).
struct RedirectPorts {
  uint16_t http_ingress = 0, http_egress = 0, dns_egress = 0;
  uint16_t portFor(Redirect r, uint8_t dir) const {
    if (r == Redirect::kHttp) return dir == POLICY_INGRESS ? http_ingress : http_egress;
    if (r == Redirect::kDns) return dir == POLICY_EGRESS ? dns_egress : 0;
    return 0;
  }
};

datapath::PolicyEntry toPolicyEntry(const PackedEntry& e, const RedirectPorts& ports);
policy_key toPolicyKey(uint64_t packed);

inline constexpr uint8_t kAllow = 1;
inline constexpr uint8_t kDeny = 2;
// Allows that send their traffic to an L7 proxy; an allow without these on the same key still
// goes through the proxy (which then allows everything there), as Cilium does.
inline constexpr uint8_t kRedirectHttp = 4;
inline constexpr uint8_t kRedirectDns = 8;

// Open-addressing set of packed keys with allow/deny flags (OR-ed on repeated inserts).
class KeySet {
 public:
  KeySet() { rehash(64); }
  void insert(uint64_t key, uint8_t flags) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key == kEmpty) {
        s.key = key;
        s.flags = flags;
        size_++;
        return;
      }
      if (s.key == key) {
        s.flags |= flags;
        return;
      }
    }
  }
  size_t size() const { return size_; }
  // Makes room for `n` keys without rehashing.
  void reserve(size_t n) {
    size_t want = 64;
    while (want < n * 2) want *= 2;
    if (want > slots_.size()) rehash(want);
  }
  // The entries sorted by key, duplicates merged.
  std::vector<std::pair<uint64_t, uint8_t>> sorted() const;

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // never a key: prefixlen is at most 64
  struct Slot {
    uint64_t key = kEmpty;
    uint8_t flags = 0;
  };
  static size_t hash(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return static_cast<size_t>(x);
  }
  void rehash(size_t n);
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Applies deny precedence to sorted, merged (key, flags): every deny stays; an allow is dropped
// when a deny of the same identity and direction covers it (same or shorter prefix over the
// same bits), because the datapath's longest-prefix match would otherwise pick the allow.
std::vector<PackedEntry> finalize(const std::vector<std::pair<uint64_t, uint8_t>>& sorted);

}  // namespace cilium::policy::detail
