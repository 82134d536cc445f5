// hubble_* metrics from flows.
#include "agent/hubble/metrics.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_map>

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

// Children kept by a key of small integers taken from the flow, so that the per-flow path builds
// no label strings and takes no lock once a series exists: a lookup in the family by label
// values costs strings, a std::map and the family's lock. Used from the pipeline thread only.
class Children {
 public:
  using Key = std::array<int64_t, 3>;
  explicit Children(metrics::Family<metrics::Counter>* family) : family_(family) {}

  // The child for `key`; `labels()` gives its label values the first time.
  template <typename Labels>
  metrics::Counter get(const Key& key, Labels&& labels) {
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, family_->with(labels())).first;
    return it->second;
  }

 private:
  struct Hash {
    size_t operator()(const Key& k) const {
      uint64_t h = 0;
      for (int64_t v : k) h = (h ^ static_cast<uint64_t>(v)) * 0x100000001b3ULL;
      return h;
    }
  };
  metrics::Family<metrics::Counter>* family_;
  std::unordered_map<Key, metrics::Counter, Hash> cache_;
};

struct FlowMetrics {
  Children processed, drops, tcp_flags, ports, verdicts, icmp, lost;

  void onFlow(const flow::Flow& f) {
    const auto type = f.event_type().type();
    const bool trace = type == EVENT_TRACE;
    processed
        .get({type, trace ? f.trace_observation_point() : -1, f.verdict()},
             [&] {
               return metrics::LabelValues{
                   std::string(eventTypeLabel(f)),
                   trace ? std::string(observationPointName(f.trace_observation_point())) : "",
                   std::string(verdictName(f.verdict()))};
             })
        .inc();
    const auto l4 = f.l4().protocol_case();
    if (f.verdict() == flow::DROPPED) {
      drops
          .get({f.drop_reason_desc(), l4, 0},
               [&] {
                 return metrics::LabelValues{flow::DropReason_Name(f.drop_reason_desc()),
                                             protocolLabel(f)};
               })
          .inc();
    }
    if (type == EVENT_POLICY_VERDICT) {
      const uint32_t match = std::min<uint32_t>(f.policy_match_type(), 7);
      verdicts
          .get({f.traffic_direction(), f.verdict(), match},
               [&] {
                 std::string action = f.verdict() == flow::DROPPED      ? "dropped"
                                      : f.verdict() == flow::AUDIT      ? "audit"
                                      : f.verdict() == flow::REDIRECTED ? "redirected"
                                                                        : "forwarded";
                 static const char* kMatch[] = {"none", "l3-only",  "l3-l4",     "l4-only",
                                                "all",  "l3-proto", "proto-only"};
                 std::string m = match < 7 ? kMatch[match] : "unknown";
                 std::string dir = f.traffic_direction() == flow::INGRESS  ? "ingress"
                                   : f.traffic_direction() == flow::EGRESS ? "egress"
                                                                           : "unknown";
                 return metrics::LabelValues{dir, action, m};
               })
          .inc();
      // Flags and ports describe traffic on the wire: count each packet once, where it is
      // delivered or dropped, not again at every observation point and verdict.
      return;
    }
    const bool v6 = f.ip().ipversion() == flow::IPv6;
    auto flag = [&](int index, const char* name) {
      tcp_flags
          .get({index, v6, 0},
               [&] {
                 return metrics::LabelValues{name, std::string(familyLabel(f))};
               })
          .inc();
    };
    switch (l4) {
      case flow::Layer4::kTCP: {
        const auto& fl = f.l4().tcp().flags();
        if (fl.syn() && fl.ack())
          flag(0, "SYN-ACK");
        else if (fl.syn())
          flag(1, "SYN");
        if (fl.fin()) flag(2, "FIN");
        if (fl.rst()) flag(3, "RST");
        break;
      }
      case flow::Layer4::kICMPv4: {
        uint32_t t = f.l4().icmpv4().type();
        icmp.get({4, t, 0}, [&] { return metrics::LabelValues{"IPv4", std::to_string(t)}; }).inc();
        break;
      }
      case flow::Layer4::kICMPv6: {
        uint32_t t = f.l4().icmpv6().type();
        icmp.get({6, t, 0}, [&] { return metrics::LabelValues{"IPv6", std::to_string(t)}; }).inc();
        break;
      }
      default: break;
    }
    const uint32_t port = destinationPort(f);
    if (!(f.has_is_reply() && f.is_reply().value()) && port != 0) {
      ports
          .get({l4, port, 0},
               [&] {
                 return metrics::LabelValues{protocolLabel(f), std::to_string(port)};
               })
          .inc();
    }
  }

  void onLost(flow::LostEventSource source, uint64_t count) {
    lost.get({source, 0, 0},
             [&] {
               std::string name = flow::LostEventSource_Name(source);
               for (auto& c : name)
                 c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
               return metrics::LabelValues{name};
             })
        .inc(static_cast<double>(count));
  }
};

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
  // Both observers run on the pipeline thread, so the children caches need no lock.
  auto m = std::make_shared<FlowMetrics>(
      FlowMetrics{Children(processed), Children(drops), Children(tcp_flags), Children(ports),
                  Children(verdicts), Children(icmp), Children(lost)});
  pipeline.addFlowObserver([m](const flow::Flow& f) { m->onFlow(f); });
  pipeline.addLostObserver(
      [m](flow::LostEventSource source, uint64_t count) { m->onLost(source, count); });
  return okStatus();
}

}  // namespace cilium::hubble
