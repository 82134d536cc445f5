// The component that runs Hubble: the flow pipeline and the Observer gRPC server
// (hubble-socket-path, hubble-listen-address), with Hubble's metrics registered in a registry
// the caller serves (MetricsComponent on hubble-metrics-server).
//
// Wiring in main: construct it from the configuration, feed pipeline().onEvent from the event
// hub's subscription, and add it to the daemon. With enable-hubble off, start() serves nothing
// and records fed in are dropped by the idle queue (counted).
#pragma once

#include <memory>

#include "agent/component/component.h"
#include "agent/hubble/config.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/server.h"
#include "agent/metrics/registry.h"

namespace cilium::hubble {

struct ComponentOptions {
  bool enabled = false;
  PipelineOptions pipeline;
  ServerOptions server;
};
// From Hubble's keys (enable-hubble, hubble-event-buffer-capacity, hubble-event-queue-size,
// hubble-socket-path, hubble-listen-address) and the node's name (flows carry it).
ComponentOptions componentOptions(const Config& cfg, std::string node_name, std::string version);

class HubbleComponent : public component::Component {
 public:
  // Resolvers and registry may be null; when set they must outlive the component.
  HubbleComponent(ComponentOptions opts, const EndpointResolver* endpoints,
                  const IdentityResolver* identities, metrics::Registry* registry);
  std::string_view name() const override { return "hubble"; }
  Status start(component::Host& host) override;
  void stop() override;

  FlowPipeline& pipeline() { return *pipeline_; }
  const HubbleServer* server() const { return server_.get(); }

 private:
  ComponentOptions opts_;
  metrics::Registry* registry_;
  std::unique_ptr<FlowPipeline> pipeline_;
  std::unique_ptr<HubbleServer> server_;
};

}  // namespace cilium::hubble
