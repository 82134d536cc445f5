// In-memory datapath maps for unprivileged tests of the control plane.
#pragma once

#include <map>
#include <mutex>

#include "agent/bpf/fake_map.h"
#include "agent/datapath/maps.h"

namespace cilium::datapath {

// Follows the kernel's plan (planPolicyPatch) and counts what the kernel would do; an inner map
// has an id that changes when a new one is swapped in, as the kernel's map ids do.
class FakePolicyMaps final : public PolicyMaps {
 public:
  explicit FakePolicyMaps(uint32_t max_entries = CILIUM_POLICY_MAP_SIZE)
      : max_entries_(max_entries) {}

  Status replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) override;
  std::vector<Status> replaceMany(std::span<const PolicyReplacement> changes) override;
  Status update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                std::span<const policy_key> deletes) override;
  Status remove(uint16_t endpoint_id) override;
  Status removeMany(std::span<const uint16_t> endpoint_ids) override;
  Result<std::vector<PolicyEntry>> dump(uint16_t endpoint_id) const override;
  Result<std::vector<uint16_t>> endpoints() const override;

  // Number of endpoint policies replaced (replace() calls and replaceMany() elements).
  uint64_t replacements() const;
  PolicyMapCounters counters() const;
  // The id of the endpoint's current inner map (0: none).
  uint64_t innerMapId(uint16_t endpoint_id) const;
  // Entry writes and deletes done in place by replace()/replaceMany() so far.
  uint64_t inPlaceOps() const;

 private:
  using Inner = std::map<std::vector<uint8_t>, PolicyEntry>;
  struct Slot {
    uint64_t id = 0;
    Inner entries;
  };
  static std::vector<uint8_t> keyBytes(const policy_key& k);
  // One endpoint of replaceMany(); true in *swap when it needs a new inner map.
  Status replaceLocked(uint16_t endpoint_id, std::span<const PolicyEntry> entries, bool* swap);
  uint32_t max_entries_;
  mutable std::mutex mu_;
  std::map<uint16_t, Slot> maps_;
  uint64_t next_id_ = 1;
  uint64_t replacements_ = 0;
  uint64_t in_place_ops_ = 0;
  PolicyMapCounters counters_;
};

// A complete set of fake maps with a Maps view over them.
struct FakeMaps {
  bpf::FakeMap<endpoint_key, endpoint_info> endpoints{"cilium_lxc", CILIUM_LXC_MAP_SIZE};
  bpf::FakeMap<uint32_t, endpoint_info> endpoints_by_ifindex{"cilium_lxc_if", CILIUM_LXC_MAP_SIZE};
  bpf::FakeMap<ipcache_key, remote_endpoint_info> ipcache{"cilium_ipcache",
                                                          CILIUM_IPCACHE_MAP_SIZE};
  FakePolicyMaps policy;
  bpf::FakeMap<ct_key4, ct_entry> ct_tcp{"cilium_ct4_global", 1024};
  bpf::FakeMap<ct_key4, ct_entry> ct_any{"cilium_ct_any4_global", 1024};
  bpf::FakeMap<ct_key6, ct_entry> ct6_tcp{"cilium_ct6_global", 1024};
  bpf::FakeMap<ct_key6, ct_entry> ct6_any{"cilium_ct_any6_global", 1024};
  bpf::FakeMap<metrics_key, bpf::PerCpu<metrics_value>> metrics{"cilium_metrics", 1024};
  bpf::FakeMap<uint32_t, uint64_t> runtime_config{"cilium_runtime_config", RUNTIME_CONFIG_MAX};
  bpf::FakeMap<uint32_t, bpf::PerCpu<::event_stats>> event_stats_map{"cilium_event_stats", 1};

  Maps view() {
    return Maps{&endpoints, &endpoints_by_ifindex, &ipcache,         &policy,  &ct_tcp, &ct_any,
                &metrics,   &runtime_config,       &event_stats_map, &ct6_tcp, &ct6_any};
  }
};

}  // namespace cilium::datapath
