// bpf tier: bpf_lxc run with BPF_PROG_TEST_RUN on crafted packets, counting into cilium_metrics.
#include <gtest/gtest.h>

#include "agent/bpf/skeleton.h"
#include "agent/bpf/test_run.h"
#include "agent/datapath/datapath.h"
#include "tests/harness/netns.h"
#include "tests/harness/packet.h"

namespace cilium {
namespace {

using testing::PacketBuilder;

class LxcMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto topo = testing::Topology::create();
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    auto pin = topo_->pinDir();
    ASSERT_TRUE(pin.ok()) << pin.error().toString();
    auto dp = datapath::Datapath::load({*pin});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
  }

  datapath::MetricsEntry entry(uint8_t reason, uint8_t dir) {
    auto all = dp_->readMetrics();
    EXPECT_TRUE(all.ok());
    for (const auto& e : *all)
      if (e.reason == reason && e.dir == dir) return e;
    return {reason, dir, 0, 0};
  }

  std::unique_ptr<testing::Topology> topo_;
  std::unique_ptr<datapath::Datapath> dp_;
};

TEST_F(LxcMetricsTest, CountsPacketsAndBytesPerDirection) {
  auto syn =
      PacketBuilder().ipv4("10.200.0.11", "10.200.0.12").tcp(40000, 80, testing::tcp::kSyn).build();
  auto data = PacketBuilder()
                  .ipv4("10.200.0.12", "10.200.0.11")
                  .tcp(80, 40000, testing::tcp::kAck)
                  .payload(1000)
                  .build();

  // Pretend the program is the one on the veth: the harness gives the program the same view.
  const auto* from = dp_->programs().from_container;
  const auto* to = dp_->programs().to_container;
  auto r = bpf::testRun(from, syn, {.repeat = 10});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->retval, 0);  // TC_ACT_OK
  r = bpf::testRun(to, data, {.repeat = 3});
  ASSERT_TRUE(r.ok()) << r.error().toString();

  auto egress = entry(REASON_FORWARDED, METRIC_EGRESS);
  EXPECT_EQ(egress.packets, 10u);
  EXPECT_EQ(egress.bytes, 10u * syn.size());
  auto ingress = entry(REASON_FORWARDED, METRIC_INGRESS);
  EXPECT_EQ(ingress.packets, 3u);
  EXPECT_EQ(ingress.bytes, 3u * data.size());
}

TEST_F(LxcMetricsTest, PinnedMapsSurviveAReload) {
  auto pkt = PacketBuilder().ipv4("10.200.0.11", "10.200.0.12").udp(1, 2).build();
  ASSERT_TRUE(bpf::testRun(dp_->programs().from_container, pkt, {.repeat = 5}).ok());

  // A second load, as a restarted agent does, reuses the pinned map and its counts.
  auto again = datapath::Datapath::load(dp_->config());
  ASSERT_TRUE(again.ok()) << again.error().toString();
  dp_ = std::move(*again);
  EXPECT_EQ(entry(REASON_FORWARDED, METRIC_EGRESS).packets, 5u);
  ASSERT_TRUE(bpf::testRun(dp_->programs().from_container, pkt, {.repeat = 2}).ok());
  EXPECT_EQ(entry(REASON_FORWARDED, METRIC_EGRESS).packets, 7u);
}

TEST_F(LxcMetricsTest, PinnedMapWithAnotherSizeIsReplaced) {
  auto pkt = PacketBuilder().ipv4("10.200.0.11", "10.200.0.12").udp(1, 2).build();
  ASSERT_TRUE(bpf::testRun(dp_->programs().from_container, pkt, {.repeat = 5}).ok());
  datapath::Config cfg = dp_->config();
  cfg.metrics_map_entries = 1024;
  dp_.reset();
  auto resized = datapath::Datapath::load(cfg);
  ASSERT_TRUE(resized.ok()) << resized.error().toString();
  dp_ = std::move(*resized);
  EXPECT_EQ(dp_->metrics().maxEntries(), 1024u);
  EXPECT_EQ(entry(REASON_FORWARDED, METRIC_EGRESS).packets, 0u);
}

}  // namespace
}  // namespace cilium
