// The component that serves a metrics registry over HTTP: the agent's (prometheus-serve-addr,
// Cilium's :9962) or Hubble's (hubble-metrics-server, :9965). The registry itself is created by
// main and shared with the modules that feed it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/component/component.h"
#include "agent/metrics/config.h"
#include "agent/metrics/registry.h"
#include "agent/metrics/server.h"

namespace cilium::metrics {

class MetricsComponent : public component::Component {
 public:
  // Reads the listen address from the configuration at start().
  using AddressOf = std::function<std::string(const component::Host&)>;

  // `registry` must outlive the component. An empty address at start() (the key unset) serves
  // nothing. `key` is the configuration field holding the address, in the part of the module
  // that declares it: the agent's metrics use prometheus-serve-addr (the default), Hubble's
  // &hubble::Config::hubble_metrics_server.
  template <class Part = Config>
  explicit MetricsComponent(Registry& registry,
                            std::string Part::*key = &Config::prometheus_serve_addr,
                            std::string component_name = "metrics")
      : MetricsComponent(
            registry, [key](const component::Host& h) { return h.config<Part>().*key; },
            std::move(component_name)) {}
  MetricsComponent(Registry& registry, AddressOf address, std::string component_name)
      : registry_(registry), address_(std::move(address)), name_(std::move(component_name)) {}

  std::string_view name() const override { return name_; }
  Status start(component::Host& host) override;
  void stop() override;
  const MetricsServer* server() const { return server_.get(); }

 private:
  Registry& registry_;
  AddressOf address_;
  std::string name_;
  std::unique_ptr<MetricsServer> server_;
};

}  // namespace cilium::metrics
