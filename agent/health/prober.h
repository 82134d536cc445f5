// Cluster connectivity health (Cilium's cilium-health): which nodes and health endpoints this
// node reaches, by ICMP echo and by HTTP GET /hello on the health port, with the latency of
// each probe. The Prober runs rounds of probes over every known node, concurrently, keeps the
// last result per node and hands each finished round to a listener (the metrics); the Report
// is the answer of GET /v1/health/status in Cilium's HealthStatusResponse shape, which
// cilium-health and cilium-dbg status print. Pure logic: the probes themselves are behind
// Probes (netns sockets in the agent, a fake in unit tests).
//
// Threading: every public method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::node {
struct Node;
}

namespace cilium::health {

// Where a probe leaves from: the node's own network namespace (host connectivity, and this
// node's health endpoint) or this node's health endpoint (the other nodes' health endpoints:
// pod to pod through bpf_lxc and the overlay).
enum class Source { kHost, kHealthEndpoint };

class Probes {
 public:
  virtual ~Probes() = default;
  // One ICMP echo to `ip` and its reply: the round trip time. kDeadlineExceeded without reply.
  virtual Result<std::chrono::nanoseconds> icmp(Source from, const IpAddr& ip,
                                                std::chrono::milliseconds timeout) = 0;
  // GET http://ip:port/hello answered 200: the time from connect to the answer.
  virtual Result<std::chrono::nanoseconds> http(Source from, const IpAddr& ip, uint16_t port,
                                                std::chrono::milliseconds timeout) = 0;
};

// One probe's outcome (Cilium's ConnectivityStatus): status "" means it succeeded.
struct ProbeResult {
  std::chrono::nanoseconds latency{0};
  std::string status;
  bool ok() const { return status.empty(); }
  bool operator==(const ProbeResult&) const = default;
};

// The probes of one address (Cilium's PathStatus).
struct PathStatus {
  std::string ip;
  ProbeResult icmp;
  ProbeResult http;
  bool ok() const { return icmp.ok() && http.ok(); }
  bool operator==(const PathStatus&) const = default;
};

// One node (Cilium's NodeStatus): its primary address and its health endpoint's, and in a
// dual-stack cluster their IPv6 twins (Cilium's secondary-addresses).
struct NodeHealth {
  std::string name;
  bool local = false;
  std::optional<PathStatus> host;
  std::optional<PathStatus> endpoint;  // absent: the node publishes no health address
  std::optional<PathStatus> host6;     // the node's IPv6 address, when it has one
  std::optional<PathStatus> endpoint6;  // its health endpoint's IPv6 address, when published
  // Every probe of the node succeeded (Cilium counts such a node as reachable).
  bool reachable() const {
    for (const auto* p : {&host, &endpoint, &host6, &endpoint6})
      if (*p && !(*p)->ok()) return false;
    return host || endpoint || host6 || endpoint6;
  }
  bool operator==(const NodeHealth&) const = default;
};

struct Report {
  std::string local;              // this node's name
  std::string cluster;            // this node's cluster name
  std::vector<NodeHealth> nodes;  // by name
  std::string timestamp;          // RFC 3339, when the round ended; "" before the first round
  std::chrono::milliseconds interval{0};
  size_t reachableCount() const;
  bool operator==(const Report&) const = default;
};

// What to probe of one node.
struct Target {
  std::string name;
  bool local = false;
  std::optional<IpAddr> node_ip;
  std::optional<IpAddr> health_ip;
  std::optional<IpAddr> node_ip6;  // dual stack: probed too, reported as secondary addresses
  std::optional<IpAddr> health_ip6;
  bool operator==(const Target&) const = default;
};
// The targets of the cluster as the node manager knows it: every node with an address (its
// primary address of each family, see node::Node::primaryAddress) and its health addresses, by
// name.
std::vector<Target> targetsOf(const std::vector<node::Node>& nodes, const std::string& local);

struct ProberOptions {
  std::string local;  // this node's name
  std::string cluster = "default";
  uint16_t port = 4240;
  std::chrono::milliseconds interval{60000};
  // A probe gets this long (at most the interval) before it counts as failed.
  std::chrono::milliseconds timeout{2000};
  // Probe the other nodes' health endpoints from this node's (true once it exists); else they
  // are probed from the node's namespace.
  std::function<bool()> endpoint_source_ready;
};

class Prober {
 public:
  Prober(Probes& probes, ProberOptions options);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Probes every target concurrently (each address's ICMP then HTTP) and keeps the result:
  // the new report, also given to the listener.
  Report probe(const std::vector<Target>& targets);
  // The last round's report (no nodes and no timestamp before the first).
  Report last() const;

  // Rounds every interval on a thread of its own, the first one at once, over what `targets`
  // returns at each round. Call once; stop() (or the destructor) waits for a round in progress.
  void start(std::function<std::vector<Target>()> targets);
  void stop();
  // Called after each round, on the thread that ran it. Set before start().
  void setListener(std::function<void(const Report&)> listener);

 private:
  PathStatus probePath(Source from, const IpAddr& ip);

  Probes& probes_;
  ProberOptions options_;
  std::function<void(const Report&)> listener_;
  mutable std::mutex mu_;
  Report last_;
  std::mutex round_mu_;  // one round at a time (the periodic one and PUT /status/probe)
  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// Cilium's HealthStatusResponse JSON: {"local": {"name"}, "nodes": [{"name", "host":
// {"primary-address": {"ip", "icmp": {"latency", "status"}, "http": {...}},
// "secondary-addresses": [{...}]}, "health-endpoint": {...}}], "timestamp", "probe-interval"};
// latencies in nanoseconds. The IPv6 addresses of a dual-stack node are its secondary
// addresses (its primary when it has no IPv4 one).
nlohmann::json toJson(const Report& r);
// The reverse, for clients; kInvalidArgument naming the field for anything else.
Result<Report> reportFromJson(const nlohmann::json& j);

// Cilium's "Cluster health:   2/3 reachable   (<timestamp>)" line (without the label), and the
// node table cilium-health status prints (verbose: every probe of every node, else the nodes
// that failed a probe).
std::string summaryText(const Report& r);
std::string formatStatus(const Report& r, bool verbose);

// Cilium's metric families, from a report: cilium_node_connectivity_status (1 reachable, 0 not)
// and cilium_node_connectivity_latency_seconds, with Cilium's labels.
struct ConnectivitySample {
  std::vector<std::string> labels;
  double value = 0;
};
std::vector<ConnectivitySample> connectivityStatus(const Report& r);
std::vector<ConnectivitySample> connectivityLatency(const Report& r);
extern const std::vector<std::string> kStatusLabels;
extern const std::vector<std::string> kLatencyLabels;

}  // namespace cilium::health
