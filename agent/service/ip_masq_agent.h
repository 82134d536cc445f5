// The ip-masq-agent configuration of BPF masquerade (enable-ip-masq-agent): which destinations a
// pod's traffic reaches with its own address, read from the file Kubernetes' ip-masq-agent and
// Cilium use (a ConfigMap mounted at ip-masq-agent-config-path):
//   nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]   # YAML or JSON
//   masqLinkLocal: false                               # true: 169.254.0.0/16 is masqueraded
// As in Cilium, a missing file or an empty list means the default private ranges.
#pragma once

#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::service {

struct IpMasqAgentConfig {
  std::vector<IpPrefix> non_masquerade_cidrs;  // as written, both families
  bool masq_link_local = false;
  bool masq_link_local6 = false;  // masqLinkLocalIPv6
};

// Parses the file's text. Unknown keys, wrong types, bad or host-bit CIDRs are kInvalidArgument
// naming the field (a typo must not silently masquerade a range). Empty text is the empty config.
Result<IpMasqAgentConfig> parseIpMasqAgentConfig(std::string_view text);

// The IPv4 destinations never masqueraded under `cfg`: its CIDRs, or the defaults when it has
// none (RFC 1918, carrier-grade NAT, the documentation and benchmarking ranges, 240.0.0.0/4),
// plus 169.254.0.0/16 unless masq_link_local.
std::vector<IpPrefix> ipMasqAgentNonMasqueradeV4(const IpMasqAgentConfig& cfg);
// The IPv6 destinations never masqueraded under `cfg` (IPv6 masquerade): its IPv6 CIDRs (there
// are no IPv6 defaults, as in Cilium), plus fe80::/10 unless masq_link_local6.
std::vector<IpPrefix> ipMasqAgentNonMasqueradeV6(const IpMasqAgentConfig& cfg);

}  // namespace cilium::service
