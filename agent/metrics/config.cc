// The metrics module's configuration keys.
#include "agent/metrics/config.h"

namespace cilium::metrics {

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->string("prometheus-serve-addr", "host:port to serve Prometheus metrics on (\"\": off)",
              &Config::prometheus_serve_addr, config::checkListenAddress)
        .defaultNote("off");
    return r;
  }();
  return *r;
}

}  // namespace cilium::metrics
