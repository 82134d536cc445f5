// The part of ObservabilityComponent that touches the control plane's modules (endpoint
// manager, identity allocator, policy engine) and Hubble. It lives in its own translation unit
// because those modules use agent/common/ip_prefix.h, which cannot share one with
// agent/common/inet.h (used by daemon.h); this header includes neither.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/common/error.h"

namespace cilium::hubble {
class EndpointResolver;
class IdentityResolver;
class FlowPipeline;
}  // namespace cilium::hubble
namespace cilium::metrics {
class Registry;
class AgentMetrics;
}  // namespace cilium::metrics

namespace cilium::daemon {

class ControlPlane;

class ObservabilityBridge {
 public:
  static std::unique_ptr<ObservabilityBridge> create(metrics::Registry& agent_registry);
  virtual ~ObservabilityBridge() = default;
  virtual const hubble::EndpointResolver* endpointResolver() const = 0;
  virtual const hubble::IdentityResolver* identityResolver() const = 0;
  // The cilium_* families counted where things happen; null before start().
  virtual metrics::AgentMetrics* agentMetrics() = 0;
  // Registers the metrics, subscribes to identities, regenerations and events (`pipeline` may
  // be null), starts the snapshot refresher.
  // `pressure` gives cilium_bpf_map_pressure (Daemon::mapPressure: every component's maps).
  virtual Status start(ControlPlane& cp, hubble::FlowPipeline* pipeline,
                       std::function<std::vector<std::pair<std::string, double>>()> pressure) = 0;
  // Undoes start(); `cp` is still running.
  virtual void stop(ControlPlane& cp) = 0;
};

}  // namespace cilium::daemon
