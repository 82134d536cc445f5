// How an endpoint's policy map moves from the entries it holds to a newly computed set: in place,
// entry by entry, in an order that never lets a packet through that neither set allows, or, when
// no such order exists, by swapping in a complete new inner map. Pure logic: both PolicyMaps
// implementations follow the same plan. The argument is in docs/policy.md ("Changing a policy
// map in place").
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "agent/datapath/maps.h"

namespace cilium::datapath {

struct PolicyMapOp {
  bool remove = false;  // true: delete entry.key; false: write entry
  PolicyEntry entry;
};

struct PolicyPatch {
  // true: no safe in-place order exists (or it would not fit); install a new inner map.
  bool swap = false;
  std::string swap_reason;
  // When !swap: apply in this order. Empty: the map already holds the wanted set.
  std::vector<PolicyMapOp> ops;
};

// Plans the change from `current` (what the map holds, e.g. dump()) to `wanted` (entries that
// pass validatePolicyEntry(); normalized here; a key given twice keeps its last entry) for a map
// of `capacity` entries, which no step may exceed.
//
// The order: (1) write the new denies (also allows that become denies), (2) write the new allows,
// (3) delete the old allows, (4) turn denies that become allows and delete the old denies. No
// step allows a packet that neither set allows, and for sets that keep the map-state rules of
// bpf/abi/policy.h no step drops a packet both allow. Because the datapath reads the remote
// identity's entries and the wildcard (identity 0) entries in two lookups that a concurrent writer
// may separate, a set that changes both identity 0 and another identity of one direction is patched
// only when all those changes narrow, or all widen; otherwise the plan is a swap.
PolicyPatch planPolicyPatch(std::span<const PolicyEntry> current,
                            std::span<const PolicyEntry> wanted, size_t capacity);

}  // namespace cilium::datapath
