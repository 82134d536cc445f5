// The Hubble gRPC API through real gRPC clients built from the protos (wire-identical with
// Hubble's), over a Unix socket and TCP (plain and TLS with client certificates): GetFlows
// (number, first, follow, since/until, filters, field masks), GetAgentEvents, GetDebugEvents,
// GetNamespaces, ServerStatus, GetNodes, peer.Peer/Notify.
#include "agent/hubble/server.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/harness/temp_dir.h"

namespace cilium::hubble {
namespace {

using namespace std::chrono_literals;

// What a newer client's fields look like to this server's parser.
google::protobuf::UnknownFieldSet* unknownFields(google::protobuf::Message* m) {
  return m->GetReflection()->MutableUnknownFields(m);
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    res_.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                     {*IpAddr::parse("10.200.0.11")});
    res_.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                     {*IpAddr::parse("10.200.0.12")});
    PipelineOptions po;
    po.node_name = "node-1";
    po.ring_capacity = 100;
    po.services = &res_;
    res_.addService({*IpAddr::parse("10.200.0.12"), 1002, 6, {"web", "default"}});
    pipeline_ = std::make_unique<FlowPipeline>(po, &res_, &res_);
    ASSERT_TRUE(pipeline_->start().ok());
    ServerOptions so;
    so.unix_socket = dir_.file("hubble.sock");
    so.tcp_address = "127.0.0.1:0";
    so.version = "test";
    server_ = std::make_unique<HubbleServer>(*pipeline_, so);
    auto st = server_->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();
    auto ch = grpc::CreateChannel("unix://" + so.unix_socket, grpc::InsecureChannelCredentials());
    stub_ = observer::Observer::NewStub(ch);
  }
  void TearDown() override {
    server_.reset();
    pipeline_.reset();
  }

  // Feeds `n` flows: even ones forwarded to port 1000+i, odd ones policy drops.
  void feed(int n, uint64_t ktime_base = 1000) {
    for (int i = 0; i < n; ++i) {
      auto s = i % 2 ? testing::policyDrop() : testing::EventSpec{};
      s.dport = static_cast<uint16_t>(1000 + i);
      s.ktime_ns = ktime_base + static_cast<uint64_t>(i) * 1000000;
      pipeline_->onEvent(testing::makeEvent(s));
      // Stay within the pipeline's queue: these tests are about the ring and the stream.
      if (i % 512 == 511) {
        ASSERT_TRUE(pipeline_->flush(5s));
      }
    }
    ASSERT_TRUE(pipeline_->flush(5s));
  }

  std::vector<observer::GetFlowsResponse> getFlows(const observer::GetFlowsRequest& req,
                                                   grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub_->GetFlows(&ctx, req);
    std::vector<observer::GetFlowsResponse> out;
    observer::GetFlowsResponse r;
    while (reader->Read(&r)) out.push_back(r);
    auto st = reader->Finish();
    if (status)
      *status = st;
    else
      EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  static std::vector<uint32_t> ports(const std::vector<observer::GetFlowsResponse>& rs) {
    std::vector<uint32_t> out;
    for (const auto& r : rs) out.push_back(r.flow().l4().tcp().destination_port());
    return out;
  }

  cilium::testing::TempDir dir_;
  StaticResolver res_;
  std::unique_ptr<FlowPipeline> pipeline_;
  std::unique_ptr<HubbleServer> server_;
  std::unique_ptr<observer::Observer::Stub> stub_;
};

TEST_F(ServerTest, LastAndFirstNumber) {
  feed(10);
  observer::GetFlowsRequest req;
  req.set_number(3);
  EXPECT_EQ(ports(getFlows(req)), (std::vector<uint32_t>{1007, 1008, 1009}));
  req.set_first(true);
  EXPECT_EQ(ports(getFlows(req)), (std::vector<uint32_t>{1000, 1001, 1002}));
  observer::GetFlowsRequest all;
  EXPECT_EQ(getFlows(all).size(), 10u);
}

TEST_F(ServerTest, FiltersApplyBeforeCounting) {
  feed(10);
  observer::GetFlowsRequest req;
  req.set_number(2);
  req.add_whitelist()->add_verdict(flow::DROPPED);
  auto got = getFlows(req);
  EXPECT_EQ(ports(got), (std::vector<uint32_t>{1007, 1009}));
  for (const auto& r : got) {
    EXPECT_EQ(r.flow().drop_reason_desc(), flow::POLICY_DENIED);
    EXPECT_EQ(r.flow().source().pod_name(), "client");
    EXPECT_EQ(r.node_name(), "node-1");
  }
  observer::GetFlowsRequest bl;
  bl.add_blacklist()->add_verdict(flow::DROPPED);
  EXPECT_EQ(getFlows(bl).size(), 5u);
}

TEST_F(ServerTest, BadFilterIsInvalidArgument) {
  observer::GetFlowsRequest req;
  req.add_whitelist()->add_source_ip("not-an-ip");
  grpc::Status st;
  getFlows(req, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("source_ip"), std::string::npos);
}

TEST_F(ServerTest, SinceUntil) {
  feed(10);
  auto all = getFlows(observer::GetFlowsRequest{});
  ASSERT_EQ(all.size(), 10u);
  observer::GetFlowsRequest req;
  *req.mutable_since() = all[3].flow().time();
  *req.mutable_until() = all[5].flow().time();
  EXPECT_EQ(ports(getFlows(req)), (std::vector<uint32_t>{1003, 1004, 1005}));
}

TEST_F(ServerTest, FollowStreamsNewFlowsAndEndsOnCancel) {
  feed(4);
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  req.set_number(1);
  req.add_whitelist()->add_destination_port("2000");
  req.mutable_whitelist(0)->add_destination_port("1003");
  auto reader = stub_->GetFlows(&ctx, req);
  observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.flow().l4().tcp().destination_port(), 1003u);  // the backlog
  testing::EventSpec s;
  s.dport = 1999;  // filtered out
  pipeline_->onEvent(testing::makeEvent(s));
  s.dport = 2000;
  pipeline_->onEvent(testing::makeEvent(s));
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.flow().l4().tcp().destination_port(), 2000u);
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ServerTest, ServerStopEndsFollowers) {
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  // The call reaches the server asynchronously: with number=1 the flow below is delivered once
  // whether it lands in the ring before the server starts following (backlog) or after (live).
  req.set_number(1);
  auto reader = stub_->GetFlows(&ctx, req);
  // The stream is open once a flow arrives through it.
  pipeline_->onEvent(testing::makeEvent(testing::EventSpec{}));
  observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  while (reader->Read(&r)) {
  }
}

TEST_F(ServerTest, ServerStatusAndNodesOverTcp) {
  feed(6);
  auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->tcpPort()),
                                grpc::InsecureChannelCredentials());
  auto tcp = observer::Observer::NewStub(ch);
  grpc::ClientContext ctx;
  observer::ServerStatusResponse st;
  ASSERT_TRUE(tcp->ServerStatus(&ctx, {}, &st).ok());
  EXPECT_EQ(st.num_flows(), 6u);
  EXPECT_EQ(st.max_flows(), 100u);
  EXPECT_EQ(st.seen_flows(), 6u);
  EXPECT_GT(st.uptime_ns(), 0u);
  EXPECT_EQ(st.num_connected_nodes().value(), 1u);
  EXPECT_EQ(st.version(), "test");
  grpc::ClientContext ctx2;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(tcp->GetNodes(&ctx2, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_EQ(nodes.nodes(0).name(), "node-1");
  EXPECT_EQ(nodes.nodes(0).state(), relay::NODE_CONNECTED);
  EXPECT_EQ(nodes.nodes(0).seen_flows(), 6u);
}

TEST_F(ServerTest, LappedFollowerGetsALostEvent) {
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  // The call reaches the server asynchronously: with number=1 the flow below is delivered once
  // whether it lands in the ring before the server starts following (backlog) or after (live).
  req.set_number(1);
  auto reader = stub_->GetFlows(&ctx, req);
  pipeline_->onEvent(testing::makeEvent(testing::EventSpec{}));
  observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  // The client stops reading while far more than the ring holds goes through; gRPC's flow
  // control then holds the server's writes, and the ring laps the stream's position.
  constexpr uint64_t kSent = 50000;  // megabytes: more than any HTTP/2 window holds
  feed(kSent);
  uint64_t lost = 0, flows = 0;
  while (flows + lost < kSent && reader->Read(&r)) {
    if (r.has_lost_events()) {
      EXPECT_EQ(r.lost_events().source(), flow::HUBBLE_RING_BUFFER);
      lost += r.lost_events().num_events_lost();
    } else {
      ++flows;
    }
  }
  ctx.TryCancel();
  EXPECT_EQ(flows + lost, kSent);
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(pipeline_->stats().queue_lost, 0u);
  // The stage is counted where the agent exports it (hubble_lost_events_total).
  EXPECT_EQ(pipeline_->stats().ring_lost, lost);
}

// A follower takes what the ring holds in batches and writes them with one flush: a burst
// arrives whole and in order, filtered, and the last flow of the burst arrives without any
// further traffic pushing it out (the batch's last write flushes).
TEST_F(ServerTest, FollowerGetsABurstInOrderAndItsLastFlowPromptly) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  observer::GetFlowsRequest req;
  req.set_follow(true);
  req.add_whitelist()->add_verdict(flow::FORWARDED);
  auto reader = stub_->GetFlows(&ctx, req);
  // A following stream sends its headers at once, before any flow: the client knows it is
  // following (and with gRPC 1.51 a first message written with the buffer hint held them back,
  // with the whole first batch behind them).
  reader->WaitForInitialMetadata();
  // 90 flows (within the ring's 100), the odd ones dropped and filtered out: the first batch
  // the follower takes holds several.
  feed(90);
  std::vector<uint32_t> got;
  observer::GetFlowsResponse r;
  while (got.size() < 45 && reader->Read(&r))
    if (r.has_flow()) got.push_back(r.flow().l4().tcp().destination_port());
  ASSERT_EQ(got.size(), 45u) << "the stream ended (deadline) before the burst's last flow";
  for (uint32_t i = 0; i < 45; ++i) EXPECT_EQ(got[i], 1000 + 2 * i);
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  (void)reader->Finish();
}

// Filters on fields a flow does not carry (L7, DNS names, trace context) match nothing; before,
// such a filter was dropped by the parser and matched every flow.
TEST_F(ServerTest, FiltersOnAbsentFieldsNeverWiden) {
  feed(10);
  auto count = [&](const flow::FlowFilter& f) {
    observer::GetFlowsRequest req;
    *req.add_whitelist() = f;
    return getFlows(req).size();
  };
  flow::FlowFilter f;
  f.add_http_status_code("4+");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_http_method("GET");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_http_path("/api/.*");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_dns_query(".*example.*");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_source_fqdn("*.example.com");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(count(f), 0u);
  f.Clear();
  f.add_destination_workload()->set_name("web");
  EXPECT_EQ(count(f), 0u);
  // Services are filled: the one frontend registered is 10.200.0.12:1002 (flow 2 is even,
  // forwarded).
  f.Clear();
  f.add_destination_service("default/we");
  observer::GetFlowsRequest req;
  *req.add_whitelist() = f;
  auto got = getFlows(req);
  ASSERT_EQ(ports(got), (std::vector<uint32_t>{1002}));
  EXPECT_EQ(got[0].flow().destination_service().name(), "web");
  EXPECT_EQ(got[0].flow().destination_service().namespace_(), "default");
  f.Clear();
  f.add_destination_service("other/");
  EXPECT_EQ(count(f), 0u);
}

TEST_F(ServerTest, UnknownFilterFieldsAreRefused) {
  feed(2);
  // A newer client's filter field (number 99, unknown here) and a bad L7 pattern.
  observer::GetFlowsRequest req;
  unknownFields(req.add_whitelist())->AddVarint(99, 1);
  grpc::Status st;
  EXPECT_TRUE(getFlows(req, &st).empty());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("99"), std::string::npos) << st.error_message();
  observer::GetFlowsRequest bl;
  unknownFields(bl.add_blacklist()->add_event_type())->AddVarint(7, 1);
  getFlows(bl, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Aggregation, which Hubble's proto does not carry (field 2 reserved, nothing but field_mask
  // under experimental), is refused by name, at the top and under experimental.
  observer::GetFlowsRequest agg;
  unknownFields(agg.mutable_experimental())->AddLengthDelimited(2, "x");
  EXPECT_TRUE(getFlows(agg, &st).empty());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(),
            "experimental: field number 2 is not known to this server (flow aggregation is not "
            "supported: ask without it)");
  observer::GetFlowsRequest top;
  unknownFields(&top)->AddLengthDelimited(2, "x");
  EXPECT_TRUE(getFlows(top, &st).empty());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("request: field number 2 is not known to this server (flow "
                                    "aggregation is not supported"),
            std::string::npos)
      << st.error_message();
  for (auto [field, bad] :
       std::vector<std::pair<std::string, std::string>>{{"http_path", "("},
                                                        {"dns_query", "[a"},
                                                        {"http_status_code", "99"},
                                                        {"http_status_code", "4"},
                                                        {"source_fqdn", "a b"}}) {
    flow::FlowFilter f;
    if (field == "http_path") f.add_http_path(bad);
    if (field == "dns_query") f.add_dns_query(bad);
    if (field == "http_status_code") f.add_http_status_code(bad);
    if (field == "source_fqdn") f.add_source_fqdn(bad);
    observer::GetFlowsRequest r;
    *r.add_whitelist() = f;
    getFlows(r, &st);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field << " " << bad;
    EXPECT_NE(st.error_message().find(field), std::string::npos) << st.error_message();
  }
}

TEST_F(ServerTest, FieldMaskKeepsOnlyTheAskedFields) {
  feed(2);
  observer::GetFlowsRequest req;
  req.mutable_field_mask()->add_paths("source.pod_name");
  req.mutable_field_mask()->add_paths("verdict");
  auto got = getFlows(req);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& r : got) {
    EXPECT_EQ(r.flow().source().pod_name(), "client");
    EXPECT_EQ(r.flow().source().identity(), 0u);
    EXPECT_FALSE(r.flow().has_destination());
    EXPECT_FALSE(r.flow().has_l4());
    EXPECT_TRUE(r.flow().uuid().empty());
    EXPECT_EQ(r.node_name(), "node-1");  // the response's own fields stay
  }
  EXPECT_EQ(got[1].flow().verdict(), flow::DROPPED);
  // Older clients put the mask under experimental.
  observer::GetFlowsRequest old;
  old.mutable_experimental()->mutable_field_mask()->add_paths("uuid");
  got = getFlows(old);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].flow().uuid().empty());
  EXPECT_FALSE(got[0].flow().has_source());
  observer::GetFlowsRequest bad;
  bad.mutable_field_mask()->add_paths("source.no_such_field");
  grpc::Status st;
  getFlows(bad, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("source.no_such_field"), std::string::npos);
}

TEST_F(ServerTest, GetNamespacesListsTheFlowsNamespaces) {
  res_.addEndpoint({3, 300, "db", "storage", {"k8s:app=db"}}, {*IpAddr::parse("10.200.0.13")});
  feed(2);
  auto s = testing::EventSpec{};
  s.dst = "10.200.0.13";
  pipeline_->onEvent(testing::makeEvent(s));
  ASSERT_TRUE(pipeline_->flush(5s));
  grpc::ClientContext ctx;
  observer::GetNamespacesResponse resp;
  ASSERT_TRUE(stub_->GetNamespaces(&ctx, {}, &resp).ok());
  ASSERT_EQ(resp.namespaces_size(), 2);
  EXPECT_EQ(resp.namespaces(0).namespace_(), "default");
  EXPECT_EQ(resp.namespaces(1).namespace_(), "storage");
  EXPECT_EQ(resp.namespaces(0).cluster(), "default");
}

TEST_F(ServerTest, AgentEventsLastFirstAndFollow) {
  for (uint64_t id : {1, 2, 3}) {
    flow::AgentEvent ev;
    ev.set_type(flow::ENDPOINT_REGENERATE_SUCCESS);
    ev.mutable_endpoint_regenerate()->set_id(id);
    pipeline_->addAgentEvent(ev);
  }
  auto read = [&](const observer::GetAgentEventsRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub_->GetAgentEvents(&ctx, req);
    std::vector<uint64_t> ids;
    observer::GetAgentEventsResponse r;
    while (reader->Read(&r)) {
      EXPECT_EQ(r.node_name(), "node-1");
      ids.push_back(r.agent_event().endpoint_regenerate().id());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return ids;
  };
  observer::GetAgentEventsRequest last;
  last.set_number(2);
  EXPECT_EQ(read(last), (std::vector<uint64_t>{2, 3}));
  last.set_first(true);
  EXPECT_EQ(read(last), (std::vector<uint64_t>{1, 2}));
  // follow: the backlog, then an event added later.
  grpc::ClientContext ctx;
  observer::GetAgentEventsRequest follow;
  follow.set_number(1);
  follow.set_follow(true);
  auto reader = stub_->GetAgentEvents(&ctx, follow);
  observer::GetAgentEventsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.agent_event().endpoint_regenerate().id(), 3u);
  flow::AgentEvent later;
  later.set_type(flow::POLICY_UPDATED);
  later.mutable_policy_update()->set_revision(7);
  pipeline_->addAgentEvent(later);
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.agent_event().type(), flow::POLICY_UPDATED);
  EXPECT_EQ(r.agent_event().policy_update().revision(), 7u);
  ctx.TryCancel();
}

TEST_F(ServerTest, DebugEventsFromDebugRecords) {
  auto s = testing::EventSpec{};
  s.type = EVENT_DEBUG;
  s.subtype = 4;  // DBG_LXC_FOUND
  s.source = 2;
  pipeline_->onEvent(testing::makeEvent(s));
  feed(1);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  auto reader = stub_->GetDebugEvents(&ctx, observer::GetDebugEventsRequest{});
  std::vector<observer::GetDebugEventsResponse> got;
  observer::GetDebugEventsResponse r;
  while (reader->Read(&r)) got.push_back(r);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].debug_event().type(), flow::DBG_LXC_FOUND);
  EXPECT_EQ(got[0].debug_event().source().id(), 2u);
  EXPECT_EQ(got[0].debug_event().source().pod_name(), "server");
  EXPECT_EQ(got[0].node_name(), "node-1");
}

TEST_F(ServerTest, PeerNotifyAnnouncesThisNode) {
  auto peers = peer::Peer::NewStub(grpc::CreateChannel("unix://" + server_->options().unix_socket,
                                                       grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = peers->Notify(&ctx, peer::NotifyRequest{});
  peer::ChangeNotification n;
  ASSERT_TRUE(reader->Read(&n));
  EXPECT_EQ(n.type(), peer::PEER_ADDED);
  EXPECT_EQ(n.name(), "node-1");
  EXPECT_EQ(n.address(), "127.0.0.1:0");
  EXPECT_FALSE(n.has_tls());
  ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&n));
}

// With the cluster's nodes, the Peer service lists every node's server at the node's address
// and this server's port (the bound one, for port 0), this node included at its own address, and
// leaves out a node whose address is not known yet.
TEST_F(ServerTest, PeerNotifyListsTheClusterNodes) {
  ServerOptions so;
  so.unix_socket = dir_.file("cluster.sock");
  so.tcp_address = "127.0.0.1:0";
  so.cluster_nodes = [] {
    return std::vector<PeerNode>{{"node-1", *IpAddr::parse("192.168.60.1")},
                                 {"node-2", *IpAddr::parse("192.168.60.2")},
                                 {"node-3", std::nullopt}};
  };
  HubbleServer server(*pipeline_, so);
  ASSERT_TRUE(server.start().ok());
  ASSERT_GT(server.tcpPort(), 0);
  auto stub = peer::Peer::NewStub(
      grpc::CreateChannel("unix://" + so.unix_socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = stub->Notify(&ctx, {});
  std::map<std::string, peer::ChangeNotification> seen;
  peer::ChangeNotification n;
  while (seen.size() < 2 && reader->Read(&n)) seen[n.name()] = n;
  std::string port = std::to_string(server.tcpPort());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen["node-1"].address(), "192.168.60.1:" + port);
  EXPECT_EQ(seen["node-2"].address(), "192.168.60.2:" + port);
  EXPECT_EQ(seen["node-2"].type(), peer::PEER_ADDED);
  EXPECT_FALSE(seen["node-2"].has_tls());
  EXPECT_FALSE(seen.contains("node-3"));
  ctx.TryCancel();
  while (reader->Read(&n)) EXPECT_NE(n.name(), "node-3");
}

TEST(ClusterPeerSource, TlsNamesClusterPrefixAndSelfBeforeItsNodeIsKnown) {
  PeerInfo self{"c1/node-1", "10.9.9.9:4244", "node-1.c1.hubble-grpc.cilium.io"};
  std::vector<PeerNode> nodes{{"node-2.example", *IpAddr::parse("fd00::2")}};
  ClusterPeerSource src([&] { return nodes; }, self, "node-1", /*self_address_fixed=*/true, 4244,
                        "c1", /*tls=*/true);
  auto peers = src.peers();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].name, "c1/node-2.example");
  EXPECT_EQ(peers[0].address, "[fd00::2]:4244");
  EXPECT_EQ(peers[0].tls_server_name, "node-2-example.c1.hubble-grpc.cilium.io");
  EXPECT_EQ(peers[1], self);
  // A configured peer address is kept when the node list learns this node.
  nodes.push_back({"node-1", *IpAddr::parse("10.0.0.1")});
  peers = src.peers();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[1], self);
}

// Changes of the peer source reach a Notify stream as they happen.
TEST_F(ServerTest, PeerNotifyReportsChanges) {
  struct Source : PeerSource {
    mutable std::mutex mu;
    std::vector<PeerInfo> list{{"n1", "10.0.0.1:4244", ""}};
    std::vector<PeerInfo> peers() const override {
      std::lock_guard lock(mu);
      return list;
    }
  } src;
  PeerService svc(src, 20ms);
  grpc::ServerBuilder b;
  std::string sock = dir_.file("peer.sock");
  b.AddListeningPort("unix:" + sock, grpc::InsecureServerCredentials());
  b.RegisterService(&svc);
  auto server = b.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = peer::Peer::NewStub(
      grpc::CreateChannel("unix://" + sock, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = stub->Notify(&ctx, {});
  peer::ChangeNotification n;
  ASSERT_TRUE(reader->Read(&n));
  EXPECT_EQ(n.name(), "n1");
  {
    std::lock_guard lock(src.mu);
    src.list = {{"n1", "10.0.0.1:4245", ""},
                {"n2", "10.0.0.2:4244", "n2.default.hubble-grpc.cilium.io"}};
  }
  std::map<std::string, peer::ChangeNotification> seen;
  while (seen.size() < 2 && reader->Read(&n)) seen[n.name()] = n;
  EXPECT_EQ(seen["n1"].type(), peer::PEER_UPDATED);
  EXPECT_EQ(seen["n1"].address(), "10.0.0.1:4245");
  EXPECT_EQ(seen["n2"].type(), peer::PEER_ADDED);
  EXPECT_EQ(seen["n2"].tls().server_name(), "n2.default.hubble-grpc.cilium.io");
  {
    std::lock_guard lock(src.mu);
    src.list = {{"n2", "10.0.0.2:4244", "n2.default.hubble-grpc.cilium.io"}};
  }
  ASSERT_TRUE(reader->Read(&n));
  EXPECT_EQ(n.type(), peer::PEER_DELETED);
  EXPECT_EQ(n.name(), "n1");
  ctx.TryCancel();
  svc.shutdown();
  server->Shutdown();
}

// TLS as Cilium configures it: the server's certificate, and with client CAs only clients with
// a certificate those CAs signed get in.
TEST_F(ServerTest, TlsWithClientCertificates) {
  auto run = [](const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " 2>/dev/null").c_str()), 0) << cmd;
  };
  std::string d = dir_.path();
  auto gen = [&](const std::string& name, const std::string& cn, const std::string& ca) {
    run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + ca + " -keyout " + d +
        "/" + ca + ".key -out " + d + "/" + ca + ".crt");
    run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + cn + " -keyout " + d + "/" + name +
        ".key -out " + d + "/" + name + ".csr");
    run("printf 'subjectAltName=DNS:" + cn + "' > " + d + "/" + name + ".ext");
    run("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca + ".crt -CAkey " +
        d + "/" + ca + ".key -CAcreateserial -days 1 -extfile " + d + "/" + name + ".ext -out " +
        d + "/" + name + ".crt");
  };
  const std::string sni = hubbleTlsServerName("default", "node-1");
  gen("server", sni, "server-ca");
  gen("client", "relay.hubble-relay.cilium.io", "client-ca");
  gen("stranger", "relay.hubble-relay.cilium.io", "other-ca");
  ServerOptions so;
  so.tcp_address = "127.0.0.1:0";
  so.tls = {true, d + "/server.crt", d + "/server.key", {d + "/client-ca.crt"}, sni};
  HubbleServer tls(*pipeline_, so);
  auto st = tls.start();
  ASSERT_TRUE(st.ok()) << st.error().toString();
  feed(1);
  auto read = [&](const std::string& file) {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto status = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(sni);
    auto stub = observer::Observer::NewStub(
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(tls.tcpPort()), creds, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    observer::ServerStatusResponse resp;
    return stub->ServerStatus(&ctx, {}, &resp);
  };
  grpc::SslCredentialsOptions good{read(d + "/server-ca.crt"), read(d + "/client.key"),
                                   read(d + "/client.crt")};
  auto ok = status(grpc::SslCredentials(good));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::SslCredentialsOptions no_cert{read(d + "/server-ca.crt"), "", ""};
  EXPECT_FALSE(status(grpc::SslCredentials(no_cert)).ok());
  grpc::SslCredentialsOptions wrong{read(d + "/server-ca.crt"), read(d + "/stranger.key"),
                                    read(d + "/stranger.crt")};
  EXPECT_FALSE(status(grpc::SslCredentials(wrong)).ok());
  EXPECT_FALSE(status(grpc::InsecureChannelCredentials()).ok());
  // GetNodes reports TLS and the name to verify.
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(sni);
  auto stub = observer::Observer::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(tls.tcpPort()), grpc::SslCredentials(good), args));
  grpc::ClientContext ctx;
  observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub->GetNodes(&ctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_TRUE(nodes.nodes(0).tls().enabled());
  EXPECT_EQ(nodes.nodes(0).tls().server_name(), sni);
  // A missing key file is an error at start, not a plaintext listener.
  ServerOptions broken = so;
  broken.tls.key_file = d + "/missing.key";
  HubbleServer refused(*pipeline_, broken);
  EXPECT_EQ(refused.start().error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ServerTest, StaleSocketFileIsReplaced) {
  auto path = server_->options().unix_socket;
  server_.reset();
  ServerOptions so;
  so.unix_socket = path;
  HubbleServer again(*pipeline_, so);
  ASSERT_TRUE(again.start().ok());
  ServerOptions file_in_way;
  file_in_way.unix_socket = dir_.file("not-a-socket");
  FILE* f = fopen(file_in_way.unix_socket.c_str(), "w");
  fclose(f);
  HubbleServer refused(*pipeline_, file_in_way);
  EXPECT_EQ(refused.start().error().code(), ErrorCode::kFailedPrecondition);
}

}  // namespace
}  // namespace cilium::hubble
