// The health checker as a part of the running agent (Cilium's cilium-health, in the agent):
// the node's /hello server on cluster-health-port, the health endpoint (its namespace, veth,
// endpoint with identity health and /hello responder), the prober over every known node, GET
// /v1/health/status and PUT /v1/health/status/probe, the "Cluster health" status and the
// cilium_node_connectivity_* metrics. Starts after the control plane, which it reaches through
// the functions in Deps.
//
// The health endpoint lives as long as the agent: its namespace is held by a file descriptor,
// so a stopped (or killed) agent's health namespace and veth disappear with it, and the next
// start makes them again (an endpoint restored from state whose device is gone is dropped by
// the endpoint manager). A clean stop removes the endpoint first.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/component/component.h"
#include "agent/health/net.h"
#include "agent/health/prober.h"

namespace cilium::endpoint {
class Manager;
}
namespace cilium::metrics {
class Registry;
}
namespace cilium::node {
struct Node;
}

namespace cilium::health {

struct ComponentDeps {
  std::function<endpoint::Manager*()> endpoints;   // null: no endpoint manager
  std::function<std::vector<node::Node>()> nodes;  // every node known
  metrics::Registry* registry = nullptr;           // cilium_node_connectivity_*; optional
};

class HealthComponent final : public component::Component {
 public:
  explicit HealthComponent(ComponentDeps deps);
  ~HealthComponent() override;
  std::string_view name() const override { return "health"; }
  Status start(component::Host& host) override;
  void stop() override;

  struct Shared;

 private:
  Status startEndpoint(component::Host& host, const IpAddr& ip, const std::optional<IpAddr>& ip6);

  ComponentDeps deps_;
  std::shared_ptr<Shared> shared_;  // the last report, read by the metrics collectors
  std::unique_ptr<Responder> node_responder_;
  std::optional<HealthLink> link_;
  std::unique_ptr<Responder> endpoint_responder_;
  uint16_t endpoint_id_ = 0;
  std::unique_ptr<NetProbes> probes_;
  std::unique_ptr<Prober> prober_;
};

// The health endpoint's address of `family`: the one IPAM holds for owner cilium-health, which
// the node component reserves and publishes in the CiliumNode (spec.health.ipv4 / ipv6) when
// the node is part of a cluster. nullopt otherwise: a standalone node has no other node to be
// probed by, and runs no health endpoint.
std::optional<IpAddr> healthAddress(const ipam::Ipam& ipam, IpFamily family = IpFamily::kV4);

}  // namespace cilium::health
