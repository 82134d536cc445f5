// netns tier: real pod traffic through bpf_lxc shows up as Hubble flows with the right pods,
// identities, verdicts and drop reasons, read through a gRPC client built from the proto and
// through the `hubble` CLI.
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "tests/netns/hubble_fixture.h"

namespace cilium::testing {
namespace {

using namespace std::chrono_literals;

class HubbleNetnsTest : public HubbleNodeFixture {
 protected:
  std::string sock() const { return "unix://" + server_grpc_->options().unix_socket; }

  std::vector<flow::Flow> flows(const observer::GetFlowsRequest& req) {
    auto stub = observer::Observer::NewStub(
        grpc::CreateChannel(sock(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto reader = stub->GetFlows(&ctx, req);
    std::vector<flow::Flow> out;
    observer::GetFlowsResponse r;
    while (reader->Read(&r))
      if (r.has_flow()) out.push_back(r.flow());
    auto st = reader->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  // Polls GetFlows with `req` until `pred` holds for one flow; the flow, or nullopt on timeout.
  std::optional<flow::Flow> waitForFlow(const observer::GetFlowsRequest& req,
                                        const std::function<bool(const flow::Flow&)>& pred) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    do {
      for (const auto& f : flows(req))
        if (pred(f)) return f;
      std::this_thread::sleep_for(50ms);  // between polls of the server
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

  RunOutput hubble(std::vector<std::string> args) {
    args.insert(args.begin(), {CILIUM_HUBBLE_BINARY, "--server", sock()});
    auto r = run(args, {}, 30s);
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : RunOutput{};
  }
};

// The same traffic over IPv4 and over IPv6 between dual-stack pods: the same flows, identities
// and CLI output, with the family's addresses.
class HubbleFamilyTest : public HubbleNetnsTest, public ::testing::WithParamInterface<Family> {
 protected:
  HubbleFamilyTest() { dual_stack_ = true; }
  bool v6() const { return GetParam() == Family::kV6; }
  const std::string& ip(const Pod& p) const { return addrOf(p, v6()); }
};
CILIUM_INSTANTIATE_FAMILIES(HubbleFamilyTest);

TEST_P(HubbleFamilyTest, AllowedAndDeniedTrafficAsFlows) {
  allowedTcp(v6());
  deniedTcp(v6());

  // Through a client built from the proto: the drop, with who, why and where.
  observer::GetFlowsRequest drops;
  auto* wl = drops.add_whitelist();
  wl->add_verdict(flow::DROPPED);
  wl->add_source_pod("default/other");
  wl->add_ip_version(v6() ? flow::IPv6 : flow::IPv4);
  auto drop = waitForFlow(drops, [](const flow::Flow& f) {
    return f.l4().tcp().destination_port() == 8080 && f.l4().tcp().flags().syn();
  });
  ASSERT_TRUE(drop) << "no policy drop flow from default/other";
  EXPECT_EQ(drop->drop_reason_desc(), flow::POLICY_DENIED);
  EXPECT_EQ(drop->drop_reason(), 133u);
  EXPECT_EQ(drop->source().identity(), kOtherId);
  EXPECT_EQ(drop->source().pod_name(), "other");
  EXPECT_EQ(drop->destination().identity(), kServerId);
  EXPECT_EQ(drop->destination().pod_name(), "server");
  EXPECT_EQ(drop->destination().namespace_(), "default");
  EXPECT_EQ(drop->ip().source(), ip(other_));
  EXPECT_EQ(drop->ip().destination(), ip(server_));
  EXPECT_EQ(drop->ip().ipversion(), v6() ? flow::IPv6 : flow::IPv4);
  EXPECT_EQ(drop->traffic_direction(), flow::INGRESS);
  EXPECT_EQ(drop->node_name(), "test-node");
  EXPECT_FALSE(drop->is_reply().value());

  // The allowed connection: delivered to the server, and the server's reply back.
  observer::GetFlowsRequest fwd;
  auto* fw = fwd.add_whitelist();
  fw->add_verdict(flow::FORWARDED);
  fw->add_source_label("app=client");
  fw->add_destination_port("8080");
  fw->add_destination_ip(ip(server_));
  auto to_server = waitForFlow(fwd, [](const flow::Flow& f) {
    return f.trace_observation_point() == flow::TO_ENDPOINT && f.l4().tcp().flags().syn();
  });
  ASSERT_TRUE(to_server) << "no forwarded SYN to the server";
  EXPECT_EQ(to_server->source().identity(), kClientId);
  EXPECT_EQ(to_server->destination().identity(), kServerId);
  EXPECT_EQ(to_server->destination().pod_name(), "server");
  EXPECT_EQ(to_server->traffic_direction(), flow::INGRESS);
  observer::GetFlowsRequest replies;
  auto* rw = replies.add_whitelist();
  rw->add_reply(true);
  rw->add_source_pod("default/server");
  rw->add_source_ip(v6() ? "fd00:200::/64" : "10.200.0.0/24");
  auto reply = waitForFlow(replies, [](const flow::Flow& f) {
    return f.verdict() == flow::FORWARDED && f.l4().tcp().source_port() == 8080;
  });
  ASSERT_TRUE(reply) << "no reply flow from the server";
  EXPECT_EQ(reply->destination().pod_name(), "client");

  // The allow decision itself, as a policy verdict.
  observer::GetFlowsRequest verdicts;
  verdicts.add_whitelist()->add_event_type()->set_type(EVENT_POLICY_VERDICT);
  auto verdict = waitForFlow(verdicts, [](const flow::Flow& f) {
    return f.verdict() == flow::FORWARDED && f.destination().identity() == kServerId;
  });
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->policy_match_type(), static_cast<uint32_t>(POLICY_MATCH_L3_L4));

  // The same through the hubble CLI, as a user would read it.
  auto out = hubble({"observe", "--all", "--verdict", "DROPPED", "--from-pod", "default/other"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.out.find("default/other:"), std::string::npos) << out.out;
  EXPECT_NE(out.out.find("-> default/server:8080 (ID:1002) Policy denied DROPPED (TCP Flags: SYN)"),
            std::string::npos)
      << out.out;
  EXPECT_EQ(out.out.find("FORWARDED"), std::string::npos) << out.out;
  // By address (--from-ip / --to-ip / --ip with the family's addresses and prefixes), numeric:
  // IPv6 in brackets before the port.
  const std::string server_at = v6() ? "[" + ip(server_) + "]:8080" : ip(server_) + ":8080";
  for (std::vector<std::string> by :
       {std::vector<std::string>{"--from-ip", ip(other_), "--to-ip", ip(server_)},
        {"--ip", v6() ? "fd00:200::/64" : "10.200.0.0/24", "--from-pod", "default/other"}}) {
    std::vector<std::string> args = {"observe", "--all", "--numeric", "--verdict", "DROPPED"};
    args.insert(args.end(), by.begin(), by.end());
    auto numeric = hubble(args);
    EXPECT_EQ(numeric.exit_code, 0) << numeric.err;
    EXPECT_NE(numeric.out.find("-> " + server_at + " (ID:1002) Policy denied DROPPED"),
              std::string::npos)
        << numeric.out;
  }
  // The other family's prefix matches none of these flows.
  auto across = hubble({"observe", "--all", "--verdict", "DROPPED", "--from-ip",
                        v6() ? "10.200.0.0/24" : "fd00:200::/64", "--to-port", "8080"});
  EXPECT_EQ(across.exit_code, 0) << across.err;
  EXPECT_EQ(across.out.find("default/server:8080"), std::string::npos) << across.out;

  auto json = hubble({"observe", "--all", "--pod", "default/client", "--verdict", "FORWARDED",
                      "--protocol", "tcp", "-o", "json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  size_t lines = 0;
  bool saw_client_to_server = false;
  std::istringstream in(json.out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ++lines;
    EXPECT_EQ(j["flow"]["verdict"], "FORWARDED");
    if (j["flow"]["source"]["pod_name"] == "client" &&
        j["flow"]["destination"]["pod_name"] == "server")
      saw_client_to_server = true;
  }
  EXPECT_GT(lines, 0u);
  EXPECT_TRUE(saw_client_to_server) << json.out;

  auto status = hubble({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("Current/Max Flows:"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("/4095"), std::string::npos) << status.out;

  auto bad = hubble({"observe", "--from-ip", "10.0.0.300"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("source_ip"), std::string::npos) << bad.err;
}

TEST_F(HubbleNetnsTest, FollowSeesNewTrafficAndMetricsCountIt) {
  auto stub =
      observer::Observer::NewStub(grpc::CreateChannel(sock(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  observer::GetFlowsRequest req;
  req.set_follow(true);
  req.set_number(100);  // also what arrived before the server started following (none before)
  auto* wl = req.add_whitelist();
  wl->add_protocol("icmp");
  wl->add_verdict(flow::DROPPED);
  auto reader = stub->GetFlows(&ctx, req);
  auto r = topo_->exec(other_.netns, {"ping", "-c", "1", "-W", "1", "-n", "-q", server_.ip}, 10s);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);  // denied
  observer::GetFlowsResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_TRUE(resp.has_flow());
  EXPECT_EQ(resp.flow().source().pod_name(), "other");
  EXPECT_EQ(resp.flow().drop_reason_desc(), flow::POLICY_DENIED);
  EXPECT_TRUE(resp.flow().l4().has_icmpv4());
  ctx.TryCancel();

  auto text = hubble_registry_.expose();
  EXPECT_NE(text.find("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"ICMPv4\"}"),
            std::string::npos)
      << text;
  auto agent = agent_registry_.expose();
  EXPECT_NE(agent.find("cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"}"),
            std::string::npos)
      << agent;
  EXPECT_EQ(pipeline_->stats().malformed, 0u);
}

// A query made right after a connection finished sees the connection's flows on the first try:
// the server drains the event ring before it answers, although a few events stay below the
// datapath's wakeup threshold and the hub's poll interval is far longer than this loop's steps.
TEST_F(HubbleNetnsTest, AQueryRightAfterTrafficSeesItsFlows) {
  auto lfd = listenTcp(server_.netns, server_.ip, 8080);
  ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
  for (int i = 0; i < 25; ++i) {
    uint16_t port;
    {
      auto c = connectTcp(client_.netns, server_.ip, 8080);
      ASSERT_TRUE(c.ok()) << c.error().toString();
      auto s = acceptTcp(lfd->get());
      ASSERT_TRUE(s.ok()) << s.error().toString();
      ASSERT_TRUE(sendAll(c->get(), "ping").ok());
      ASSERT_TRUE(recvExactly(s->get(), 4).ok());
      auto p = localPort(c->get());
      ASSERT_TRUE(p.ok());
      port = *p;
    }
    observer::GetFlowsRequest req;
    req.set_number(50);
    auto* wl = req.add_whitelist();
    wl->add_source_pod("default/client");
    wl->add_verdict(flow::FORWARDED);
    bool seen = false;
    for (const auto& f : flows(req))  // one query, no retry
      seen = seen || (f.l4().tcp().source_port() == port && f.l4().tcp().flags().syn());
    ASSERT_TRUE(seen) << "connection " << i << " from port " << port
                      << " is not in a query made right after it";
  }
}

}  // namespace
}  // namespace cilium::testing
