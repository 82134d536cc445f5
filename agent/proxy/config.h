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

  // The DNS proxy and toFQDNs (agent/fqdn, docs/l7.md "DNS proxy"), Cilium's keys.
  uint32_t tofqdns_min_ttl = 0;                 // seconds; 0 = the answers' TTLs
  uint32_t tofqdns_max_ips_per_host = 1000;     // per name and endpoint
  std::string tofqdns_reject_code = "refused";  // "refused" | "nameerror"
  uint32_t tofqdns_proxy_port = 0;              // 0 = the allocated cilium-dns-egress port
  uint32_t tofqdns_grace_seconds = 0;           // kept past expiry (idle-connection grace)
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::proxy
