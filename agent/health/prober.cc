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

nlohmann::json addressJson(const PathStatus& p) {
  return {{"ip", p.ip}, {"icmp", probeJson(p.icmp)}, {"http", probeJson(p.http)}};
}

// A node's path of one kind: the IPv4 address primary, the IPv6 one secondary (primary alone
// when there is no IPv4 one).
nlohmann::json pathJson(const std::optional<PathStatus>& v4, const std::optional<PathStatus>& v6) {
  if (!v4) return {{"primary-address", addressJson(*v6)}};
  nlohmann::json j = {{"primary-address", addressJson(*v4)}};
  if (v6) j["secondary-addresses"] = nlohmann::json::array({addressJson(*v6)});
  return j;
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

Result<PathStatus> addressFromJson(const nlohmann::json& a, const std::string& f) {
  CILIUM_RETURN_IF_ERROR(expect(a.is_object(), f, "not an object"));
  PathStatus p;
  CILIUM_RETURN_IF_ERROR(
      expect(a.contains("ip") && a["ip"].is_string(), f + ".ip", "not a string"));
  p.ip = a["ip"].get<std::string>();
  if (a.contains("icmp")) {
    CILIUM_ASSIGN_OR_RETURN(p.icmp, probeFromJson(a["icmp"], f + ".icmp"));
  } else {
    p.icmp.status = "not probed";
  }
  if (a.contains("http")) {
    CILIUM_ASSIGN_OR_RETURN(p.http, probeFromJson(a["http"], f + ".http"));
  } else {
    p.http.status = "not probed";
  }
  return p;
}

// The primary address of `key`, and its first IPv6 address among the secondary ones (or the
// primary when it is IPv6): (v4 path, v6 path).
Status pathFromJson(const nlohmann::json& node, const char* key, const std::string& field,
                    std::optional<PathStatus>& v4, std::optional<PathStatus>& v6) {
  if (!node.contains(key) || node[key].is_null()) return okStatus();
  const auto& j = node[key];
  std::string f = field + "." + key;
  CILIUM_RETURN_IF_ERROR(
      expect(j.is_object() && j.contains("primary-address") && j["primary-address"].is_object(), f,
             "no primary-address object"));
  CILIUM_ASSIGN_OR_RETURN(PathStatus primary,
                          addressFromJson(j["primary-address"], f + ".primary-address"));
  auto isV6 = [](const PathStatus& p) {
    auto ip = IpAddr::parse(p.ip);
    return ip.ok() && !ip->isV4();
  };
  if (isV6(primary))
    v6 = std::move(primary);
  else
    v4 = std::move(primary);
  if (j.contains("secondary-addresses") && !j["secondary-addresses"].is_null()) {
    const auto& sec = j["secondary-addresses"];
    CILIUM_RETURN_IF_ERROR(expect(sec.is_array(), f + ".secondary-addresses", "not an array"));
    for (size_t i = 0; i < sec.size(); i++) {
      CILIUM_ASSIGN_OR_RETURN(
          PathStatus p, addressFromJson(sec[i], fmt::format("{}.secondary-addresses[{}]", f, i)));
      if (isV6(p) && !v6) v6 = std::move(p);
    }
  }
  return okStatus();
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
    t.node_ip6 = n.primaryAddress(IpFamily::kV6);
    for (const auto& h : n.health) {
      if (h.isV4() && !t.health_ip) t.health_ip = h;
      if (!h.isV4() && !t.health_ip6) t.health_ip6 = h;
    }
    if (!t.node_ip && !t.health_ip && !t.node_ip6 && !t.health_ip6) continue;
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
  std::vector<std::future<PathStatus>> host, endpoint, host6, endpoint6;
  auto launch = [this](std::vector<std::future<PathStatus>>& into, Source from,
                       const std::optional<IpAddr>& ip) {
    if (ip)
      into.push_back(
          std::async(std::launch::async, [this, from, ip = *ip] { return probePath(from, ip); }));
    else
      into.emplace_back();
  };
  for (const auto& t : targets) {
    launch(host, Source::kHost, t.node_ip);
    launch(host6, Source::kHost, t.node_ip6);
    // This node's own health endpoint is reached from the node (a namespace cannot reach its
    // own address through its veth); the others' from this node's health endpoint.
    Source from = (!t.local && from_endpoint) ? Source::kHealthEndpoint : Source::kHost;
    launch(endpoint, from, t.health_ip);
    launch(endpoint6, from, t.health_ip6);
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
    if (host6[i].valid()) n.host6 = host6[i].get();
    if (endpoint6[i].valid()) n.endpoint6 = endpoint6[i].get();
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
    if (n.host || n.host6) j["host"] = pathJson(n.host, n.host6);
    if (n.endpoint || n.endpoint6) j["health-endpoint"] = pathJson(n.endpoint, n.endpoint6);
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
      CILIUM_RETURN_IF_ERROR(pathFromJson(n, "host", f, h.host, h.host6));
      CILIUM_RETURN_IF_ERROR(pathFromJson(n, "health-endpoint", f, h.endpoint, h.endpoint6));
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
      for (auto [what, p] :
           {std::pair{"Host", &n.host}, std::pair{"Host", &n.host6},
            std::pair{"Endpoint", &n.endpoint}, std::pair{"Endpoint", &n.endpoint6}})
        if (*p)
          out += fmt::format("    {} connectivity to {}:   ICMP {}   HTTP {}\n", what, (*p)->ip,
                             lat(*p, true), lat(*p, false));
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
    path("Host", n.host6);
    path("Endpoint", n.endpoint);
    path("Endpoint", n.endpoint6);
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
// A dual-stack node's IPv6 paths are its "secondary" addresses (address_type).
template <typename F>
void eachPath(const Report& r, F&& f) {
  for (const auto& n : r.nodes) {
    std::vector<std::string> base = {r.cluster, r.local, r.cluster, n.name,
                                     n.local ? "local_node" : "remote_intra_cluster"};
    if (n.host) f(base, "node", "primary", *n.host);
    if (n.endpoint) f(base, "endpoint", "primary", *n.endpoint);
    if (n.host6) f(base, "node", n.host ? "secondary" : "primary", *n.host6);
    if (n.endpoint6) f(base, "endpoint", n.endpoint ? "secondary" : "primary", *n.endpoint6);
  }
}

}  // namespace

std::vector<ConnectivitySample> connectivityStatus(const Report& r) {
  // One sample per node and type: reachable when every address of that type answered.
  std::vector<ConnectivitySample> out;
  eachPath(
      r, [&](std::vector<std::string> labels, const char* type, const char*, const PathStatus& p) {
        labels.push_back(type);
        for (auto& s : out)
          if (s.labels == labels) {
            if (!p.ok()) s.value = 0.0;
            return;
          }
        out.push_back({std::move(labels), p.ok() ? 1.0 : 0.0});
      });
  return out;
}

std::vector<ConnectivitySample> connectivityLatency(const Report& r) {
  std::vector<ConnectivitySample> out;
  eachPath(r, [&](std::vector<std::string> labels, const char* type, const char* address_type,
                  const PathStatus& p) {
    labels.push_back(type);
    labels.push_back(address_type);
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
