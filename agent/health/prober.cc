// The health prober: rounds of concurrent probes, the kept report, its JSON and text forms.
#include "agent/health/prober.h"

#include <algorithm>
#include <ctime>
#include <future>

#include <fmt/format.h>

#include "agent/health/config.h"
#include "agent/node/node.h"

namespace cilium::health {
namespace {

std::string nowRfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  ::gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

ProbeResult resultOf(const Result<std::chrono::nanoseconds>& r) {
  if (r.ok()) return {*r, ""};
  std::string msg = r.error().message();
  return {std::chrono::nanoseconds(0), msg.empty() ? "failed" : msg};
}

nlohmann::json probeJson(const ProbeResult& p) {
  return {{"latency", p.latency.count()}, {"status", p.status}};
}

nlohmann::json pathJson(const PathStatus& p) {
  return {{"primary-address",
           {{"ip", p.ip}, {"icmp", probeJson(p.icmp)}, {"http", probeJson(p.http)}}}};
}

Status expect(bool cond, const std::string& field, std::string_view what) {
  if (cond) return okStatus();
  return makeError(ErrorCode::kInvalidArgument, "{}: {}", field, what);
}

Result<ProbeResult> probeFromJson(const nlohmann::json& j, const std::string& field) {
  CILIUM_RETURN_IF_ERROR(expect(j.is_object(), field, "not an object"));
  ProbeResult p;
  if (j.contains("latency")) {
    CILIUM_RETURN_IF_ERROR(
        expect(j["latency"].is_number_integer(), field + ".latency", "not an integer"));
    p.latency = std::chrono::nanoseconds(j["latency"].get<int64_t>());
  }
  if (j.contains("status")) {
    CILIUM_RETURN_IF_ERROR(expect(j["status"].is_string(), field + ".status", "not a string"));
    p.status = j["status"].get<std::string>();
  }
  return p;
}

Result<std::optional<PathStatus>> pathFromJson(const nlohmann::json& node, const char* key,
                                               const std::string& field) {
  if (!node.contains(key) || node[key].is_null()) return std::optional<PathStatus>();
  const auto& j = node[key];
  std::string f = field + "." + key;
  CILIUM_RETURN_IF_ERROR(
      expect(j.is_object() && j.contains("primary-address") && j["primary-address"].is_object(), f,
             "no primary-address object"));
  const auto& a = j["primary-address"];
  PathStatus p;
  CILIUM_RETURN_IF_ERROR(
      expect(a.contains("ip") && a["ip"].is_string(), f + ".primary-address.ip", "not a string"));
  p.ip = a["ip"].get<std::string>();
  if (a.contains("icmp")) {
    CILIUM_ASSIGN_OR_RETURN(p.icmp, probeFromJson(a["icmp"], f + ".primary-address.icmp"));
  } else {
    p.icmp.status = "not probed";
  }
  if (a.contains("http")) {
    CILIUM_ASSIGN_OR_RETURN(p.http, probeFromJson(a["http"], f + ".primary-address.http"));
  } else {
    p.http.status = "not probed";
  }
  return std::optional<PathStatus>(std::move(p));
}

std::string probeText(const ProbeResult& p) {
  if (!p.ok()) return "failed (" + p.status + ")";
  double ms = static_cast<double>(p.latency.count()) / 1e6;
  return fmt::format("OK, RTT={:.3f}ms", ms);
}

}  // namespace

size_t Report::reachableCount() const {
  return static_cast<size_t>(
      std::count_if(nodes.begin(), nodes.end(), [](const NodeHealth& n) { return n.reachable(); }));
}

std::vector<Target> targetsOf(const std::vector<node::Node>& nodes, const std::string& local) {
  std::vector<Target> out;
  for (const auto& n : nodes) {
    Target t;
    t.name = n.name;
    t.local = n.name == local;
    t.node_ip = n.primaryAddress(IpFamily::kV4);
    for (const auto& h : n.health)
      if (h.isV4()) {
        t.health_ip = h;
        break;
      }
    if (!t.node_ip && !t.health_ip) continue;
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const Target& a, const Target& b) { return a.name < b.name; });
  return out;
}

Prober::Prober(Probes& probes, ProberOptions options)
    : probes_(probes), options_(std::move(options)) {
  options_.timeout = std::min(options_.timeout, options_.interval);
  last_.local = options_.local;
  last_.cluster = options_.cluster;
  last_.interval = options_.interval;
}

Prober::~Prober() { stop(); }

PathStatus Prober::probePath(Source from, const IpAddr& ip) {
  PathStatus p;
  p.ip = ip.toString();
  p.icmp = resultOf(probes_.icmp(from, ip, options_.timeout));
  p.http = resultOf(probes_.http(from, ip, options_.port, options_.timeout));
  return p;
}

Report Prober::probe(const std::vector<Target>& targets) {
  std::lock_guard round(round_mu_);
  const bool from_endpoint =
      options_.endpoint_source_ready ? options_.endpoint_source_ready() : false;
  // Each address on a thread of its own: a node that does not answer costs one timeout per
  // protocol, not one per node.
  std::vector<std::future<PathStatus>> host, endpoint;
  for (const auto& t : targets) {
    if (t.node_ip)
      host.push_back(std::async(std::launch::async,
                                [this, ip = *t.node_ip] { return probePath(Source::kHost, ip); }));
    else
      host.emplace_back();
    // This node's own health endpoint is reached from the node (a namespace cannot reach its
    // own address through its veth); the others' from this node's health endpoint.
    Source from = (!t.local && from_endpoint) ? Source::kHealthEndpoint : Source::kHost;
    if (t.health_ip)
      endpoint.push_back(std::async(
          std::launch::async, [this, from, ip = *t.health_ip] { return probePath(from, ip); }));
    else
      endpoint.emplace_back();
  }
  Report r;
  r.local = options_.local;
  r.cluster = options_.cluster;
  r.interval = options_.interval;
  for (size_t i = 0; i < targets.size(); i++) {
    NodeHealth n;
    n.name = targets[i].name;
    n.local = targets[i].local;
    if (host[i].valid()) n.host = host[i].get();
    if (endpoint[i].valid()) n.endpoint = endpoint[i].get();
    r.nodes.push_back(std::move(n));
  }
  r.timestamp = nowRfc3339();
  {
    std::lock_guard lock(mu_);
    last_ = r;
  }
  if (listener_) listener_(r);
  return r;
}

Report Prober::last() const {
  std::lock_guard lock(mu_);
  return last_;
}

void Prober::setListener(std::function<void(const Report&)> listener) {
  listener_ = std::move(listener);
}

void Prober::start(std::function<std::vector<Target>()> targets) {
  thread_ = std::thread([this, targets = std::move(targets)] {
    std::unique_lock lock(loop_mu_);
    do {
      lock.unlock();
      probe(targets());
      lock.lock();
    } while (!loop_cv_.wait_for(lock, options_.interval, [this] { return stopping_; }));
  });
}

void Prober::stop() {
  {
    std::lock_guard lock(loop_mu_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

nlohmann::json toJson(const Report& r) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : r.nodes) {
    nlohmann::json j = {{"name", n.name}};
    if (n.host) j["host"] = pathJson(*n.host);
    if (n.endpoint) j["health-endpoint"] = pathJson(*n.endpoint);
    nodes.push_back(std::move(j));
  }
  return {{"local", {{"name", r.local}}},
          {"cluster", r.cluster},
          {"nodes", std::move(nodes)},
          {"timestamp", r.timestamp},
          {"probe-interval", durationText(r.interval)}};
}

Result<Report> reportFromJson(const nlohmann::json& j) {
  CILIUM_RETURN_IF_ERROR(expect(j.is_object(), "response", "not an object"));
  Report r;
  if (j.contains("local")) {
    CILIUM_RETURN_IF_ERROR(expect(
        j["local"].is_object() && j["local"].contains("name") && j["local"]["name"].is_string(),
        "local.name", "not a string"));
    r.local = j["local"]["name"].get<std::string>();
  }
  if (j.contains("cluster")) {
    CILIUM_RETURN_IF_ERROR(expect(j["cluster"].is_string(), "cluster", "not a string"));
    r.cluster = j["cluster"].get<std::string>();
  }
  if (j.contains("timestamp")) {
    CILIUM_RETURN_IF_ERROR(expect(j["timestamp"].is_string(), "timestamp", "not a string"));
    r.timestamp = j["timestamp"].get<std::string>();
  }
  if (j.contains("probe-interval")) {
    CILIUM_RETURN_IF_ERROR(
        expect(j["probe-interval"].is_string(), "probe-interval", "not a string"));
    CILIUM_ASSIGN_OR_RETURN(r.interval, parseDuration(j["probe-interval"].get<std::string>()));
  }
  if (j.contains("nodes")) {
    CILIUM_RETURN_IF_ERROR(expect(j["nodes"].is_array(), "nodes", "not an array"));
    for (size_t i = 0; i < j["nodes"].size(); i++) {
      const auto& n = j["nodes"][i];
      std::string f = fmt::format("nodes[{}]", i);
      CILIUM_RETURN_IF_ERROR(expect(n.is_object() && n.contains("name") && n["name"].is_string(),
                                    f + ".name", "not a string"));
      NodeHealth h;
      h.name = n["name"].get<std::string>();
      h.local = h.name == r.local;
      CILIUM_ASSIGN_OR_RETURN(h.host, pathFromJson(n, "host", f));
      CILIUM_ASSIGN_OR_RETURN(h.endpoint, pathFromJson(n, "health-endpoint", f));
      r.nodes.push_back(std::move(h));
    }
  }
  return r;
}

std::string summaryText(const Report& r) {
  if (r.timestamp.empty()) return "Probing   (no round finished yet)";
  return fmt::format("{}/{} reachable   ({})", r.reachableCount(), r.nodes.size(), r.timestamp);
}

std::string formatStatus(const Report& r, bool verbose) {
  std::string out;
  out += fmt::format("Probe time:   {}\n", r.timestamp.empty() ? "-" : r.timestamp);
  out += fmt::format("Probe interval:   {}\n", durationText(r.interval));
  out += "Nodes:\n";
  for (const auto& n : r.nodes) {
    if (!verbose && n.reachable()) {
      // The short form still shows each node with its latencies on one line.
      auto lat = [](const std::optional<PathStatus>& p, bool icmp) -> std::string {
        if (!p) return "-";
        const ProbeResult& x = icmp ? p->icmp : p->http;
        return fmt::format("{:.3f}ms", static_cast<double>(x.latency.count()) / 1e6);
      };
      out += fmt::format("  {}{}:\n", n.name, n.local ? " (localhost)" : "");
      if (n.host)
        out += fmt::format("    Host connectivity to {}:   ICMP {}   HTTP {}\n", n.host->ip,
                           lat(n.host, true), lat(n.host, false));
      if (n.endpoint)
        out += fmt::format("    Endpoint connectivity to {}:   ICMP {}   HTTP {}\n", n.endpoint->ip,
                           lat(n.endpoint, true), lat(n.endpoint, false));
      continue;
    }
    out += fmt::format("  {}{}:\n", n.name, n.local ? " (localhost)" : "");
    auto path = [&](const char* what, const std::optional<PathStatus>& p) {
      if (!p) return;
      out += fmt::format("    {} connectivity to {}:\n", what, p->ip);
      out += fmt::format("      ICMP to stack:   {}\n", probeText(p->icmp));
      out += fmt::format("      HTTP to agent:   {}\n", probeText(p->http));
    };
    path("Host", n.host);
    path("Endpoint", n.endpoint);
  }
  return out;
}

const std::vector<std::string> kStatusLabels = {"source_cluster",   "source_node_name",
                                                "target_cluster",   "target_node_name",
                                                "target_node_type", "type"};
const std::vector<std::string> kLatencyLabels = {
    "source_cluster", "source_node_name", "target_cluster", "target_node_name", "target_node_type",
    "type",           "address_type",     "protocol"};

namespace {

// Cilium's label values: type "node" (the node's address) or "endpoint" (its health endpoint);
// target_node_type "local_node" or "remote_intra_cluster".
template <typename F>
void eachPath(const Report& r, F&& f) {
  for (const auto& n : r.nodes) {
    std::vector<std::string> base = {r.cluster, r.local, r.cluster, n.name,
                                     n.local ? "local_node" : "remote_intra_cluster"};
    if (n.host) f(base, "node", *n.host);
    if (n.endpoint) f(base, "endpoint", *n.endpoint);
  }
}

}  // namespace

std::vector<ConnectivitySample> connectivityStatus(const Report& r) {
  std::vector<ConnectivitySample> out;
  eachPath(r, [&](std::vector<std::string> labels, const char* type, const PathStatus& p) {
    labels.push_back(type);
    out.push_back({std::move(labels), p.ok() ? 1.0 : 0.0});
  });
  return out;
}

std::vector<ConnectivitySample> connectivityLatency(const Report& r) {
  std::vector<ConnectivitySample> out;
  eachPath(r, [&](std::vector<std::string> labels, const char* type, const PathStatus& p) {
    labels.push_back(type);
    labels.push_back("primary");
    for (auto [proto, probe] : {std::pair{"icmp", &p.icmp}, std::pair{"http", &p.http}}) {
      if (!probe->ok()) continue;  // no latency for a failed probe (Cilium leaves it out too)
      auto l = labels;
      l.push_back(proto);
      out.push_back({std::move(l), static_cast<double>(probe->latency.count()) / 1e9});
    }
  });
  return out;
}

}  // namespace cilium::health
