// Hubble's lifecycle inside the agent.
#include "agent/hubble/component.h"

#include "agent/hubble/metrics.h"

namespace cilium::hubble {

ComponentOptions componentOptions(const Config& cfg, std::string node_name, std::string version) {
  ComponentOptions o;
  o.enabled = cfg.enable_hubble;
  o.pipeline.node_name = std::move(node_name);
  o.pipeline.ring_capacity = cfg.hubble_event_buffer_capacity;
  o.pipeline.queue_size = cfg.hubble_event_queue_size;
  o.server.unix_socket = cfg.hubble_socket_path;
  o.server.tcp_address = cfg.hubble_listen_address;
  o.server.version = std::move(version);
  return o;
}

HubbleComponent::HubbleComponent(ComponentOptions opts, const EndpointResolver* endpoints,
                                 const IdentityResolver* identities, metrics::Registry* registry)
    : opts_(std::move(opts)),
      registry_(registry),
      pipeline_(std::make_unique<FlowPipeline>(opts_.pipeline, endpoints, identities)) {}

Status HubbleComponent::start(component::Host&) {
  if (!opts_.enabled) return okStatus();
  if (registry_) CILIUM_RETURN_IF_ERROR(registerHubbleMetrics(*registry_, *pipeline_));
  CILIUM_RETURN_IF_ERROR(pipeline_->start());
  server_ = std::make_unique<HubbleServer>(*pipeline_, opts_.server);
  auto st = server_->start();
  if (!st.ok()) {
    server_.reset();
    pipeline_->stop();
    return st;
  }
  return okStatus();
}

void HubbleComponent::stop() {
  server_.reset();
  pipeline_->stop();
}

}  // namespace cilium::hubble
