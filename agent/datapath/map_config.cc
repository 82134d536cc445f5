// The datapath's configuration keys.
#include "agent/datapath/map_config.h"

namespace cilium::datapath {

const config::Registry<MapConfig>& mapConfigKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<MapConfig>;
    r->uint("bpf-ct-global-tcp-max", "Maximum entries in the TCP conntrack map",
            &MapConfig::bpf_ct_global_tcp_max, 1 << 10, 1 << 24);
    r->uint("bpf-ct-global-any-max", "Maximum entries in the non-TCP conntrack map",
            &MapConfig::bpf_ct_global_any_max, 1 << 10, 1 << 24);
    r->uint("bpf-policy-map-max", "Maximum entries in each endpoint's policy map",
            &MapConfig::bpf_policy_map_max, 1 << 10, 1 << 16);
    r->uint("bpf-nat-global-max", "Maximum entries in the NAT map",
            &MapConfig::bpf_nat_global_max, 1 << 10, 1 << 24);
    r->choice("monitor-aggregation", "How much the datapath aggregates trace events",
              &MapConfig::monitor_aggregation, {"none", "low", "medium", "maximum"});
    return r;
  }();
  return *r;
}

}  // namespace cilium::datapath
