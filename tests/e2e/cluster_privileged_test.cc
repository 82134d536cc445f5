// The cluster control plane with the real binaries: a cilium-agent in a node namespace with the
// default ipam=cluster-pool and no ipv4-range waits for its pod CIDR until cilium-operator (the
// real binary, beside it) writes one into its CiliumNode; the agent then hands out addresses
// from it, publishes its addresses, lists every node of the cluster (`cilium-dbg node list`),
// and after a restart gets the same CIDR back from its CiliumNode without the operator.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>

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
    return {"--k8s-api-server=" + server_.url(), "--ipv4-range=auto", "--k8s-sync-timeout=60",
            "--enable-hubble", "--hubble-disable-tls", "--hubble-listen-address=:4244",
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
  // This node's Kubernetes Node: its InternalIP goes into its CiliumNode.
  ASSERT_TRUE(
      server_
          .create(
              k8s::Resource<k8s::Node>::info(),
              {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata", {{"name", "node-1"}}},
               {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", "172.31.0.1"}}}}}}})
          .ok());
  auto agent = node_->start("agent", agentArgs());
  ASSERT_TRUE(agent.ok()) << agent.error().toString();
  // No operator: the agent has published its CiliumNode and says what it waits for.
  ASSERT_TRUE(testing::eventually(
      [&] {
        return node_->log("agent").find("waiting for this node's pod CIDR") != std::string::npos;
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

}  // namespace
}  // namespace cilium
