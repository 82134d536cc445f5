// The cluster control plane against the fake apiserver, in one process: cilium-operator(s) and
// three agents' node and IPAM parts (node::Registration, the node feed, ipam::Ipam), each agent
// with its own client and informers as separate processes would have. Each agent gets a pod
// CIDR of its own from the operator, publishes its addresses, and every agent's node list holds
// every node; exhaustion and overlap end up in the CiliumNode's status; allocations survive an
// operator restart and a leader change.
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/yaml.h"
#include "agent/ipam/ipam.h"
#include "agent/k8s/source.h"
#include "agent/node/k8s_feed.h"
#include "agent/node/node.h"
#include "agent/node/registration.h"
#include "operator/ipam/controller.h"
#include "operator/operator.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::op {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::eventually;

const k8s::ResourceInfo kCiliumNodes = k8s::Resource<k8s::CiliumNode>::info();

// One agent's node and IPAM parts, wired as the agent's NodeComponent wires them.
struct Agent {
  std::string name;
  std::unique_ptr<k8s::Client> client;
  std::unique_ptr<k8s::ApiSource> source;
  node::Manager nodes;
  std::unique_ptr<node::K8sFeed> feed;
  std::unique_ptr<node::Registration> registration;
  std::unique_ptr<ipam::Ipam> ipam;
  std::optional<IpPrefix> cidr;
  IpAddr internal_ip;

  ~Agent() {
    registration.reset();
    feed.reset();
    if (source) source->stop();
  }
};

std::unique_ptr<Agent> startAgent(const std::string& url, const std::string& name, int index,
                                  const std::string& ipam_mode = "cluster-pool") {
  auto a = std::make_unique<Agent>();
  a->name = name;
  k8s::ClientConfig cc;
  cc.server = url;
  cc.qps = 0;
  a->client = std::move(*k8s::Client::create(cc));
  a->source = std::make_unique<k8s::ApiSource>(
      *a->client, k8s::ApiSourceOptions{name, {"Node", "CiliumNode"}, {}});
  EXPECT_TRUE(a->source->start().ok());
  EXPECT_TRUE(a->source->waitForSync(10s));
  a->feed = std::move(*node::K8sFeed::start(a->nodes, a->source->stores()));
  node::RegistrationConfig rc;
  rc.node_name = name;
  a->internal_ip = *IpAddr::parse(fmt::format("172.30.0.{}", index));
  rc.internal_ips = {a->internal_ip};
  rc.boot_id = fmt::format("boot-{}", index);
  rc.ipam = ipam_mode;
  auto reg = node::Registration::start(*a->client, a->source->stores(), rc);
  EXPECT_TRUE(reg.ok()) << reg.error().message();
  a->registration = std::move(*reg);
  return a;
}

// What the agent does once the CIDR is known: IPAM on it, a health address, addresses published.
void finishAgent(Agent& a) {
  auto cidr = a.registration->waitForPodCidr(15s, 1s);
  ASSERT_TRUE(cidr.ok()) << a.name << ": " << cidr.error().message();
  a.cidr = *cidr;
  ipam::Config ic;
  ic.ipv4 = *cidr;
  a.ipam = std::move(*ipam::Ipam::open(ic));
  auto health = a.ipam->allocateNext(IpFamily::kV4, "health");
  ASSERT_TRUE(health.ok());
  node::LocalAddresses la{a.ipam->router(IpFamily::kV4), health->ip, *cidr};
  ASSERT_TRUE(a.registration->setAddresses(la).ok());
}

Config operatorConfig(std::vector<std::string> pool, int mask, std::string identity) {
  Config c;
  c.cluster_pool_ipv4_cidr = std::move(pool);
  c.cluster_pool_ipv4_mask_size = mask;
  c.leader_election_identity = std::move(identity);
  c.leader_election_lease_duration = 1.0;
  c.leader_election_renew_deadline = 0.6;
  c.leader_election_retry_period = 0.1;
  c.operator_api_serve_addr = "127.0.0.1:0";  // several operators per test
  return c;
}

std::unique_ptr<Operator> startOperator(const std::string& url, const Config& c) {
  k8s::ClientConfig cc;
  cc.server = url;
  cc.qps = 0;
  auto op = Operator::start(c, cc);
  EXPECT_TRUE(op.ok()) << op.error().message();
  return op.ok() ? std::move(*op) : nullptr;
}

std::string podCidrOf(const testing::FakeApiServer& srv, const std::string& name) {
  auto o = srv.get(kCiliumNodes, "", name);
  if (!o) return "";
  auto cn = k8s::Resource<k8s::CiliumNode>::decode(*o);
  if (!cn.ok() || cn->pod_cidrs.empty()) return "";
  return cn->pod_cidrs.front();
}

std::string operatorErrorOf(const testing::FakeApiServer& srv, const std::string& name) {
  auto o = srv.get(kCiliumNodes, "", name);
  if (!o) return "";
  auto cn = k8s::Resource<k8s::CiliumNode>::decode(*o);
  return cn.ok() ? cn->operator_error : "";
}

json ciliumNodeJson(const std::string& name, std::vector<std::string> cidrs) {
  return {{"apiVersion", "cilium.io/v2"},
          {"kind", "CiliumNode"},
          {"metadata", {{"name", name}}},
          {"spec", {{"ipam", {{"podCIDRs", cidrs}}}}}};
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(srv.start().ok()); }
  testing::FakeApiServer srv;
};

TEST_F(ClusterTest, ThreeAgentsGetDistinctCidrsAndSeeEveryNode) {
  auto op = startOperator(srv.url(), operatorConfig({"10.0.0.0/8"}, 24, "op-1"));
  ASSERT_TRUE(op);
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 1; i <= 3; i++) agents.push_back(startAgent(srv.url(), fmt::format("node{}", i), i));
  for (auto& a : agents) finishAgent(*a);
  std::set<IpPrefix> cidrs;
  for (auto& a : agents) {
    ASSERT_TRUE(a->cidr);
    EXPECT_EQ(a->cidr->len(), 24);
    EXPECT_TRUE(IpPrefix::parse("10.0.0.0/8")->contains(*a->cidr)) << a->cidr->toString();
    cidrs.insert(*a->cidr);
  }
  EXPECT_EQ(cidrs.size(), 3u) << "every node has a CIDR of its own";

  // Every agent's node list holds every node with its CIDR, its Cilium address (the router in
  // that CIDR), its InternalIP, health address and boot id.
  for (auto& viewer : agents) {
    bool all = eventually([&] {
      auto list = viewer->nodes.list();
      if (list.size() != 3) return false;
      for (const auto& n : list) {
        const Agent* owner = nullptr;
        for (auto& a : agents)
          if (a->name == n.name) owner = a.get();
        if (owner == nullptr || n.pod_cidrs.size() != 1 || n.pod_cidrs[0] != *owner->cidr)
          return false;
        // Reached on its InternalIP; its router is the CiliumInternalIP.
        auto primary = n.primaryAddress();
        if (!primary || *primary != owner->internal_ip) return false;
        bool router = false;
        for (const auto& a : n.addresses)
          router |= a.type == node::AddressType::kCiliumInternalIp &&
                    a.ip == owner->cidr->addr().plus(1);
        if (!router) return false;
        if (n.health.size() != 1 || !owner->cidr->contains(n.health[0])) return false;
        if (n.boot_id.rfind("boot-", 0) != 0) return false;
      }
      return true;
    });
    EXPECT_TRUE(all) << viewer->name << " does not see every node as published";
  }
  auto n2 = agents[0]->nodes.get("node2");
  ASSERT_TRUE(n2);
  bool has_internal = false;
  for (const auto& a : n2->addresses)
    has_internal |= a.type == node::AddressType::kInternalIp && a.ip.toString() == "172.30.0.2";
  EXPECT_TRUE(has_internal);
  EXPECT_EQ(op->clusterPool()->used(), 3u);
}

TEST_F(ClusterTest, AgentKeepsItsCiliumNodeAndWaitsForTheOperator) {
  auto a = startAgent(srv.url(), "node1", 1);
  // No operator yet: the agent's CiliumNode exists, without a CIDR, and the wait times out.
  ASSERT_TRUE(eventually([&] { return srv.get(kCiliumNodes, "", "node1").has_value(); }));
  auto early = a->registration->waitForPodCidr(300ms, 100ms);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(early.error().message().find("spec.ipam.podCIDRs"), std::string::npos)
      << early.error().message();
  // Deleted by someone: the agent creates it again.
  ASSERT_TRUE(srv.remove(kCiliumNodes, "", "node1").ok());
  ASSERT_TRUE(eventually([&] { return srv.get(kCiliumNodes, "", "node1").has_value(); }));
  auto op = startOperator(srv.url(), operatorConfig({"10.1.0.0/16"}, 24, "op-1"));
  finishAgent(*a);
  EXPECT_EQ(a->cidr->toString(), "10.1.0.0/24");
  // Its addresses, changed by someone else, are written back.
  auto obj = *srv.get(kCiliumNodes, "", "node1");
  obj["spec"]["addresses"] = json::array({{{"type", "InternalIP"}, {"ip", "192.0.2.1"}}});
  ASSERT_TRUE(srv.update(kCiliumNodes, obj).ok());
  EXPECT_TRUE(eventually([&] {
    auto cn = k8s::Resource<k8s::CiliumNode>::decode(*srv.get(kCiliumNodes, "", "node1"));
    return cn.ok() && cn->addresses.size() == 2 && cn->addresses[0].ip == "172.30.0.1" &&
           cn->addresses[1].type == "CiliumInternalIP" && cn->addresses[1].ip == "10.1.0.1";
  }));
  EXPECT_EQ(podCidrOf(srv, "node1"), "10.1.0.0/24") << "the operator's field is left alone";
}

TEST_F(ClusterTest, IpamKubernetesTakesTheNodesPodCidrAndPublishesIt) {
  const auto nodes = k8s::Resource<k8s::Node>::info();
  json n = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "node1"}}}};
  ASSERT_TRUE(srv.create(nodes, n).ok());
  auto a = startAgent(srv.url(), "node1", 1, "kubernetes");
  auto early = a->registration->waitForPodCidr(200ms, 100ms);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message().find("Node node1 has no IPv4 spec.podCIDRs"), std::string::npos)
      << early.error().message();
  // kube-controller-manager allocates it.
  n["spec"] = {{"podCIDRs", {"10.244.3.0/24"}}};
  ASSERT_TRUE(srv.update(nodes, n).ok());
  finishAgent(*a);
  EXPECT_EQ(a->cidr->toString(), "10.244.3.0/24");
  EXPECT_TRUE(eventually([&] { return podCidrOf(srv, "node1") == "10.244.3.0/24"; }))
      << "the agent copies it into its CiliumNode";
  EXPECT_TRUE(eventually([&] {
    auto seen = a->nodes.get("node1");
    if (!seen) return false;
    for (const auto& addr : seen->addresses)
      if (addr.type == node::AddressType::kCiliumInternalIp &&
          addr.ip == IpAddr::parse("10.244.3.1").value())
        return true;
    return false;
  }));
}

std::vector<std::string> podCidrsOf(const testing::FakeApiServer& srv, const std::string& name) {
  auto o = srv.get(kCiliumNodes, "", name);
  if (!o) return {};
  auto cn = k8s::Resource<k8s::CiliumNode>::decode(*o);
  return cn.ok() ? cn->pod_cidrs : std::vector<std::string>{};
}

// Dual stack (cluster-pool-ipv6-cidr): every node gets a CIDR of each family, IPv4 first; the
// agent learns its IPv6 one; an exhausted IPv6 pool is reported without touching IPv4.
TEST_F(ClusterTest, DualStackNodesGetACidrOfEachFamily) {
  Config c = operatorConfig({"10.5.0.0/16"}, 24, "op-1");
  c.cluster_pool_ipv6_cidr = {"fd00:5::/119"};  // two /120s
  c.cluster_pool_ipv6_mask_size = 120;
  auto op = startOperator(srv.url(), c);
  ASSERT_TRUE(op);
  auto a = startAgent(srv.url(), "node1", 1);
  auto v6 = a->registration->waitForPodCidr(15s, 1s, IpFamily::kV6);
  ASSERT_TRUE(v6.ok()) << v6.error().message();
  EXPECT_EQ(v6->toString(), "fd00:5::/120");
  auto v4 = a->registration->waitForPodCidr(15s, 1s, IpFamily::kV4);
  ASSERT_TRUE(v4.ok()) << v4.error().message();
  EXPECT_EQ(podCidrsOf(srv, "node1"), (std::vector<std::string>{"10.5.0.0/24", "fd00:5::/120"}))
      << "IPv4 first, as Kubernetes orders them";
  for (std::string n : {"b", "c"})
    ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson(n, {})).ok());
  ASSERT_TRUE(eventually([&] {
    return podCidrsOf(srv, "b").size() == 2 && podCidrsOf(srv, "c").size() == 1;
  })) << json(podCidrsOf(srv, "b")).dump()
      << json(podCidrsOf(srv, "c")).dump();
  EXPECT_EQ(podCidrsOf(srv, "b")[1], "fd00:5::100/120");
  EXPECT_EQ(podCidrsOf(srv, "c")[0], "10.5.2.0/24") << "IPv4 is allocated all the same";
  ASSERT_TRUE(eventually([&] { return !operatorErrorOf(srv, "c").empty(); }));
  EXPECT_NE(operatorErrorOf(srv, "c").find("fd00:5::/119"), std::string::npos)
      << operatorErrorOf(srv, "c");
  EXPECT_EQ(operatorErrorOf(srv, "b"), "");
  // b leaves: c gets its IPv6 CIDR and keeps its IPv4 one.
  ASSERT_TRUE(srv.remove(kCiliumNodes, "", "b").ok());
  EXPECT_TRUE(eventually([&] {
    return podCidrsOf(srv, "c") == std::vector<std::string>{"10.5.2.0/24", "fd00:5::100/120"};
  })) << json(podCidrsOf(srv, "c")).dump();
  EXPECT_TRUE(eventually([&] { return operatorErrorOf(srv, "c").empty(); }));
  EXPECT_EQ(op->clusterPool()->used(), 4u);
  EXPECT_EQ(op->clusterPool()->capacity(), 256u + 2u);
}

TEST_F(ClusterTest, IpamKubernetesTakesTheNodesIpv6PodCidrToo) {
  const auto nodes = k8s::Resource<k8s::Node>::info();
  json n = {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", "node1"}}},
            {"spec", {{"podCIDRs", {"10.244.3.0/24"}}}}};
  ASSERT_TRUE(srv.create(nodes, n).ok());
  auto a = startAgent(srv.url(), "node1", 1, "kubernetes");
  auto early = a->registration->waitForPodCidr(200ms, 100ms, IpFamily::kV6);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message().find("Node node1 has no IPv6 spec.podCIDRs"), std::string::npos)
      << early.error().message();
  n["spec"] = {{"podCIDRs", {"10.244.3.0/24", "fd00:244:3::/112"}}};
  ASSERT_TRUE(srv.update(nodes, n).ok());
  auto v6 = a->registration->waitForPodCidr(15s, 1s, IpFamily::kV6);
  ASSERT_TRUE(v6.ok()) << v6.error().message();
  EXPECT_EQ(v6->toString(), "fd00:244:3::/112");
  auto v4 = a->registration->waitForPodCidr(15s, 1s, IpFamily::kV4);
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(eventually([&] {
    return podCidrsOf(srv, "node1") ==
           std::vector<std::string>{"10.244.3.0/24", "fd00:244:3::/112"};
  })) << "the agent copies both into its CiliumNode: "
      << json(podCidrsOf(srv, "node1")).dump();
}

TEST_F(ClusterTest, ExhaustionIsReportedOnTheCiliumNodeUntilACidrIsFreed) {
  auto op = startOperator(srv.url(), operatorConfig({"10.9.0.0/23"}, 24, "op-1"));
  for (std::string n : {"a", "b", "c"})
    ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson(n, {})).ok());
  ASSERT_TRUE(eventually([&] {
    int with = 0;
    for (std::string n : {"a", "b", "c"}) with += !podCidrOf(srv, n).empty();
    return with == 2;
  }));
  std::string starved;
  for (std::string n : {"a", "b", "c"})
    if (podCidrOf(srv, n).empty()) starved = n;
  ASSERT_TRUE(eventually([&] { return !operatorErrorOf(srv, starved).empty(); }));
  EXPECT_NE(operatorErrorOf(srv, starved).find("exhausted"), std::string::npos)
      << operatorErrorOf(srv, starved);
  std::string victim = starved == "a" ? "b" : "a";
  std::string freed = podCidrOf(srv, victim);
  ASSERT_TRUE(srv.remove(kCiliumNodes, "", victim).ok());
  EXPECT_TRUE(eventually([&] { return podCidrOf(srv, starved) == freed; }));
  EXPECT_TRUE(eventually([&] { return operatorErrorOf(srv, starved).empty(); }))
      << "the error is cleared once the node has a CIDR";
}

TEST_F(ClusterTest, OverlapAndForeignCidrsAreReportedNotChanged) {
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("a", {"10.2.3.0/24"})).ok());
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("b", {"10.2.3.0/24"})).ok());
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("c", {"192.168.0.0/24"})).ok());
  auto op = startOperator(srv.url(), operatorConfig({"10.2.0.0/16"}, 24, "op-1"));
  ASSERT_TRUE(eventually([&] { return !operatorErrorOf(srv, "b").empty(); }));
  EXPECT_NE(operatorErrorOf(srv, "b").find("already allocated to node a"), std::string::npos)
      << operatorErrorOf(srv, "b");
  ASSERT_TRUE(eventually([&] { return !operatorErrorOf(srv, "c").empty(); }));
  EXPECT_NE(operatorErrorOf(srv, "c").find("not a /24 of the cluster pool"), std::string::npos)
      << operatorErrorOf(srv, "c");
  EXPECT_EQ(operatorErrorOf(srv, "a"), "");
  EXPECT_EQ(podCidrOf(srv, "b"), "10.2.3.0/24") << "a node's CIDR is never changed under it";
  EXPECT_EQ(podCidrOf(srv, "c"), "192.168.0.0/24");
  // A new node never gets the contested CIDR.
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("d", {})).ok());
  ASSERT_TRUE(eventually([&] { return !podCidrOf(srv, "d").empty(); }));
  EXPECT_NE(podCidrOf(srv, "d"), "10.2.3.0/24");
}

TEST_F(ClusterTest, AllocationsSurviveAnOperatorRestart) {
  std::map<std::string, std::string> before;
  {
    auto op = startOperator(srv.url(), operatorConfig({"10.3.0.0/16"}, 24, "op-1"));
    for (std::string n : {"a", "b", "c"})
      ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson(n, {})).ok());
    ASSERT_TRUE(eventually([&] {
      for (std::string n : {"a", "b", "c"})
        if (podCidrOf(srv, n).empty()) return false;
      return true;
    }));
    for (std::string n : {"a", "b", "c"}) before[n] = podCidrOf(srv, n);
  }
  // While no operator runs, node "a" goes and new nodes come, named to be listed before the
  // nodes that hold CIDRs: the new operator must read every allocation back before it gives
  // the first new one.
  ASSERT_TRUE(srv.remove(kCiliumNodes, "", "a").ok());
  for (int i = 0; i < 5; i++)
    ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson(fmt::format("a{}", i), {})).ok());
  auto op = startOperator(srv.url(), operatorConfig({"10.3.0.0/16"}, 24, "op-2"));
  std::set<std::string> seen;
  for (std::string n : {"b", "c"}) seen.insert(before[n]);
  for (int i = 0; i < 5; i++) {
    std::string n = fmt::format("a{}", i);
    ASSERT_TRUE(eventually([&] { return !podCidrOf(srv, n).empty(); }));
    EXPECT_TRUE(seen.insert(podCidrOf(srv, n)).second)
        << podCidrOf(srv, n) << " was handed out twice after the restart";
    EXPECT_EQ(operatorErrorOf(srv, n), "");
  }
  for (std::string n : {"b", "c"}) EXPECT_EQ(podCidrOf(srv, n), before[n]);
}

TEST_F(ClusterTest, TwoOperatorsOnlyTheLeaderActsAndTheOtherTakesOver) {
  auto op1 = startOperator(srv.url(), operatorConfig({"10.4.0.0/16"}, 24, "op-1"));
  auto op2 = startOperator(srv.url(), operatorConfig({"10.4.0.0/16"}, 24, "op-2"));
  ASSERT_TRUE(eventually([&] { return op1->leading() || op2->leading(); }));
  EXPECT_FALSE(op1->leading() && op2->leading());
  Operator* leader = op1->leading() ? op1.get() : op2.get();
  Operator* other = leader == op1.get() ? op2.get() : op1.get();
  ASSERT_TRUE(eventually([&] { return leader->clusterPool() != nullptr; }));
  EXPECT_EQ(other->clusterPool(), nullptr) << "the other replica does nothing";
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("a", {})).ok());
  ASSERT_TRUE(eventually([&] { return !podCidrOf(srv, "a").empty(); }));
  std::string a = podCidrOf(srv, "a");
  // The leader goes away (released on stop): the other takes over and carries on from the
  // allocations written.
  (leader == op1.get() ? op1 : op2).reset();
  ASSERT_TRUE(eventually([&] { return other->leading() && other->clusterPool() != nullptr; }));
  ASSERT_TRUE(srv.create(kCiliumNodes, ciliumNodeJson("b", {})).ok());
  ASSERT_TRUE(eventually([&] { return !podCidrOf(srv, "b").empty(); }));
  EXPECT_NE(podCidrOf(srv, "b"), a);
  EXPECT_EQ(podCidrOf(srv, "a"), a);
}

TEST_F(ClusterTest, ALeaseHeldByACrashedReplicaIsTakenOverAfterItsDuration) {
  // A replica that died without releasing: its Lease is never renewed again.
  const auto leases = k8s::leaseResource();
  ASSERT_TRUE(srv.create(leases, {{"apiVersion", "coordination.k8s.io/v1"},
                                  {"kind", "Lease"},
                                  {"metadata",
                                   {{"name", "cilium-operator-resource-lock"},
                                    {"namespace", "kube-system"}}},
                                  {"spec",
                                   {{"holderIdentity", "ghost"},
                                    {"leaseDurationSeconds", 1},
                                    {"leaseTransitions", 3}}}})
                  .ok());
  auto t0 = std::chrono::steady_clock::now();
  auto op = startOperator(srv.url(), operatorConfig({"10.6.0.0/16"}, 24, "op-1"));
  ASSERT_TRUE(eventually([&] { return op->leading(); }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms)
      << "took over before the holder's lease duration had passed";
  auto lease = srv.get(leases, "kube-system", "cilium-operator-resource-lock");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "op-1");
  EXPECT_EQ((*lease)["spec"]["leaseTransitions"], 4);
}

TEST_F(ClusterTest, ALeaderThatCannotRenewStepsDown) {
  auto op1 = startOperator(srv.url(), operatorConfig({"10.5.0.0/16"}, 24, "op-1"));
  ASSERT_TRUE(eventually([&] { return op1->leading(); }));
  auto op2 = startOperator(srv.url(), operatorConfig({"10.5.0.0/16"}, 24, "op-2"));
  // op1 cannot reach the Lease any more (its renewals fail): it steps down after the renew
  // deadline, and op2 takes over once the lease duration has passed without renewal.
  srv.failNext(1000000, 503, "leases");
  ASSERT_TRUE(eventually([&] { return !op1->leading(); }, 5s));
  srv.clearFaults();
  ASSERT_TRUE(eventually([&] { return op1->leading() || op2->leading(); }, 5s));
  EXPECT_FALSE(op1->leading() && op2->leading());
}

TEST(OperatorFlagsTest, KubernetesClientRateLimitAsCilium) {
  auto d = op::parseFlags({});
  ASSERT_TRUE(d.ok()) << d.error().toString();
  EXPECT_EQ(d->k8s_client_qps, 100);
  EXPECT_EQ(d->k8s_client_burst, 200);
  auto r = op::parseFlags({"--operator-k8s-client-qps=0", "--operator-k8s-client-burst=5"});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->k8s_client_qps, 0);  // no limit
  EXPECT_EQ(r->k8s_client_burst, 5);
  EXPECT_FALSE(op::parseFlags({"--operator-k8s-client-burst=0"}).ok());
}

// As Cilium's operator: the Lease and the agents' pods in the pod's own namespace (the chart's
// CILIUM_K8S_NAMESPACE), unless a key or flag names another; kube-system without either.
TEST(OperatorFlagsTest, NamespaceFromCiliumK8sNamespace) {
  auto env = [](const char* k) -> const char* {
    return std::string(k) == "CILIUM_K8S_NAMESPACE" ? "cilium-system" : nullptr;
  };
  auto c = op::parseFlags({}, env);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_EQ(c->leader_election_namespace, "cilium-system");
  EXPECT_EQ(c->cilium_pod_namespace, "cilium-system");
  auto f = op::parseFlags({"--leader-election-namespace=other"}, env);
  ASSERT_TRUE(f.ok()) << f.error().toString();
  EXPECT_EQ(f->leader_election_namespace, "other");
  auto none = op::parseFlags({}, [](const char*) -> const char* { return nullptr; });
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->leader_election_namespace, "kube-system");
  EXPECT_EQ(none->cilium_pod_namespace, "kube-system");
}

// Cilium mounts the same cilium-config into the operator: its keys with Cilium's names and
// values (durations as "15m0s") are taken, the agent's keys ignored, flags win.
TEST(OperatorFlagsTest, ConfigDirAsCiliumMountsIt) {
  testing::TempDir dir;
  auto text = readFile(std::string(CILIUM_SOURCE_DIR) +
                       "/tests/agent/daemon/testdata/cilium-config-1.16.yaml");
  ASSERT_TRUE(text.ok());
  auto docs = yaml::toJson(*text);
  ASSERT_TRUE(docs.ok() && docs->size() == 1);
  for (const auto& [k, v] : (*docs)[0]["data"].items())
    std::ofstream(dir.file(k)) << v.get<std::string>() << "\n";
  std::ofstream(dir.file("..data")) << "bookkeeping";
  auto c = op::parseFlags({"--config-dir", dir.path()});
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_EQ(c->cluster_pool_ipv4_cidr, (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_EQ(c->cluster_pool_ipv4_mask_size, 24);
  EXPECT_EQ(c->identity_gc_interval, 15 * 60);
  EXPECT_EQ(c->identity_heartbeat_timeout, 30 * 60);
  EXPECT_EQ(c->nodes_gc_interval, 5 * 60);
  EXPECT_EQ(c->operator_api_serve_addr, "127.0.0.1:9234");
  EXPECT_TRUE(c->enable_metrics);
  EXPECT_FALSE(c->debug);
  auto ignored = [&](const std::string& k) {
    return std::find(c->ignored_keys.begin(), c->ignored_keys.end(), k) != c->ignored_keys.end();
  };
  EXPECT_TRUE(ignored("enable-hubble"));
  EXPECT_TRUE(ignored("tunnel-protocol"));
  EXPECT_FALSE(ignored("cluster-pool-ipv4-cidr"));
  EXPECT_FALSE(ignored("..data"));

  // Several pools as Cilium's chart writes them: separated by spaces.
  std::ofstream(dir.file("cluster-pool-ipv4-cidr")) << "10.1.0.0/16 10.2.0.0/16\n";
  auto pools = op::parseFlags({"--config-dir", dir.path()});
  ASSERT_TRUE(pools.ok()) << pools.error().toString();
  EXPECT_EQ(pools->cluster_pool_ipv4_cidr,
            (std::vector<std::string>{"10.1.0.0/16", "10.2.0.0/16"}));

  // Flags win over the directory.
  auto f = op::parseFlags({"--config-dir=" + dir.path(), "--cluster-pool-ipv4-mask-size=26"});
  ASSERT_TRUE(f.ok()) << f.error().toString();
  EXPECT_EQ(f->cluster_pool_ipv4_mask_size, 26);
  // A value the operator cannot honour fails, naming the key; an unknown flag stays an error.
  std::ofstream(dir.file("ipam")) << "eni\n";
  auto bad = op::parseFlags({"--config-dir", dir.path()});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--ipam: eni not in"), std::string::npos)
      << bad.error().message();
  EXPECT_FALSE(op::parseFlags({"--enable-hubble=true"}).ok());
  EXPECT_FALSE(op::parseFlags({"--config-dir", dir.file("missing")}).ok());
}

}  // namespace
}  // namespace cilium::op
