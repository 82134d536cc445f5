// The health checker's configuration keys.
#include "agent/health/config.h"

namespace cilium::health {

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->boolean("enable-health-checking",
               "Probe every node and its health endpoint (ICMP and HTTP on cluster-health-port) "
               "and serve the health port on this node",
               &Config::enable_health_checking);
    r->boolean("enable-endpoint-health-checking",
               "Run this node's health endpoint (a network namespace with the reserved health "
               "address, identity health) and probe the other nodes' health endpoints",
               &Config::enable_endpoint_health_checking);
    config::Key<Config> k;
    k.name = "health-check-interval";
    k.type = "duration";
    k.description = "Time between two rounds of connectivity probes (e.g. 60s, 1s, 500ms)";
    k.set = [](Config& c, std::string_view v) -> Status {
      CILIUM_ASSIGN_OR_RETURN(auto d, parseDuration(v));
      if (d < std::chrono::milliseconds(100))
        return config::invalidValue(fmt::format("'{}' is shorter than 100ms", v));
      c.health_check_interval = d;
      return okStatus();
    };
    k.get = [](const Config& c) { return nlohmann::json(durationText(c.health_check_interval)); };
    r->add(std::move(k));
    r->uint("cluster-health-port",
            "TCP port of the health endpoint and of the node's health server",
            &Config::cluster_health_port, 1, 65535);
    return r;
  }();
  return *r;
}

}  // namespace cilium::health
