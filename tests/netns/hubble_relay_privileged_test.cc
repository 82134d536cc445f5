// hubble-relay over three real cilium-agents, each in its own node namespace (own pins, state
// and Hubble socket), with two pods each and real TCP between them: the relay binary discovers
// node-1 through its Peer service and the others from --static-peer (each agent's Peer service
// lists only itself until the multi-node cluster feeds it), serves every node's flows in time
// order, reports a SIGKILLed agent unavailable while serving the others, and reconnects when it
// is back; the hubble CLI runs unchanged against it.
#include <signal.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/hubble/proto.h"
#include "agent/hubble/relay/merge.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint16_t kPort = 8080;

struct AgentOnNode {
  std::unique_ptr<Topology> topo;
  std::optional<AgentNode> node;
  std::string name;
  Process* agent = nullptr;
  Pod client, server;
  UniqueFd listener;

  std::string hubbleSock() const { return node->dir() + "/run/hubble.sock"; }

  Process* start(const std::string& log) {
    auto argv = node->args({"--enable-hubble", "--hubble-socket-path=" + hubbleSock(),
                            "--hubble-listen-address=", "--monitor-aggregation=none"});
    for (auto& a : argv)
      if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + name;
    auto p = topo->spawnIn(topo->nodeNetns(), argv, log);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    if (!p.ok()) return nullptr;
    EXPECT_TRUE(node->waitReady(*p)) << node->log(log);
    return *p;
  }

  Status attach(const Pod& pod, const std::string& app) {
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + pod.name;
    req.container_interface_name = "eth0";
    req.interface_name = pod.host_ifname;
    req.interface_index = pod.host_ifindex;
    req.mac = pod.mac;
    req.host_mac = pod.host_mac;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = pod.ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = pod.name;
    req.netns = pod.netns;
    req.labels = {"k8s:app=" + app};
    return node->client().putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id),
                                      req);
  }

  bool connect() { return connectTcp(client.netns, server.ip, kPort, 1500ms).ok(); }
};

class RelayAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      auto& n = nodes_[i];
      n.name = "node-" + std::to_string(i + 1);
      auto topo = Topology::create();
      ASSERT_TRUE(topo.ok()) << topo.error().toString();
      n.topo = std::move(*topo);
      auto node = AgentNode::create(*n.topo, CILIUM_AGENT_BINARY);
      ASSERT_TRUE(node.ok()) << node.error().toString();
      n.node.emplace(std::move(*node));
      n.agent = n.start("agent");
      ASSERT_NE(n.agent, nullptr);
      auto c = n.topo->addPod("client", "10.200.0.10");
      auto s = n.topo->addPod("server", "10.200.0.11");
      ASSERT_TRUE(c.ok() && s.ok());
      n.client = *c;
      n.server = *s;
      ASSERT_TRUE(n.attach(n.client, "client").ok()) << n.node->log("agent");
      ASSERT_TRUE(n.attach(n.server, "server").ok()) << n.node->log("agent");
      auto l = listenTcp(n.server.netns, n.server.ip, kPort);
      ASSERT_TRUE(l.ok()) << l.error().toString();
      n.listener = std::move(*l);
    }
  }

  // Starts the relay binary; its port comes from its log.
  void startRelay() {
    SpawnOptions so;
    so.stderr_path = nodes_[0].node->dir() + "/relay.err";
    auto p = spawn(
        {CILIUM_RELAY_BINARY, "--listen-address", "127.0.0.1:0", "--peer-service",
         "unix://" + nodes_[0].hubbleSock(), "--static-peer",
         "node-2=unix://" + nodes_[1].hubbleSock(), "--static-peer",
         "node-3=unix://" + nodes_[2].hubbleSock(), "--disable-client-tls", "--disable-server-tls",
         "--retry-timeout", "1s", "--sort-buffer-drain-timeout", "300ms",
         "--health-listen-address", ""},
        so);
    ASSERT_TRUE(p.ok()) << p.error().toString();
    relay_ = std::move(*p);
    std::string port;
    ASSERT_TRUE(eventually([&] {
      std::ifstream in(so.stderr_path);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      std::smatch m;
      if (!std::regex_search(text, m, std::regex("hubble-relay listening address=\\S+ port=(\\d+)")))
        return false;
      port = m[1];
      return true;
    }));
    server_ = "127.0.0.1:" + port;
    stub_ = observer::Observer::NewStub(
        grpc::CreateChannel(server_, grpc::InsecureChannelCredentials()));
  }

  Result<RunOutput> hubble(std::vector<std::string> args) {
    args.insert(args.begin(), {CILIUM_HUBBLE_BINARY, "--server", server_});
    return run(args);
  }
  bool statusSays(const std::string& text) {
    return eventually([&] {
      auto r = hubble({"status"});
      return r.ok() && r->exit_code == 0 && r->out.find(text) != std::string::npos;
    });
  }
  std::vector<observer::GetFlowsResponse> flows() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    auto reader = stub_->GetFlows(&ctx, {});
    std::vector<observer::GetFlowsResponse> out;
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) out.push_back(r);
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }
  static std::set<std::string> nodesWithFlows(const std::vector<observer::GetFlowsResponse>& rs) {
    std::set<std::string> out;
    for (const auto& r : rs)
      if (r.has_flow() && r.flow().source().pod_name() == "client") out.insert(r.node_name());
    return out;
  }

  AgentOnNode nodes_[3];
  Process relay_;
  std::string server_;
  std::unique_ptr<observer::Observer::Stub> stub_;
};

TEST_F(RelayAgentsTest, FlowsOfThreeAgentsThroughTheRelay) {
  startRelay();
  ASSERT_TRUE(statusSays("Connected Nodes: 3/3"));
  for (auto& n : nodes_) ASSERT_TRUE(n.connect()) << n.name << n.node->log("agent");

  // Every node's flows, merged in time order (a flow reaches a ring promptly: GetFlows syncs).
  std::vector<observer::GetFlowsResponse> got;
  ASSERT_TRUE(eventually([&] {
    got = flows();
    return nodesWithFlows(got).size() == 3;
  }));
  for (size_t i = 1; i < got.size(); ++i)
    EXPECT_LE(hubble::relay::eventTimeNs(got[i - 1]), hubble::relay::eventTimeNs(got[i])) << i;

  auto observed = hubble({"observe", "--all", "--print-node-name", "--from-pod", "default/client"});
  ASSERT_TRUE(observed.ok());
  EXPECT_EQ(observed->exit_code, 0) << observed->err;
  // Flows carry the node's name with its cluster, as Hubble's.
  for (const char* n : {"[default/node-1]", "[default/node-2]", "[default/node-3]"})
    EXPECT_NE(observed->out.find(n), std::string::npos) << n << "\n" << observed->out;
  auto list = hubble({"list", "nodes"});
  ASSERT_TRUE(list.ok());
  for (const char* n : {"node-1", "node-2", "node-3"})
    EXPECT_NE(list->out.find(n), std::string::npos) << list->out;

  // node-2's agent dies: reported unavailable, the others still served.
  nodes_[1].agent->signal(SIGKILL);
  ASSERT_TRUE(nodes_[1].agent->wait(10s).ok());
  ASSERT_TRUE(statusSays("Connected Nodes: 2/3"));
  list = hubble({"list", "nodes"});
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(std::regex_search(list->out, std::regex("node-2\\s+Unavailable"))) << list->out;
  nodes_[0].connect();
  got = flows();
  ASSERT_FALSE(got.empty());
  ASSERT_TRUE(got[0].has_node_status());
  EXPECT_EQ(got[0].node_status().state_change(), ::relay::NODE_UNAVAILABLE);
  EXPECT_EQ(got[0].node_status().node_names(0), "node-2");
  EXPECT_EQ(nodesWithFlows(got), (std::set<std::string>{"default/node-1", "default/node-3"}));

  // Back: the relay reconnects on its own and serves node-2's new flows.
  nodes_[1].agent = nodes_[1].start("agent2");
  ASSERT_NE(nodes_[1].agent, nullptr);
  ASSERT_TRUE(statusSays("Connected Nodes: 3/3"));
  ASSERT_TRUE(eventually([&] {
    nodes_[1].connect();
    return nodesWithFlows(flows()).contains("default/node-2");
  }));
  EXPECT_EQ(relay_.stop(10s), 0);  // SIGTERM: a clean exit (the grace is for a loaded machine)
}

}  // namespace
}  // namespace cilium::testing
