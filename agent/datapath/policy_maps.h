// PolicyMaps on the kernel: cilium_policy_v2 (HASH_OF_MAPS, endpoint id -> inner LPM trie).
#pragma once

#include <memory>
#include <mutex>

#include "agent/common/fd.h"
#include "agent/datapath/maps.h"

namespace cilium::datapath {

// replace()/replaceMany() follow the PolicyMaps contract (maps.h): unchanged sets write nothing,
// changed ones are patched in place in the order of planPolicyPatch(), and only when that is not
// possible (or the inner map has another size than new ones get) a fresh inner map is filled and
// swapped in; replaceMany() installs its swaps with BPF_MAP_UPDATE_BATCH, one grace period per
// batch instead of one per endpoint. update() edits the current inner map in place. Entries are
// checked with validatePolicyEntry() before anything is written. Thread-safe.
class KernelPolicyMaps final : public PolicyMaps {
 public:
  // `outer_fd` is borrowed (duplicated here). New inner maps get `inner_max_entries` entries
  // (LPM inner maps of any size fit; existing ones keep theirs until replaced).
  static Result<std::unique_ptr<KernelPolicyMaps>> create(int outer_fd, uint32_t inner_max_entries);

  Status replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) override;
  std::vector<Status> replaceMany(std::span<const PolicyReplacement> changes) override;
  Status update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                std::span<const policy_key> deletes) override;
  Status remove(uint16_t endpoint_id) override;
  Status removeMany(std::span<const uint16_t> endpoint_ids) override;
  Result<std::vector<PolicyEntry>> dump(uint16_t endpoint_id) const override;
  Result<std::vector<uint16_t>> endpoints() const override;

  // Creates an empty inner map as replace() would; also the outer map's template at load.
  static Result<UniqueFd> createInnerMap(uint16_t endpoint_id, uint32_t max_entries);

  PolicyMapCounters counters() const;

 private:
  KernelPolicyMaps(UniqueFd outer, uint32_t inner_max)
      : outer_(std::move(outer)), inner_max_(inner_max) {}
  // The current inner map of an endpoint; kNotFound when it has none.
  Result<UniqueFd> innerMap(uint16_t endpoint_id) const;
  Result<std::vector<PolicyEntry>> dumpInner(int inner_fd, uint16_t endpoint_id) const;
  // Brings the inner map to `entries` in place; false when that takes a swap.
  Result<bool> patchLocked(int inner_fd, uint16_t endpoint_id,
                           std::span<const PolicyEntry> entries);
  struct Swap {
    size_t index;  // into the caller's results
    uint32_t key;
    UniqueFd inner;
  };
  // Installs the inner maps with as few outer-map updates as possible; sets results[index].
  void installLocked(std::vector<Swap>& swaps, std::vector<Status>& results);

  UniqueFd outer_;
  uint32_t inner_max_;
  mutable std::mutex mu_;  // one writer at a time, so update() never edits a map being replaced
  PolicyMapCounters counters_;  // guarded by mu_
};

// Whether the pinned outer policy map at `path` accepts the inner maps this build creates (the
// kernel fixes the inner layout when the outer map is created). Absent path: true.
Result<bool> pinnedPolicyMapCompatible(const std::string& path, uint32_t inner_max_entries);

}  // namespace cilium::datapath
