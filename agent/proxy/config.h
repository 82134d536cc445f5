// The L7 proxy's configuration keys (enable-l7-proxy, proxy-binary): declared here, composed by
// the agent.
#pragma once

#include <string>

#include "agent/config/config.h"

namespace cilium::proxy {

struct Config {
  // Redirect the ports L7 rules cover to cilium-proxy (docs/l7.md). Off: policies with L7 rules
  // are refused at import (never allowed at L4).
  bool enable_l7_proxy = false;
  // The cilium-proxy executable the agent runs; "" = next to cilium-agent (or the build tree's).
  std::string proxy_binary;
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::proxy
