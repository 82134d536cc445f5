// The policy engine's configuration key (enable-policy): declared here, composed by the agent.
#pragma once

#include <string>

#include "agent/config/config.h"

namespace cilium::policy {

struct EnforcementConfig {
  std::string enable_policy = "default";  // default | always | never
};
const config::Registry<EnforcementConfig>& configKeys();

}  // namespace cilium::policy
