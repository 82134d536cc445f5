// The component that runs Hubble: the flow pipeline and the Hubble gRPC server
// (hubble-socket-path, hubble-listen-address with TLS), with Hubble's metrics registered in a
// registry the caller serves (MetricsComponent on hubble-metrics-server), and Hubble's part of
// GET /healthz (cilium-dbg status).
//
// Wiring in main: construct it from the configuration, feed pipeline().onEvent from the event
// hub's subscription, give it the service frontends (setServiceSource) and add it to the daemon.
// With enable-hubble off, start() serves nothing and records fed in are dropped by the idle queue
// (counted).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "agent/component/component.h"
#include "agent/hubble/config.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "agent/metrics/registry.h"

namespace cilium::hubble {

struct ComponentOptions {
  bool enabled = false;
  PipelineOptions pipeline;
  ServerOptions server;
  std::string metrics;  // hubble-metrics (agent/hubble/metrics_spec.h)
  // Why the TCP listener is off although an address is configured ("" = it is not).
  std::string tcp_off_reason;
};
// From Hubble's keys (enable-hubble, hubble-event-buffer-capacity, hubble-event-queue-size,
// hubble-socket-path, hubble-listen-address, hubble-*tls*, hubble-metrics) and the node's name
// and cluster (flows carry "cluster/node"). With TLS on (hubble-disable-tls false) and no
// certificate configured, the TCP listener stays off, as Cilium's waits for its certificates:
// tcp_off_reason says so.
ComponentOptions componentOptions(const Config& cfg, std::string node_name, std::string version,
                                  std::string cluster_name = "default");

class HubbleComponent : public component::Component {
 public:
  // Resolvers and registry may be null; when set they must outlive the component.
  HubbleComponent(ComponentOptions opts, const EndpointResolver* endpoints,
                  const IdentityResolver* identities, metrics::Registry* registry);
  ~HubbleComponent() override;
  std::string_view name() const override { return "hubble"; }
  Status start(component::Host& host) override;
  void stop() override;

  // Lists every service frontend; called once a second from a thread of the component (never
  // from the decoder), from start() on. Set before start().
  using ServiceSource = std::function<std::vector<ServiceFrontend>()>;
  void setServiceSource(ServiceSource source) { service_source_ = std::move(source); }

  FlowPipeline& pipeline() { return *pipeline_; }
  const HubbleServer* server() const { return server_.get(); }

 private:
  void refreshServices();

  ComponentOptions opts_;
  metrics::Registry* registry_;
  StaticResolver services_;
  std::unique_ptr<FlowPipeline> pipeline_;
  std::unique_ptr<HubbleServer> server_;
  ServiceSource service_source_;
  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  bool stopping_ = false;
  std::thread refresher_;
};

}  // namespace cilium::hubble
