// Connects the control plane to Hubble and to the agent's metrics: the event hub feeds Hubble's
// flow pipeline, Hubble's resolvers answer from snapshots of the endpoints and identities, and
// the cilium_* metrics read the datapath and the control plane at scrape time.
//
// Add it after the ControlPlaneComponent and before the Hubble and metrics components; the
// resolvers exist from construction (Hubble's pipeline is built with them) and answer "unknown"
// until start().
#pragma once

#include <functional>
#include <memory>

#include "agent/common/inet.h"
#include "agent/daemon/control_plane_component.h"
#include "agent/daemon/daemon.h"

namespace cilium::hubble {
struct EndpointInfo;
class EndpointResolver;
class IdentityResolver;
class NameResolver;
class FlowPipeline;
}  // namespace cilium::hubble
namespace cilium::metrics {
class Registry;
class AgentMetrics;
}  // namespace cilium::metrics

namespace cilium::daemon {

class ObservabilityComponent final : public Component {
 public:
  // `control_plane` and `agent_registry` must outlive this component.
  ObservabilityComponent(ControlPlaneComponent& control_plane, metrics::Registry& agent_registry);
  ~ObservabilityComponent() override;

  std::string_view name() const override { return "observability"; }
  // The pipeline that receives the event hub's records (null: no Hubble). Before start().
  void setFlowPipeline(hubble::FlowPipeline* pipeline);
  const hubble::EndpointResolver* endpointResolver() const;
  const hubble::IdentityResolver* identityResolver() const;
  // source_names / destination_names from the DNS proxy's cache.
  const hubble::NameResolver* nameResolver() const;
  // The cilium_* families counted where things happen (the Kubernetes client's calls); valid
  // after start().
  metrics::AgentMetrics* agentMetrics();
  // Pods of other nodes, for Hubble's names of addresses no local endpoint has (the cluster
  // feed's CiliumEndpoints). Null: none. Setting it (also to null) waits for lookups in
  // progress, so the old lookup's state may go once this returns.
  using RemoteLookup =
      std::function<std::shared_ptr<const hubble::EndpointInfo>(const IpAddr& ip)>;
  void setRemoteEndpoints(RemoteLookup lookup);

  Status start(Host& daemon) override;
  void stop() override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cilium::daemon
