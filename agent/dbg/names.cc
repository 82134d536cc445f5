// Name tables for drop reasons, directions, files, protocols and reserved identities.
#include "agent/dbg/names.h"

#include <vector>

#include <fmt/format.h>

#include "agent/bpf/abi.h"
#include "agent/datapath/monitor.h"

namespace cilium::dbg {

std::string dropReasonName(uint8_t reason) {
  // Metrics count forwarded packets under reason 0; every other code has Cilium's drop text,
  // from the one table the agent and the exporters use.
  if (reason == REASON_FORWARDED) return "Forwarded";
  return datapath::dropReasonName(reason);
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
    case DROP_FILE_BPF_HOST: return "bpf_host.c";
    case DROP_FILE_BPF_LXC: return "bpf_lxc.c";
    case DROP_FILE_BPF_OVERLAY: return "bpf_overlay.c";
    case DROP_FILE_BPF_XDP: return "bpf_xdp.c";
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
