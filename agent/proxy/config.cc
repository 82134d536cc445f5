// The L7 proxy's configuration keys.
#include "agent/proxy/config.h"

namespace cilium::proxy {

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->boolean("enable-l7-proxy",
               "Enforce L7 (HTTP) rules through cilium-proxy; off refuses policies with L7 rules",
               &Config::enable_l7_proxy);
    r->path("proxy-binary", "The cilium-proxy executable (default: next to cilium-agent)",
            &Config::proxy_binary, true)
        .default_note = "next to cilium-agent";
    return r;
  }();
  return *r;
}

}  // namespace cilium::proxy
