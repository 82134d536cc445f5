// The datapath's map sizes and event aggregation as configuration keys (bpf-ct-global-*-max,
// bpf-policy-map-max, bpf-nat-global-max, monitor-aggregation): declared here, composed by the
// agent, turned into datapath::Config by the control plane. No dependency on the datapath itself.
#pragma once

#include <cstdint>
#include <string>

#include "agent/config/config.h"

namespace cilium::datapath {

struct MapConfig {
  uint32_t bpf_ct_global_tcp_max = 524288;
  uint32_t bpf_ct_global_any_max = 262144;
  uint32_t bpf_policy_map_max = 16384;
  uint32_t bpf_nat_global_max = 524288;
  std::string monitor_aggregation = "medium";  // none | low | medium | maximum
};
const config::Registry<MapConfig>& mapConfigKeys();

}  // namespace cilium::datapath
