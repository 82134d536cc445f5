// hubble_* metrics from flows.
#include "agent/hubble/metrics.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_map>

#include <fmt/format.h>

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
    case kMessageTypeAccessLog: return "L7";
    default: return "Unknown";
  }
}

std::string_view familyLabel(const flow::Flow& f) {
  return f.ip().ipversion() == flow::IPv6 ? "IPv6" : "IPv4";
}

std::string appLabel(const flow::Endpoint& ep) {
  for (std::string_view key : {"k8s:app=", "k8s:app.kubernetes.io/name=", "k8s:k8s-app="})
    for (const auto& l : ep.labels())
      if (std::string_view(l).starts_with(key)) return l.substr(key.size());
  return "";
}

// One context of Hubble's ContextOptions for one side of the flow.
std::string contextValue(const flow::Flow& f, bool source, const std::string& ctx) {
  const auto& ep = source ? f.source() : f.destination();
  if (ctx == "namespace") return ep.namespace_();
  if (ctx == "pod") return ep.pod_name().empty() ? "" : ep.namespace_() + "/" + ep.pod_name();
  if (ctx == "pod-name") return ep.pod_name();
  if (ctx == "ip") return source ? f.ip().source() : f.ip().destination();
  if (ctx == "dns") {
    const auto& names = source ? f.source_names() : f.destination_names();
    return names.empty() ? "" : names[0];
  }
  if (ctx == "identity") {
    std::string out;
    for (const auto& l : ep.labels()) out += (out.empty() ? "" : ",") + l;
    return out;
  }
  if (ctx == "reserved-identity") {
    for (const auto& l : ep.labels())
      if (std::string_view(l).starts_with("reserved:")) return l;
    return "";
  }
  if (ctx == "workload" || ctx == "workload-name") {
    if (ep.workloads().empty()) return "";
    const auto& w = ep.workloads(0);
    return ctx == "workload" ? ep.namespace_() + "/" + w.name() : w.name();
  }
  if (ctx == "app") return appLabel(ep);
  return "";
}

std::string labelsContextValue(const flow::Flow& f, const std::string& name) {
  if (name == "traffic_direction") {
    switch (f.traffic_direction()) {
      case flow::INGRESS: return "ingress";
      case flow::EGRESS: return "egress";
      default: return "unknown";
    }
  }
  bool source = name.starts_with("source_");
  std::string what = name.substr(source ? 7 : 12);
  const auto& ep = source ? f.source() : f.destination();
  if (what == "ip") return source ? f.ip().source() : f.ip().destination();
  if (what == "pod") return ep.pod_name();
  if (what == "namespace") return ep.namespace_();
  if (what == "workload") return ep.workloads().empty() ? "" : ep.workloads(0).name();
  if (what == "workload_kind") return ep.workloads().empty() ? "" : ep.workloads(0).kind();
  if (what == "app") return appLabel(ep);
  return "";
}

// The context label names of a metric, after its own.
std::vector<std::string> contextLabelNames(const MetricContext& c) {
  std::vector<std::string> out;
  if (!c.source.empty()) out.push_back("source");
  if (!c.destination.empty()) out.push_back("destination");
  for (const auto& l : c.labels) out.push_back(l);
  return out;
}

std::vector<std::string> contextLabelValues(const MetricContext& c, const flow::Flow& f) {
  std::vector<std::string> out;
  auto first = [&](bool source, const std::vector<std::string>& alts) {
    for (const auto& a : alts) {
      auto v = contextValue(f, source, a);
      if (!v.empty()) return v;
    }
    return std::string();
  };
  if (!c.source.empty()) out.push_back(first(true, c.source));
  if (!c.destination.empty()) out.push_back(first(false, c.destination));
  for (const auto& l : c.labels) out.push_back(labelsContextValue(f, l));
  return out;
}

// Children kept by a key of small integers taken from the flow, so that the per-flow path builds
// no label strings and takes no lock once a series exists: a lookup in the family by label
// values costs strings, a std::map and the family's lock. With context labels the key also
// holds their values. Used from the pipeline thread only; a null family counts nothing.
class Children {
 public:
  using Key = std::array<int64_t, 3>;
  Children(metrics::Family<metrics::Counter>* family, MetricContext ctx = {})
      : family_(family), ctx_(std::move(ctx)) {}

  explicit operator bool() const { return family_ != nullptr; }

  // Counts `n` on the child for `key` (and the flow's context values); `labels()` gives the
  // metric's own label values the first time.
  template <typename Labels>
  void inc(const Key& key, const flow::Flow* f, Labels&& labels, double n = 1) {
    if (!family_) return;
    if (ctx_.empty() || f == nullptr) {
      auto it = cache_.find(key);
      if (it == cache_.end()) it = cache_.emplace(key, family_->with(labels())).first;
      it->second.inc(n);
      return;
    }
    auto extra = contextLabelValues(ctx_, *f);
    std::string skey = fmt::format("{}\x1f{}\x1f{}", key[0], key[1], key[2]);
    for (const auto& v : extra) (skey += '\x1f') += v;
    auto it = ctx_cache_.find(skey);
    if (it == ctx_cache_.end()) {
      auto values = labels();
      for (auto& v : extra) values.push_back(std::move(v));
      it = ctx_cache_.emplace(std::move(skey), family_->with(values)).first;
    }
    it->second.inc(n);
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
  MetricContext ctx_;
  std::unordered_map<Key, metrics::Counter, Hash> cache_;
  std::unordered_map<std::string, metrics::Counter> ctx_cache_;
};

// hubble_http_request_duration_seconds: children by label values (method, reporter and the
// context's), cached; pipeline thread only.
class DurationChildren {
 public:
  DurationChildren(metrics::Family<metrics::Histogram>* family, MetricContext ctx)
      : family_(family), ctx_(std::move(ctx)) {}
  void observe(metrics::LabelValues values, const flow::Flow& f, double seconds) {
    if (!family_) return;
    for (auto& v : contextLabelValues(ctx_, f)) values.push_back(std::move(v));
    std::string key;
    for (const auto& v : values) (key += v) += '\x1f';
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(std::move(key), family_->with(values)).first;
    it->second.observe(seconds);
  }

 private:
  metrics::Family<metrics::Histogram>* family_;
  MetricContext ctx_;
  std::unordered_map<std::string, metrics::Histogram> cache_;
};

// Cilium's "http" metrics (v1): requests, responses and their latency, by method and by
// reporter ("server": the proxy saw it on the server's ingress, "client": on the client's egress).
struct HttpMetrics {
  Children requests, responses;
  DurationChildren duration;
  // Methods and protocols seen, numbered for the children's keys (a hash could merge two).
  std::unordered_map<std::string, int64_t> ids;

  int64_t idOf(const std::string& text) {
    return ids.try_emplace(text, static_cast<int64_t>(ids.size())).first->second;
  }

  void onFlow(const flow::Flow& f) {
    const auto& h = f.l7().http();
    std::string_view reporter = f.traffic_direction() == flow::INGRESS  ? "server"
                                : f.traffic_direction() == flow::EGRESS ? "client"
                                                                        : "unknown";
    int64_t method = idOf(h.method());
    int64_t rep = f.traffic_direction();
    if (f.l7().type() == flow::REQUEST) {
      int64_t proto = idOf(h.protocol());
      requests.inc({method, proto, rep}, &f, [&] {
        return metrics::LabelValues{h.method(), h.protocol(), std::string(reporter)};
      });
    } else if (f.l7().type() == flow::RESPONSE) {
      responses.inc({method, h.code(), rep}, &f, [&] {
        return metrics::LabelValues{h.method(), std::to_string(h.code()), std::string(reporter)};
      });
      duration.observe({h.method(), std::string(reporter)}, f,
                       static_cast<double>(f.l7().latency_ns()) / 1e9);
    }
  }
};

// Cilium's "dns" metrics: queries (and queries the policy denied, rcode "Policy denied"),
// responses by rcode, and the record types of the responses; options `query` (a label with the
// name) and `ignoreAAAA` (AAAA-only queries not counted).
struct DnsMetrics {
  metrics::Family<metrics::Counter>* queries = nullptr;
  metrics::Family<metrics::Counter>* responses = nullptr;
  metrics::Family<metrics::Counter>* response_types = nullptr;
  MetricContext ctx;
  // Children by label values; DNS flows are one per query, so the strings cost little.
  std::unordered_map<std::string, metrics::Counter> cache;

  static std::string rcodeLabel(uint32_t rcode) {
    static const char* kNames[] = {"No Error",
                                   "Format Error",
                                   "Server Failure",
                                   "Non-Existent Domain",
                                   "Not Implemented",
                                   "Query Refused",
                                   "Name Exists when it should not",
                                   "RR Set Exists when it should not",
                                   "RR Set that should exist does not",
                                   "Not Authorized",
                                   "Name not contained in zone"};
    return rcode < std::size(kNames) ? kNames[rcode] : "";
  }

  void inc(metrics::Family<metrics::Counter>* family, metrics::LabelValues values,
           const flow::Flow& f) {
    auto context = contextLabelValues(ctx, f);  // first, as Hubble orders the dns labels
    values.insert(values.begin(), std::make_move_iterator(context.begin()),
                  std::make_move_iterator(context.end()));
    std::string key = family->desc().name;
    for (const auto& v : values) (key += '\x1f') += v;
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(std::move(key), family->with(values)).first;
    it->second.inc();
  }

  void onFlow(const flow::Flow& f) {
    if (queries == nullptr) return;
    const auto& d = f.l7().dns();
    if (ctx.options.contains("ignoreAAAA") && d.qtypes_size() == 1 && d.qtypes(0) == "AAAA") return;
    const bool query = ctx.options.contains("query");
    std::string qtypes = fmt::format("{}", fmt::join(d.qtypes(), ","));
    std::string ips = std::to_string(d.ips_size());
    auto withQuery = [&](metrics::LabelValues v) {
      if (query) v.push_back(d.query());
      return v;
    };
    if (f.verdict() == flow::DROPPED) {
      inc(queries, withQuery({"Policy denied", qtypes, ips}), f);
    } else if (f.l7().type() == flow::REQUEST) {
      inc(queries, withQuery({"", qtypes, ips}), f);
    } else if (f.l7().type() == flow::RESPONSE) {
      inc(responses, withQuery({rcodeLabel(d.rcode()), qtypes, ips}), f);
      for (const auto& t : d.rrtypes()) inc(response_types, withQuery({t, qtypes}), f);
    }
  }
};

struct FlowMetrics {
  Children processed, drops, tcp_flags, ports, verdicts, icmp, lost;
  HttpMetrics http;
  DnsMetrics dns;

  void onFlow(const flow::Flow& f) {
    const auto type = f.event_type().type();
    const bool trace = type == EVENT_TRACE;
    const bool l7 = type == kMessageTypeAccessLog;
    processed.inc({type,
                   trace ? f.trace_observation_point()
                   : l7  ? -2
                         : -1,
                   f.verdict()},
                  &f, [&] {
                    return metrics::LabelValues{
                        std::string(eventTypeLabel(f)),
                        trace ? std::string(observationPointName(f.trace_observation_point()))
                        : l7 && f.l7().has_http() ? "HTTP"
                        : l7 && f.l7().has_dns()  ? "DNS"
                                                  : "",
                        std::string(verdictName(f.verdict()))};
                  });
    const auto l4 = f.l4().protocol_case();
    if (f.verdict() == flow::DROPPED) {
      drops.inc({f.drop_reason_desc(), l4, 0}, &f, [&] {
        return metrics::LabelValues{flow::DropReason_Name(f.drop_reason_desc()), protocolLabel(f)};
      });
    }
    if (l7) {
      // The proxy's view of a request: not a packet on the wire (no flags, ports or ICMP).
      if (f.l7().has_http()) http.onFlow(f);
      if (f.l7().has_dns()) dns.onFlow(f);
      return;
    }
    if (type == EVENT_POLICY_VERDICT) {
      const uint32_t match = std::min<uint32_t>(f.policy_match_type(), 7);
      verdicts.inc({f.traffic_direction(), f.verdict(), match}, &f, [&] {
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
      });
      // Flags and ports describe traffic on the wire: count each packet once, where it is
      // delivered or dropped, not again at every observation point and verdict.
      return;
    }
    const bool v6 = f.ip().ipversion() == flow::IPv6;
    auto flag = [&](int index, const char* name) {
      tcp_flags.inc({index, v6, 0}, &f, [&] {
        return metrics::LabelValues{name, std::string(familyLabel(f))};
      });
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
        icmp.inc({4, t, 0}, &f, [&] { return metrics::LabelValues{"IPv4", std::to_string(t)}; });
        break;
      }
      case flow::Layer4::kICMPv6: {
        uint32_t t = f.l4().icmpv6().type();
        icmp.inc({6, t, 0}, &f, [&] { return metrics::LabelValues{"IPv6", std::to_string(t)}; });
        break;
      }
      default: break;
    }
    const uint32_t port = destinationPort(f);
    if (!(f.has_is_reply() && f.is_reply().value()) && port != 0) {
      ports.inc({l4, port, 0}, &f, [&] {
        return metrics::LabelValues{protocolLabel(f), std::to_string(port)};
      });
    }
  }

  void onLost(flow::LostEventSource source, uint64_t count) {
    lost.inc(
        {source, 0, 0}, nullptr,
        [&] {
          std::string name = flow::LostEventSource_Name(source);
          for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          return metrics::LabelValues{name};
        },
        static_cast<double>(count));
  }
};

}  // namespace

Status registerHubbleMetrics(metrics::Registry& registry, FlowPipeline& pipeline,
                             const MetricsSpec& spec) {
  // A metric the spec leaves out is not registered; its Children count nothing.
  auto family = [&](const std::string& metric, const std::string& name, const std::string& help,
                    std::vector<std::string> labels) -> Result<Children> {
    if (!spec.has(metric)) return Children(nullptr);
    auto ctx = spec.context(metric);
    for (auto& l : contextLabelNames(ctx)) labels.push_back(std::move(l));
    CILIUM_ASSIGN_OR_RETURN(auto* f, registry.counter(name, help, labels));
    return Children(f, std::move(ctx));
  };
  CILIUM_ASSIGN_OR_RETURN(auto processed,
                          family("flow", "hubble_flows_processed_total",
                                 "Total number of flows processed", {"type", "subtype", "verdict"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto drops, family("drop", "hubble_drop_total", "Number of drops", {"reason", "protocol"}));
  CILIUM_ASSIGN_OR_RETURN(auto tcp_flags, family("tcp", "hubble_tcp_flags_total",
                                                 "TCP flag occurrences", {"flag", "family"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto ports, family("port-distribution", "hubble_port_distribution_total",
                         "Numbers of packets distributed by destination port", {"protocol", "port"}));
  CILIUM_ASSIGN_OR_RETURN(
      auto verdicts, family("policy", "hubble_policy_verdicts_total",
                            "Number of policy verdicts by direction, action and match type",
                            {"direction", "action", "match"}));
  CILIUM_ASSIGN_OR_RETURN(auto icmp, family("icmp", "hubble_icmp_total",
                                            "Number of ICMP messages", {"family", "type"}));
  CILIUM_ASSIGN_OR_RETURN(auto* lost, registry.counter("hubble_lost_events_total",
                                                       "Number of lost events", {"source"}));
  CILIUM_ASSIGN_OR_RETURN(auto http_requests,
                          family("http", "hubble_http_requests_total",
                                 "Count of HTTP requests", {"method", "protocol", "reporter"}));
  CILIUM_ASSIGN_OR_RETURN(auto http_responses,
                          family("http", "hubble_http_responses_total",
                                 "Count of HTTP responses", {"method", "status", "reporter"}));
  metrics::Family<metrics::Histogram>* http_duration = nullptr;
  if (spec.has("http")) {
    std::vector<std::string> labels = {"method", "reporter"};
    for (auto& l : contextLabelNames(spec.context("http"))) labels.push_back(std::move(l));
    CILIUM_ASSIGN_OR_RETURN(http_duration,
                            registry.histogram("hubble_http_request_duration_seconds",
                                               "Quantiles of HTTP request duration in seconds",
                                               labels));
  }
  DnsMetrics dns;
  if (spec.has("dns")) {
    dns.ctx = spec.context("dns");
    auto ctx_labels = contextLabelNames(dns.ctx);
    const bool query = dns.ctx.options.contains("query");
    auto labels = [&](std::vector<std::string> own) {
      if (query) own.push_back("query");
      // Hubble puts the context labels first.
      own.insert(own.begin(), ctx_labels.begin(), ctx_labels.end());
      return own;
    };
    CILIUM_ASSIGN_OR_RETURN(
        dns.queries, registry.counter("hubble_dns_queries_total", "Number of DNS queries observed",
                                      labels({"rcode", "qtypes", "ips_returned"})));
    CILIUM_ASSIGN_OR_RETURN(
        dns.responses,
        registry.counter("hubble_dns_responses_total", "Number of DNS responses observed",
                         labels({"rcode", "qtypes", "ips_returned"})));
    CILIUM_ASSIGN_OR_RETURN(dns.response_types, registry.counter("hubble_dns_response_types_total",
                                                                 "Number of DNS response types",
                                                                 labels({"type", "qtypes"})));
  }
  // Both observers run on the pipeline thread, so the children caches need no lock.
  auto m = std::make_shared<FlowMetrics>(
      FlowMetrics{std::move(processed), std::move(drops), std::move(tcp_flags), std::move(ports),
                  std::move(verdicts), std::move(icmp), Children(lost),
                  HttpMetrics{std::move(http_requests), std::move(http_responses),
                              DurationChildren(http_duration, spec.context("http"))},
                  std::move(dns)});
  pipeline.addFlowObserver([m](const flow::Flow& f) { m->onFlow(f); });
  pipeline.addLostObserver(
      [m](flow::LostEventSource source, uint64_t count) { m->onLost(source, count); });
  return okStatus();
}

}  // namespace cilium::hubble
