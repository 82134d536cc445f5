// netns tier: cluster health with three real agents (tests/netns/cluster_fixture.h: node
// namespaces on an underlay bridge, the fake apiserver and the real cilium-operator in the
// underlay's namespace). Each agent runs
// its health endpoint (identity health, listed by cilium-dbg) and probes every node every
// second; cilium-health, cilium-dbg status and the metrics show 3/3 reachable with latencies.
// Then node-3's health endpoint is cut (its veth down) and node-3's agent is stopped: node-1
// sees node-3 unreachable, for the right probes, within a few intervals, and 3/3 again once
// the veth is up and the agent restarted (which makes its health endpoint again).
// The IPv6 twin runs a dual-stack cluster: every node and health endpoint is also probed over
// IPv6 (ICMPv6 echo and HTTP), reported as the secondary addresses, and must answer the same.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/family.h"
#include "tests/netns/cluster_fixture.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kNodes = 3;
constexpr const char* kMetricsAddr = "127.0.0.1:9962";

void runOk(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  ASSERT_TRUE(r.ok()) << r.error().toString();
}

class ClusterHealthTest : public ::testing::TestWithParam<Family> {
 protected:
  bool v6() const { return GetParam() == Family::kV6; }

  void SetUp() override {
    cluster_.build({.agent_binary = CILIUM_AGENT_BINARY,
                    .operator_binary = CILIUM_OPERATOR_BINARY,
                    .nodes = kNodes,
                    .underlay_octet = 240,
                    .agent_flags = {"--health-check-interval=1s",
                                    std::string("--prometheus-serve-addr=") + kMetricsAddr},
                    .ipv6 = v6()});
    if (HasFatalFailure()) return;
    cluster_.startAll();
  }

  std::string netnsName(int i) const { return cluster_.nodes[i].netnsName(); }

  // cilium-health status -o json on node i (null when it fails).
  json healthJson(int i) {
    auto r = cluster_.nodes[i].topo->exec(
        cluster_.nodes[i].topo->nodeNetns(),
        {CILIUM_HEALTH_BINARY, "-H", cluster_.nodes[i].node->socket(), "status", "-o", "json"},
        10s);
    if (!r.ok() || r->exit_code != 0) return nullptr;
    return json::parse(r->out, nullptr, false);
  }

  // The probe `proto` ("icmp"/"http") of `path` ("host"/"health-endpoint") of `target` in a
  // report: {"latency", "status"}, null when absent. Of the IPv4 (primary) address, or with
  // `secondary` of the IPv6 one (the first secondary address, which must be IPv6).
  static json probe(const json& report, const std::string& target, const std::string& path,
                    const std::string& proto, bool secondary = false) {
    if (!report.is_object() || !report.contains("nodes")) return nullptr;
    for (const auto& n : report["nodes"]) {
      if (n.value("name", "") != target || !n.contains(path)) continue;
      if (!secondary) return n[path]["primary-address"].value(proto, json());
      const json& sec = n[path].value("secondary-addresses", json());
      if (!sec.is_array() || sec.empty() || sec[0].value("ip", "").find(':') == std::string::npos)
        return nullptr;
      return sec[0].value(proto, json());
    }
    return nullptr;
  }

  static bool probeOk(const json& report, const std::string& target, const std::string& path,
                      const std::string& proto, bool secondary = false) {
    json p = probe(report, target, path, proto, secondary);
    return p.is_object() && p.value("status", "x").empty() && p.value("latency", 0) > 0;
  }
  // The probe in the family under test (IPv6: the node's secondary address).
  bool familyOk(const json& report, const std::string& target, const std::string& path,
                const std::string& proto) const {
    return probeOk(report, target, path, proto, v6());
  }

  // Every probe of every node in every family the cluster has.
  bool allReachable(const json& report) const {
    if (!report.is_object() || report["nodes"].size() != kNodes) return false;
    for (int j = 0; j < kNodes; j++)
      for (const char* path : {"host", "health-endpoint"})
        for (const char* proto : {"icmp", "http"})
          for (bool secondary : {false, true}) {
            if (secondary && !v6()) continue;
            if (!probeOk(report, "node-" + std::to_string(j + 1), path, proto, secondary))
              return false;
          }
    return true;
  }

  std::string run(int i, std::vector<std::string> argv) {
    auto r = cluster_.nodes[i].topo->exec(cluster_.nodes[i].topo->nodeNetns(), argv, 10s);
    if (!r.ok()) return "";
    return r->out;
  }

  std::string dbg(int i, std::vector<std::string> args) {
    args.insert(args.begin(), {CILIUM_DBG_BINARY, "-H", cluster_.nodes[i].node->socket()});
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

  Cluster cluster_;
};

TEST_P(ClusterHealthTest, EveryNodeReachesEveryNodeAndSeesOneGoAndComeBack) {
  // Every agent: 3/3 reachable, every probe with a latency.
  for (int i = 0; i < kNodes; i++) {
    json last;
    EXPECT_TRUE(eventually([&] { return allReachable(last = healthJson(i)); }, 30s))
        << cluster_.nodes[i].name << ": " << last.dump(2) << cluster_.nodes[i].node->log("agent");
  }
  // The health endpoint is an endpoint of the agent, with the reserved identity health (4).
  std::string eps = dbg(0, {"endpoint", "list"});
  EXPECT_NE(eps.find("reserved:health"), std::string::npos) << eps;
  auto list = cluster_.nodes[0].node->client().listEndpoints();
  ASSERT_TRUE(list.ok());
  bool found = false;
  for (const auto& ep : *list)
    if (ep.status && ep.status->identity && ep.status->identity->id == 4) found = true;
  EXPECT_TRUE(found) << "an endpoint with identity 4";

  std::string status = dbg(0, {"status"});
  EXPECT_NE(status.find("Cluster health:"), std::string::npos) << status;
  EXPECT_NE(status.find("3/3 reachable"), std::string::npos) << status;
  std::string text =
      run(0, {CILIUM_HEALTH_BINARY, "-H", cluster_.nodes[0].node->socket(), "status", "--verbose"});
  EXPECT_NE(text.find("Cluster health:   3/3 reachable"), std::string::npos) << text;
  EXPECT_NE(text.find("ICMP to stack:   OK, RTT="), std::string::npos) << text;
  EXPECT_NE(text.find("HTTP to agent:   OK, RTT="), std::string::npos) << text;
  if (v6()) {
    EXPECT_NE(text.find("Host connectivity to " + cluster_.underlayIp6(1) + ":"), std::string::npos)
        << "the IPv6 address of node-2 is probed too: " << text;
  }

  std::string m = metrics(0);
  EXPECT_NE(m.find(statusSeries("node-3", false, "endpoint") + " 1"), std::string::npos) << m;
  EXPECT_NE(m.find(statusSeries("node-1", true, "node") + " 1"), std::string::npos) << m;
  EXPECT_NE(m.find("cilium_node_connectivity_latency_seconds{source_cluster=\"default\","
                   "source_node_name=\"node-1\",target_cluster=\"default\",target_node_name="
                   "\"node-2\",target_node_type=\"remote_intra_cluster\",type=\"endpoint\","
                   "address_type=\"" +
                   std::string(v6() ? "secondary" : "primary") + "\",protocol=\"http\"}"),
            std::string::npos)
      << m;

  // node-3's health endpoint cut off (its veth down): node-1 sees node-3's endpoint fail, its
  // node address still answer.
  runOk({"ip", "-n", netnsName(2), "link", "set", "lxc_health", "down"});
  json last;
  EXPECT_TRUE(eventually(
      [&] {
        last = healthJson(0);
        return !familyOk(last, "node-3", "health-endpoint", "icmp") &&
               !familyOk(last, "node-3", "health-endpoint", "http") &&
               familyOk(last, "node-3", "host", "icmp") &&
               familyOk(last, "node-3", "host", "http") &&
               familyOk(last, "node-2", "health-endpoint", "http");
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
        return familyOk(last, "node-3", "health-endpoint", "icmp") &&
               familyOk(last, "node-3", "health-endpoint", "http");
      },
      15s))
      << last.dump(2);

  // node-3's agent stopped: its health server and its health endpoint go with it (the node
  // still answers ICMP); restarted, it makes its endpoint again and node-1 sees 3/3.
  EXPECT_EQ(cluster_.nodes[2].agent->stop(10s), 0);
  EXPECT_TRUE(eventually(
      [&] {
        last = healthJson(0);
        return !familyOk(last, "node-3", "host", "http") &&
               !familyOk(last, "node-3", "health-endpoint", "icmp") &&
               familyOk(last, "node-3", "host", "icmp");
      },
      10s))
      << last.dump(2);
  EXPECT_EQ(run(2, {"ip", "link", "show", "lxc_health"}), "")
      << "the health endpoint's veth goes with the agent";
  cluster_.startAgent(2, "agent-restarted");
  for (int i : {0, 2}) {
    EXPECT_TRUE(eventually([&] { return allReachable(last = healthJson(i)); }, 30s))
        << cluster_.nodes[i].name << ": " << last.dump(2)
        << cluster_.nodes[2].node->log("agent-restarted");
  }
}

CILIUM_INSTANTIATE_FAMILIES(ClusterHealthTest);

}  // namespace
}  // namespace cilium::testing
