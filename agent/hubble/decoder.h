// Turns datapath events (bpf/abi/events.h cilium_event) into Hubble flows (proto/flow/flow.proto):
// addresses, ports, protocol, TCP flags, identities with their labels, pod and namespace names,
// services, verdict, drop reason, traffic direction, observation point, is_reply, interface,
// summary, time and node name.
//
// Threading: a Decoder is used by one thread at a time (it keeps a uuid generator); the resolvers
// it borrows must be thread-safe for that thread.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>

#include "agent/bpf/abi.h"
#include "agent/common/error.h"
#include "agent/hubble/proto.h"
#include "agent/proxy/wire.h"

namespace cilium::hubble {

class EndpointResolver;
class IdentityResolver;
class ServiceResolver;
class NameResolver;

struct DecoderOptions {
  std::string node_name;  // "cluster/node", as Hubble names nodes in flows
  // Wall-clock ns minus CLOCK_MONOTONIC ns: event times are bpf_ktime_get_ns() (monotonic).
  // 0 = measured when the decoder is made.
  int64_t monotonic_to_realtime_ns = 0;
  // Names source_service/destination_service; null = not filled. Must outlive the decoder.
  const ServiceResolver* services = nullptr;
  // Names source_names/destination_names from the local endpoint's DNS lookups; null = not
  // filled. Must outlive the decoder.
  const NameResolver* names = nullptr;
};

class Decoder {
 public:
  // The resolvers may be null (flows then carry identities without names); when set they must
  // outlive the decoder.
  Decoder(DecoderOptions opts, const EndpointResolver* endpoints,
          const IdentityResolver* identities);

  // kUnimplemented for event types that make no flow (debug events); kInvalidArgument for
  // records no datapath writes (unknown type, address family or trace point).
  Status decode(const cilium_event& ev, flow::Flow& out);
  // A raw ring-buffer record (what the fuzzer feeds); short records are kInvalidArgument.
  Status decodeRecord(std::span<const uint8_t> record, flow::Flow& out);
  // An EVENT_DEBUG record as Hubble's DebugEvent: type = the record's subtype, source = the
  // endpoint the program ran for, arg1/arg2 = source/destination identity, arg3 = length.
  // kInvalidArgument for other record types.
  Status decodeDebug(const cilium_event& ev, flow::DebugEvent& out);
  // An L7 proxy's access record (agent/proxy/wire.h) as Hubble's L7 flow (type L7, event type
  // 129 as Cilium's access log): the request from client to server, the response (is_reply)
  // from server to client, with the HTTP method, URL, protocol, code, headers and latency; a
  // denied request is DROPPED, a request the proxy could not parse ERROR. A DNS record (the
  // agent's DNS proxy: r.dns set) becomes l7.dns over UDP or TCP, with Hubble's DNS summary.
  // kInvalidArgument for addresses that do not parse.
  Status decodeL7(const proxy::AccessRecord& r, flow::Flow& out);
  // The record's time as wall-clock time.
  google::protobuf::Timestamp eventTime(const cilium_event& ev) const;

 private:
  std::string newUuid();

  DecoderOptions opts_;
  const EndpointResolver* endpoints_;
  const IdentityResolver* identities_;
  std::mt19937_64 rng_;
};

// Hubble's names, as the CLI prints and filters them.
std::string_view verdictName(flow::Verdict v);                         // "FORWARDED", ...
std::string_view observationPointName(flow::TraceObservationPoint p);  // "to-endpoint", ...
// "Policy denied", ... (the datapath's text for the code); "" for DROP_REASON_UNKNOWN.
std::string dropReasonDesc(flow::DropReason r);
// "tcp", "udp", "icmpv4", "icmpv6", "sctp", or "" when the flow has no L4.
std::string_view l4ProtocolName(const flow::Flow& f);
// Cilium's monitor message type of access log records (L7 flows).
inline constexpr int32_t kMessageTypeAccessLog = 129;

// The flow's L4 source and destination ports (0 for ICMP and no L4).
uint32_t sourcePort(const flow::Flow& f);
uint32_t destinationPort(const flow::Flow& f);
// "SYN, ACK" in Hubble's order; "" without flags.
std::string tcpFlagsString(const flow::TCPFlags& flags);
// Hubble's one-line summary of the packet: "TCP Flags: SYN", "UDP", "ICMPv4 EchoRequest"; of an
// HTTP flow: "HTTP/1.1 GET http://web/" (request), "HTTP/1.1 200 3ms (GET http://web/)"
// (response).
std::string flowSummary(const flow::Flow& f);
// A DNS rcode as Hubble prints it: "NOERROR", "SERVFAIL", "NXDOMAIN", "REFUSED", else the number.
std::string dnsRcodeName(uint32_t rcode);
// Hubble's node name: "cluster/node" ("" cluster: the node name alone).
std::string absoluteNodeName(std::string_view cluster, std::string_view node);

}  // namespace cilium::hubble
