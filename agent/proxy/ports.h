// Proxy ports (docs/l7.md): one per kind of redirect, as Cilium names them, allocated once from a
// range and kept in the state directory, so that an agent restart never moves a port the
// datapath's policy entries and the running proxy use.
#pragma once

#include <cstdint>
#include <string>

#include "agent/common/error.h"

namespace cilium::proxy {

struct ProxyPortSet {
  uint16_t http_ingress = 0;  // "cilium-http-ingress"
  uint16_t http_egress = 0;   // "cilium-http-egress"
  uint16_t dns_egress = 0;    // "cilium-dns-egress" (the DNS proxy in the agent)
  bool operator==(const ProxyPortSet&) const = default;
};

// The ports of <state_dir>/proxy_ports.json, or new ones: the first ports of [min, max] that no
// socket holds (TCP and UDP on 127.0.0.1, in the calling thread's network namespace), then
// persisted. A damaged file is an error (kFailedPrecondition): new ports would not match what
// the running proxy and the pinned policy maps use.
Result<ProxyPortSet> loadOrAllocatePorts(const std::string& state_dir, uint16_t min, uint16_t max);

}  // namespace cilium::proxy
