// A node with three pods running bpf_lxc, an identity policy, and Hubble on top: the event ring
// read by an EventHub into a FlowPipeline, as in the agent, the Observer server on a Unix socket in
// the test's scratch directory, and metrics registries fed by the datapath and the flows. Shared by
// the netns Hubble test and the e2e Prometheus test.
//
// Policy: client (identity 1001, ep 1) may reach server (1002, ep 2) on TCP 8080 and by ICMP;
// other (1003, ep 3) is not admitted by the server. With dual_stack_ the pods also have IPv6
// addresses and the same rules hold over IPv6 (the policy maps are family-agnostic).
#pragma once

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/monitor/event_hub.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium::testing {

class HubbleNodeFixture : public ::testing::Test {
 protected:
  static constexpr uint8_t kTcp = 6, kIcmp = 1;
  static constexpr uint32_t kClientId = 1001, kServerId = 1002, kOtherId = 1003;

  void SetUp() override {
    auto topo = Topology::create();
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    for (auto [pod, name, ip] : {std::tuple{&client_, "client", "10.200.0.11"},
                                 std::tuple{&server_, "server", "10.200.0.12"},
                                 std::tuple{&other_, "other", "10.200.0.13"}}) {
      auto p = topo_->addPod(name, ip, dual_stack_ ? v6Twin(ip) : std::string());
      ASSERT_TRUE(p.ok()) << p.error().toString();
      *pod = *p;
    }
    auto dp = datapath::Datapath::load({*topo_->pinDir()});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    ASSERT_TRUE(programEndpoint(maps, client_, 1, kClientId).ok());
    ASSERT_TRUE(programEndpoint(maps, server_, 2, kServerId).ok());
    ASSERT_TRUE(programEndpoint(maps, other_, 3, kOtherId).ok());
    ASSERT_TRUE(programNode(maps, topo_->routerIp()).ok());
    setPolicy(
        1, {allow(kServerId, POLICY_EGRESS, kTcp, 8080), allow(kServerId, POLICY_EGRESS, kIcmp)});
    setPolicy(
        2, {allow(kClientId, POLICY_INGRESS, kTcp, 8080), allow(kClientId, POLICY_INGRESS, kIcmp)});
    setPolicy(3, {allow(0, POLICY_EGRESS), allow(0, POLICY_INGRESS)});

    // What the endpoint manager and identity allocator will answer in the agent.
    auto add = [&](const Pod& p, uint32_t id, uint32_t identity, const std::string& app) {
      std::vector<IpAddr> ips = {*IpAddr::parse(p.ip)};
      if (!p.ip6.empty()) ips.push_back(*IpAddr::parse(p.ip6));
      resolver_.addEndpoint({id,
                             identity,
                             p.name,
                             "default",
                             {"k8s:app=" + app, "k8s:io.kubernetes.pod.namespace=default"}},
                            ips);
    };
    add(client_, 1, kClientId, "client");
    add(server_, 2, kServerId, "server");
    add(other_, 3, kOtherId, "other");

    hubble::PipelineOptions po;
    po.node_name = "test-node";
    po.datapath_lost = [this] {
      auto c = dp_->eventCounters();
      return c.ok() ? c->lost : 0;
    };
    pipeline_ = std::make_unique<hubble::FlowPipeline>(po, &resolver_, &resolver_);
    ASSERT_TRUE(hubble::registerHubbleMetrics(hubble_registry_, *pipeline_).ok());
    metrics::DatapathSources src;
    src.read_metrics = [this] { return dp_->readMetrics(); };
    src.read_event_counters = [this] { return dp_->eventCounters(); };
    ASSERT_TRUE(metrics::addDatapathMetrics(agent_registry_, src).ok());
    ASSERT_TRUE(pipeline_->start().ok());

    // The agent's wiring: the event hub reads the ring and feeds the pipeline, and queries
    // drain the ring through it first.
    datapath::Datapath* loaded = dp_.get();
    auto hub = monitor::EventHub::start(
        [loaded](auto cb) { return loaded->openEventReader(std::move(cb)); });
    ASSERT_TRUE(hub.ok()) << hub.error().toString();
    hub_ = std::move(*hub);
    feed_ = hub_->subscribe([this](const cilium_event& ev) {
      pipeline_->onEvent(ev);
      if (record_dir_ && recorded_.size() < 64) recorded_.push_back(ev);
    });
    pipeline_->setDrain([this](std::chrono::milliseconds t) { return hub_->sync(t); });

    hubble::ServerOptions so;
    so.unix_socket = topo_->tmpDir() + "/hubble.sock";
    so.version = "test";
    server_grpc_ = std::make_unique<hubble::HubbleServer>(*pipeline_, so);
    auto st = server_grpc_->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();

    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&]() -> Status {
                  for (const auto* p : {&client_, &server_, &other_})
                    CILIUM_RETURN_IF_ERROR(dp_->attachEndpoint(p->host_ifindex));
                  return okStatus();
                }).ok());
  }

  void TearDown() override {
    server_grpc_.reset();
    if (pipeline_) pipeline_->setDrain(nullptr);
    feed_.reset();
    hub_.reset();
    // CILIUM_HUBBLE_RECORD_DIR=<dir>: keep the raw records this test's traffic produced (how
    // tests/fuzz/corpus/hubble_decode/ was made).
    if (record_dir_) {
      int n = 0;
      for (const auto& ev : recorded_) {
        auto path = std::string(record_dir_) + "/" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                    std::to_string(n++) + ".bin";
        if (FILE* f = fopen(path.c_str(), "wb")) {
          fwrite(&ev, sizeof ev, 1, f);
          fclose(f);
        }
      }
    }
    pipeline_.reset();
    dp_.reset();
    topo_.reset();
  }

  static datapath::PolicyEntry allow(uint32_t identity, uint8_t dir, uint8_t proto = 0,
                                     uint16_t port = 0) {
    return {datapath::policyKey(identity, dir, proto, port, port ? 16 : 0), {}};
  }

  void setPolicy(uint16_t id, const std::vector<datapath::PolicyEntry>& entries) {
    auto maps = dp_->maps();
    auto s = maps.policy->replace(id, entries);
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_TRUE(datapath::bumpPolicyRevision(*maps.runtime_config).ok());
  }

  // The pod's address the traffic helpers use: IPv6 with `v6` (dual_stack_ pods).
  static const std::string& addrOf(const Pod& p, bool v6) { return v6 ? p.ip6 : p.ip; }

  // One allowed TCP exchange client -> server:8080 (connection, request, answer).
  void allowedTcp(bool v6 = false) {
    auto lfd = listenTcp(server_.netns, addrOf(server_, v6), 8080);
    ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
    auto c = connectTcp(client_.netns, addrOf(server_, v6), 8080);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    auto s = acceptTcp(lfd->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_TRUE(sendAll(c->get(), "hello").ok());
    ASSERT_TRUE(recvExactly(s->get(), 5).ok());
    ASSERT_TRUE(sendAll(s->get(), "world").ok());
    ASSERT_TRUE(recvExactly(c->get(), 5).ok());
  }

  // other -> server:8080, which the server's ingress policy drops.
  void deniedTcp(bool v6 = false) {
    auto lfd = listenTcp(server_.netns, addrOf(server_, v6), 8080);
    ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
    auto denied =
        connectTcp(other_.netns, addrOf(server_, v6), 8080, std::chrono::milliseconds(1200));
    ASSERT_FALSE(denied.ok());
  }

  // Set before SetUp (in a test fixture's constructor): the pods are dual stack, with the IPv6
  // twins of their addresses (fd00:200::11...).
  bool dual_stack_ = false;
  std::unique_ptr<Topology> topo_;
  Pod client_, server_, other_;
  std::unique_ptr<datapath::Datapath> dp_;
  hubble::StaticResolver resolver_;
  metrics::Registry agent_registry_, hubble_registry_;
  std::unique_ptr<hubble::FlowPipeline> pipeline_;
  std::unique_ptr<monitor::EventHub> hub_;
  monitor::EventHub::Subscription feed_;
  std::unique_ptr<hubble::HubbleServer> server_grpc_;
  const char* record_dir_ = std::getenv("CILIUM_HUBBLE_RECORD_DIR");
  std::vector<cilium_event> recorded_;  // written by the hub's thread only
};

}  // namespace cilium::testing
