// Names of datapath codes; the drop reason texts are Cilium's (pkg/monitor/api/drop.go).
#include "agent/datapath/monitor.h"

#include <arpa/inet.h>

#include <fmt/format.h>

#include "agent/datapath/maps.h"

namespace cilium::datapath {

std::string dropReasonName(uint8_t reason) {
  switch (reason) {
    case 0: return "Success";
    case 2: return "Invalid packet";
    case 132: return "Invalid source ip";
    case 133: return "Policy denied";
    case 134: return "Invalid packet";
    case 135: return "CT: Truncated or invalid header";
    case 136: return "Fragmentation needed";
    case 137: return "CT: Unknown L4 protocol";
    case 139: return "Unsupported L3 protocol";
    case 140: return "Missed tail call";
    case 141: return "Error writing to packet";
    case 142: return "Unknown L4 protocol";
    case 143: return "Unknown ICMPv4 code";
    case 144: return "Unknown ICMPv4 type";
    case 145: return "Unknown ICMPv6 code";
    case 146: return "Unknown ICMPv6 type";
    case 147: return "Error retrieving tunnel key";
    case 150: return "Unknown L3 target address";
    case 151: return "Stale or unroutable IP";
    case 152: return "No matching local container found";
    case 153: return "Error while correcting L3 checksum";
    case 154: return "Error while correcting L4 checksum";
    case 155: return "CT: Map insertion failed";
    case 156: return "Invalid IPv6 extension header";
    case 157: return "IP fragmentation not supported";
    case 158: return "Service backend not found";
    case 160: return "No tunnel/encapsulation endpoint (datapath BUG!)";
    case 163: return "Unknown connection tracking state";
    case 164: return "Local host is unreachable";
    case 166: return "Unsupported L2 protocol";
    case 167: return "No mapping for NAT masquerade";
    case 168: return "Unsupported protocol for NAT masquerade";
    case 169: return "FIB lookup failed";
    case 170: return "Encapsulation traffic is prohibited";
    case 171: return "Invalid identity";
    case 172: return "Unknown sender";
    case 173: return "NAT not needed";
    case 174: return "Is a ClusterIP";
    case 175: return "First logical datagram fragment not found";
    case 176: return "Forbidden ICMPv6 message";
    case 177: return "Denied by LB src range check";
    case 178: return "Proxy lookup failed";
    case 179: return "Proxy assignment failed";
    case 180: return "Proxy redirection not supported for protocol";
    case 181: return "Policy denied by denylist";
    case 189: return "Authentication required";
    case 196: return "TTL exceeded";
    case 202: return "Host datapath not ready";
    case 203: return "Endpoint policy program not available";
    default: return std::to_string(reason);
  }
}

std::string_view tracePointName(uint8_t point) {
  switch (point) {
    case TRACE_TO_LXC: return "to-endpoint";
    case TRACE_TO_PROXY: return "to-proxy";
    case TRACE_TO_HOST: return "to-host";
    case TRACE_TO_STACK: return "to-stack";
    case TRACE_TO_OVERLAY: return "to-overlay";
    case TRACE_FROM_LXC: return "from-endpoint";
    case TRACE_FROM_PROXY: return "from-proxy";
    case TRACE_FROM_HOST: return "from-host";
    case TRACE_FROM_STACK: return "from-stack";
    case TRACE_FROM_OVERLAY: return "from-overlay";
    case TRACE_FROM_NETWORK: return "from-network";
    case TRACE_TO_NETWORK: return "to-network";
    default: return "unknown";
  }
}

std::string_view ctStatusName(uint8_t status) {
  switch (status) {
    case CT_NEW: return "new";
    case CT_ESTABLISHED: return "established";
    case CT_REPLY: return "reply";
    case CT_RELATED: return "related";
    case CT_REOPENED: return "reopened";
    default: return "unknown";
  }
}

std::string_view eventTypeName(uint8_t type) {
  switch (type) {
    case EVENT_DROP: return "drop";
    case EVENT_DEBUG: return "debug";
    case EVENT_TRACE: return "trace";
    case EVENT_POLICY_VERDICT: return "policy-verdict";
    default: return "unknown";
  }
}

std::string_view policyMatchName(uint8_t match_type) {
  switch (match_type) {
    case POLICY_MATCH_NONE: return "none";
    case POLICY_MATCH_L3_ONLY: return "L3-Only";
    case POLICY_MATCH_L3_L4: return "L3-L4";
    case POLICY_MATCH_L4_ONLY: return "L4-Only";
    case POLICY_MATCH_ALL: return "all";
    case POLICY_MATCH_L3_PROTO: return "L3-Proto";
    case POLICY_MATCH_PROTO_ONLY: return "Proto-Only";
    default: return "unknown";
  }
}

namespace {

std::string protoName(uint8_t proto) {
  switch (proto) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 132: return "sctp";
    default: return fmt::format("proto-{}", proto);
  }
}

std::string tcpFlags(uint8_t f) {
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x20, "URG"}};
  std::string out;
  for (auto [bit, name] : kNames) {
    if (!(f & bit)) continue;
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}

std::string endpointText(const event_tuple& t, bool source) {
  const v4v6_addr& a = source ? t.saddr : t.daddr;
  uint16_t port = ntohs(source ? t.sport : t.dport);
  std::string ip = formatIpv4(a.ip4);
  if (t.proto == 6 || t.proto == 17 || t.proto == 132) return fmt::format("{}:{}", ip, port);
  return ip;
}

}  // namespace

std::string formatEvent(const cilium_event& ev) {
  std::string what;
  switch (ev.type) {
    case EVENT_DROP: what = fmt::format("drop ({})", dropReasonName(ev.subtype)); break;
    case EVENT_TRACE: what = fmt::format("trace {}", tracePointName(ev.subtype)); break;
    case EVENT_POLICY_VERDICT:
      what =
          ev.verdict == 0
              ? fmt::format("policy-verdict allow ({})", policyMatchName(ev.match_type))
              : fmt::format("policy-verdict deny ({}, {})",
                            dropReasonName(static_cast<uint8_t>(-static_cast<int64_t>(ev.verdict))),
                            policyMatchName(ev.match_type));
      break;
    default: what = std::string(eventTypeName(ev.type)); break;
  }
  std::string l4;
  if (ev.tuple.proto == 6) {
    l4 = fmt::format(" [{}]", tcpFlags(ev.tuple.tcp_flags));
  } else if (ev.tuple.proto == 1) {
    l4 = fmt::format(" type {} code {}", ev.tuple.icmp_type, ev.tuple.icmp_code);
  }
  return fmt::format("{} {} -> {} {}{} identity {} -> {} ep {} {} ct {}", what,
                     endpointText(ev.tuple, true), endpointText(ev.tuple, false),
                     protoName(ev.tuple.proto), l4, ev.src_identity, ev.dst_identity, ev.source,
                     ev.dir == METRIC_INGRESS ? "ingress" : "egress", ctStatusName(ev.ct_state));
}

}  // namespace cilium::datapath
