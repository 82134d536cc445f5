// netns tier: a three-node cluster of real processes. Three node namespaces on an underlay bridge
// (a namespace of its own, which also holds the fake apiserver, the cluster's shared state, and
// the real cilium-operator handing out pod CIDRs); one real cilium-agent per node with CRD
// identities, its own pin dir, state and cgroup, in each routing mode (the test is parameterised):
// tunnel (the default: the VXLAN overlay, the identity in the VNI) and native (no encapsulation:
// auto-direct-node-routes routes the other nodes' pod CIDRs over the underlay, the destination
// takes the sender's identity from its ipcache). Pods are created as Pod objects in the apiserver
// and attached through each agent's endpoint API, so their identities come from their labels.
// Each agent learns the other nodes' pods from their CiliumEndpoints (ipcache::ClusterFeed): real
// TCP, UDP and ICMP cross nodes, a CiliumNetworkPolicy admits the client identity and not another
// pod of the same node in both directions (the drop is seen with its reason in the destination
// node's Hubble), identities are the same numbers on every node, and a pod deleted on one node
// leaves the others' ipcache. A stale node route of an "earlier run" goes at the agent's start
// (both modes); native routing also: every node routes the others' pod CIDRs, and a node that
// leaves takes its routes with it on the other nodes.
// The whole test also runs over IPv6 (families x routing modes): a dual-stack cluster (IPv6 pod
// CIDRs from the operator's IPv6 pool, IPv6 underlay addresses as second InternalIPs) whose
// pods talk over IPv6: through the VXLAN overlay over the IPv4 underlay (tunnel), or routed via
// the nodes' IPv6 addresses (native), with the same policy by identity and the same drops.
#include <set>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "api/client/client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/family.h"
#include "tests/harness/sockets.h"
#include "tests/netns/cluster_fixture.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kTcpPort = 8080, kUdpPort = 5353;
constexpr int kNodes = 3;

class ClusterDatapathTest : public ::testing::TestWithParam<std::tuple<Family, std::string>> {
 protected:
  bool v6() const { return std::get<0>(GetParam()) == Family::kV6; }
  bool native() const { return std::get<1>(GetParam()) == "native"; }
  // A pod's address, a node's pod CIDR and underlay address in the family under test.
  std::string addr(const Pod& p) const { return v6() ? p.ip6 : p.ip; }
  std::string host(const Pod& p) const { return addr(p) + (v6() ? "/128" : "/32"); }
  std::string cidrOf(int i) const {
    return v6() ? cluster_.nodes[i].cidr6 : cluster_.nodes[i].cidr;
  }
  std::string nodeIp(int i) const { return v6() ? cluster_.underlayIp6(i) : underlayIp(i); }
  uint32_t podMtu() const { return native() ? 1500 : 1450; }

  void SetUp() override {
    cluster_.build({.agent_binary = CILIUM_AGENT_BINARY,
                    .operator_binary = CILIUM_OPERATOR_BINARY,
                    .dbg_binary = CILIUM_DBG_BINARY,
                    .nodes = kNodes,
                    .underlay_octet = 240,
                    .native_routing = native(),
                    .hubble = true,
                    .ipv6 = v6()});
    if (HasFatalFailure()) return;
    // A route of an earlier run (the agent's protocol number) to a node that is gone: the
    // agent removes it once it knows every node (in tunnel mode it removes every such route).
    auto r = runChecked({"ip", "-n", cluster_.nodes[0].netnsName(), "route", "add", kStaleCidr,
                         "via", underlayIp(kNodes), "proto", kRouteProto});
    ASSERT_TRUE(r.ok()) << r.error().toString();
    // One agent after the other: each gets the next CIDR of the pool, its topology's subnet.
    cluster_.startAll();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kNodes; i++) {
      ASSERT_EQ(cluster_.nodes[i].cidr, fmt::format("10.{}.0.0/16", 200 + i))
          << "the operator's CIDR";
      if (v6()) {
        ASSERT_EQ(cluster_.nodes[i].cidr6, i == 0 ? std::string("fd00:10:200::/112")
                                                  : fmt::format("fd00:10:200::{}:0/112", i))
            << "the operator's IPv6 CIDR";
      }
      auto cfg = cluster_.nodes[i].client().getConfig();
      ASSERT_TRUE(cfg.ok() && cfg->status);
      EXPECT_EQ(cfg->status->device_mtu, podMtu()) << "VXLAN headers in tunnel mode only";
    }
  }

  std::string underlayIp(int i) const { return cluster_.underlayIp(i); }

  // A pod on node i with eth0's MTU as cilium-cni sets it.
  Pod addPod(int i, const std::string& name, const std::string& app, int host) {
    return cluster_.addPod(i, name, app, host, static_cast<int>(podMtu()));
  }

  int64_t identityOf(int i, const std::string& pod) {
    auto ep =
        cluster_.nodes[i].client().getEndpoint(*api::parseEndpointRef("pod-name:default/" + pod));
    if (!ep.ok() || !ep->status || !ep->status->identity) return 0;
    return ep->status->identity->id;
  }

  std::map<std::string, json> ipcache(int i, const std::string& table = "ipcache") {
    return cluster_.ipcache(i, table);
  }

  // One field of one entry as text ("" when absent).
  static std::string field(const std::map<std::string, json>& entries, const std::string& prefix,
                           const std::string& key) {
    auto it = entries.find(prefix);
    if (it == entries.end() || !it->second.contains(key)) return "";
    const json& v = it->second[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
  }

  bool tcp(const Pod& from, const Pod& to, std::chrono::milliseconds timeout = 2s) {
    return connectTcp(from.netns, addr(to), kTcpPort, timeout).ok();
  }
  bool ping(int i, const Pod& from, const Pod& to) {
    auto r = cluster_.nodes[i].topo->exec(
        from.netns, {"ping", v6() ? "-6" : "-4", "-c", "1", "-W", "2", "-n", "-q", addr(to)}, 10s);
    return r.ok() && r->exit_code == 0;
  }
  // A datagram to `to` and its echo back.
  bool udpRoundTrip(const Pod& from, const Pod& to, int to_fd) {
    auto c = bindUdp(from.netns, addr(from), 0);
    if (!c.ok() || !sendUdp(c->get(), addr(to), kUdpPort, "hello").ok()) return false;
    std::string src;
    uint16_t sport = 0;
    auto got = recvUdp(to_fd, 2s, &src, &sport);
    if (!got.ok() || *got != "hello" || src != addr(from)) return false;
    if (!sendUdp(to_fd, src, sport, "olleh").ok()) return false;
    auto back = recvUdp(c->get(), 2s);
    return back.ok() && *back == "olleh";
  }

  // Flows the destination node's Hubble dropped for "Policy denied" from `from`, as JSON.
  std::vector<json> policyDrops(int i, const Pod& from) {
    auto r = run({CILIUM_HUBBLE_BINARY, "--server", "unix://" + cluster_.nodes[i].hubbleSock(),
                  "observe", "--all", "--verdict", "DROPPED", "-o", "json"},
                 {}, 30s);
    std::vector<json> out;
    if (!r.ok()) return out;
    std::istringstream in(r->out);
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("flow")) continue;
      const json& f = j["flow"];
      if (f.value("drop_reason_desc", "") == "POLICY_DENIED" &&
          f.value("/IP/source"_json_pointer, "") == addr(from))
        out.push_back(f);
    }
    return out;
  }

  void importPolicy() {
    // The servers admit the clients only (any node), on every port and ICMP.
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), json::parse(R"({
      "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
      "metadata": {"name": "servers", "namespace": "default"},
      "spec": {"endpointSelector": {"matchLabels": {"app": "server"}},
               "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]}})"))
                    .ok());
  }

  // Node i's routes of the agent's protocol in the family under test: "cidr via gateway" lines.
  std::set<std::string> agentRoutes(int i) {
    auto r = runChecked({"ip", "-n", cluster_.nodes[i].netnsName(), v6() ? "-6" : "-4", "route",
                         "show", "proto", kRouteProto});
    std::set<std::string> out;
    if (!r.ok()) return out;
    std::istringstream in(*r);
    for (std::string line; std::getline(in, line);) {
      std::istringstream w(line);
      std::string cidr, via, gw;
      if (w >> cidr >> via >> gw && via == "via") out.insert(cidr + " via " + gw);
    }
    return out;
  }
  // What node i should route: every other node's pod CIDR via its underlay address.
  std::set<std::string> wantedRoutes(int i, std::set<int> without = {}) {
    std::set<std::string> out;
    for (int j = 0; j < kNodes; j++)
      if (j != i && without.count(j) == 0) out.insert(cidrOf(j) + " via " + nodeIp(j));
    return out;
  }

  static constexpr const char* kRouteProto = "196";
  static constexpr const char* kStaleCidr = "10.250.0.0/16";

  Cluster cluster_;
};

TEST_P(ClusterDatapathTest, PodsAcrossNodesWithPolicyByIdentity) {
  // node-1: client, other, server; node-2: server, client, other; node-3: server.
  Pod c1 = addPod(0, "client-1", "client", 10), o1 = addPod(0, "other-1", "other", 11),
      s1 = addPod(0, "server-1", "server", 12);
  Pod s2 = addPod(1, "server-2", "server", 10), c2 = addPod(1, "client-2", "client", 11),
      o2 = addPod(1, "other-2", "other", 12);
  Pod s3 = addPod(2, "server-3", "server", 10);
  ASSERT_FALSE(HasFailure());
  importPolicy();
  std::vector<UniqueFd> listeners;
  for (const Pod* s : {&s1, &s2, &s3}) {
    auto l = listenTcp(s->netns, addr(*s), kTcpPort);
    ASSERT_TRUE(l.ok()) << l.error().toString();
    listeners.push_back(std::move(*l));
  }
  auto u3 = bindUdp(s3.netns, addr(s3), kUdpPort);
  ASSERT_TRUE(u3.ok());

  // Identities are the cluster's: the same number for the same labels on every node.
  const int64_t client_id = identityOf(0, "client-1"), other_id = identityOf(0, "other-1"),
                server_id = identityOf(0, "server-1");
  ASSERT_GE(client_id, 256);
  ASSERT_GE(other_id, 256);
  ASSERT_GE(server_id, 256);
  EXPECT_NE(client_id, other_id);
  EXPECT_EQ(identityOf(1, "client-2"), client_id);
  EXPECT_EQ(identityOf(1, "other-2"), other_id);
  EXPECT_EQ(identityOf(1, "server-2"), server_id);
  EXPECT_EQ(identityOf(2, "server-3"), server_id);

  // Every node learns every other node's pods, with their identity and node as tunnel endpoint.
  struct Remote {
    int on;
    const Pod* pod;
    int64_t id;
  };
  const std::vector<Remote> all = {{0, &c1, client_id}, {0, &o1, other_id},  {0, &s1, server_id},
                                   {1, &s2, server_id}, {1, &c2, client_id}, {1, &o2, other_id},
                                   {2, &s3, server_id}};
  for (int i = 0; i < kNodes; i++) {
    std::map<std::string, json> seen;
    bool complete = eventually(
        [&] {
          seen = ipcache(i);
          for (const auto& r : all) {
            if (r.on == i) continue;
            // IPv6 pods too tunnel to the node's IPv4 underlay address.
            auto it = seen.find(host(*r.pod));
            if (it == seen.end() || it->second.value("identity", 0) != r.id ||
                it->second.value("tunnel-endpoint", "") != underlayIp(r.on))
              return false;
          }
          return true;
        },
        30s);
    EXPECT_TRUE(complete) << cluster_.nodes[i].name << " " << json(seen).dump()
                          << cluster_.nodes[i].node->log("agent");
    // The other nodes themselves: remote-node, and their pod CIDRs through the tunnel (in
    // native routing the node's routes carry them instead).
    for (int j = 0; j < kNodes; j++) {
      if (j == i) continue;
      EXPECT_EQ(field(seen, underlayIp(j) + "/32", "identity"), "6") << i << " " << j;
      if (v6()) {
        EXPECT_EQ(field(seen, cluster_.underlayIp6(j) + "/128", "identity"), "6") << i << " " << j;
      }
      EXPECT_EQ(field(seen, cidrOf(j), "tunnel-endpoint"), native() ? "" : underlayIp(j))
          << i << " " << j;
    }
    EXPECT_EQ(field(seen, underlayIp(i) + "/32", "identity"), "1") << "this node is host";
    if (v6()) {
      EXPECT_EQ(field(seen, cluster_.underlayIp6(i) + "/128", "identity"), "1")
          << "this node is host";
    }
  }
  auto tunnels = ipcache(0, "tunnel");
  EXPECT_EQ(field(tunnels, host(s2), "tunnel-endpoint"), underlayIp(1));
  EXPECT_EQ(tunnels.count(host(c1)), 0u) << "a local pod has no tunnel";
  if (!native()) {
    // No routes of the agent's: the earlier run's went, none were added.
    std::set<std::string> routes;
    EXPECT_TRUE(eventually([&] { return (routes = agentRoutes(0)).empty(); }, 20s))
        << fmt::format("{}", fmt::join(routes, ", ")) << cluster_.nodes[0].node->log("agent");
  } else {
    // Every node routes the others' pod CIDRs via their underlay addresses; the stale route of
    // the "earlier run" is gone (IPv6: via their IPv6 underlay addresses). No VXLAN device.
    for (int i = 0; i < kNodes; i++) {
      std::set<std::string> routes;
      EXPECT_TRUE(eventually([&] { return (routes = agentRoutes(i)) == wantedRoutes(i); }, 20s))
          << cluster_.nodes[i].name << ": " << fmt::format("{}", fmt::join(routes, ", "))
          << cluster_.nodes[i].node->log("agent");
      auto vxlan =
          runChecked({"ip", "-n", cluster_.nodes[i].netnsName(), "link", "show", "cilium_vxlan"});
      EXPECT_FALSE(vxlan.ok()) << "no overlay device in native routing";
    }
  }

  // TCP, both ways across nodes; ICMP and UDP across too.
  EXPECT_TRUE(eventually([&] { return tcp(c1, s2); }, 20s)) << "node-1 -> node-2";
  EXPECT_TRUE(eventually([&] { return tcp(c2, s1); }, 20s)) << "node-2 -> node-1";
  EXPECT_TRUE(eventually([&] { return tcp(c1, s3); }, 20s)) << "node-1 -> node-3";
  EXPECT_TRUE(eventually([&] { return ping(0, c1, s3); }, 20s)) << "ICMP node-1 -> node-3";
  EXPECT_TRUE(eventually([&] { return udpRoundTrip(c2, s3, u3->get()); }, 20s))
      << "UDP node-2 -> node-3";

  // The other pod of the same node is dropped by policy on the destination node, both ways:
  // the identity crossed in the VNI (tunnel), or came from the destination's ipcache (native).
  EXPECT_FALSE(tcp(o1, s2, 1500ms)) << "other (node-1) -> server (node-2)";
  EXPECT_FALSE(tcp(o2, s1, 1500ms)) << "other (node-2) -> server (node-1)";
  EXPECT_FALSE(ping(1, o2, s3)) << "ICMP other (node-2) -> server (node-3)";
  for (auto [dst, from] : {std::pair{1, &o1}, std::pair{0, &o2}}) {
    std::vector<json> drops;
    EXPECT_TRUE(eventually(
        [&] {
          drops = policyDrops(dst, *from);
          if (drops.empty()) (void)tcp(*from, dst == 1 ? s2 : s1, 200ms);
          return !drops.empty();
        },
        20s))
        << cluster_.nodes[dst].name << " saw no policy drop from " << addr(*from);
    if (drops.empty()) continue;
    EXPECT_EQ(drops[0].value("/source/identity"_json_pointer, 0), other_id)
        << "judged on the sender's identity: " << drops[0].dump();
    EXPECT_EQ(drops[0].value("/traffic_direction"_json_pointer, ""), "INGRESS") << drops[0].dump();
  }
  // Still allowed after the denials.
  EXPECT_TRUE(tcp(c1, s2));

  // A pod deleted on node-2 leaves the other nodes' ipcache.
  ASSERT_TRUE(cluster_.nodes[1]
                  .client()
                  .deleteEndpoint(*api::parseEndpointRef("container-id:ctr-server-2"))
                  .ok());
  ASSERT_TRUE(cluster_.server.remove(k8s::Resource<k8s::Pod>::info(), "default", "server-2").ok());
  for (int i : {0, 2}) {
    EXPECT_TRUE(eventually([&] { return ipcache(i).count(host(s2)) == 0; }, 20s))
        << cluster_.nodes[i].name << " still has " << addr(s2);
  }
  EXPECT_EQ(ipcache(0).count(host(c2)), 1u) << "the other pods stay";

  if (!native()) return;
  // node-3 leaves the cluster (its agent stopped, its Node and CiliumNode deleted): the other
  // nodes' routes to its pod CIDR go, theirs to each other stay.
  cluster_.nodes[2].agent->stop();
  ASSERT_TRUE(
      cluster_.server.remove(k8s::Resource<k8s::Node>::info(), "", cluster_.nodes[2].name).ok());
  ASSERT_TRUE(
      cluster_.server.remove(k8s::Resource<k8s::CiliumNode>::info(), "", cluster_.nodes[2].name)
          .ok());
  for (int i : {0, 1}) {
    std::set<std::string> routes;
    EXPECT_TRUE(eventually([&] { return (routes = agentRoutes(i)) == wantedRoutes(i, {2}); }, 20s))
        << cluster_.nodes[i].name << ": " << fmt::format("{}", fmt::join(routes, ", "))
        << cluster_.nodes[i].node->log("agent");
  }
  EXPECT_TRUE(tcp(c2, s1)) << "node-2 -> node-1 still routed";
}

INSTANTIATE_TEST_SUITE_P(FamiliesAndRoutingModes, ClusterDatapathTest,
                         ::testing::Combine(::testing::Values(Family::kV4, Family::kV6),
                                            ::testing::Values(std::string("tunnel"),
                                                              std::string("native"))),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == Family::kV6 ? "IPv6"
                                                                                     : "IPv4") +
                                  "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace cilium::testing
