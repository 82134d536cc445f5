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
    r->uint("tofqdns-min-ttl",
            "The minimum time, in seconds, to use DNS data for toFQDNs policies (0: the TTLs "
            "the answers carry)",
            &Config::tofqdns_min_ttl, 0, 604800, true);
    r->uint("tofqdns-endpoint-max-ip-per-hostname",
            "Maximum number of IPs to maintain per FQDN name for each endpoint",
            &Config::tofqdns_max_ips_per_host, 1, 1000000)
        .alias("tofqdns-max-ips-per-host");
    r->choice("tofqdns-dns-reject-response-code",
              "DNS response code for rejecting DNS requests (refused, nameError)",
              &Config::tofqdns_reject_code, {"refused", "nameerror"});
    r->uint("tofqdns-proxy-port",
            "Port of the DNS proxy (0: the cilium-dns-egress port allocated with the L7 proxy "
            "ports)",
            &Config::tofqdns_proxy_port, 1, 65535, true);
    r->seconds("tofqdns-idle-connection-grace-period",
               "Seconds a learned address stays enforceable past its TTL",
               &Config::tofqdns_grace_seconds, 0, 86400, true);
    return r;
  }();
  return *r;
}

}  // namespace cilium::proxy
