// Human names for the datapath's numbers (bpf/abi/*.h), as cilium-dbg prints them.
#pragma once

#include <cstdint>
#include <string>

namespace cilium::dbg {

// "Policy denied" for 133, "Forwarded" for 0; "reason 250" for unknown codes.
std::string dropReasonName(uint8_t reason);
// "INGRESS" / "EGRESS" / "SERVICE" (metric_dir).
std::string metricDirectionName(uint8_t dir);
// "bpf_lxc.c" for DROP_FILE_BPF_LXC; the number otherwise.
std::string sourceFileName(uint8_t file);
// "TCP", "UDP", "ICMP", "ICMPv6", "SCTP", else the number.
std::string protocolName(uint8_t proto);
// "reserved:host" for 1 ... ; empty when `id` is not reserved.
std::string reservedIdentityLabel(uint32_t id);
// "SYN, ACK" for a TCP flags byte.
std::string tcpFlagsText(uint8_t flags);

}  // namespace cilium::dbg
