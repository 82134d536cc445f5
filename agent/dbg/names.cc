// Name tables for drop reasons, directions, files, protocols and reserved identities.
#include "agent/dbg/names.h"

#include <vector>

#include <fmt/format.h>

#include "agent/bpf/abi.h"

namespace cilium::dbg {

std::string dropReasonName(uint8_t reason) {
  switch (reason) {
    case REASON_FORWARDED: return "Forwarded";
    case DROP_INVALID_SIP: return "Invalid source ip";
    case DROP_POLICY: return "Policy denied";
    case DROP_INVALID: return "Invalid packet";
    case DROP_CT_INVALID_HDR: return "CT: Truncated or invalid header";
    case DROP_CT_UNKNOWN_PROTO: return "CT: Unknown L4 protocol";
    case DROP_UNKNOWN_L3: return "Unknown L3 target address";
    case DROP_MISSED_TAIL_CALL: return "Missed tail call";
    case DROP_WRITE_ERROR: return "Error writing to packet";
    case DROP_UNKNOWN_L4: return "Unknown L4 protocol";
    case DROP_UNKNOWN_ICMP_CODE: return "Unknown ICMPv4 code";
    case DROP_UNKNOWN_ICMP_TYPE: return "Unknown ICMPv4 type";
    case DROP_UNKNOWN_TARGET: return "Unknown target";
    case DROP_UNROUTABLE: return "Unroutable";
    case DROP_CSUM_L3: return "Invalid L3 checksum";
    case DROP_CSUM_L4: return "Invalid L4 checksum";
    case DROP_CT_CREATE_FAILED: return "CT: Map insertion failed";
    case DROP_FRAG_NOSUPPORT: return "Fragmentation needed";
    case DROP_NO_SERVICE: return "Service backend not found";
    case DROP_UNSUPPORTED_L2: return "Unsupported L2 protocol";
    case DROP_NAT_NO_MAPPING: return "No mapping for NAT masquerade";
    case DROP_INVALID_IDENTITY: return "Invalid identity";
    case DROP_UNKNOWN_SENDER: return "Unknown sender";
    case DROP_POLICY_DENY: return "Policy denied by denylist";
    case DROP_TTL_EXCEEDED: return "TTL exceeded";
    case DROP_HOST_NOT_READY: return "Host datapath not ready";
    case DROP_EP_NOT_READY: return "Endpoint policy program not available";
    default: return fmt::format("reason {}", reason);
  }
}

std::string metricDirectionName(uint8_t dir) {
  switch (dir) {
    case METRIC_INGRESS: return "INGRESS";
    case METRIC_EGRESS: return "EGRESS";
    case METRIC_SERVICE: return "SERVICE";
    default: return fmt::format("{}", dir);
  }
}

std::string sourceFileName(uint8_t file) {
  switch (file) {
    case 0: return "";
    case 1: return "bpf_host.c";
    case DROP_FILE_BPF_LXC: return "bpf_lxc.c";
    case 3: return "bpf_overlay.c";
    case 4: return "bpf_xdp.c";
    case DROP_FILE_BPF_SOCK: return "bpf_sock.c";
    default: return fmt::format("{}", file);
  }
}

std::string protocolName(uint8_t proto) {
  switch (proto) {
    case 1: return "ICMP";
    case 6: return "TCP";
    case 17: return "UDP";
    case 58: return "ICMPv6";
    case 132: return "SCTP";
    default: return fmt::format("{}", proto);
  }
}

std::string reservedIdentityLabel(uint32_t id) {
  switch (id) {
    case IDENTITY_HOST: return "reserved:host";
    case IDENTITY_WORLD: return "reserved:world";
    case IDENTITY_UNMANAGED: return "reserved:unmanaged";
    case IDENTITY_HEALTH: return "reserved:health";
    case IDENTITY_INIT: return "reserved:init";
    case IDENTITY_REMOTE_NODE: return "reserved:remote-node";
    case IDENTITY_KUBE_APISERVER: return "reserved:kube-apiserver";
    case IDENTITY_INGRESS: return "reserved:ingress";
    case IDENTITY_WORLD_IPV4: return "reserved:world-ipv4";
    case IDENTITY_WORLD_IPV6: return "reserved:world-ipv6";
    default: return "";
  }
}

std::string tcpFlagsText(uint8_t flags) {
  static const std::pair<uint8_t, const char*> kFlags[] = {
      {0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"},
      {0x08, "PSH"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"},
  };
  std::string out;
  for (const auto& [bit, name] : kFlags) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace cilium::dbg
