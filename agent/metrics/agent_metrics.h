// The agent's cilium_* metrics, with Cilium's names and labels: the datapath counters read from
// the kernel at scrape time, and the control-plane metrics the agent's modules feed (endpoint,
// identity, policy, Kubernetes client), either by updating the families here or by installing a
// source that runs at scrape time.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/datapath/datapath.h"
#include "agent/metrics/registry.h"

namespace cilium::metrics {

// Where the datapath counters come from; each may be empty (the metrics then stay absent).
struct DatapathSources {
  // cilium_metrics summed over CPUs (Datapath::readMetrics).
  std::function<Result<std::vector<datapath::MetricsEntry>>()> read_metrics;
  // cilium_event_stats (Datapath::eventCounters).
  std::function<Result<datapath::EventCounters>()> read_event_counters;
};

// cilium_drop_count_total{reason,direction}, cilium_drop_bytes_total{reason,direction},
// cilium_forward_count_total{direction}, cilium_forward_bytes_total{direction} from the
// cilium_metrics map (reason as Cilium's text, direction INGRESS/EGRESS/SERVICE), and
// cilium_datapath_events_total{outcome} (emitted/lost/rate_limited) from cilium_event_stats.
// The map is read once per scrape however many of these families the scrape asks for.
Status addDatapathMetrics(Registry& registry, DatapathSources sources);

class AgentMetrics {
 public:
  // Registers every family below in `registry`. The registry's collectors call into this object:
  // keep it alive as long as the registry is scraped.
  static Result<std::unique_ptr<AgentMetrics>> create(Registry& registry);

  // Counted where the event happens.
  Family<Counter>* endpoint_regenerations = nullptr;              // {outcome}: success|failure
  Family<Histogram>* endpoint_regeneration_time_stats = nullptr;  // {scope}: total, ...
  Family<Counter>* policy_change = nullptr;                       // {outcome}
  Family<Counter>* k8s_client_api_calls = nullptr;                // {host,method,return_code}

  // Gauges read at scrape time from the module that owns the state. The name is one of
  // kScrapedGauges; the source emits samples with that gauge's labels. Replaces an earlier
  // source; until a source is set the gauge has no samples.
  //   cilium_endpoint                             no labels: endpoints managed
  //   cilium_endpoint_state                       {endpoint_state}
  //   cilium_identity                             {type}: cluster_local | node_local | reserved
  //   cilium_policy                               no labels: rules loaded
  //   cilium_policy_max_revision                  no labels
  //   cilium_policy_endpoint_enforcement_status   {enforcement}: none|ingress|egress|both
  //   cilium_bpf_map_pressure                     {map_name}: fill ratio 0..1
  //   cilium_ip_addresses                         {family}
  Status setGaugeSource(std::string_view name, CollectFn source);

 private:
  AgentMetrics() = default;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<CollectFn>, std::less<>> sources_;
};

struct ScrapedGauge {
  std::string_view name;
  std::string_view help;
  std::vector<std::string> labels;
};
const std::vector<ScrapedGauge>& scrapedGauges();

}  // namespace cilium::metrics
