// netns tier: cluster health with three real agents (the fixture of
// cluster_datapath_privileged_test.cc in a smaller form: node namespaces on an underlay bridge,
// the fake apiserver and the real cilium-operator in the underlay's namespace). Each agent runs
// its health endpoint (identity health, listed by cilium-dbg) and probes every node every
// second; cilium-health, cilium-dbg status and the metrics show 3/3 reachable with latencies.
// Then node-3's health endpoint is cut (its veth down) and node-3's agent is stopped: node-1
// sees node-3 unreachable, for the right probes, within a few intervals, and 3/3 again once
// the veth is up and the agent restarted (which makes its health endpoint again).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "api/client/client.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kNodes = 3;
constexpr const char* kApiServerIp = "172.31.240.254";
constexpr const char* kMetricsAddr = "127.0.0.1:9962";
std::string underlayIp(int i) { return "172.31.240." + std::to_string(i + 1); }

void runOk(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  ASSERT_TRUE(r.ok()) << r.error().toString();
}

struct Underlay {
  std::string name;
  std::string netns() const { return "/run/netns/" + name; }
  ~Underlay() {
    if (!name.empty()) (void)runChecked({"ip", "netns", "delete", name});
  }
};

struct ClusterNode {
  std::unique_ptr<Topology> topo;
  std::optional<AgentNode> node;
  std::string name;
  Process* agent = nullptr;
};

class ClusterHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kNodes; i++) {
      auto& n = nodes_[i];
      n.name = "node-" + std::to_string(i + 1);
      auto topo = Topology::create(200 + i);
      ASSERT_TRUE(topo.ok()) << topo.error().toString();
      n.topo = std::move(*topo);
      auto node = AgentNode::create(*n.topo, CILIUM_AGENT_BINARY);
      ASSERT_TRUE(node.ok()) << node.error().toString();
      n.node.emplace(std::move(*node));
    }
    buildUnderlay();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(runInNetns(underlay_.netns(), [&] { return server_.start(kApiServerIp, 0); }).ok());
    ASSERT_TRUE(
        server_
            .create(
                k8s::Resource<k8s::Namespace>::info(),
                {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}})
            .ok());
    auto op = nodes_[0].topo->spawnIn(
        underlay_.netns(),
        {CILIUM_OPERATOR_BINARY, "--k8s-api-server=" + server_.url(),
         "--cluster-pool-ipv4-cidr=10.200.0.0/14", "--cluster-pool-ipv4-mask-size=16",
         "--leader-election-retry-period=100ms"},
        "operator");
    ASSERT_TRUE(op.ok()) << op.error().toString();
    for (int i = 0; i < kNodes; i++) {
      ASSERT_TRUE(
          server_
              .create(k8s::Resource<k8s::Node>::info(),
                      {{"apiVersion", "v1"},
                       {"kind", "Node"},
                       {"metadata", {{"name", nodes_[i].name}}},
                       {"status",
                        {{"addresses", {{{"type", "InternalIP"}, {"address", underlayIp(i)}}}}}}})
              .ok());
      startAgent(i, "agent");
      if (HasFatalFailure()) return;
    }
  }

  void buildUnderlay() {
    underlay_.name = nodes_[0].topo->prefix() + "-ul";
    runOk({"ip", "netns", "add", underlay_.name});
    runOk({"ip", "-n", underlay_.name, "link", "set", "lo", "up"});
    runOk({"ip", "-n", underlay_.name, "link", "add", "br0", "type", "bridge"});
    runOk({"ip", "-n", underlay_.name, "addr", "add", std::string(kApiServerIp) + "/24", "dev",
           "br0"});
    runOk({"ip", "-n", underlay_.name, "link", "set", "br0", "up"});
    for (int i = 0; i < kNodes; i++) {
      std::string ns = netnsName(i);
      std::string port = "ul" + std::to_string(i);
      runOk({"ip", "-n", ns, "link", "add", "ul0", "type", "veth", "peer", "name", port, "netns",
             underlay_.name});
      runOk({"ip", "-n", ns, "addr", "add", underlayIp(i) + "/24", "dev", "ul0"});
      runOk({"ip", "-n", ns, "link", "set", "ul0", "up"});
      runOk({"ip", "-n", underlay_.name, "link", "set", port, "master", "br0"});
      runOk({"ip", "-n", underlay_.name, "link", "set", port, "up"});
    }
  }

  std::string netnsName(int i) const {
    const std::string& path = nodes_[i].topo->nodeNetns();
    return path.substr(path.rfind('/') + 1);
  }

  void startAgent(int i, const std::string& log) {
    auto& n = nodes_[i];
    auto cgroup = n.topo->cgroupDir();
    ASSERT_TRUE(cgroup.ok()) << cgroup.error().toString();
    auto argv = n.node->args({"--ipv4-range=auto", "--k8s-api-server=" + server_.url(),
                              "--k8s-sync-timeout=60", "--identity-allocation-mode=crd",
                              "--cgroup-root=" + *cgroup, "--health-check-interval=1s",
                              std::string("--prometheus-serve-addr=") + kMetricsAddr});
    for (auto& a : argv)
      if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + n.name;
    auto p = n.topo->spawnIn(n.topo->nodeNetns(), argv, log);
    ASSERT_TRUE(p.ok()) << p.error().toString();
    n.agent = *p;
    ASSERT_TRUE(n.node->waitReady(n.agent, 60s)) << n.node->log(log);
  }

  // cilium-health status -o json on node i (null when it fails).
  json healthJson(int i) {
    auto r = nodes_[i].topo->exec(
        nodes_[i].topo->nodeNetns(),
        {CILIUM_HEALTH_BINARY, "-H", nodes_[i].node->socket(), "status", "-o", "json"}, 10s);
    if (!r.ok() || r->exit_code != 0) return nullptr;
    return json::parse(r->out, nullptr, false);
  }

  // The probe `proto` ("icmp"/"http") of `path` ("host"/"health-endpoint") of `target` in a
  // report: {"latency", "status"}, null when absent.
  static json probe(const json& report, const std::string& target, const std::string& path,
                    const std::string& proto) {
    if (!report.is_object() || !report.contains("nodes")) return nullptr;
    for (const auto& n : report["nodes"])
      if (n.value("name", "") == target && n.contains(path))
        return n[path]["primary-address"].value(proto, json());
    return nullptr;
  }

  static bool probeOk(const json& report, const std::string& target, const std::string& path,
                      const std::string& proto) {
    json p = probe(report, target, path, proto);
    return p.is_object() && p.value("status", "x").empty() && p.value("latency", 0) > 0;
  }

  static bool allReachable(const json& report) {
    if (!report.is_object() || report["nodes"].size() != kNodes) return false;
    for (int j = 0; j < kNodes; j++)
      for (const char* path : {"host", "health-endpoint"})
        for (const char* proto : {"icmp", "http"})
          if (!probeOk(report, "node-" + std::to_string(j + 1), path, proto)) return false;
    return true;
  }

  std::string run(int i, std::vector<std::string> argv) {
    auto r = nodes_[i].topo->exec(nodes_[i].topo->nodeNetns(), argv, 10s);
    if (!r.ok()) return "";
    return r->out;
  }

  std::string dbg(int i, std::vector<std::string> args) {
    args.insert(args.begin(), {CILIUM_DBG_BINARY, "-H", nodes_[i].node->socket()});
    return run(i, args);
  }

  std::string metrics(int i) {
    return run(
        i, {"curl", "-s", "--max-time", "5", std::string("http://") + kMetricsAddr + "/metrics"});
  }

  static std::string statusSeries(const std::string& target, bool local, const std::string& type) {
    return fmt::format(
        "cilium_node_connectivity_status{{source_cluster=\"default\",source_node_name=\"node-1\","
        "target_cluster=\"default\",target_node_name=\"{}\",target_node_type=\"{}\",type=\"{}\"}}",
        target, local ? "local_node" : "remote_intra_cluster", type);
  }

  Underlay underlay_;  // declared first: removed last
  FakeApiServer server_;
  ClusterNode nodes_[kNodes];
};

TEST_F(ClusterHealthTest, EveryNodeReachesEveryNodeAndSeesOneGoAndComeBack) {
  // Every agent: 3/3 reachable, every probe with a latency.
  for (int i = 0; i < kNodes; i++) {
    json last;
    EXPECT_TRUE(eventually([&] { return allReachable(last = healthJson(i)); }, 30s))
        << nodes_[i].name << ": " << last.dump(2) << nodes_[i].node->log("agent");
  }
  // The health endpoint is an endpoint of the agent, with the reserved identity health (4).
  std::string eps = dbg(0, {"endpoint", "list"});
  EXPECT_NE(eps.find("reserved:health"), std::string::npos) << eps;
  auto list = nodes_[0].node->client().listEndpoints();
  ASSERT_TRUE(list.ok());
  bool found = false;
  for (const auto& ep : *list)
    if (ep.status && ep.status->identity && ep.status->identity->id == 4) found = true;
  EXPECT_TRUE(found) << "an endpoint with identity 4";

  std::string status = dbg(0, {"status"});
  EXPECT_NE(status.find("Cluster health:"), std::string::npos) << status;
  EXPECT_NE(status.find("3/3 reachable"), std::string::npos) << status;
  std::string text =
      run(0, {CILIUM_HEALTH_BINARY, "-H", nodes_[0].node->socket(), "status", "--verbose"});
  EXPECT_NE(text.find("Cluster health:   3/3 reachable"), std::string::npos) << text;
  EXPECT_NE(text.find("ICMP to stack:   OK, RTT="), std::string::npos) << text;
  EXPECT_NE(text.find("HTTP to agent:   OK, RTT="), std::string::npos) << text;

  std::string m = metrics(0);
  EXPECT_NE(m.find(statusSeries("node-3", false, "endpoint") + " 1"), std::string::npos) << m;
  EXPECT_NE(m.find(statusSeries("node-1", true, "node") + " 1"), std::string::npos) << m;
  EXPECT_NE(m.find("cilium_node_connectivity_latency_seconds{source_cluster=\"default\","
                   "source_node_name=\"node-1\",target_cluster=\"default\",target_node_name="
                   "\"node-2\",target_node_type=\"remote_intra_cluster\",type=\"endpoint\","
                   "address_type=\"primary\",protocol=\"http\"}"),
            std::string::npos)
      << m;

  // node-3's health endpoint cut off (its veth down): node-1 sees node-3's endpoint fail, its
  // node address still answer.
  runOk({"ip", "-n", netnsName(2), "link", "set", "lxc_health", "down"});
  json last;
  EXPECT_TRUE(eventually(
      [&] {
        last = healthJson(0);
        return !probeOk(last, "node-3", "health-endpoint", "icmp") &&
               !probeOk(last, "node-3", "health-endpoint", "http") &&
               probeOk(last, "node-3", "host", "icmp") && probeOk(last, "node-3", "host", "http") &&
               probeOk(last, "node-2", "health-endpoint", "http");
      },
      10s))
      << last.dump(2);
  EXPECT_TRUE(eventually(
      [&] { return dbg(0, {"status"}).find("2/3 reachable") != std::string::npos; }, 10s));
  std::string verbose = dbg(0, {"status", "--verbose"});
  EXPECT_NE(verbose.find("node-3 unreachable"), std::string::npos) << verbose;
  EXPECT_TRUE(eventually(
      [&] {
        return metrics(0).find(statusSeries("node-3", false, "endpoint") + " 0") !=
               std::string::npos;
      },
      10s));
  runOk({"ip", "-n", netnsName(2), "link", "set", "lxc_health", "up"});
  EXPECT_TRUE(eventually(
      [&] {
        last = healthJson(0);
        return probeOk(last, "node-3", "health-endpoint", "icmp") &&
               probeOk(last, "node-3", "health-endpoint", "http");
      },
      15s))
      << last.dump(2);

  // node-3's agent stopped: its health server and its health endpoint go with it (the node
  // still answers ICMP); restarted, it makes its endpoint again and node-1 sees 3/3.
  EXPECT_EQ(nodes_[2].agent->stop(10s), 0);
  EXPECT_TRUE(eventually(
      [&] {
        last = healthJson(0);
        return !probeOk(last, "node-3", "host", "http") &&
               !probeOk(last, "node-3", "health-endpoint", "icmp") &&
               probeOk(last, "node-3", "host", "icmp");
      },
      10s))
      << last.dump(2);
  EXPECT_EQ(run(2, {"ip", "link", "show", "lxc_health"}), "")
      << "the health endpoint's veth goes with the agent";
  startAgent(2, "agent-restarted");
  for (int i : {0, 2}) {
    EXPECT_TRUE(eventually([&] { return allReachable(last = healthJson(i)); }, 30s))
        << nodes_[i].name << ": " << last.dump(2) << nodes_[2].node->log("agent-restarted");
  }
}

}  // namespace
}  // namespace cilium::testing
