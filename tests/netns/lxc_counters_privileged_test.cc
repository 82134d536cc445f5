// netns tier: bpf_lxc attached to the host-side veths of two pods in a node namespace counts the
// real TCP traffic between them, and stops counting once detached.
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

datapath::PolicyEntry allowAll(uint8_t dir) { return {datapath::policyKey(0, dir, 0, 0, 0), {}}; }

class LxcCountersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto topo = testing::Topology::create();
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    auto a = topo_->addPod("client", "10.200.0.11");
    ASSERT_TRUE(a.ok()) << a.error().toString();
    client_ = *a;
    auto b = topo_->addPod("server", "10.200.0.12");
    ASSERT_TRUE(b.ok()) << b.error().toString();
    server_ = *b;
    auto dp = datapath::Datapath::load({*topo_->pinDir()});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    ASSERT_TRUE(testing::programEndpoint(maps, client_, 1, 1001).ok());
    ASSERT_TRUE(testing::programEndpoint(maps, server_, 2, 1002).ok());
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    std::vector<datapath::PolicyEntry> open{allowAll(POLICY_INGRESS), allowAll(POLICY_EGRESS)};
    ASSERT_TRUE(maps.policy->replace(1, open).ok());
    ASSERT_TRUE(maps.policy->replace(2, open).ok());
  }

  Status inNode(const std::function<Status()>& fn) { return runInNetns(topo_->nodeNetns(), fn); }

  datapath::MetricsEntry forwarded(uint8_t dir) {
    auto all = dp_->readMetrics();
    EXPECT_TRUE(all.ok());
    for (const auto& e : *all)
      if (e.reason == REASON_FORWARDED && e.dir == dir) return e;
    return {};
  }

  // Sends `bytes` from client to server over a fresh TCP connection and waits for all of it.
  void transfer(size_t bytes) {
    auto lfd = testing::listenTcp(server_.netns, server_.ip, 8080);
    ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
    auto c = testing::connectTcp(client_.netns, server_.ip, 8080);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    auto s = testing::acceptTcp(lfd->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_TRUE(testing::sendAll(c->get(), std::string(bytes, 'x')).ok());
    auto got = testing::recvExactly(s->get(), bytes);
    ASSERT_TRUE(got.ok()) << got.error().toString();
  }

  std::unique_ptr<testing::Topology> topo_;
  testing::Pod client_, server_;
  std::unique_ptr<datapath::Datapath> dp_;
};

TEST_F(LxcCountersTest, CountsRealTcpBetweenPods) {
  ASSERT_TRUE(inNode([&]() -> Status {
                CILIUM_RETURN_IF_ERROR(dp_->attachEndpoint(client_.host_ifindex));
                return dp_->attachEndpoint(server_.host_ifindex);
              }).ok());
  // The programs are really on the devices, through tcx.
  auto ids = runInNetnsValue<std::vector<uint32_t>>(topo_->nodeNetns(), [&] {
    return bpf::tcxProgramIds(client_.host_ifindex, bpf::TcDirection::kIngress);
  });
  ASSERT_TRUE(ids.ok()) << ids.error().toString();
  EXPECT_EQ(ids->size(), 1u);

  const size_t kBytes = 256 * 1024;
  transfer(kBytes);

  // Pod-to-pod packets are delivered by the sender's program straight into the receiver: each
  // counts once as egress (for the sender) and once as ingress (for the receiver), so the two
  // directions agree up to the pods' ARP exchanges, answered on the egress side only.
  auto egress = forwarded(METRIC_EGRESS);
  auto ingress = forwarded(METRIC_INGRESS);
  EXPECT_GT(egress.bytes, kBytes);
  EXPECT_GT(ingress.bytes, kBytes);
  EXPECT_GE(egress.packets, 3u);  // at least SYN, ACK, data
  EXPECT_NEAR(static_cast<double>(egress.packets), static_cast<double>(ingress.packets), 4);
  EXPECT_NEAR(static_cast<double>(egress.bytes), static_cast<double>(ingress.bytes), 4 * 100);

  // The links are pinned so they would outlive this process.
  EXPECT_EQ(::access((*topo_->pinDir() + "/links/lxc_" + std::to_string(client_.host_ifindex) +
                      "_ingress")
                         .c_str(),
                     F_OK),
            0);

  ASSERT_TRUE(inNode([&]() -> Status {
                CILIUM_RETURN_IF_ERROR(dp_->detachEndpoint(client_.host_ifindex));
                return dp_->detachEndpoint(server_.host_ifindex);
              }).ok());
  ids = runInNetnsValue<std::vector<uint32_t>>(topo_->nodeNetns(), [&] {
    return bpf::tcxProgramIds(client_.host_ifindex, bpf::TcDirection::kIngress);
  });
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
  auto before = forwarded(METRIC_EGRESS);
  transfer(4096);
  EXPECT_EQ(forwarded(METRIC_EGRESS).packets, before.packets);
}

TEST_F(LxcCountersTest, AttachIsIdempotentAndDetachToleratesMissingDevices) {
  ASSERT_TRUE(inNode([&] { return dp_->attachEndpoint(client_.host_ifindex); }).ok());
  ASSERT_TRUE(inNode([&] { return dp_->attachEndpoint(client_.host_ifindex); }).ok());
  auto ids = runInNetnsValue<std::vector<uint32_t>>(topo_->nodeNetns(), [&] {
    return bpf::tcxProgramIds(client_.host_ifindex, bpf::TcDirection::kEgress);
  });
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 1u) << "a second attach must replace, not stack";

  ASSERT_TRUE(topo_->removePod(client_).ok());
  auto s = inNode([&] { return dp_->detachEndpoint(client_.host_ifindex); });
  EXPECT_TRUE(s.ok()) << s.error().toString();
}

}  // namespace
}  // namespace cilium
