// The cluster control plane with the real binaries: a cilium-agent in a node namespace with the
// default ipam=cluster-pool and no ipv4-range waits for its pod CIDR until cilium-operator (the
// real binary, beside it) writes one into its CiliumNode; the agent then hands out addresses
// from it, publishes its addresses, lists every node of the cluster (`cilium-dbg node list`),
// and after a restart gets the same CIDR back from its CiliumNode without the operator. Then two
// cilium-operator processes with leader election: only the holder of the Lease allocates CIDRs
// and collects identities; the leader is killed (SIGKILL, no release) and the other takes over
// once the lease duration has passed, and carries on. The operator removes the node's
// agent-not-ready taint once the agent pod is Ready.
#include <signal.h>

#include <ctime>
#include <map>
#include <optional>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/hubble/proto.h"
#include "agent/k8s/resources.h"
#include "agent/node/registration.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"

namespace cilium {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const k8s::ResourceInfo kCiliumNodes = k8s::Resource<k8s::CiliumNode>::info();

class ClusterTest : public testing::AgentNodeTest {
 protected:
  ClusterTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    AgentNodeTest::SetUp();
    if (HasFatalFailure()) return;
    // The apiserver listens on the node namespace's loopback, where the agent and the operator
    // run.
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&] { return server_.start(); }).ok());
  }
  void TearDown() override { server_.stop(); }

  std::vector<std::string> agentArgs() const {
    return {"--k8s-api-server=" + server_.url(),
            "--ipv4-range=auto",
            "--k8s-sync-timeout=60",
            "--enable-hubble",
            "--hubble-disable-tls",
            "--hubble-listen-address=:4244",
            "--hubble-socket-path=" + hubbleSocket()};
  }
  std::string hubbleSocket() const { return node_->stateDir() + "/hubble.sock"; }

  // What the agent's peer.Peer/Notify announces first: name -> address.
  std::map<std::string, std::string> hubblePeers() const {
    auto stub = peer::Peer::NewStub(
        grpc::CreateChannel("unix://" + hubbleSocket(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 3s);
    auto reader = stub->Notify(&ctx, {});
    std::map<std::string, std::string> out;
    peer::ChangeNotification n;
    // The first notifications come at once, one per known server; the stream then waits.
    while (out.size() < 2 && reader->Read(&n)) out[n.name()] = n.address();
    ctx.TryCancel();
    return out;
  }

  Process* startOperator() {
    auto p =
        topo_->spawnIn(topo_->nodeNetns(),
                       {CILIUM_OPERATOR_BINARY, "--k8s-api-server=" + server_.url(),
                        "--cluster-pool-ipv4-cidr=10.200.0.0/16",
                        "--cluster-pool-ipv4-mask-size=24", "--leader-election-retry-period=100ms"},
                       "operator");
    EXPECT_TRUE(p.ok()) << p.error().toString();
    return p.ok() ? *p : nullptr;
  }

  std::optional<k8s::CiliumNode> ciliumNode(const std::string& name) const {
    auto o = server_.get(kCiliumNodes, "", name);
    if (!o) return std::nullopt;
    auto cn = k8s::Resource<k8s::CiliumNode>::decode(*o);
    if (!cn.ok()) return std::nullopt;
    return *cn;
  }

  testing::FakeApiServer server_;
};

TEST_F(ClusterTest, AgentWaitsForTheOperatorsCidrAndListsEveryNode) {
  // Another node of the cluster, which already holds the pool's first CIDR: the operator reads
  // it back, so this node gets the next one.
  ASSERT_TRUE(server_
                  .create(kCiliumNodes, {{"apiVersion", "cilium.io/v2"},
                                         {"kind", "CiliumNode"},
                                         {"metadata", {{"name", "node-2"}}},
                                         {"spec",
                                          {{"addresses",
                                            {{{"type", "InternalIP"}, {"ip", "172.31.0.2"}},
                                             {{"type", "CiliumInternalIP"}, {"ip", "10.200.0.1"}}}},
                                           {"health", {{"ipv4", "10.200.0.9"}}},
                                           {"ipam", {{"podCIDRs", {"10.200.0.0/24"}}}}}}})
                  .ok());
  // This node's Kubernetes Node: its InternalIP goes into its CiliumNode. It registered with
  // the agent-not-ready taint, and its agent pod (hostNetwork, as the DaemonSet's) is not ready.
  const json not_ready_taint = {{"key", "node.cilium.io/agent-not-ready"},
                                {"effect", "NoSchedule"}};
  ASSERT_TRUE(
      server_
          .create(
              k8s::Resource<k8s::Node>::info(),
              {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata", {{"name", "node-1"}}},
               {"spec", {{"taints", {not_ready_taint}}}},
               {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", "172.31.0.1"}}}}}}})
          .ok());
  json agent_pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", "cilium-x1"}, {"namespace", "kube-system"}, {"labels", {{"k8s-app", "cilium"}}}}},
      {"spec", {{"nodeName", "node-1"}, {"hostNetwork", true}}},
      {"status", {{"conditions", {{{"type", "Ready"}, {"status", "False"}}}}}}};
  ASSERT_TRUE(server_.create(k8s::Resource<k8s::Pod>::info(), agent_pod).ok());
  auto taints = [&] {
    auto n = server_.get(k8s::Resource<k8s::Node>::info(), "", "node-1");
    return n ? n->value("/spec/taints"_json_pointer, json()) : json();
  };
  auto agent = node_->start("agent", agentArgs());
  ASSERT_TRUE(agent.ok()) << agent.error().toString();
  // No operator: the agent has published its CiliumNode and says what it waits for.
  ASSERT_TRUE(testing::eventually(
      [&] {
        return node_->log("agent").find("waiting for this node's IPv4 pod CIDR") != std::string::npos;
      },
      20s))
      << node_->log("agent");
  // (The first line may come before the informer has seen the CiliumNode the agent created.)
  EXPECT_NE(node_->log("agent").find("pod CIDR ipam=cluster-pool: CiliumNode node-1"),
            std::string::npos);
  auto early = ciliumNode("node-1");
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->pod_cidrs.empty());
  EXPECT_EQ(early->boot_id, node::readBootId());
  EXPECT_TRUE((*agent)->running());
  EXPECT_FALSE(node_->client(1s).healthz().ok()) << "not serving before it has a pod CIDR";

  Process* op = startOperator();
  ASSERT_NE(op, nullptr);
  ASSERT_TRUE(node_->waitReady(*agent, 30s)) << node_->log("agent") << topo_->tmpDir();
  auto cfg = node_->client().getConfig();
  ASSERT_TRUE(cfg.ok()) << cfg.error().toString();
  ASSERT_TRUE(cfg->status && cfg->status->addressing && cfg->status->addressing->ipv4);
  EXPECT_EQ(cfg->status->addressing->ipv4->alloc_range, "10.200.1.0/24");
  EXPECT_EQ(cfg->status->addressing->ipv4->ip, "10.200.1.1");
  EXPECT_EQ(cfg->status->ipam_mode, "cluster-pool");
  auto lease = node_->client().ipamAllocate(IpFamily::kV4, "default/pod-a");
  ASSERT_TRUE(lease.ok()) << lease.error().toString();
  EXPECT_EQ(lease->address.ipv4.rfind("10.200.1.", 0), 0u) << lease->address.ipv4;

  // Its CiliumNode: InternalIP, the router as CiliumInternalIP, a health address in its CIDR.
  ASSERT_TRUE(testing::eventually([&] {
    auto cn = ciliumNode("node-1");
    return cn && cn->pod_cidrs == std::vector<std::string>{"10.200.1.0/24"} &&
           cn->addresses.size() == 2 && cn->addresses[1].type == "CiliumInternalIP" &&
           cn->addresses[1].ip == "10.200.1.1" && cn->health_ipv4.rfind("10.200.1.", 0) == 0;
  }));
  EXPECT_EQ(ciliumNode("node-1")->addresses[0].type, "InternalIP");
  EXPECT_EQ(ciliumNode("node-1")->addresses[0].ip, "172.31.0.1");

  // The operator leads and has allocated; the agent pod is not Ready yet: the taint stays. Its
  // readiness probe (/healthz) now answers Ok, so the kubelet marks it Ready, and the operator
  // removes the taint.
  EXPECT_EQ(taints(), json::array({not_ready_taint}));
  agent_pod = *server_.get(k8s::Resource<k8s::Pod>::info(), "kube-system", "cilium-x1");
  agent_pod["status"]["conditions"][0]["status"] = "True";
  ASSERT_TRUE(server_.update(k8s::Resource<k8s::Pod>::info(), agent_pod).ok());
  EXPECT_TRUE(testing::eventually([&] { return taints() == json::array(); }, 15s))
      << taints().dump() << "\n"
      << node_->log("operator");

  // cilium-dbg node list: both nodes with their node IPs (InternalIP) and CIDRs.
  bool listed = testing::eventually([&] {
    auto r = topo_->exec(topo_->nodeNetns(),
                         {CILIUM_DBG_BINARY, "-H", "unix://" + node_->socket(), "node", "list"});
    if (!r.ok() || r->exit_code != 0) return false;
    return r->out.find("node-1") != std::string::npos &&
           r->out.find("172.31.0.1") != std::string::npos &&
           r->out.find("10.200.1.0/24") != std::string::npos &&
           r->out.find("node-2") != std::string::npos &&
           r->out.find("10.200.0.0/24") != std::string::npos;
  });
  EXPECT_TRUE(listed);
  // Hubble's Peer service announces both nodes' servers at their addresses (hubble-relay finds
  // every node through it).
  std::map<std::string, std::string> peers;
  EXPECT_TRUE(testing::eventually([&] {
    peers = hubblePeers();
    return peers.size() == 2;
  }));
  EXPECT_EQ(peers["node-1"], "172.31.0.1:4244");
  EXPECT_EQ(peers["node-2"], "172.31.0.2:4244");
  auto nodes = node_->client().clusterNodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->self, "node-1");
  EXPECT_EQ(nodes->nodes_added.size(), 2u);

  // Restart without the operator: the CIDR comes back from the CiliumNode, the address stays.
  op->stop();
  (*agent)->stop();
  auto again = node_->start("agent2", agentArgs());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(node_->waitReady(*again, 30s)) << node_->log("agent2");
  cfg = node_->client().getConfig();
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->status->addressing->ipv4->alloc_range, "10.200.1.0/24");
  auto status = node_->client().healthz();
  ASSERT_TRUE(status.ok() && status->ipam);
  EXPECT_TRUE(status->ipam->allocations.count(lease->address.ipv4))
      << "the pod's address survived the restart";
}

TEST_F(ClusterTest, TwoOperatorsOnlyTheLeaderWritesAndTheOtherTakesOverWhenItIsKilled) {
  const auto leases = k8s::leaseResource();
  const auto identities = k8s::Resource<k8s::CiliumIdentity>::info();
  constexpr auto kLeaseDuration = 3s;
  constexpr auto kRetryPeriod = 100ms;
  auto startReplica = [&](const std::string& name, int port) {
    auto p = topo_->spawnIn(
        topo_->nodeNetns(),
        {CILIUM_OPERATOR_BINARY, "--k8s-api-server=" + server_.url(),
         "--cluster-pool-ipv4-cidr=10.210.0.0/16", "--cluster-pool-ipv4-mask-size=24",
         "--leader-election-identity=" + name, "--leader-election-lease-duration=3s",
         "--leader-election-renew-deadline=2s", "--leader-election-retry-period=100ms",
         "--identity-gc-interval=1s", "--identity-heartbeat-timeout=1s",
         "--operator-api-serve-addr=127.0.0.1:" + std::to_string(port)},
        name);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    return p.ok() ? *p : nullptr;
  };
  auto log = [&](const std::string& name) {
    return readFile(topo_->tmpDir() + "/" + name + ".err").valueOr(std::string());
  };
  auto holder = [&]() -> std::string {
    auto l = server_.get(leases, "kube-system", "cilium-operator-resource-lock");
    if (!l || !(*l)["spec"].contains("holderIdentity")) return "";
    return (*l)["spec"]["holderIdentity"].get<std::string>();
  };
  // A time of the Lease (RFC 3339 with microseconds, as the elector writes them).
  auto leaseTime = [&](const std::string& field) -> std::optional<std::chrono::microseconds> {
    auto l = server_.get(leases, "kube-system", "cilium-operator-resource-lock");
    if (!l || !(*l)["spec"].contains(field)) return std::nullopt;
    std::string text = (*l)["spec"][field].get<std::string>();
    std::tm tm{};
    const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == nullptr || *rest != '.') return std::nullopt;
    return std::chrono::seconds(timegm(&tm)) + std::chrono::microseconds(std::atol(rest + 1));
  };
  auto podCidr = [&](const std::string& node) -> std::string {
    auto cn = ciliumNode(node);
    return cn && !cn->pod_cidrs.empty() ? cn->pod_cidrs[0] : "";
  };
  auto unusedIdentity = [&](const std::string& id) {
    return server_.create(identities, {{"apiVersion", "cilium.io/v2"},
                                       {"kind", "CiliumIdentity"},
                                       {"metadata", {{"name", id}}},
                                       {"security-labels", {{"k8s:app", "gone-" + id}}}});
  };
  auto newNode = [&](const std::string& name) {
    return server_.create(kCiliumNodes, {{"apiVersion", "cilium.io/v2"},
                                         {"kind", "CiliumNode"},
                                         {"metadata", {{"name", name}}},
                                         {"spec", json::object()}});
  };

  std::map<std::string, Process*> replicas = {{"op-a", startReplica("op-a", 9234)},
                                              {"op-b", startReplica("op-b", 9235)}};
  ASSERT_NE(replicas["op-a"], nullptr);
  ASSERT_NE(replicas["op-b"], nullptr);
  ASSERT_TRUE(testing::eventually([&] { return !holder().empty(); }, 20s))
      << log("op-a") << log("op-b");
  const std::string leader = holder();
  const std::string other = leader == "op-a" ? "op-b" : "op-a";
  ASSERT_TRUE(replicas.count(leader)) << leader;

  // The leader allocates a CIDR and collects an unused identity; the other does neither.
  ASSERT_TRUE(newNode("node-a").ok());
  ASSERT_TRUE(unusedIdentity("70001").ok());
  ASSERT_TRUE(testing::eventually([&] { return !podCidr("node-a").empty(); }, 20s)) << log(leader);
  ASSERT_TRUE(testing::eventually([&] { return !server_.get(identities, "", "70001"); }, 20s))
      << log(leader);
  const std::string cidr_a = podCidr("node-a");
  // The log lines come after the effects seen above (a GC pass is logged once it has finished).
  EXPECT_TRUE(testing::eventually(
      [&] {
        std::string l = log(leader);
        return l.find("allocated pod CIDR node=node-a") != std::string::npos &&
               l.find("identity GC pass") != std::string::npos;
      },
      10s))
      << log(leader);
  const std::string other_log = log(other);
  EXPECT_EQ(other_log.find("became leader"), std::string::npos) << other_log;
  EXPECT_EQ(other_log.find("allocated pod CIDR"), std::string::npos) << other_log;
  EXPECT_EQ(other_log.find("identity GC pass"), std::string::npos) << other_log;
  EXPECT_EQ(other_log.find("cluster-pool IPAM started"), std::string::npos) << other_log;
  EXPECT_EQ(holder(), leader);

  // The leader dies without releasing the Lease; a node and an unused identity arrive meanwhile.
  replicas[leader]->signal(SIGKILL);
  ASSERT_TRUE(replicas[leader]->wait(10s).ok());
  const auto last_renewal = leaseTime("renewTime");
  ASSERT_TRUE(last_renewal);
  ASSERT_TRUE(newNode("node-b").ok());
  ASSERT_TRUE(unusedIdentity("70002").ok());
  ASSERT_TRUE(testing::eventually([&] { return holder() == other; }, 20s)) << log(other);
  // Taken over (the new holder's acquireTime) not before a whole lease duration has passed
  // since the dead leader's last renewal, and then without waiting much longer (the other
  // replica tries every retry period; the bound is loose for a loaded machine).
  const auto acquired = leaseTime("acquireTime");
  ASSERT_TRUE(acquired);
  EXPECT_GE(*acquired - *last_renewal, kLeaseDuration);
  EXPECT_LE(*acquired - *last_renewal, kLeaseDuration + 20 * kRetryPeriod + 3s);
  ASSERT_TRUE(testing::eventually([&] { return !podCidr("node-b").empty(); }, 20s)) << log(other);
  ASSERT_TRUE(testing::eventually([&] { return !server_.get(identities, "", "70002"); }, 20s))
      << log(other);
  EXPECT_NE(podCidr("node-b"), cidr_a) << "the new leader handed out the dead leader's CIDR";
  EXPECT_EQ(podCidr("node-a"), cidr_a) << "the new leader changed an allocation";
  EXPECT_TRUE(testing::eventually(
      [&] { return log(other).find("allocated pod CIDR node=node-b") != std::string::npos; }, 10s))
      << log(other);
  EXPECT_EQ(log(other).find("allocated pod CIDR node=node-a"), std::string::npos) << log(other);
  replicas[other]->stop();
}

}  // namespace
}  // namespace cilium
