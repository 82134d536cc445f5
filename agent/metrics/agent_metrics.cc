// cilium_* metric families and the datapath collectors.
#include "agent/metrics/agent_metrics.h"

#include <chrono>

#include "agent/common/log.h"
#include "agent/datapath/monitor.h"

namespace cilium::metrics {

namespace {

auto log() {
  static auto l = cilium::logger("metrics");
  return l;
}

std::string directionName(uint8_t dir) {
  switch (dir) {
    case METRIC_INGRESS: return "INGRESS";
    case METRIC_EGRESS: return "EGRESS";
    case METRIC_SERVICE: return "SERVICE";
  }
  return "UNKNOWN";
}

// One read of cilium_metrics shared by the four families of a scrape: Prometheus asks for them
// in one request, and the map is per-CPU, so reading it four times would cost four full walks.
class MetricsSnapshot {
 public:
  explicit MetricsSnapshot(DatapathSources s) : src_(std::move(s)) {}

  std::vector<datapath::MetricsEntry> get() {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (now - taken_ > std::chrono::milliseconds(200)) {
      auto r = src_.read_metrics();
      if (r.ok()) {
        cached_ = std::move(r).value();
      } else {
        log()->warn("reading cilium_metrics failed error={}", r.error().toString());
        cached_.clear();
      }
      taken_ = now;
    }
    return cached_;
  }

 private:
  DatapathSources src_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point taken_{};
  std::vector<datapath::MetricsEntry> cached_;
};

}  // namespace

Status addDatapathMetrics(Registry& registry, DatapathSources sources) {
  if (sources.read_metrics) {
    auto snap = std::make_shared<MetricsSnapshot>(sources);
    auto drops = [snap](bool bytes) {
      return [snap, bytes](SampleSink& sink) {
        for (const auto& e : snap->get()) {
          if (e.reason == REASON_FORWARDED) continue;
          if (e.reason < 128) continue;  // non-drop outcomes other than forwarded
          sink.add({datapath::dropReasonName(e.reason), directionName(e.dir)},
                   static_cast<double>(bytes ? e.bytes : e.packets));
        }
      };
    };
    auto forwards = [snap](bool bytes) {
      return [snap, bytes](SampleSink& sink) {
        for (const auto& e : snap->get()) {
          if (e.reason != REASON_FORWARDED) continue;
          sink.add({directionName(e.dir)}, static_cast<double>(bytes ? e.bytes : e.packets));
        }
      };
    };
    CILIUM_RETURN_IF_ERROR(
        registry.addCollector({"cilium_drop_count_total",
                               "Total dropped packets, tagged by drop reason and direction",
                               MetricType::kCounter,
                               {"reason", "direction"}},
                              drops(false)));
    CILIUM_RETURN_IF_ERROR(
        registry.addCollector({"cilium_drop_bytes_total",
                               "Total dropped bytes, tagged by drop reason and direction",
                               MetricType::kCounter,
                               {"reason", "direction"}},
                              drops(true)));
    CILIUM_RETURN_IF_ERROR(registry.addCollector({"cilium_forward_count_total",
                                                  "Total forwarded packets, tagged by direction",
                                                  MetricType::kCounter,
                                                  {"direction"}},
                                                 forwards(false)));
    CILIUM_RETURN_IF_ERROR(registry.addCollector({"cilium_forward_bytes_total",
                                                  "Total forwarded bytes, tagged by direction",
                                                  MetricType::kCounter,
                                                  {"direction"}},
                                                 forwards(true)));
  }
  if (sources.read_event_counters) {
    auto read = sources.read_event_counters;
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_datapath_events_total",
         "Datapath events by outcome: emitted to the ring, lost (ring full), rate_limited",
         MetricType::kCounter,
         {"outcome"}},
        [read](SampleSink& sink) {
          auto r = read();
          if (!r.ok()) return;
          sink.add({"emitted"}, static_cast<double>(r->emitted));
          sink.add({"lost"}, static_cast<double>(r->lost));
          sink.add({"rate_limited"}, static_cast<double>(r->rate_limited));
        }));
  }
  return okStatus();
}

const std::vector<ScrapedGauge>& scrapedGauges() {
  static const std::vector<ScrapedGauge> g = {
      {"cilium_endpoint", "Number of endpoints managed by this agent", {}},
      {"cilium_endpoint_state",
       "Count of all endpoints, tagged by their state",
       {"endpoint_state"}},
      {"cilium_identity", "Number of identities currently allocated", {"type"}},
      {"cilium_policy", "Number of policies currently loaded", {}},
      {"cilium_policy_max_revision", "Highest policy revision number in the agent", {}},
      {"cilium_policy_endpoint_enforcement_status",
       "Number of endpoints labeled by policy enforcement status",
       {"enforcement"}},
      {"cilium_bpf_map_pressure",
       "Fill percentage of a BPF map (0..1), tagged by map name",
       {"map_name"}},
      {"cilium_ip_addresses", "Number of allocated IP addresses", {"family"}},
  };
  return g;
}

Result<std::unique_ptr<AgentMetrics>> AgentMetrics::create(Registry& registry) {
  auto m = std::unique_ptr<AgentMetrics>(new AgentMetrics());
  CILIUM_ASSIGN_OR_RETURN(m->endpoint_regenerations,
                          registry.counter("cilium_endpoint_regenerations_total",
                                           "Count of all endpoint regenerations that have "
                                           "completed, tagged by outcome",
                                           {"outcome"}));
  CILIUM_ASSIGN_OR_RETURN(
      m->endpoint_regeneration_time_stats,
      registry.histogram("cilium_endpoint_regeneration_time_stats_seconds",
                         "Endpoint regeneration time stats labeled by the scope", {"scope"},
                         defaultBuckets()));
  CILIUM_ASSIGN_OR_RETURN(m->policy_change,
                          registry.counter("cilium_policy_change_total",
                                           "Number of policy changes by outcome", {"outcome"}));
  CILIUM_ASSIGN_OR_RETURN(
      m->k8s_client_api_calls,
      registry.counter("cilium_k8s_client_api_calls_total",
                       "Number of API calls made to kube-apiserver labeled by host, method and "
                       "return code",
                       {"host", "method", "return_code"}));
  for (const auto& g : scrapedGauges()) {
    auto slot = std::make_shared<CollectFn>();
    m->sources_[std::string(g.name)] = slot;
    AgentMetrics* self = m.get();
    std::string name(g.name);
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {name, std::string(g.help), MetricType::kGauge, g.labels}, [self, name](SampleSink& sink) {
          std::shared_ptr<CollectFn> fn;
          {
            std::lock_guard lock(self->mu_);
            fn = self->sources_[name];
          }
          if (fn && *fn) (*fn)(sink);
        }));
  }
  return m;
}

Status AgentMetrics::setGaugeSource(std::string_view name, CollectFn source) {
  std::lock_guard lock(mu_);
  auto it = sources_.find(name);
  if (it == sources_.end())
    return makeError(ErrorCode::kNotFound, "no scraped gauge named {}", name);
  it->second = std::make_shared<CollectFn>(std::move(source));
  return okStatus();
}

}  // namespace cilium::metrics
