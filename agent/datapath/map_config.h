// The datapath's map sizes, event aggregation and routing mode as configuration keys
// (bpf-ct-global-*-max, bpf-policy-map-max, bpf-nat-global-max, monitor-aggregation,
// routing-mode, tunnel-port, auto-direct-node-routes): declared here, composed by the
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
  // How pods reach pods on other nodes: "tunnel" (VXLAN on tunnel-port, the sender's identity in
  // the VNI; the default, as in Cilium) or "native" (the node's routing). docs/datapath.md.
  std::string routing_mode = "tunnel";
  std::string tunnel_protocol = "vxlan";  // the only encapsulation (no Geneve in the kernel)
  uint32_t tunnel_port = 8472;
  // routing-mode=native only: a route to every other node's pod CIDR via that node's address
  // when it is on a directly connected L2 (agent/node/direct_routes.h).
  bool auto_direct_node_routes = false;
};
const config::Registry<MapConfig>& mapConfigKeys();

// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8) headers.
inline constexpr uint32_t kVxlanOverhead = 50;
// The network's MTU when the `mtu` key is 0 (no detection yet).
inline constexpr uint32_t kDefaultBaseMtu = 1500;

// The MTU of pod devices on a network whose links carry `base_mtu`: less the VXLAN headers when
// pods' packets are encapsulated. kInvalidArgument when less than 576 would be left.
Result<uint32_t> podMtu(uint32_t base_mtu, bool tunnel);

}  // namespace cilium::datapath
