// hubble_* metrics from flows.
#include "agent/hubble/metrics.h"

#include "agent/hubble/decoder.h"

namespace cilium::hubble {

namespace {

// Hubble's protocol label values.
std::string protocolLabel(const flow::Flow& f) {
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: return "TCP";
    case flow::Layer4::kUDP: return "UDP";
    case flow::Layer4::kICMPv4: return "ICMPv4";
    case flow::Layer4::kICMPv6: return "ICMPv6";
    case flow::Layer4::kSCTP: return "SCTP";
    default: return "Unknown";
  }
}

std::string_view eventTypeLabel(const flow::Flow& f) {
  switch (f.event_type().type()) {
    case EVENT_DROP: return "Drop";
    case EVENT_TRACE: return "Trace";
    case EVENT_POLICY_VERDICT: return "PolicyVerdict";
    default: return "Unknown";
  }
}

std::string_view familyLabel(const flow::Flow& f) {
  return f.ip().ipversion() == flow::IPv6 ? "IPv6" : "IPv4";
}

}  // namespace

Status registerHubbleMetrics(metrics::Registry& registry, FlowPipeline& pipeline) {
  CILIUM_ASSIGN_OR_RETURN(auto* processed, registry.counter("hubble_flows_processed_total",
                                                            "Total number of flows processed",
                                                            {"type", "subtype", "verdict"}));
  CILIUM_ASSIGN_OR_RETURN(auto* drops, registry.counter("hubble_drop_total", "Number of drops",
                                                        {"reason", "protocol"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto* tcp_flags,
      registry.counter("hubble_tcp_flags_total", "TCP flag occurrences", {"flag", "family"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto* ports,
      registry.counter("hubble_port_distribution_total",
                       "Numbers of packets distributed by destination port", {"protocol", "port"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto* verdicts,
      registry.counter("hubble_policy_verdicts_total",
                       "Number of policy verdicts by direction, action and match type",
                       {"direction", "action", "match"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto* icmp,
      registry.counter("hubble_icmp_total", "Number of ICMP messages", {"family", "type"}));
  CILIUM_ASSIGN_OR_RETURN(auto* lost, registry.counter("hubble_lost_events_total",
                                                       "Number of lost events", {"source"}));

  pipeline.addFlowObserver([=](const flow::Flow& f) {
    std::string subtype;
    if (f.event_type().type() == EVENT_TRACE)
      subtype = observationPointName(f.trace_observation_point());
    processed
        ->with({std::string(eventTypeLabel(f)), subtype, std::string(verdictName(f.verdict()))})
        .inc();
    auto proto = protocolLabel(f);
    if (f.verdict() == flow::DROPPED)
      drops->with({flow::DropReason_Name(f.drop_reason_desc()), proto}).inc();
    if (f.event_type().type() == EVENT_POLICY_VERDICT) {
      std::string action = f.verdict() == flow::DROPPED      ? "dropped"
                           : f.verdict() == flow::AUDIT      ? "audit"
                           : f.verdict() == flow::REDIRECTED ? "redirected"
                                                             : "forwarded";
      static const char* kMatch[] = {"none", "l3-only",  "l3-l4",     "l4-only",
                                     "all",  "l3-proto", "proto-only"};
      std::string match = f.policy_match_type() < 7 ? kMatch[f.policy_match_type()] : "unknown";
      std::string dir = f.traffic_direction() == flow::INGRESS  ? "ingress"
                        : f.traffic_direction() == flow::EGRESS ? "egress"
                                                                : "unknown";
      verdicts->with({dir, action, match}).inc();
    }
    // Flags and ports describe traffic on the wire: count each packet once, where it is
    // delivered or dropped, not again at every observation point and verdict.
    bool wire = f.event_type().type() != EVENT_POLICY_VERDICT;
    if (!wire) return;
    switch (f.l4().protocol_case()) {
      case flow::Layer4::kTCP: {
        const auto& fl = f.l4().tcp().flags();
        std::string fam(familyLabel(f));
        if (fl.syn() && fl.ack())
          tcp_flags->with({"SYN-ACK", fam}).inc();
        else if (fl.syn())
          tcp_flags->with({"SYN", fam}).inc();
        if (fl.fin()) tcp_flags->with({"FIN", fam}).inc();
        if (fl.rst()) tcp_flags->with({"RST", fam}).inc();
        break;
      }
      case flow::Layer4::kICMPv4:
        icmp->with({"IPv4", std::to_string(f.l4().icmpv4().type())}).inc();
        break;
      case flow::Layer4::kICMPv6:
        icmp->with({"IPv6", std::to_string(f.l4().icmpv6().type())}).inc();
        break;
      default: break;
    }
    if (!(f.has_is_reply() && f.is_reply().value()) && destinationPort(f) != 0)
      ports->with({proto, std::to_string(destinationPort(f))}).inc();
  });
  pipeline.addLostObserver([lost](flow::LostEventSource source, uint64_t count) {
    std::string name = flow::LostEventSource_Name(source);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    lost->with({name}).inc(static_cast<double>(count));
  });
  return okStatus();
}

}  // namespace cilium::hubble
