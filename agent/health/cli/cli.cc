// cilium-health's commands over the agent's REST API.
#include "agent/health/cli/cli.h"

#include <ostream>

#include <nlohmann/json.hpp>

#include "agent/common/cli.h"
#include "agent/health/prober.h"
#include "api/client/client.h"

namespace cilium::health::cli {

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const std::function<const char*(const char*)>& getenv) {
  auto app = cilium::cli::makeApp(
      "Cilium Health Client: the cluster's connectivity as the "
      "local agent's probes see it",
      "cilium-health");
  std::string host;
  app->add_option("-H,--host", host, "The agent's API socket (path or unix://path)");
  cilium::cli::formatterOf(*app).env("host", "CILIUM_SOCK");
  auto* status = app->add_subcommand("status", "The connectivity of every node, with latencies");
  bool probe = false, verbose = false;
  std::string output;
  status->add_flag("--probe", probe, "Probe now instead of showing the last round");
  status->add_flag("--verbose", verbose, "Every probe of every node");
  status->add_option("-o,--output", output, "json for the agent's answer as it is");
  auto* ping = app->add_subcommand("ping", "Whether the agent's health API answers");
  auto outcome = cilium::cli::parse(*app, args);
  if (!outcome.ok())
    return cilium::cli::usageError(err, "cilium-health", outcome.error().message());
  if (*outcome == cilium::cli::Outcome::kHelp) {
    out << cilium::cli::help(*app);
    return 0;
  }
  if (!status->parsed() && !ping->parsed()) {
    out << cilium::cli::help(*app);
    return cilium::cli::kUsageExit;
  }
  if (!output.empty() && output != "json")
    return cilium::cli::usageError(err, "cilium-health", "-o: only json is supported");
  if (host.empty()) {
    if (const char* s = getenv("CILIUM_SOCK"); s != nullptr && *s) host = s;
  }
  api::ClientOptions o;
  if (!host.empty()) {
    auto path = api::socketPathFromHost(host);
    if (!path.ok()) return cilium::cli::usageError(err, "cilium-health", path.error().message());
    o.socket_path = *path;
  }
  api::Client client(o);
  auto r = probe && status->parsed() ? client.call("PUT", "/v1/health/status/probe")
                                     : client.call("GET", "/v1/health/status");
  if (!r.ok()) {
    err << "cilium-health: cannot reach the agent: " << r.error().message() << "\n";
    return 1;
  }
  if (r->status != 200) {
    err << "cilium-health: the agent answered " << r->status << ": " << r->body << "\n";
    return 1;
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  auto report = reportFromJson(j);
  if (!report.ok()) {
    err << "cilium-health: unexpected answer: " << report.error().message() << "\n";
    return 1;
  }
  if (ping->parsed()) {
    out << "OK\n";
    return 0;
  }
  if (output == "json") {
    out << j.dump(2) << "\n";
    return 0;
  }
  out << "Cluster health:   " << summaryText(*report) << "\n";
  out << formatStatus(*report, verbose);
  return 0;
}

}  // namespace cilium::health::cli
