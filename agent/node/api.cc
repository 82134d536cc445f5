// REST handler of the node manager.
#include "agent/node/api.h"

namespace cilium::node {

api::NodeElement toApi(const Node& n) {
  api::NodeElement e;
  e.name = n.name;
  api::NodeAddressing primary;
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    auto ip = n.primaryAddress(f);
    std::string range;
    for (const auto& c : n.pod_cidrs)
      if (c.family() == f) {
        range = c.toString();
        break;
      }
    if (!ip && range.empty()) continue;
    api::NodeAddressingElement el{true, ip ? ip->toString() : "", range, ""};
    for (const auto& a : n.addresses)
      if (ip && a.ip == *ip) el.address_type = std::string(addressTypeName(a.type));
    (f == IpFamily::kV4 ? primary.ipv4 : primary.ipv6) = el;
  }
  if (primary.ipv4 || primary.ipv6) e.primary_address = primary;
  for (const auto& a : n.addresses) {
    bool is_primary = (primary.ipv4 && primary.ipv4->ip == a.ip.toString()) ||
                      (primary.ipv6 && primary.ipv6->ip == a.ip.toString());
    if (!is_primary)
      e.secondary_addresses.push_back(api::NodeAddressingElement{
          true, a.ip.toString(), "", std::string(addressTypeName(a.type))});
  }
  if (!n.health.empty()) {
    api::NodeAddressing h;
    for (const auto& ip : n.health)
      (ip.isV4() ? h.ipv4 : h.ipv6) = api::NodeAddressingElement{true, ip.toString(), "", ""};
    e.health_endpoint_address = h;
  }
  e.source = n.from_cilium_node ? "custom-resource" : "kubernetes";
  return e;
}

Status registerRoutes(api::Router& router, const Manager& nodes, std::string self) {
  return router.add(api::Method::kGet, "/v1/cluster/nodes",
                    [&nodes, self](const api::Request&) -> Result<api::Response> {
                      api::ClusterNodeStatus st;
                      st.self = self;
                      for (const auto& n : nodes.list()) st.nodes_added.push_back(toApi(n));
                      return api::Response::json(api::encode(st));
                    });
}

}  // namespace cilium::node
