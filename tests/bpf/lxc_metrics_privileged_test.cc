// bpf tier: cilium_metrics counts every forwarded and dropped packet by (reason, direction), and
// pinned maps keep their contents across a reload of the programs (an agent restart).
#include <unistd.h>

#include "agent/bpf/skeleton.h"
#include "bpf_lxc.skel.h"
#include "tests/bpf/lxc_fixture.h"

namespace cilium::testing {
namespace {

using LxcMetricsTest = LxcTest;

TEST_F(LxcMetricsTest, CountsPacketsAndBytesPerReasonAndDirection) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
  auto out = from(a_).ipv4(a_.pod.ip, kRemote1).tcp(40000, 80, tcp::kSyn).build();
  auto in =
      to(a_).ipv4(kRemote1, a_.pod.ip).tcp(80, 40000, tcp::kSyn | tcp::kAck).payload(1000).build();
  for (int i = 0; i < 10; i++) ASSERT_EQ(fromContainer(a_, out).retval, TC_ACT_OK);
  for (int i = 0; i < 3; i++) ASSERT_EQ(toContainer(a_, in).retval, TC_ACT_OK);
  auto spoofed = from(a_).ipv4("10.200.0.99", kRemote1).udp(1, 2).build();
  for (int i = 0; i < 4; i++) ASSERT_EQ(fromContainer(a_, spoofed).retval, TC_ACT_SHOT);

  auto all = dp_->readMetrics();
  ASSERT_TRUE(all.ok());
  auto find = [&](uint8_t reason, uint8_t dir) {
    for (const auto& e : *all)
      if (e.reason == reason && e.dir == dir) return e;
    return datapath::MetricsEntry{reason, dir, 0, 0};
  };
  EXPECT_EQ(find(REASON_FORWARDED, METRIC_EGRESS).packets, 10u);
  EXPECT_EQ(find(REASON_FORWARDED, METRIC_EGRESS).bytes, 10u * out.size());
  EXPECT_EQ(find(REASON_FORWARDED, METRIC_INGRESS).packets, 3u);
  EXPECT_EQ(find(REASON_FORWARDED, METRIC_INGRESS).bytes, 3u * in.size());
  EXPECT_EQ(find(DROP_INVALID_SIP, METRIC_EGRESS).packets, 4u);
  EXPECT_EQ(find(DROP_INVALID_SIP, METRIC_EGRESS).bytes, 4u * spoofed.size());
}

TEST_F(LxcMetricsTest, PinnedMapsSurviveAReload) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  auto pkt = from(a_).ipv4(a_.pod.ip, kRemote1).udp(1, 2).build();
  for (int i = 0; i < 5; i++) ASSERT_EQ(fromContainer(a_, pkt).retval, TC_ACT_OK);

  // A second load, as a restarted agent does, reuses the pinned maps: counters, endpoints,
  // policy and conntrack are all still there.
  reload(dp_->config());
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 5u);
  ASSERT_TRUE(ctEntry(a_.pod.ip.c_str(), kRemote1, 1, 2, 17, CT_KEY_EGRESS));
  for (int i = 0; i < 2; i++) ASSERT_EQ(fromContainer(a_, pkt).retval, TC_ACT_OK);
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 7u);
  EXPECT_EQ(maps().policy->dump(a_.id)->size(), 1u);
}

TEST_F(LxcMetricsTest, PinnedMapsWithAnotherSizeAreReplaced) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  auto pkt = from(a_).ipv4(a_.pod.ip, kRemote1).udp(1, 2).build();
  ASSERT_EQ(fromContainer(a_, pkt).retval, TC_ACT_OK);
  datapath::Config cfg = dp_->config();
  cfg.metrics_map_entries = 1024;
  cfg.policy_map_entries = 512;
  reload(cfg);
  EXPECT_EQ(dp_->metrics().maxEntries(), 1024u);
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 0u);
  // LPM inner maps of any size fit the outer map: the policies in force survive the resize,
  // and new inner maps get the new size.
  EXPECT_EQ(maps().policy->dump(a_.id)->size(), 1u);
  EXPECT_EQ(fromContainer(a_, pkt).retval, TC_ACT_OK);
  std::vector<datapath::PolicyEntry> big;
  for (uint32_t i = 0; i < 513; i++) big.push_back(allowEntry(5000 + i, POLICY_EGRESS));
  EXPECT_EQ(maps().policy->replace(a_.id, big).error().code(), ErrorCode::kResourceExhausted);
}

TEST_F(LxcMetricsTest, BadConfigurationIsRejectedBeforeLoading) {
  datapath::Config cfg = dp_->config();
  cfg.events_ring_bytes = 5000;
  auto r = datapath::Datapath::load(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("events_ring_bytes"), std::string::npos);
  cfg = dp_->config();
  cfg.pin_dir.clear();  // would pin nothing and put the links directory at "/links"
  r = datapath::Datapath::load(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

// Without a pin directory nothing is pinned (libbpf alone would pin under /sys/fs/bpf).
TEST(SkeletonPinningTest, NoPinDirPinsNothing) {
  const char* probe = "/sys/fs/bpf/cilium_runtime_config";
  if (::access(probe, F_OK) == 0) GTEST_SKIP() << probe << " exists already";
  auto opened = bpf::OpenedSkeleton<bpf_lxc>::open({});
  ASSERT_TRUE(opened.ok()) << opened.error().toString();
  auto loaded = std::move(*opened).load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().toString();
  EXPECT_NE(::access(probe, F_OK), 0) << "a map was pinned under /sys/fs/bpf";
}

}  // namespace
}  // namespace cilium::testing
