// The Observer gRPC API through a real gRPC client built from the proto, over a Unix socket and
// TCP: GetFlows (number, first, follow, since/until, filters), ServerStatus, GetNodes.
#include "agent/hubble/server.h"

#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/harness/temp_dir.h"

namespace cilium::hubble {
namespace {

using namespace std::chrono_literals;

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
