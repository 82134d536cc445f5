// hubble-relay over three in-process Hubble servers (agent/hubble's FlowPipeline + HubbleServer
// on TCP, fed with datapath records as bpf_lxc writes them), discovered through the first
// node's peer.Peer/Notify: flows of every node in time order, cluster-wide --last/--first,
// filters passed through, ServerStatus/GetNodes/GetNamespaces, a node killed (reported
// unavailable, the others still served, a following stream keeps going) and restarted
// (reconnected, it joins the following stream), TLS with client certificates to the nodes, and
// the hubble CLI and the hubble-relay binary.
#include "agent/hubble/relay/relay.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/hubble/relay/merge.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::hubble::relay {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

// The cluster's Hubble servers as the first node's Peer service lists them.
class ClusterPeers : public PeerSource {
 public:
  std::vector<PeerInfo> peers() const override {
    std::lock_guard lock(mu_);
    return peers_;
  }
  void set(std::vector<PeerInfo> p) {
    std::lock_guard lock(mu_);
    peers_ = std::move(p);
  }

 private:
  mutable std::mutex mu_;
  std::vector<PeerInfo> peers_;
};

// One node: a flow pipeline and its Hubble server on 127.0.0.1.
struct Node {
  std::string name;
  int port = 0;
  StaticResolver res;
  std::unique_ptr<FlowPipeline> pipeline;
  std::unique_ptr<HubbleServer> server;

  // Starts on `port` (0: any), with `peers` served by its Peer service when set.
  void start(int want_port, const PeerSource* peers = nullptr, TlsOptions tls = {}) {
    res.addEndpoint({1, 256, "client-" + name, "default", {"k8s:app=client"}},
                    {*IpAddr::parse("10.200.0.11")});
    res.addEndpoint({2, 257, "server-" + name, "team-" + name, {"k8s:app=server"}},
                    {*IpAddr::parse("10.200.0.12")});
    PipelineOptions po;
    po.node_name = name;
    po.ring_capacity = 1000;
    pipeline = std::make_unique<FlowPipeline>(po, &res, &res);
    ASSERT_TRUE(pipeline->start().ok());
    ServerOptions so;
    so.tcp_address = "127.0.0.1:" + std::to_string(want_port);
    so.version = "node-version";
    so.tls = std::move(tls);
    server = std::make_unique<HubbleServer>(*pipeline, so);
    if (peers) server->setPeerSource(peers);
    auto st = server->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();
    port = server->tcpPort();
  }
  void kill() {
    server.reset();
    pipeline.reset();
  }
  // One flow per entry at monotonic time `ktime`; odd `dport`s are policy drops.
  void feed(const std::vector<uint64_t>& ktimes, uint16_t dport = 8080) {
    for (auto k : ktimes) {
      auto s = dport % 2 ? testing::policyDrop() : testing::EventSpec{};
      s.dport = dport;
      s.ktime_ns = k;
      pipeline->onEvent(testing::makeEvent(s));
    }
    ASSERT_TRUE(pipeline->flush(5s));
  }
};

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) nodes_[i].name = "node-" + std::to_string(i + 1);
    nodes_[0].start(0, &peers_);
    nodes_[1].start(0);
    nodes_[2].start(0);
    std::vector<PeerInfo> list;
    for (auto& n : nodes_) list.push_back({n.name, "127.0.0.1:" + std::to_string(n.port), ""});
    peers_.set(list);
    startRelay({});
  }
  void TearDown() override {
    relay_.reset();
    pool_.reset();
    for (auto& n : nodes_) n.kill();
  }

  void startRelay(ClientTls tls) {
    relay_.reset();
    pool_.reset();
    PoolOptions po;
    po.peer_service = "127.0.0.1:" + std::to_string(nodes_[0].port);
    po.retry_timeout = 500ms;
    po.tls = std::move(tls);
    auto pool = PeerPool::create(po);
    ASSERT_TRUE(pool.ok()) << pool.error().toString();
    pool_ = std::move(*pool);
    pool_->start();
    RelayOptions ro;
    ro.listen_address = "127.0.0.1:0";
    ro.sort_buffer_drain_timeout = 300ms;
    ro.version = "relay-version";
    relay_ = std::make_unique<RelayServer>(*pool_, ro);
    auto st = relay_->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();
    stub_ = observer::Observer::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(relay_->port()), grpc::InsecureChannelCredentials()));
  }

  // Restarts every node with a TLS listener that requires a client certificate `client_ca`
  // signed, its certificate from hubble-ca under Cilium's name; returns them as static peers.
  std::vector<PeerInfo> restartNodesWithTls(const std::string& dir, const std::string& client_ca) {
    std::vector<PeerInfo> list;
    for (int i = 0; i < 3; ++i) {
      auto& n = nodes_[i];
      n.kill();
      TlsOptions tls{true,
                     dir + "/" + n.name + ".crt",
                     dir + "/" + n.name + ".key",
                     {dir + "/" + client_ca},
                     hubbleTlsServerName("default", n.name)};
      n.start(0, i == 0 ? &peers_ : nullptr, tls);
      list.push_back({n.name, "127.0.0.1:" + std::to_string(n.port), tls.server_name});
    }
    peers_.set(list);
    return list;
  }

  observer::ServerStatusResponse status() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    observer::ServerStatusResponse r;
    auto st = stub_->ServerStatus(&ctx, {}, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }
  bool connected(uint32_t n) {
    return eventually([&] { return status().num_connected_nodes().value() == n; });
  }

  std::vector<observer::GetFlowsResponse> getFlows(const observer::GetFlowsRequest& req,
                                                   grpc::Status* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    auto reader = stub_->GetFlows(&ctx, req);
    std::vector<observer::GetFlowsResponse> got;
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) got.push_back(r);
    auto st = reader->Finish();
    if (out)
      *out = st;
    else
      EXPECT_TRUE(st.ok()) << st.error_message();
    return got;
  }

  static std::vector<observer::GetFlowsResponse> flowsOnly(
      const std::vector<observer::GetFlowsResponse>& rs) {
    std::vector<observer::GetFlowsResponse> out;
    for (const auto& r : rs)
      if (r.has_flow()) out.push_back(r);
    return out;
  }
  static std::vector<std::string> nodeNames(const std::vector<observer::GetFlowsResponse>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs)
      if (r.has_flow()) out.push_back(r.node_name());
    return out;
  }

  // Feeds `per_node` flows to each node, interleaved in time: node i's j-th flow at
  // base + (3j + i) ms.
  void feedInterleaved(int per_node) {
    const uint64_t base = monotonicNs() - 10'000'000'000ULL;
    for (int i = 0; i < 3; ++i) {
      std::vector<uint64_t> ks;
      for (int j = 0; j < per_node; ++j) ks.push_back(base + uint64_t(3 * j + i) * 1'000'000);
      nodes_[i].feed(ks, static_cast<uint16_t>(8080 + i));
    }
  }

  ClusterPeers peers_;
  Node nodes_[3];
  std::unique_ptr<PeerPool> pool_;
  std::unique_ptr<RelayServer> relay_;
  std::unique_ptr<observer::Observer::Stub> stub_;
};

TEST_F(RelayTest, FlowsOfEveryNodeInTimeOrder) {
  feedInterleaved(50);
  ASSERT_TRUE(connected(3));
  auto got = flowsOnly(getFlows({}));
  ASSERT_EQ(got.size(), 150u);
  for (size_t i = 1; i < got.size(); ++i)
    EXPECT_LE(eventTimeNs(got[i - 1]), eventTimeNs(got[i])) << "out of order at " << i;
  // Interleaved feeding: the merged stream cycles through the nodes.
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i].node_name(), "node-" + std::to_string(i % 3 + 1)) << i;
  EXPECT_EQ(got[0].flow().source().pod_name(), "client-node-1");
}

TEST_F(RelayTest, NumberCountsOverTheCluster) {
  feedInterleaved(10);
  ASSERT_TRUE(connected(3));
  observer::GetFlowsRequest last;
  last.set_number(4);
  // The last 4 of the 30: node-3's 9th (index 26), then 27, 28, 29.
  EXPECT_EQ(nodeNames(getFlows(last)),
            (std::vector<std::string>{"node-3", "node-1", "node-2", "node-3"}));
  observer::GetFlowsRequest first;
  first.set_number(4);
  first.set_first(true);
  EXPECT_EQ(nodeNames(getFlows(first)),
            (std::vector<std::string>{"node-1", "node-2", "node-3", "node-1"}));
}

TEST_F(RelayTest, FiltersGoToTheNodesAndBadRequestsAreRefused) {
  feedInterleaved(4);  // node-2 (port 8081) sends policy drops, the others forwarded flows
  ASSERT_TRUE(connected(3));
  observer::GetFlowsRequest drops;
  drops.add_whitelist()->add_verdict(flow::DROPPED);
  EXPECT_EQ(nodeNames(getFlows(drops)),
            (std::vector<std::string>{"node-2", "node-2", "node-2", "node-2"}));
  observer::GetFlowsRequest masked;
  masked.mutable_field_mask()->add_paths("verdict");
  auto m = flowsOnly(getFlows(masked));
  ASSERT_EQ(m.size(), 12u);
  EXPECT_EQ(m[0].flow().source().pod_name(), "");  // trimmed by the node
  for (size_t i = 1; i < m.size(); ++i) EXPECT_LE(eventTimeNs(m[i - 1]), eventTimeNs(m[i]));

  grpc::Status st;
  observer::GetFlowsRequest bad;
  bad.add_whitelist()->add_source_ip("10.0.0.300");
  getFlows(bad, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("source_ip"), std::string::npos) << st.error_message();
  observer::GetFlowsRequest both;
  both.set_first(true);
  both.set_follow(true);
  getFlows(both, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext ctx;
  auto reader = stub_->GetAgentEvents(&ctx, {});
  observer::GetAgentEventsResponse ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(RelayTest, StatusNodesAndNamespacesCoverTheCluster) {
  feedInterleaved(5);
  ASSERT_TRUE(connected(3));
  auto s = status();
  EXPECT_EQ(s.num_connected_nodes().value(), 3u);
  EXPECT_EQ(s.num_unavailable_nodes().value(), 0u);
  EXPECT_EQ(s.unavailable_nodes_size(), 0);
  EXPECT_EQ(s.num_flows(), 15u);
  EXPECT_EQ(s.seen_flows(), 15u);
  EXPECT_EQ(s.max_flows(), 3u * nodes_[0].pipeline->ring().capacity());
  EXPECT_EQ(s.version(), "relay-version");

  grpc::ClientContext ctx;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&ctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(nodes.nodes(i).name(), nodes_[i].name);
    EXPECT_EQ(nodes.nodes(i).state(), ::relay::NODE_CONNECTED);
    EXPECT_EQ(nodes.nodes(i).num_flows(), 5u);
    EXPECT_EQ(nodes.nodes(i).version(), "node-version");
    EXPECT_EQ(nodes.nodes(i).address(), "127.0.0.1:" + std::to_string(nodes_[i].port));
  }

  grpc::ClientContext nctx;
  observer::GetNamespacesResponse ns;
  ASSERT_TRUE(stub_->GetNamespaces(&nctx, {}, &ns).ok());
  std::vector<std::string> names;
  for (const auto& n : ns.namespaces()) names.push_back(n.namespace_());
  EXPECT_EQ(names,
            (std::vector<std::string>{"default", "team-node-1", "team-node-2", "team-node-3"}));
}

// A following client keeps its stream while a node dies and comes back; status and nodes say
// which node is missing meanwhile.
TEST_F(RelayTest, NodeKilledIsReportedAndRestartedNodeRejoins) {
  ASSERT_TRUE(connected(3));
  std::mutex mu;
  std::vector<observer::GetFlowsResponse> followed;
  grpc::ClientContext fctx;
  observer::GetFlowsRequest freq;
  freq.set_follow(true);
  auto reader = stub_->GetFlows(&fctx, freq);
  std::thread follower([&] {
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) {
      std::lock_guard lock(mu);
      followed.push_back(r);
    }
  });
  auto seen = [&](auto pred) {
    return eventually([&] {
      std::lock_guard lock(mu);
      for (const auto& r : followed)
        if (pred(r)) return true;
      return false;
    });
  };
  auto flowFrom = [](const std::string& node, uint16_t port) {
    return [=](const observer::GetFlowsResponse& r) {
      return r.has_flow() && r.node_name() == node &&
             r.flow().l4().tcp().destination_port() == port;
    };
  };
  // The follow request has reached every node before flows are fed (else they are history).
  ASSERT_TRUE(eventually([&] {
    for (auto& n : nodes_) n.feed({monotonicNs()}, 9000);
    std::lock_guard lock(mu);
    std::set<std::string> from;
    for (const auto& r : followed)
      if (r.has_flow()) from.insert(r.node_name());
    return from.size() == 3;
  }));

  const int port2 = nodes_[1].port;
  nodes_[1].kill();
  ASSERT_TRUE(connected(2));
  auto s = status();
  EXPECT_EQ(s.num_unavailable_nodes().value(), 1u);
  ASSERT_EQ(s.unavailable_nodes_size(), 1);
  EXPECT_EQ(s.unavailable_nodes(0), "node-2");
  EXPECT_TRUE(seen([](const observer::GetFlowsResponse& r) {
    return r.has_node_status() &&
           (r.node_status().state_change() == ::relay::NODE_ERROR ||
            r.node_status().state_change() == ::relay::NODE_UNAVAILABLE) &&
           r.node_status().node_names(0) == "node-2";
  }));
  grpc::ClientContext nctx;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&nctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 3);
  EXPECT_EQ(nodes.nodes(1).state(), ::relay::NODE_UNAVAILABLE);
  EXPECT_EQ(nodes.nodes(0).state(), ::relay::NODE_CONNECTED);

  // History from the two others, with the missing node named first.
  nodes_[0].feed({monotonicNs()}, 9002);
  nodes_[2].feed({monotonicNs()}, 9002);
  auto hist = getFlows({});
  ASSERT_FALSE(hist.empty());
  ASSERT_TRUE(hist[0].has_node_status());
  EXPECT_EQ(hist[0].node_status().state_change(), ::relay::NODE_UNAVAILABLE);
  EXPECT_EQ(hist[0].node_status().node_names(0), "node-2");
  std::set<std::string> from;
  for (const auto& n : nodeNames(hist)) from.insert(n);
  EXPECT_EQ(from, (std::set<std::string>{"node-1", "node-3"}));
  // The following stream still serves the others.
  EXPECT_TRUE(seen(flowFrom("node-1", 9002)));

  nodes_[1].start(port2);
  ASSERT_EQ(nodes_[1].port, port2);
  ASSERT_TRUE(connected(3));
  EXPECT_TRUE(seen([](const observer::GetFlowsResponse& r) {
    return r.has_node_status() && r.node_status().state_change() == ::relay::NODE_CONNECTED &&
           r.node_status().node_names(0) == "node-2";
  }));
  // Rejoined: its new flows reach the following client (fed until the stream to it is open).
  ASSERT_TRUE(eventually([&] {
    nodes_[1].feed({monotonicNs()}, 9004);
    std::lock_guard lock(mu);
    for (const auto& r : followed)
      if (flowFrom("node-2", 9004)(r)) return true;
    return false;
  }));
  fctx.TryCancel();
  follower.join();
}

// What openssl makes for the test: a CA per side, the nodes' certificate under Cilium's name.
class Pki {
 public:
  explicit Pki(std::string dir) : d_(std::move(dir)) {}
  void gen(const std::string& name, const std::string& cn, const std::string& ca) {
    auto run = [](const std::string& cmd) {
      ASSERT_EQ(std::system((cmd + " 2>/dev/null").c_str()), 0) << cmd;
    };
    if (!std::ifstream(d_ + "/" + ca + ".crt"))
      run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + ca + " -keyout " + d_ +
          "/" + ca + ".key -out " + d_ + "/" + ca + ".crt");
    run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + cn + " -keyout " + d_ + "/" + name +
        ".key -out " + d_ + "/" + name + ".csr");
    run("printf 'subjectAltName=DNS:" + cn + "' > " + d_ + "/" + name + ".ext");
    run("openssl x509 -req -in " + d_ + "/" + name + ".csr -CA " + d_ + "/" + ca + ".crt -CAkey " +
        d_ + "/" + ca + ".key -CAcreateserial -days 1 -extfile " + d_ + "/" + name + ".ext -out " +
        d_ + "/" + name + ".crt");
  }
  std::string file(const std::string& f) const { return d_ + "/" + f; }

 private:
  std::string d_;
};

// TLS between relay and nodes as Cilium's chart sets it up: the nodes require a client
// certificate from the relay's CA; the relay checks the nodes' names against their CA. The
// relay finds the nodes through node-1's Peer service on its TLS listener (the chart's
// hubble-peer service), with the same client certificate, checking the name Cilium's relay
// checks there (hubble-peer.<cluster>.hubble-grpc.cilium.io, which node-1's wildcard covers).
TEST_F(RelayTest, TlsWithClientCertificatesToTheNodes) {
  cilium::testing::TempDir dir;
  Pki pki(dir.path());
  pki.gen("node-1", "*.default.hubble-grpc.cilium.io", "hubble-ca");
  for (int i = 1; i < 3; ++i)
    pki.gen(nodes_[i].name, hubbleTlsServerName("default", nodes_[i].name), "hubble-ca");
  pki.gen("relay-client", "*.hubble-relay.cilium.io", "relay-ca");
  pki.gen("stranger", "*.hubble-relay.cilium.io", "other-ca");
  auto list = restartNodesWithTls(dir.path(), "relay-ca.crt");
  // Nodes from node-1's Peer service over TCP (and, with `static_peers`, from the list too).
  auto tlsRelay = [&](ClientTls tls, bool static_peers, std::string cluster = "default") {
    relay_.reset();
    pool_.reset();
    PoolOptions po;
    po.peer_service = "127.0.0.1:" + std::to_string(nodes_[0].port);
    if (static_peers) po.static_peers = list;
    po.retry_timeout = 500ms;
    po.tls = std::move(tls);
    po.cluster_name = std::move(cluster);
    auto pool = PeerPool::create(po);
    ASSERT_TRUE(pool.ok()) << pool.error().toString();
    pool_ = std::move(*pool);
    pool_->start();
    RelayOptions ro;
    ro.listen_address = "127.0.0.1:0";
    relay_ = std::make_unique<RelayServer>(*pool_, ro);
    ASSERT_TRUE(relay_->start().ok());
    stub_ = observer::Observer::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(relay_->port()), grpc::InsecureChannelCredentials()));
  };
  const ClientTls good{true,
                       pki.file("relay-client.crt"),
                       pki.file("relay-client.key"),
                       {pki.file("hubble-ca.crt")}};
  tlsRelay(good, false);
  EXPECT_TRUE(pool_->peerServiceTls());
  EXPECT_EQ(pool_->peerServiceTlsName(), "hubble-peer.default.hubble-grpc.cilium.io");
  ASSERT_TRUE(connected(3));
  EXPECT_TRUE(pool_->status().peer_service_connected);
  feedInterleaved(2);
  EXPECT_EQ(flowsOnly(getFlows({})).size(), 6u);
  grpc::ClientContext ctx;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&ctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 3);
  EXPECT_TRUE(nodes.nodes(0).tls().enabled());
  EXPECT_EQ(nodes.nodes(0).tls().server_name(), "node-1.default.hubble-grpc.cilium.io");

  // A peer service whose certificate lacks the name for this cluster is not trusted: nothing
  // is discovered.
  tlsRelay(good, false, "prod");
  EXPECT_EQ(pool_->peerServiceTlsName(), "hubble-peer.prod.hubble-grpc.cilium.io");
  EXPECT_FALSE(eventually([&] { return !pool_->nodes().empty(); }, 1500ms));
  EXPECT_FALSE(pool_->status().peer_service_connected);

  // A client certificate from another CA is turned away by every node and the peer service.
  tlsRelay({true, pki.file("stranger.crt"), pki.file("stranger.key"), {pki.file("hubble-ca.crt")}},
           true);
  EXPECT_FALSE(eventually([&] { return status().num_connected_nodes().value() > 0; }, 1500ms));
  EXPECT_EQ(status().num_unavailable_nodes().value(), 3u);
  EXPECT_FALSE(pool_->status().peer_service_connected);
  // Without TLS the nodes' TLS listeners do not answer either.
  tlsRelay({}, true);
  EXPECT_FALSE(pool_->peerServiceTls());
  EXPECT_FALSE(eventually([&] { return status().num_connected_nodes().value() > 0; }, 1500ms));
  EXPECT_FALSE(pool_->status().peer_service_connected);
  // Missing CA or unreadable files are refused at start, naming the flag.
  auto bad = PeerPool::create({"", {}, {true, "", "", {}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--tls-hubble-server-ca-files"), std::string::npos);
  auto missing = PeerPool::create({"", {}, {true, "", "", {dir.path() + "/none.crt"}}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("none.crt"), std::string::npos);
}

// The relay's own listener with TLS and client certificates (Cilium's --tls-relay-server-*,
// --tls-relay-client-ca-files), over nodes reached with mTLS: a client with a certificate from
// the cluster's CA gets every node's flows; a client without one, with one from another CA,
// one that does not trust the relay's CA or expects another name, and a plaintext one are
// refused. The hubble CLI connects with its --tls flags; the binary's flags wire it up.
TEST_F(RelayTest, RelayServesTlsWithClientCertificates) {
  cilium::testing::TempDir dir;
  Pki pki(dir.path());
  for (auto& n : nodes_) pki.gen(n.name, hubbleTlsServerName("default", n.name), "hubble-ca");
  pki.gen("relay-client", "*.hubble-relay.cilium.io", "hubble-ca");
  pki.gen("relay-server", "*.hubble-relay.cilium.io", "hubble-ca");
  pki.gen("hubble-cli", "hubble-cli.hubble-relay.cilium.io", "hubble-ca");
  pki.gen("stranger", "hubble-cli.hubble-relay.cilium.io", "other-ca");
  auto list = restartNodesWithTls(dir.path(), "hubble-ca.crt");
  relay_.reset();
  pool_.reset();
  PoolOptions po;
  po.static_peers = list;
  po.retry_timeout = 500ms;
  po.tls = {true,
            pki.file("relay-client.crt"),
            pki.file("relay-client.key"),
            {pki.file("hubble-ca.crt")}};
  auto pool = PeerPool::create(po);
  ASSERT_TRUE(pool.ok()) << pool.error().toString();
  pool_ = std::move(*pool);
  pool_->start();
  RelayOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.sort_buffer_drain_timeout = 300ms;
  ro.tls = {true,
            pki.file("relay-server.crt"),
            pki.file("relay-server.key"),
            {pki.file("hubble-ca.crt")},
            ""};
  relay_ = std::make_unique<RelayServer>(*pool_, ro);
  auto st = relay_->start();
  ASSERT_TRUE(st.ok()) << st.error().toString();
  const std::string addr = "127.0.0.1:" + std::to_string(relay_->port());
  const std::string name = "ui.hubble-relay.cilium.io";
  auto read = [&](const std::string& f) {
    std::ifstream in(pki.file(f));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto channel = [&](std::shared_ptr<grpc::ChannelCredentials> creds, const std::string& sni) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(sni);
    return observer::Observer::NewStub(grpc::CreateCustomChannel(addr, creds, args));
  };
  auto statusVia = [&](observer::Observer::Stub& stub, observer::ServerStatusResponse* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    return stub.ServerStatus(&ctx, {}, out);
  };
  auto ssl = [&](const std::string& ca, const std::string& cert) {
    return grpc::SslCredentials({read(ca), cert.empty() ? "" : read(cert + ".key"),
                                 cert.empty() ? "" : read(cert + ".crt")});
  };
  stub_ = channel(ssl("hubble-ca.crt", "hubble-cli"), name);
  ASSERT_TRUE(connected(3));
  feedInterleaved(2);
  EXPECT_EQ(flowsOnly(getFlows({})).size(), 6u);

  observer::ServerStatusResponse ignored;
  auto no_cert = channel(ssl("hubble-ca.crt", ""), name);
  EXPECT_FALSE(statusVia(*no_cert, &ignored).ok());
  auto other_ca_cert = channel(ssl("hubble-ca.crt", "stranger"), name);
  EXPECT_FALSE(statusVia(*other_ca_cert, &ignored).ok());
  auto wrong_roots = channel(ssl("other-ca.crt", "hubble-cli"), name);
  EXPECT_FALSE(statusVia(*wrong_roots, &ignored).ok());
  auto wrong_name = channel(ssl("hubble-ca.crt", "hubble-cli"), "relay.example.com");
  EXPECT_FALSE(statusVia(*wrong_name, &ignored).ok());
  auto plain =
      observer::Observer::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(statusVia(*plain, &ignored).ok());

  // The hubble CLI with Hubble's TLS flags; without its certificate it is turned away.
  const std::vector<std::string> tls_flags = {"--tls",
                                              "--tls-ca-cert-files",
                                              pki.file("hubble-ca.crt"),
                                              "--tls-client-cert-file",
                                              pki.file("hubble-cli.crt"),
                                              "--tls-client-key-file",
                                              pki.file("hubble-cli.key"),
                                              "--tls-server-name",
                                              name};
  auto hubble = [&](std::vector<std::string> args, std::vector<std::string> flags) {
    args.insert(args.begin(), flags.begin(), flags.end());
    args.insert(args.begin(), {CILIUM_HUBBLE_BINARY, "--timeout", "3", "--server", addr});
    return cilium::run(args);
  };
  auto out = hubble({"observe", "--last", "100", "--print-node-name"}, tls_flags);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, 0) << out->err;
  for (const char* n : {"[node-1]", "[node-2]", "[node-3]"})
    EXPECT_NE(out->out.find(n), std::string::npos) << n << " in\n" << out->out;
  auto anon = hubble({"status"}, {"--tls", "--tls-ca-cert-files", pki.file("hubble-ca.crt"),
                                  "--tls-server-name", name});
  ASSERT_TRUE(anon.ok());
  EXPECT_NE(anon->exit_code, 0) << anon->out;
  auto cleartext = hubble({"status"}, {});
  ASSERT_TRUE(cleartext.ok());
  EXPECT_NE(cleartext->exit_code, 0) << cleartext->out;

  // The binary: the same setup from its flags; the CLI reaches it through tls://.
  SpawnOptions so;
  so.stderr_path = dir.file("relay.err");
  std::vector<std::string> argv = {CILIUM_RELAY_BINARY,
                                   "--listen-address",
                                   "127.0.0.1:0",
                                   "--peer-service",
                                   "",
                                   "--tls-hubble-client-cert-file",
                                   pki.file("relay-client.crt"),
                                   "--tls-hubble-client-key-file",
                                   pki.file("relay-client.key"),
                                   "--tls-hubble-server-ca-files",
                                   pki.file("hubble-ca.crt"),
                                   "--tls-relay-server-cert-file",
                                   pki.file("relay-server.crt"),
                                   "--tls-relay-server-key-file",
                                   pki.file("relay-server.key"),
                                   "--tls-relay-client-ca-files",
                                   pki.file("hubble-ca.crt"),
                                   "--retry-timeout",
                                   "1s",
                                   "--health-listen-address",
                                   ""};
  for (const auto& p : list) {
    argv.push_back("--static-peer");
    argv.push_back(p.name + "=" + p.address);
  }
  auto proc = cilium::spawn(argv, so);
  ASSERT_TRUE(proc.ok()) << proc.error().toString();
  std::string port;
  ASSERT_TRUE(eventually([&] {
    std::ifstream in(dir.file("relay.err"));
    std::stringstream ss;
    ss << in.rdbuf();
    std::smatch m;
    std::string text = ss.str();
    if (!std::regex_search(text, m,
                           std::regex("listening address=\\S+ port=(\\d+) tls=true mtls=true")))
      return false;
    port = m[1];
    return true;
  }));
  std::vector<std::string> bin_status = {CILIUM_HUBBLE_BINARY, "--server",
                                         "tls://127.0.0.1:" + port};
  bin_status.insert(bin_status.end(), tls_flags.begin() + 1, tls_flags.end());
  bin_status.push_back("status");
  ASSERT_TRUE(eventually([&] {
    auto r = cilium::run(bin_status);
    return r.ok() && r->out.find("Connected Nodes: 3/3") != std::string::npos;
  }));
  EXPECT_EQ(proc->stop(10s), 0);
  // Server TLS is on by default and needs its certificate: no silent plaintext.
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--disable-client-tls"},
        {"--disable-client-tls", "--tls-relay-server-cert-file", pki.file("relay-server.crt")},
        {"--disable-client-tls", "--disable-server-tls", "--tls-relay-client-ca-files",
         pki.file("hubble-ca.crt")}}) {
    bad.insert(bad.begin(), {CILIUM_RELAY_BINARY, "--listen-address", "127.0.0.1:0"});
    auto r = cilium::run(bad);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 2) << r->err;
    EXPECT_NE(r->err.find("--tls-relay-"), std::string::npos) << r->err;
  }
}

// The hubble CLI, unchanged, against the relay; and the hubble-relay binary with its flags.
TEST_F(RelayTest, HubbleCliAndRelayBinary) {
  feedInterleaved(3);
  ASSERT_TRUE(connected(3));
  const std::string server = "127.0.0.1:" + std::to_string(relay_->port());
  auto hubble = [&](std::vector<std::string> args, const std::string& srv) {
    args.insert(args.begin(), {CILIUM_HUBBLE_BINARY, "--server", srv});
    auto r = cilium::runChecked(args);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().toString());
    return r.ok() ? *r : std::string();
  };
  auto out = hubble({"observe", "--last", "100", "--print-node-name"}, server);
  for (const char* n : {"[node-1]", "[node-2]", "[node-3]"})
    EXPECT_NE(out.find(n), std::string::npos) << n << " in\n" << out;
  EXPECT_LT(out.find("[node-1]"), out.find("[node-2]"));
  auto list = hubble({"list", "nodes"}, server);
  for (const char* n : {"node-1", "node-2", "node-3"})
    EXPECT_NE(list.find(n), std::string::npos) << list;
  EXPECT_NE(list.find("Connected"), std::string::npos) << list;
  EXPECT_NE(hubble({"status"}, server).find("Connected Nodes: 3/3"), std::string::npos);
  // Agent and debug events come from a node (the relay does not serve them, as Cilium's).
  flow::AgentEvent ev;
  ev.set_type(flow::ENDPOINT_CREATED);
  ev.mutable_endpoint_update()->set_id(7);
  ev.mutable_endpoint_update()->set_namespace_("default");
  ev.mutable_endpoint_update()->set_pod_name("web");
  nodes_[0].pipeline->addAgentEvent(ev);
  const std::string node1 = "127.0.0.1:" + std::to_string(nodes_[0].port);
  auto events = hubble({"observe", "agent-events", "--last", "5"}, node1);
  EXPECT_NE(events.find(": ENDPOINT_CREATED (id: 7, namespace: default, pod name: web)\n"),
            std::string::npos)
      << events;
  auto table = hubble({"observe", "agent-events", "-o", "table", "--print-node-name"}, node1);
  EXPECT_EQ(table.rfind("TIMESTAMP", 0), 0u) << table;
  EXPECT_NE(table.find("node-1"), std::string::npos) << table;
  EXPECT_EQ(hubble({"observe", "debug-events"}, node1), "");  // none recorded
  auto debug =
      cilium::run({CILIUM_HUBBLE_BINARY, "--server", server, "--debug", "observe", "agent-events"});
  ASSERT_TRUE(debug.ok());
  EXPECT_NE(debug->exit_code, 0);  // the relay answers UNIMPLEMENTED
  EXPECT_NE(debug->err.find("level=debug msg=\"Sending GetAgentEvents request\""),
            std::string::npos)
      << debug->err;
  EXPECT_NE(debug->err.find("does not serve agent events"), std::string::npos) << debug->err;

  // The binary: discovery through node-1's Peer service, the port from its log.
  cilium::testing::TempDir dir;
  SpawnOptions so;
  so.stderr_path = dir.file("relay.err");
  auto proc = cilium::spawn(
      {CILIUM_RELAY_BINARY, "--listen-address", "127.0.0.1:0", "--peer-service",
       "127.0.0.1:" + std::to_string(nodes_[0].port), "--disable-client-tls",
       "--disable-server-tls", "--retry-timeout", "1s", "--health-listen-address", "127.0.0.1:0",
       "--metrics-listen-address", "127.0.0.1:0", "--cluster-name", "default"},
      so);
  ASSERT_TRUE(proc.ok()) << proc.error().toString();
  std::string port;
  ASSERT_TRUE(eventually([&] {
    std::ifstream in(dir.file("relay.err"));
    std::stringstream ss;
    ss << in.rdbuf();
    std::smatch m;
    std::string text = ss.str();
    if (!std::regex_search(text, m, std::regex("hubble-relay listening address=\\S+ port=(\\d+)")))
      return false;
    port = m[1];
    return true;
  }));
  const std::string bin_server = "127.0.0.1:" + port;
  ASSERT_TRUE(eventually([&] {
    auto r = cilium::run({CILIUM_HUBBLE_BINARY, "--server", bin_server, "status"});
    return r.ok() && r->out.find("Connected Nodes: 3/3") != std::string::npos;
  }));
  auto flows = hubble({"observe", "--last", "4", "-o", "json"}, bin_server);
  EXPECT_EQ(std::count(flows.begin(), flows.end(), '\n'), 4) << flows;
  EXPECT_EQ(proc->stop(10s), 0);
  // Bad flags are usage errors naming the flag.
  auto bad = cilium::run({CILIUM_RELAY_BINARY, "--sort-buffer-drain-timeout", "soon"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_NE(bad->err.find("--sort-buffer-drain-timeout"), std::string::npos) << bad->err;
  for (std::vector<std::string> flags : {std::vector<std::string>{"--cluster-name", "Prod_1"},
                                         {"--cluster-name", ""},
                                         {"--metrics-listen-address", "9966"},
                                         {"--health-listen-address", "localhost"}}) {
    flags.insert(flags.begin(),
                 {CILIUM_RELAY_BINARY, "--disable-server-tls", "--disable-client-tls"});
    auto r = cilium::run(flags);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 2) << r->err;
    EXPECT_NE(r->err.find(flags[3]), std::string::npos) << r->err;
  }
  auto notls =
      cilium::run({CILIUM_RELAY_BINARY, "--listen-address", "127.0.0.1:0", "--disable-server-tls"});
  ASSERT_TRUE(notls.ok());
  EXPECT_NE(notls->exit_code, 0);
  EXPECT_NE(notls->err.find("--tls-hubble-server-ca-files"), std::string::npos) << notls->err;
}

// grpc.health.v1 as the relay's readiness probe asks it: SERVING while the peer service answers
// and a node is reachable, NOT_SERVING once they are gone; on the relay's own port and on the
// plaintext health port.
TEST_F(RelayTest, HealthFollowsThePeerServiceAndTheNodes) {
  relay_.reset();
  RelayOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.health_listen_address = "127.0.0.1:0";
  ro.health_interval = 50ms;
  relay_ = std::make_unique<RelayServer>(*pool_, ro);
  ASSERT_TRUE(relay_->start().ok());
  ASSERT_GT(relay_->healthPort(), 0);
  stub_ = observer::Observer::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(relay_->port()), grpc::InsecureChannelCredentials()));
  auto check = [](int port) {
    auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 2s);
    grpc::health::v1::HealthCheckResponse r;
    auto st = stub->Check(&ctx, {}, &r);
    return st.ok() ? r.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
  };
  using HS = grpc::health::v1::HealthCheckResponse;
  EXPECT_TRUE(eventually([&] { return check(relay_->healthPort()) == HS::SERVING; }));
  EXPECT_EQ(check(relay_->port()), HS::SERVING);
  // One node gone: still serving (the others are reachable, the peer service answers).
  nodes_[2].kill();
  ASSERT_TRUE(connected(2));
  EXPECT_EQ(check(relay_->healthPort()), HS::SERVING);
  // The peer service's node gone too: the relay cannot learn the cluster any more.
  nodes_[0].kill();
  EXPECT_TRUE(eventually([&] { return check(relay_->healthPort()) == HS::NOT_SERVING; }));
  EXPECT_EQ(check(relay_->port()), HS::NOT_SERVING);
  EXPECT_FALSE(relay_->serving());
}

// Prometheus on --metrics-listen-address: the pool's peers per connection state and the gRPC
// server's calls, messages and codes, under the names Cilium's relay exports.
TEST_F(RelayTest, MetricsCountPeersAndCalls) {
  relay_.reset();
  RelayOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_listen_address = "127.0.0.1:0";
  ro.sort_buffer_drain_timeout = 300ms;
  relay_ = std::make_unique<RelayServer>(*pool_, ro);
  ASSERT_TRUE(relay_->start().ok());
  stub_ = observer::Observer::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(relay_->port()), grpc::InsecureChannelCredentials()));
  httplib::Client http("127.0.0.1", relay_->metricsPort());
  auto scrape = [&] {
    auto r = http.Get("/metrics");
    return r && r->status == 200 ? r->body : std::string();
  };
  auto value = [&](const std::string& text, const std::string& series) -> double {
    auto at = text.find(series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 1));
  };
  ASSERT_TRUE(connected(3));
  EXPECT_TRUE(eventually([&] {
    return value(scrape(), "hubble_relay_pool_peer_connection_status{status=\"READY\"}") == 3;
  }));
  feedInterleaved(2);
  observer::GetFlowsRequest req;
  req.set_number(4);
  EXPECT_EQ(flowsOnly(getFlows(req)).size(), 4u);
  grpc::Status refused;
  observer::GetFlowsRequest bad;
  bad.add_whitelist()->add_source_ip("10.0.0.300");
  getFlows(bad, &refused);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto text = scrape();
  const std::string flows =
      "grpc_method=\"GetFlows\",grpc_service=\"observer.Observer\","
      "grpc_type=\"server_stream\"";
  EXPECT_EQ(value(text, "grpc_server_started_total{" + flows + "}"), 2) << text;
  EXPECT_EQ(value(text, "grpc_server_handled_total{grpc_code=\"OK\"," + flows + "}"), 1) << text;
  EXPECT_EQ(value(text, "grpc_server_handled_total{grpc_code=\"InvalidArgument\"," + flows + "}"),
            1)
      << text;
  EXPECT_EQ(value(text, "grpc_server_msg_sent_total{" + flows + "}"), 4) << text;
  EXPECT_EQ(value(text, "grpc_server_msg_received_total{" + flows + "}"), 2) << text;
  // ServerStatus calls made by connected() are unary.
  EXPECT_GE(value(text,
                  "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"ServerStatus\","
                  "grpc_service=\"observer.Observer\",grpc_type=\"unary\"}"),
            1)
      << text;
  // A node gone leaves READY.
  nodes_[1].kill();
  EXPECT_TRUE(eventually([&] {
    return value(scrape(), "hubble_relay_pool_peer_connection_status{status=\"READY\"}") == 2;
  }));
  EXPECT_EQ(value(scrape(), "hubble_relay_pool_peer_connection_status{status=\"NIL_CONNECTION\"}"),
            0);
}

// --cluster-name: nodes announced without a cluster are named "<cluster>/<node>" (Hubble's
// Fullname; the default cluster keeps bare names), and TLS to them checks
// "<node>.<cluster>.hubble-grpc.cilium.io" when the peer announces no name: a relay that
// assumed the default cluster would refuse the nodes of cluster "prod".
TEST_F(RelayTest, ClusterNameNamesTheNodesAndTheirTlsNames) {
  cilium::testing::TempDir dir;
  Pki pki(dir.path());
  for (auto& n : nodes_) pki.gen(n.name, hubbleTlsServerName("prod", n.name), "hubble-ca");
  pki.gen("relay-client", "*.hubble-relay.cilium.io", "hubble-ca");
  std::vector<PeerInfo> list;
  for (int i = 0; i < 3; ++i) {
    auto& n = nodes_[i];
    n.kill();
    n.start(0, nullptr,
            {true,
             pki.file(n.name + ".crt"),
             pki.file(n.name + ".key"),
             {pki.file("hubble-ca.crt")},
             hubbleTlsServerName("prod", n.name)});
    list.push_back({n.name, "127.0.0.1:" + std::to_string(n.port), ""});  // no TLS name
  }
  auto relayOf = [&](const std::string& cluster) {
    relay_.reset();
    pool_.reset();
    PoolOptions po;
    po.static_peers = list;
    po.retry_timeout = 500ms;
    po.cluster_name = cluster;
    po.tls = {true,
              pki.file("relay-client.crt"),
              pki.file("relay-client.key"),
              {pki.file("hubble-ca.crt")}};
    auto pool = PeerPool::create(po);
    ASSERT_TRUE(pool.ok()) << pool.error().toString();
    pool_ = std::move(*pool);
    pool_->start();
    RelayOptions ro;
    ro.listen_address = "127.0.0.1:0";
    relay_ = std::make_unique<RelayServer>(*pool_, ro);
    ASSERT_TRUE(relay_->start().ok());
    stub_ = observer::Observer::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(relay_->port()), grpc::InsecureChannelCredentials()));
  };
  relayOf("prod");
  ASSERT_TRUE(connected(3));
  grpc::ClientContext ctx;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&ctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 3);
  EXPECT_EQ(nodes.nodes(0).name(), "prod/node-1");
  EXPECT_EQ(nodes.nodes(0).tls().server_name(), "node-1.prod.hubble-grpc.cilium.io");
  EXPECT_EQ(status().unavailable_nodes_size(), 0);
  // The same nodes through a relay of the default cluster: bare names, and the certificates
  // (for cluster prod) do not match the names it checks.
  relayOf("default");
  EXPECT_FALSE(eventually([&] { return status().num_connected_nodes().value() > 0; }, 1500ms));
  EXPECT_EQ(status().unavailable_nodes(0), "node-1");
}

namespace {

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces `to` with `from` as a Secret update does: a new file renamed over the old one.
void replaceFile(const std::string& from, const std::string& to) {
  std::ofstream(to + ".new") << readAll(from);
  ASSERT_EQ(::rename((to + ".new").c_str(), to.c_str()), 0);
}

}  // namespace

// Renewed certificates are picked up without a restart, as Cilium's relay does: the relay's
// client certificate to the nodes (its channels are made anew) and its own server certificate
// (new handshakes use it).
TEST_F(RelayTest, CertificatesAreReloadedWhenTheirFilesChange) {
  cilium::testing::TempDir dir;
  Pki pki(dir.path());
  for (auto& n : nodes_) pki.gen(n.name, hubbleTlsServerName("default", n.name), "hubble-ca");
  pki.gen("relay-client", "*.hubble-relay.cilium.io", "hubble-ca");
  pki.gen("stranger", "*.hubble-relay.cilium.io", "other-ca");
  pki.gen("server-old", "ui.hubble-relay.cilium.io", "old-ca");
  pki.gen("server-new", "ui.hubble-relay.cilium.io", "hubble-ca");
  auto list = restartNodesWithTls(dir.path(), "hubble-ca.crt");
  // The relay starts with a client certificate the nodes do not accept, and a server
  // certificate from a CA that is being retired.
  replaceFile(pki.file("stranger.crt"), dir.file("client.crt"));
  replaceFile(pki.file("stranger.key"), dir.file("client.key"));
  replaceFile(pki.file("server-old.crt"), dir.file("server.crt"));
  replaceFile(pki.file("server-old.key"), dir.file("server.key"));
  relay_.reset();
  pool_.reset();
  PoolOptions po;
  po.static_peers = list;
  po.retry_timeout = 500ms;
  po.cert_reload_interval = 100ms;
  po.tls = {true, dir.file("client.crt"), dir.file("client.key"), {pki.file("hubble-ca.crt")}};
  auto pool = PeerPool::create(po);
  ASSERT_TRUE(pool.ok()) << pool.error().toString();
  pool_ = std::move(*pool);
  pool_->start();
  RelayOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.tls = {true, dir.file("server.crt"), dir.file("server.key"), {}, ""};
  ro.cert_reload_interval = 1s;
  relay_ = std::make_unique<RelayServer>(*pool_, ro);
  ASSERT_TRUE(relay_->start().ok());
  const std::string addr = "127.0.0.1:" + std::to_string(relay_->port());
  // A fresh channel per call: each call makes a new handshake.
  auto statusTrusting = [&](const std::string& ca, observer::ServerStatusResponse* out) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("ui.hubble-relay.cilium.io");
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto stub = observer::Observer::NewStub(grpc::CreateCustomChannel(
        addr, grpc::SslCredentials({readAll(pki.file(ca)), "", ""}), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 3s);
    return stub->ServerStatus(&ctx, {}, out);
  };
  observer::ServerStatusResponse st;
  ASSERT_TRUE(statusTrusting("old-ca.crt", &st).ok());
  EXPECT_FALSE(statusTrusting("hubble-ca.crt", &st).ok());
  EXPECT_EQ(st.num_connected_nodes().value(), 0u);
  EXPECT_FALSE(eventually(
      [&] {
        return statusTrusting("old-ca.crt", &st).ok() && st.num_connected_nodes().value() > 0;
      },
      1000ms));

  // Both renewed: the key first, then the certificate, as files land one by one.
  replaceFile(pki.file("relay-client.key"), dir.file("client.key"));
  replaceFile(pki.file("relay-client.crt"), dir.file("client.crt"));
  replaceFile(pki.file("server-new.key"), dir.file("server.key"));
  replaceFile(pki.file("server-new.crt"), dir.file("server.crt"));
  EXPECT_TRUE(eventually(
      [&] {
        return statusTrusting("hubble-ca.crt", &st).ok() && st.num_connected_nodes().value() == 3;
      },
      15s));
  EXPECT_GE(pool_->certReloads(), 1u);
  EXPECT_FALSE(statusTrusting("old-ca.crt", &st).ok());
  // A file that stops loading (not PEM, or empty) keeps the certificates in force.
  const uint64_t reloads = pool_->certReloads();
  std::ofstream(dir.file("client.crt"), std::ios::trunc) << "not a certificate";
  EXPECT_FALSE(eventually([&] { return pool_->certReloads() != reloads; }, 500ms));
  EXPECT_TRUE(statusTrusting("hubble-ca.crt", &st).ok());
  EXPECT_EQ(st.num_connected_nodes().value(), 3u);
}

}  // namespace
}  // namespace cilium::hubble::relay
