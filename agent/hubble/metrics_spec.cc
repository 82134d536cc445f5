// Parsing Cilium's hubble-metrics option.
#include "agent/hubble/metrics_spec.h"

#include <algorithm>
#include <set>

namespace cilium::hubble {

namespace {

const std::set<std::string, std::less<>> kProduced = {"flow", "drop",   "tcp",  "port-distribution",
                                                      "icmp", "policy", "http", "dns"};
const std::set<std::string, std::less<>> kLater = {"httpV2", "kafka", "flows-to-world"};
const std::set<std::string, std::less<>> kContexts = {
    "identity", "namespace", "pod", "pod-name", "dns", "ip", "reserved-identity", "workload",
    "workload-name", "app"};
const std::set<std::string, std::less<>> kLabels = {
    "source_ip",           "source_pod",           "source_namespace",
    "source_workload",     "source_workload_kind", "source_app",
    "destination_ip",      "destination_pod",      "destination_namespace",
    "destination_workload", "destination_workload_kind", "destination_app",
    "traffic_direction"};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// Splits the list into metrics: at whitespace, and at commas that are not inside an option's
// value (labelsContext=a,b keeps its commas).
std::vector<std::string> splitMetrics(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool in_value = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || (c == ',' && !in_value)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      in_value = false;
      continue;
    }
    if (c == '=') in_value = true;
    if (c == ';') in_value = false;
    cur += c;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

Result<MetricsSpec> parseMetricsSpec(std::string_view text) {
  MetricsSpec spec;
  auto items = splitMetrics(text);
  if (items.empty()) return spec;
  spec.all = false;
  for (const auto& item : items) {
    auto colon = item.find(':');
    std::string name = item.substr(0, colon);
    if (!kProduced.contains(name) && !kLater.contains(name))
      return makeError(ErrorCode::kInvalidArgument,
                       "hubble-metrics: unknown metric \"{}\" (flow, drop, tcp, "
                       "port-distribution, icmp, policy, dns, http, httpV2, kafka, "
                       "flows-to-world)",
                       name);
    MetricContext ctx;
    // The metrics this agent does not produce take any options.
    if (colon != std::string::npos && kProduced.contains(name)) {
      for (const auto& opt : split(std::string_view(item).substr(colon + 1), ';')) {
        if (opt.empty()) continue;
        auto eq = opt.find('=');
        if (name == "dns" && (opt == "query" || opt == "ignoreAAAA")) {
          ctx.options.insert(opt);
          continue;
        }
        if (eq == std::string::npos)
          return makeError(ErrorCode::kInvalidArgument, "hubble-metrics: {}: option \"{}\" needs =value",
                           name, opt);
        std::string key = opt.substr(0, eq), value = opt.substr(eq + 1);
        if (key == "sourceContext" || key == "destinationContext") {
          auto& out = key == "sourceContext" ? ctx.source : ctx.destination;
          for (const auto& c : split(value, '|')) {
            if (!kContexts.contains(c))
              return makeError(ErrorCode::kInvalidArgument,
                               "hubble-metrics: {}: {} \"{}\" is not one of identity, namespace, "
                               "pod, pod-name, dns, ip, reserved-identity, workload, "
                               "workload-name, app",
                               name, key, c);
            out.push_back(c);
          }
        } else if (key == "labelsContext") {
          for (const auto& l : split(value, ',')) {
            if (!kLabels.contains(l))
              return makeError(ErrorCode::kInvalidArgument,
                               "hubble-metrics: {}: labelsContext \"{}\" is not a known label",
                               name, l);
            if (std::find(ctx.labels.begin(), ctx.labels.end(), l) == ctx.labels.end())
              ctx.labels.push_back(l);
          }
        } else {
          return makeError(ErrorCode::kInvalidArgument,
                           "hubble-metrics: {}: unknown option \"{}\" (sourceContext, "
                           "destinationContext, labelsContext)",
                           name, key);
        }
      }
    }
    spec.enabled[name] = std::move(ctx);
  }
  return spec;
}

}  // namespace cilium::hubble
