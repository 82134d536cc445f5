// The health checker's configuration keys (enable-health-checking, ...): declared here, composed
// by the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/common/error.h"
#include "agent/config/config.h"

namespace cilium::health {

struct Config {
  bool enable_health_checking = true;           // probe the other nodes, serve cluster-health-port
  bool enable_endpoint_health_checking = true;  // run the health endpoint and probe the others'
  std::chrono::milliseconds health_check_interval{60000};  // Cilium's probe interval
  uint32_t cluster_health_port = 4240;
};
const config::Registry<Config>& configKeys();

// Go durations, shared by every module's keys (agent/config/config.h).
using config::durationText;
using config::parseDuration;

// The owner IPAM records for the health endpoint's address (the node component reserves it, the
// health component finds it).
inline constexpr std::string_view kHealthOwner = "cilium-health";

}  // namespace cilium::health
