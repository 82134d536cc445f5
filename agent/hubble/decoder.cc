// cilium_event -> flow::Flow.
#include "agent/hubble/decoder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "agent/datapath/events.h"
#include "agent/datapath/monitor.h"
#include "agent/hubble/resolver.h"
#include "agent/identity/identity.h"

namespace cilium::hubble {

namespace {

int64_t nowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

flow::TraceObservationPoint observationPoint(uint8_t point) {
  // Only TO_LXC differs: 0 is "unknown" in flow.proto, so Hubble moved to-endpoint to 101.
  if (point == TRACE_TO_LXC) return flow::TO_ENDPOINT;
  return static_cast<flow::TraceObservationPoint>(point);
}

void setFlags(flow::TCPFlags& f, uint8_t b) {
  f.set_fin(b & 0x01);
  f.set_syn(b & 0x02);
  f.set_rst(b & 0x04);
  f.set_psh(b & 0x08);
  f.set_ack(b & 0x10);
  f.set_urg(b & 0x20);
  f.set_ece(b & 0x40);
  f.set_cwr(b & 0x80);
}

void setDropReason(flow::Flow& out, uint32_t reason) {
  out.set_drop_reason(reason);
  out.set_drop_reason_desc(flow::DropReason_IsValid(static_cast<int>(reason))
                               ? static_cast<flow::DropReason>(reason)
                               : flow::DROP_REASON_UNKNOWN);
}

}  // namespace

Decoder::Decoder(DecoderOptions opts, const EndpointResolver* endpoints,
                 const IdentityResolver* identities)
    : opts_(std::move(opts)),
      endpoints_(endpoints),
      identities_(identities),
      rng_(std::random_device{}()) {
  if (opts_.monotonic_to_realtime_ns == 0)
    opts_.monotonic_to_realtime_ns = nowNs(CLOCK_REALTIME) - nowNs(CLOCK_MONOTONIC);
}

std::string Decoder::newUuid() {
  uint64_t hi = rng_(), lo = rng_();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff,
                     hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
}

namespace {

std::shared_ptr<const EndpointInfo> fillEndpoint(const EndpointResolver* endpoints_,
                                                 const IdentityResolver* identities_,
                                                 flow::Endpoint& ep, uint32_t identity,
                                                 const IpAddr* ip, uint32_t endpoint_id) {
  ep.set_identity(identity);
  std::shared_ptr<const EndpointInfo> info;
  if (endpoints_) {
    if (ip) info = endpoints_->endpointByIp(*ip);
    if (!info && endpoint_id != 0) info = endpoints_->endpointById(endpoint_id);
  }
  if (info) {
    ep.set_id(info->id);
    ep.set_namespace_(info->pod_namespace);
    ep.set_pod_name(info->pod_name);
    if (identity == 0) ep.set_identity(info->identity);
    // The endpoint's labels belong to the identity it holds now; the event's identity wins
    // when the two differ (an endpoint relabelled after the packet).
    if (info->identity == identity || identity == 0)
      for (const auto& l : info->labels) ep.add_labels(l);
    for (const auto& w : info->workloads) {
      auto* pw = ep.add_workloads();
      pw->set_name(w.name);
      pw->set_kind(w.kind);
    }
  }
  if (ep.labels_size() == 0 && ep.identity() != 0) {
    if (identity::isReserved(ep.identity())) {
      for (const auto& r : identity::reservedIdentities())
        if (r.id == ep.identity())
          for (auto& l : r.labels.toStrings()) ep.add_labels(std::move(l));
    } else if (identities_) {
      if (auto labels = identities_->identityLabels(ep.identity()))
        for (const auto& l : *labels) ep.add_labels(l);
    }
  }
  return info;
}

// The names a local endpoint looked up for its peer's address (Cilium fills source_names and
// destination_names from the endpoint's DNS history, not from every endpoint's).
void setNames(const NameResolver* names, google::protobuf::RepeatedPtrField<std::string>* out,
              uint32_t local_endpoint, const IpAddr& peer) {
  if (!names || local_endpoint == 0) return;
  for (auto& n : names->namesOf(local_endpoint, peer)) out->Add(std::move(n));
}

void setService(const ServiceResolver* services, flow::Flow& f, bool source, const IpAddr& ip,
                uint16_t port, uint8_t proto) {
  if (!services || port == 0) return;
  if (auto svc = services->serviceByFrontend(ip, port, proto)) {
    auto* out = source ? f.mutable_source_service() : f.mutable_destination_service();
    out->set_name(svc->name);
    out->set_namespace_(svc->ns);
  }
}

}  // namespace

Status Decoder::decode(const cilium_event& ev, flow::Flow& out) {
  out.Clear();
  switch (ev.type) {
    case EVENT_DROP:
    case EVENT_TRACE:
    case EVENT_POLICY_VERDICT: break;
    case EVENT_DEBUG: return makeError(ErrorCode::kUnimplemented, "debug events make no flow");
    default: return makeError(ErrorCode::kInvalidArgument, "unknown event type {}", ev.type);
  }
  // Family 0: a packet that is neither IPv4 nor IPv6 (a drop of an unknown ethertype): a flow
  // without L3 or L4, as Hubble shows such packets.
  if (ev.tuple.family != ENDPOINT_KEY_IPV4 && ev.tuple.family != ENDPOINT_KEY_IPV6 &&
      !(ev.tuple.family == 0 && ev.type == EVENT_DROP))
    return makeError(ErrorCode::kInvalidArgument, "unknown address family {}", ev.tuple.family);
  const bool v4 = ev.tuple.family == ENDPOINT_KEY_IPV4;
  const bool no_l3 = ev.tuple.family == 0;
  if (ev.type == EVENT_TRACE && ev.subtype > TRACE_TO_NETWORK)
    return makeError(ErrorCode::kInvalidArgument, "unknown trace point {}", ev.subtype);

  *out.mutable_time() = eventTime(ev);
  out.set_uuid(newUuid());
  out.set_node_name(opts_.node_name);
  out.set_type(flow::L3_L4);
  out.mutable_event_type()->set_type(ev.type);
  out.mutable_event_type()->set_sub_type(ev.subtype);

  auto addr = [v4](const auto& a) {
    return v4 ? IpAddr::fromNetworkOrder(a.ip4)
              : IpAddr::fromBytes(IpFamily::kV6, reinterpret_cast<const uint8_t*>(a.ip6));
  };
  const IpAddr saddr_v = addr(ev.tuple.saddr), daddr_v = addr(ev.tuple.daddr);
  const IpAddr* saddr = no_l3 ? nullptr : &saddr_v;
  const IpAddr* daddr = no_l3 ? nullptr : &daddr_v;
  if (!no_l3) {
    auto* ip = out.mutable_ip();
    ip->set_source(saddr_v.toString());
    ip->set_destination(daddr_v.toString());
    ip->set_ipversion(v4 ? flow::IPv4 : flow::IPv6);
  }

  uint16_t sport = ntohs(ev.tuple.sport), dport = ntohs(ev.tuple.dport);
  switch (no_l3 ? 0 : ev.tuple.proto) {
    case 6: {
      auto* tcp = out.mutable_l4()->mutable_tcp();
      tcp->set_source_port(sport);
      tcp->set_destination_port(dport);
      setFlags(*tcp->mutable_flags(), ev.tuple.tcp_flags);
      break;
    }
    case 17: {
      auto* udp = out.mutable_l4()->mutable_udp();
      udp->set_source_port(sport);
      udp->set_destination_port(dport);
      break;
    }
    case 132: {
      auto* sctp = out.mutable_l4()->mutable_sctp();
      sctp->set_source_port(sport);
      sctp->set_destination_port(dport);
      break;
    }
    case 1: {
      auto* icmp = out.mutable_l4()->mutable_icmpv4();
      icmp->set_type(ev.tuple.icmp_type);
      icmp->set_code(ev.tuple.icmp_code);
      break;
    }
    case 58: {
      auto* icmp = out.mutable_l4()->mutable_icmpv6();
      icmp->set_type(ev.tuple.icmp_type);
      icmp->set_code(ev.tuple.icmp_code);
      break;
    }
    default: break;  // other protocols: L3 only
  }

  // `source` is the endpoint the program ran for; `dir` is relative to it. On egress it sent
  // the packet; on ingress it receives it.
  uint32_t src_ep = ev.dir == METRIC_EGRESS ? ev.source : 0;
  uint32_t dst_ep = ev.dir == METRIC_INGRESS ? ev.source : ev.dst_id;
  auto src_info =
      fillEndpoint(endpoints_, identities_, *out.mutable_source(), ev.src_identity, saddr, src_ep);
  auto dst_info = fillEndpoint(endpoints_, identities_, *out.mutable_destination(),
                               ev.dst_identity, daddr, dst_ep);
  if (opts_.services && !no_l3) {
    setService(opts_.services, out, true, saddr_v, sport, ev.tuple.proto);
    setService(opts_.services, out, false, daddr_v, dport, ev.tuple.proto);
  }
  if (!no_l3) {
    setNames(opts_.names, out.mutable_destination_names(), src_ep, daddr_v);
    setNames(opts_.names, out.mutable_source_names(), dst_ep, saddr_v);
  }

  // As Hubble: a trace knows from conntrack whether the packet is a reply; an allowed policy
  // verdict is the first packet of a connection, never a reply; drops and denials do not know,
  // and leave is_reply unset.
  std::optional<bool> reply;
  if (ev.type == EVENT_TRACE) reply = ev.ct_state == CT_REPLY;
  if (ev.type == EVENT_POLICY_VERDICT && ev.verdict >= 0) reply = false;
  if (reply) out.mutable_is_reply()->set_value(*reply);
  out.set_reply(reply.value_or(false));
  // Hubble reports the direction of the connection: a reply leaving an endpoint belongs to a
  // connection that came in.
  const bool is_reply = reply.value_or(false);
  flow::TrafficDirection dir = flow::TRAFFIC_DIRECTION_UNKNOWN;
  if (ev.dir == METRIC_INGRESS) dir = is_reply ? flow::EGRESS : flow::INGRESS;
  if (ev.dir == METRIC_EGRESS) dir = is_reply ? flow::INGRESS : flow::EGRESS;
  out.set_traffic_direction(dir);

  // The interface the flow was observed on. A delivery to a local pod runs in the sender's
  // program (the sender's veth in the record), but Hubble names the receiving endpoint's.
  if (ev.type == EVENT_TRACE && ev.subtype == TRACE_TO_LXC && dst_info && dst_info->ifindex) {
    out.mutable_interface()->set_index(dst_info->ifindex);
    out.mutable_interface()->set_name(dst_info->interface_name);
  } else if (ev.ifindex != 0) {
    auto* itf = out.mutable_interface();
    itf->set_index(ev.ifindex);
    if (src_info && src_info->ifindex == ev.ifindex)
      itf->set_name(src_info->interface_name);
    else if (dst_info && dst_info->ifindex == ev.ifindex)
      itf->set_name(dst_info->interface_name);
  }

  switch (ev.type) {
    case EVENT_DROP:
      out.set_verdict(flow::DROPPED);
      setDropReason(out, ev.subtype);
      break;
    case EVENT_TRACE:
      out.set_verdict(flow::FORWARDED);
      out.set_trace_observation_point(observationPoint(ev.subtype));
      break;
    case EVENT_POLICY_VERDICT:
      out.set_policy_match_type(ev.match_type);
      if (ev.verdict < 0) {
        out.set_verdict(ev.audited ? flow::AUDIT : flow::DROPPED);
        setDropReason(out, static_cast<uint32_t>(-static_cast<int64_t>(ev.verdict)));
      } else if (ev.verdict > 0) {
        out.set_verdict(flow::REDIRECTED);
        out.set_proxy_port(static_cast<uint32_t>(ev.verdict));
      } else {
        out.set_verdict(flow::FORWARDED);
      }
      break;
    default: break;
  }
  out.set_summary(flowSummary(out));
  return okStatus();
}

Status Decoder::decodeL7(const proxy::AccessRecord& r, flow::Flow& out) {
  out.Clear();
  auto src = IpAddr::parse(r.src_ip);
  auto dst = IpAddr::parse(r.dst_ip);
  if (!src.ok() || !dst.ok() || src->family() != dst->family())
    return makeError(ErrorCode::kInvalidArgument, "access record with addresses \"{}\" \"{}\"",
                     r.src_ip, r.dst_ip);
  const bool response = r.type == proxy::AccessRecord::Type::kResponse;
  if (r.time_ns > 0) {
    out.mutable_time()->set_seconds(r.time_ns / 1000000000);
    out.mutable_time()->set_nanos(static_cast<int32_t>(r.time_ns % 1000000000));
  }
  out.set_uuid(newUuid());
  out.set_node_name(opts_.node_name);
  out.set_type(flow::L7);
  out.mutable_event_type()->set_type(kMessageTypeAccessLog);
  // The record names the connection's client (src) and server (dst); a response goes from the
  // server to the client.
  const IpAddr& from = response ? *dst : *src;
  const IpAddr& to = response ? *src : *dst;
  uint16_t from_port = response ? r.dst_port : r.src_port;
  uint16_t to_port = response ? r.src_port : r.dst_port;
  uint32_t from_id = response ? r.dst_identity : r.src_identity;
  uint32_t to_id = response ? r.src_identity : r.dst_identity;
  auto* ip = out.mutable_ip();
  ip->set_source(from.toString());
  ip->set_destination(to.toString());
  ip->set_ipversion(from.isV4() ? flow::IPv4 : flow::IPv6);
  if (r.l4_protocol == IPPROTO_UDP) {
    auto* udp = out.mutable_l4()->mutable_udp();
    udp->set_source_port(from_port);
    udp->set_destination_port(to_port);
  } else {
    auto* tcp = out.mutable_l4()->mutable_tcp();
    tcp->set_source_port(from_port);
    tcp->set_destination_port(to_port);
  }
  // The endpoint the proxy worked for: the server on ingress, the client on egress.
  const bool local_is_server = r.ingress;
  const bool local_is_from = response ? local_is_server : !local_is_server;
  fillEndpoint(endpoints_, identities_, *out.mutable_source(), from_id, &from,
               local_is_from ? r.endpoint_id : 0);
  fillEndpoint(endpoints_, identities_, *out.mutable_destination(), to_id, &to,
               local_is_from ? 0 : r.endpoint_id);
  if (opts_.services) {
    setService(opts_.services, out, true, from, from_port, r.l4_protocol);
    setService(opts_.services, out, false, to, to_port, r.l4_protocol);
  }
  if (local_is_from)
    setNames(opts_.names, out.mutable_destination_names(), r.endpoint_id, to);
  else
    setNames(opts_.names, out.mutable_source_names(), r.endpoint_id, from);
  out.mutable_is_reply()->set_value(response);
  out.set_reply(response);
  out.set_traffic_direction(r.ingress ? flow::INGRESS : flow::EGRESS);
  out.set_proxy_port(r.proxy_port);
  switch (r.verdict) {
    case proxy::AccessRecord::Verdict::kForwarded: out.set_verdict(flow::FORWARDED); break;
    case proxy::AccessRecord::Verdict::kDenied: out.set_verdict(flow::DROPPED); break;
    case proxy::AccessRecord::Verdict::kError: out.set_verdict(flow::ERROR); break;
  }
  auto* l7 = out.mutable_l7();
  l7->set_type(response ? flow::RESPONSE : flow::REQUEST);
  l7->set_latency_ns(r.latency_ns);
  if (r.dns) {
    auto* dns = l7->mutable_dns();
    dns->set_query(r.dns->query);
    for (const auto& ip : r.dns->ips) dns->add_ips(ip);
    dns->set_ttl(r.dns->ttl);
    for (const auto& c : r.dns->cnames) dns->add_cnames(c);
    dns->set_observation_source(r.dns->observation_source);
    dns->set_rcode(r.dns->rcode);
    for (const auto& t : r.dns->qtypes) dns->add_qtypes(t);
    for (const auto& t : r.dns->rrtypes) dns->add_rrtypes(t);
    out.set_summary(flowSummary(out));
    return okStatus();
  }
  auto* http = l7->mutable_http();
  http->set_code(r.code);
  http->set_method(r.method);
  http->set_url(r.url);
  http->set_protocol(r.protocol);
  for (const auto& [k, v] : r.headers) {
    auto* h = http->add_headers();
    h->set_key(k);
    h->set_value(v);
  }
  out.set_summary(flowSummary(out));
  return okStatus();
}

google::protobuf::Timestamp Decoder::eventTime(const cilium_event& ev) const {
  google::protobuf::Timestamp ts;
  int64_t wall = 0;
  if (__builtin_add_overflow(opts_.monotonic_to_realtime_ns, static_cast<int64_t>(ev.ktime_ns),
                             &wall))
    wall = INT64_MAX;
  if (wall > 0) {
    ts.set_seconds(wall / 1000000000);
    ts.set_nanos(static_cast<int32_t>(wall % 1000000000));
  }
  return ts;
}

Status Decoder::decodeDebug(const cilium_event& ev, flow::DebugEvent& out) {
  out.Clear();
  if (ev.type != EVENT_DEBUG)
    return makeError(ErrorCode::kInvalidArgument, "event type {} is not a debug event", ev.type);
  out.set_type(static_cast<flow::DebugEventType>(ev.subtype));
  fillEndpoint(endpoints_, identities_, *out.mutable_source(), ev.src_identity, nullptr,
               ev.source);
  out.mutable_source()->set_id(ev.source);
  out.mutable_arg1()->set_value(ev.src_identity);
  out.mutable_arg2()->set_value(ev.dst_identity);
  out.mutable_arg3()->set_value(ev.len_orig);
  out.set_message(flow::DebugEventType_IsValid(ev.subtype)
                      ? flow::DebugEventType_Name(static_cast<flow::DebugEventType>(ev.subtype))
                      : fmt::format("debug event {}", ev.subtype));
  return okStatus();
}

Status Decoder::decodeRecord(std::span<const uint8_t> record, flow::Flow& out) {
  CILIUM_ASSIGN_OR_RETURN(auto ev, datapath::decodeEvent(record));
  return decode(ev, out);
}

std::string_view verdictName(flow::Verdict v) {
  switch (v) {
    case flow::FORWARDED: return "FORWARDED";
    case flow::DROPPED: return "DROPPED";
    case flow::ERROR: return "ERROR";
    case flow::AUDIT: return "AUDIT";
    case flow::REDIRECTED: return "REDIRECTED";
    case flow::TRACED: return "TRACED";
    case flow::TRANSLATED: return "TRANSLATED";
    default: return "UNKNOWN";
  }
}

std::string_view observationPointName(flow::TraceObservationPoint p) {
  if (p == flow::TO_ENDPOINT) return datapath::tracePointName(TRACE_TO_LXC);
  if (p == flow::UNKNOWN_POINT) return "";
  return datapath::tracePointName(static_cast<uint8_t>(p));
}

std::string dropReasonDesc(flow::DropReason r) {
  if (r == flow::DROP_REASON_UNKNOWN) return "";
  return datapath::dropReasonName(static_cast<uint8_t>(r));
}

std::string_view l4ProtocolName(const flow::Flow& f) {
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: return "tcp";
    case flow::Layer4::kUDP: return "udp";
    case flow::Layer4::kICMPv4: return "icmpv4";
    case flow::Layer4::kICMPv6: return "icmpv6";
    case flow::Layer4::kSCTP: return "sctp";
    default: return "";
  }
}

uint32_t sourcePort(const flow::Flow& f) {
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: return f.l4().tcp().source_port();
    case flow::Layer4::kUDP: return f.l4().udp().source_port();
    case flow::Layer4::kSCTP: return f.l4().sctp().source_port();
    default: return 0;
  }
}

uint32_t destinationPort(const flow::Flow& f) {
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: return f.l4().tcp().destination_port();
    case flow::Layer4::kUDP: return f.l4().udp().destination_port();
    case flow::Layer4::kSCTP: return f.l4().sctp().destination_port();
    default: return 0;
  }
}

std::string tcpFlagsString(const flow::TCPFlags& f) {
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ", ";
    out += name;
  };
  add(f.syn(), "SYN");
  add(f.fin(), "FIN");
  add(f.rst(), "RST");
  add(f.psh(), "PSH");
  add(f.ack(), "ACK");
  add(f.urg(), "URG");
  add(f.ece(), "ECE");
  add(f.cwr(), "CWR");
  add(f.ns(), "NS");
  return out;
}

}  // namespace cilium::hubble

namespace cilium::hubble {

namespace {

std::string icmp4Name(uint32_t type, uint32_t code) {
  static const char* kUnreach[] = {"Net", "Host", "Protocol", "Port", "FragmentationNeeded",
                                   "SourceRoutingFailed"};
  switch (type) {
    case 0: return "EchoReply";
    case 3:
      return code < 6 ? fmt::format("DestinationUnreachable({})", kUnreach[code])
                      : fmt::format("DestinationUnreachable(Code: {})", code);
    case 4: return "SourceQuench";
    case 5: return "Redirect";
    case 8: return "EchoRequest";
    case 11: return code == 0 ? "TimeExceeded(TTLExceeded)" : "TimeExceeded(FragmentReassembly)";
    case 12: return "ParameterProblem";
    case 13: return "TimestampRequest";
    case 14: return "TimestampReply";
    default: return fmt::format("Type: {} Code: {}", type, code);
  }
}

std::string icmp6Name(uint32_t type, uint32_t code) {
  switch (type) {
    case 1: return "DestinationUnreachable";
    case 2: return "PacketTooBig";
    case 3: return "TimeExceeded";
    case 4: return "ParameterProblem";
    case 128: return "EchoRequest";
    case 129: return "EchoReply";
    case 133: return "RouterSolicitation";
    case 134: return "RouterAdvertisement";
    case 135: return "NeighborSolicitation";
    case 136: return "NeighborAdvertisement";
    default: return fmt::format("Type: {} Code: {}", type, code);
  }
}

}  // namespace

std::string flowSummary(const flow::Flow& f) {
  if (f.has_l7() && f.l7().has_http()) {
    const auto& h = f.l7().http();
    if (f.l7().type() == flow::RESPONSE)
      return fmt::format("{} {} {}ms ({} {})", h.protocol(), h.code(),
                         f.l7().latency_ns() / 1000000, h.method(), h.url());
    return fmt::format("{} {} {}", h.protocol(), h.method(), h.url());
  }
  if (f.has_l7() && f.l7().has_dns()) {
    // Hubble's text: "DNS Query example.com. A", "DNS Answer "10.0.0.1" TTL: 30 (Proxy
    // example.com. A)", "DNS Answer RCode: SERVFAIL TTL: 0 (Proxy example.com. A)".
    const auto& d = f.l7().dns();
    std::string qtypes = fmt::format("{}", fmt::join(d.qtypes(), ","));
    if (f.l7().type() != flow::RESPONSE) return fmt::format("DNS Query {} {}", d.query(), qtypes);
    std::string answer;
    if (d.rcode() != 0) {
      answer = "RCode: " + dnsRcodeName(d.rcode());
    } else {
      answer = fmt::format("\"{}\"", fmt::join(d.ips(), ","));
      if (d.cnames_size() > 0) answer += fmt::format(" CNAMEs: \"{}\"", fmt::join(d.cnames(), ","));
    }
    return fmt::format("DNS Answer {} TTL: {} ({} {} {})", answer, d.ttl(),
                       d.observation_source() == "proxy" ? "Proxy" : "Query", d.query(), qtypes);
  }
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: {
      auto flags = tcpFlagsString(f.l4().tcp().flags());
      return flags.empty() ? "TCP" : "TCP Flags: " + flags;
    }
    case flow::Layer4::kUDP: return "UDP";
    case flow::Layer4::kSCTP: return "SCTP";
    case flow::Layer4::kICMPv4:
      return "ICMPv4 " + icmp4Name(f.l4().icmpv4().type(), f.l4().icmpv4().code());
    case flow::Layer4::kICMPv6:
      return "ICMPv6 " + icmp6Name(f.l4().icmpv6().type(), f.l4().icmpv6().code());
    default:
      if (!f.has_ip()) return "Ethernet";
      return f.ip().ipversion() == flow::IPv6 ? "IPv6" : "IPv4";
  }
}

std::string dnsRcodeName(uint32_t rcode) {
  static const char* kNames[] = {"NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                 "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE"};
  return rcode < std::size(kNames) ? kNames[rcode] : std::to_string(rcode);
}

std::string absoluteNodeName(std::string_view cluster, std::string_view node) {
  if (cluster.empty()) return std::string(node);
  return fmt::format("{}/{}", cluster, node);
}

}  // namespace cilium::hubble
