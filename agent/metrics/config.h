// The agent's metrics endpoint key (prometheus-serve-addr): declared here, composed by the agent.
#pragma once

#include <string>

#include "agent/config/config.h"

namespace cilium::metrics {

struct Config {
  std::string prometheus_serve_addr;  // "" = off; Cilium's Helm default ":9962"
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::metrics
