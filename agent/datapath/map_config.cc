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
    r->choice("routing-mode",
              "How pods reach pods on other nodes: tunnel (VXLAN, the source identity in the "
              "VNI) or native (the node's routes)",
              &MapConfig::routing_mode, {"native", "tunnel"});
    r->string(
        "tunnel-protocol", "Encapsulation of routing-mode=tunnel: vxlan (the only one here)",
        &MapConfig::tunnel_protocol,
        [](std::string_view v) -> Status {
          if (config::lower(v) == "vxlan") return okStatus();
          if (config::lower(v) == "geneve")
            return config::invalidValue(
                "geneve is not supported by this build (the kernel has no Geneve; only vxlan)");
          return makeError(ErrorCode::kInvalidArgument, "'{}' is not vxlan", v);
        },
        "vxlan");
    r->uint("tunnel-port", "UDP port of the VXLAN overlay (routing-mode=tunnel)",
            &MapConfig::tunnel_port, 1, 65535);
    r->boolean("auto-direct-node-routes",
               "Route every other node's pod CIDR via its address when the nodes share an L2 "
               "network (routing-mode=native)",
               &MapConfig::auto_direct_node_routes);
    r->check([](const MapConfig& c) -> Status {
      if (c.auto_direct_node_routes && c.routing_mode != "native")
        return makeError(ErrorCode::kInvalidArgument,
                         "auto-direct-node-routes needs routing-mode=native (routing-mode={} "
                         "encapsulates pods' packets to other nodes)",
                         c.routing_mode);
      return okStatus();
    });
    return r;
  }();
  return *r;
}

Result<uint32_t> podMtu(uint32_t base_mtu, bool tunnel) {
  uint32_t overhead = tunnel ? kVxlanOverhead : 0;
  // 576 is the smallest MTU every IPv4 host must accept (and the `mtu` key's lower bound).
  if (base_mtu < 576 + overhead)
    return makeError(ErrorCode::kInvalidArgument,
                     "MTU {} leaves no room for the {}-byte VXLAN encapsulation", base_mtu,
                     overhead);
  return base_mtu - overhead;
}

}  // namespace cilium::datapath
