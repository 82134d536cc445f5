// ObservabilityComponent: the daemon-facing half; the work is in observability_bridge.cc.
#include "agent/daemon/observability.h"

#include "agent/daemon/observability_bridge.h"

namespace cilium::daemon {

struct ObservabilityComponent::Impl {
  ControlPlaneComponent& cp;
  std::unique_ptr<ObservabilityBridge> bridge;
  hubble::FlowPipeline* pipeline = nullptr;
  bool started = false;
};

ObservabilityComponent::ObservabilityComponent(ControlPlaneComponent& control_plane,
                                               metrics::Registry& agent_registry)
    : impl_(std::make_unique<Impl>(
          Impl{control_plane, ObservabilityBridge::create(agent_registry)})) {}

ObservabilityComponent::~ObservabilityComponent() { stop(); }

void ObservabilityComponent::setFlowPipeline(hubble::FlowPipeline* pipeline) {
  impl_->pipeline = pipeline;
}
const hubble::EndpointResolver* ObservabilityComponent::endpointResolver() const {
  return impl_->bridge->endpointResolver();
}
const hubble::IdentityResolver* ObservabilityComponent::identityResolver() const {
  return impl_->bridge->identityResolver();
}

metrics::AgentMetrics* ObservabilityComponent::agentMetrics() {
  return impl_->bridge->agentMetrics();
}

Status ObservabilityComponent::start(Host& daemon) {
  ControlPlane* cp = impl_->cp.controlPlane();
  if (cp == nullptr) {
    return makeError(ErrorCode::kFailedPrecondition,
                     "observability needs the control plane started first");
  }
  CILIUM_RETURN_IF_ERROR(
      impl_->bridge->start(*cp, impl_->pipeline, [&daemon] { return daemon.mapPressure(); }));
  impl_->started = true;
  return okStatus();
}

void ObservabilityComponent::stop() {
  if (!impl_ || !impl_->started) return;
  // Components stop in reverse order, so the control plane is still running here.
  if (ControlPlane* cp = impl_->cp.controlPlane(); cp != nullptr) impl_->bridge->stop(*cp);
  impl_->started = false;
}

}  // namespace cilium::daemon
