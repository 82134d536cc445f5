// Cilium's hubble-metrics option: which flow metrics to keep and the context labels each adds.
//
//   "drop:sourceContext=pod;destinationContext=namespace tcp flow port-distribution icmp policy"
//
// Metrics are separated by spaces (as Cilium's ConfigMap writes the list; commas also separate
// metrics outside an option's value). Options, as Hubble's:
//   sourceContext / destinationContext   one or more of identity, namespace, pod, pod-name, dns,
//                                        ip, reserved-identity, workload, workload-name, app,
//                                        joined with '|' (the first that is not empty wins);
//                                        adds the label `source` / `destination`
//   labelsContext                        comma-separated source_ip, source_pod,
//                                        source_namespace, source_workload,
//                                        source_workload_kind, source_app, destination_* the
//                                        same, traffic_direction: one label each
// Metric names this agent produces: flow, drop, tcp, port-distribution, icmp, policy, http, dns
// (its own options `query` and `ignoreAAAA`, without a value). httpV2, kafka and flows-to-world
// are accepted with any options and produce nothing; any other name, or a bad option or context of
// a metric this agent produces, is kInvalidArgument.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/common/error.h"

namespace cilium::hubble {

struct MetricContext {
  std::vector<std::string> source;       // alternatives, in order
  std::vector<std::string> destination;  // alternatives, in order
  std::vector<std::string> labels;       // labelsContext names, in order
  std::set<std::string> options;         // a metric's own options without a value (dns: query,
                                         // ignoreAAAA)
  bool empty() const { return source.empty() && destination.empty() && labels.empty(); }
};

struct MetricsSpec {
  bool all = true;                              // no option given: every metric, no context
  std::map<std::string, MetricContext> enabled;  // by metric name
  bool has(const std::string& name) const { return all || enabled.contains(name); }
  MetricContext context(const std::string& name) const {
    auto it = enabled.find(name);
    return it == enabled.end() ? MetricContext{} : it->second;
  }
};

Result<MetricsSpec> parseMetricsSpec(std::string_view text);

}  // namespace cilium::hubble
