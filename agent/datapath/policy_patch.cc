// Planning in-place policy map changes (see policy_patch.h and docs/policy.md).
#include "agent/datapath/policy_patch.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace cilium::datapath {
namespace {

struct KeyLess {
  bool operator()(const policy_key& a, const policy_key& b) const {
    return std::tie(a.sec_label, a.egress, a.prefixlen, a.protocol, a.dport) <
           std::tie(b.sec_label, b.egress, b.prefixlen, b.protocol, b.dport);
  }
};
using EntryMap = std::map<policy_key, policy_entry, KeyLess>;

bool isDeny(const policy_entry& v) { return (v.flags & POLICY_F_DENY) != 0; }

// How a change moves the verdict of the packets it concerns (order: deny < none < allow).
enum Sense : unsigned { kNarrows = 1, kWidens = 2, kNeutral = 4 };

}  // namespace

PolicyPatch planPolicyPatch(std::span<const PolicyEntry> current,
                            std::span<const PolicyEntry> wanted, size_t capacity) {
  EntryMap old_set, new_set;
  for (const auto& e : current) old_set[e.key] = e.value;
  for (const auto& e : wanted) {
    PolicyEntry n = normalizePolicyEntry(e);
    new_set[n.key] = n.value;
  }
  std::vector<PolicyMapOp> write_denies, write_allows, delete_allows, last;
  // Sense of the changes per (direction, identity), for the two-lookup check below.
  std::map<std::pair<uint8_t, uint32_t>, unsigned> senses;
  auto note = [&](const policy_key& k, unsigned sense) {
    senses[{k.egress, k.sec_label}] |= sense;
  };

  for (const auto& [k, v] : old_set) {
    if (new_set.count(k) != 0) continue;
    PolicyMapOp op{true, PolicyEntry{k, v}};
    if (isDeny(v)) {
      last.push_back(op);
      note(k, kWidens);
    } else {
      delete_allows.push_back(op);
      note(k, kNarrows);
    }
  }
  for (const auto& [k, v] : new_set) {
    PolicyMapOp op{false, PolicyEntry{k, v}};
    auto it = old_set.find(k);
    if (it == old_set.end()) {
      (isDeny(v) ? write_denies : write_allows).push_back(op);
      note(k, isDeny(v) ? kNarrows : kWidens);
      continue;
    }
    if (std::memcmp(&it->second, &v, sizeof(v)) == 0) continue;
    bool was_deny = isDeny(it->second);
    if (isDeny(v)) {
      write_denies.push_back(op);
      note(k, was_deny ? kNeutral : kNarrows);
    } else if (was_deny) {
      last.push_back(op);
      note(k, kWidens);
    } else {
      write_allows.push_back(op);  // e.g. another proxy port: the verdict stays "allow"
      note(k, kNeutral);
    }
  }

  PolicyPatch patch;
  // Two lookups per packet (its remote identity, then identity 0) may see the map at different
  // moments; only changes that all move the same way keep every such pair within the two sets.
  for (const auto& [dir_id, sense] : senses) {
    auto [dir, id] = dir_id;
    if (id == 0) continue;
    auto wildcard = senses.find({dir, 0});
    if (wildcard == senses.end()) continue;
    unsigned both = sense | wildcard->second;
    if (both != kNarrows && both != kWidens) {
      patch.swap = true;
      patch.swap_reason =
          fmt::format("the change moves identity 0 and identity {} ({}) in different senses", id,
                      dir == POLICY_EGRESS ? "egress" : "ingress");
      return patch;
    }
  }

  for (auto* phase : {&write_denies, &write_allows, &delete_allows, &last})
    patch.ops.insert(patch.ops.end(), phase->begin(), phase->end());
  // The map must hold every intermediate state.
  size_t size = old_set.size(), peak = size;
  std::set<policy_key, KeyLess> present;
  for (const auto& [k, v] : old_set) present.insert(k);
  for (const auto& op : patch.ops) {
    if (op.remove) {
      size -= present.erase(op.entry.key);
    } else if (present.insert(op.entry.key).second) {
      peak = std::max(peak, ++size);
    }
  }
  if (peak > capacity) {
    patch.swap = true;
    patch.swap_reason = fmt::format(
        "an in-place change would hold {} entries at once (capacity {})", peak, capacity);
    patch.ops.clear();
  }
  return patch;
}

}  // namespace cilium::datapath
