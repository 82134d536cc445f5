// The daemon component that serves a metrics registry over HTTP: the agent's
// (prometheus-serve-addr, Cilium's :9962) or Hubble's (hubble-metrics-server, :9965). The registry
// itself is created by main and shared with the modules that feed it.
#pragma once

#include <memory>
#include <string>

#include "agent/daemon/daemon.h"
#include "agent/metrics/registry.h"
#include "agent/metrics/server.h"

namespace cilium::metrics {

class MetricsComponent : public daemon::Component {
 public:
  // Which configuration key holds the listen address.
  using AddressKey = std::string daemon::Config::*;

  // `registry` must outlive the component. An empty address at start() (the key unset) serves
  // nothing. The agent's metrics use prometheus-serve-addr; Hubble's use hubble-metrics-server.
  explicit MetricsComponent(Registry& registry,
                            AddressKey key = &daemon::Config::prometheus_serve_addr,
                            std::string component_name = "metrics")
      : registry_(registry), key_(key), name_(std::move(component_name)) {}
  std::string_view name() const override { return name_; }
  Status start(daemon::Daemon& daemon) override;
  void stop() override;
  const MetricsServer* server() const { return server_.get(); }

 private:
  Registry& registry_;
  AddressKey key_;
  std::string name_;
  std::unique_ptr<MetricsServer> server_;
};

}  // namespace cilium::metrics
