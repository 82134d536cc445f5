// bpf tier: datapath events: trace aggregation (medium vs none), the per-CPU rate limit, and a
// full ring, none of which may change what happens to a packet.
#include "agent/datapath/conntrack.h"
#include "tests/bpf/lxc_fixture.h"

namespace cilium::testing {
namespace {

constexpr uint8_t kTcp = 6;

class LxcEventsTest : public LxcTest {
 protected:
  std::vector<uint8_t> out(uint8_t flags, uint16_t sport = 40000) {
    return from(a_).ipv4(a_.pod.ip, kRemote1).tcp(sport, 80, flags).build();
  }
  std::vector<uint8_t> denied(uint16_t sport) {
    return from(a_).ipv4(a_.pod.ip, kRemote2).tcp(sport, 80, tcp::kSyn).build();
  }
  void allowOut() { setPolicy(a_, {allowEntry(kRemoteId1, POLICY_EGRESS, kTcp)}); }
};

TEST_F(LxcEventsTest, MediumAggregationTracesNewConnectionsNewFlagsAndIntervals) {
  allowOut();
  events();
  ASSERT_EQ(fromContainer(a_, out(tcp::kSyn)).retval, TC_ACT_OK);
  // As Cilium's medium level: where the packet goes (TO_*), not also where it came from.
  auto traces = ofType(events(), EVENT_TRACE);
  ASSERT_EQ(traces.size(), 1u);
  EXPECT_EQ(traces[0].subtype, TRACE_TO_STACK);
  EXPECT_EQ(traces[0].src_identity, kIdentityA);
  EXPECT_EQ(traces[0].dst_identity, kRemoteId1);
  EXPECT_EQ(traces[0].ct_state, CT_NEW);
  EXPECT_EQ(traces[0].tuple.tcp_flags, tcp::kSyn);

  // A retransmitted SYN shows nothing new.
  ASSERT_EQ(fromContainer(a_, out(tcp::kSyn)).retval, TC_ACT_OK);
  EXPECT_TRUE(events().empty());
  // The first ACK is a flag not seen in that direction.
  ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  traces = ofType(events(), EVENT_TRACE);
  ASSERT_EQ(traces.size(), 1u);
  EXPECT_EQ(traces[0].ct_state, CT_ESTABLISHED);
  for (int i = 0; i < 5; i++) ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  EXPECT_TRUE(events().empty());

  // Once the report interval has passed, the connection is traced again.
  ct_key4 k{};
  k.saddr = htonl(ipv4(a_.pod.ip));
  k.daddr = htonl(ipv4(kRemote1));
  k.sport = htons(40000);
  k.dport = htons(80);
  k.nexthdr = kTcp;
  k.flags = CT_KEY_EGRESS;
  auto e = maps().ct_tcp->lookup(k);
  ASSERT_TRUE(e.ok() && *e);
  ct_entry aged = **e;
  aged.last_tx_report = datapath::monotonicSeconds() - CT_REPORT_INTERVAL - 1;
  ASSERT_TRUE(maps().ct_tcp->update(k, aged).ok());
  ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  EXPECT_EQ(ofType(events(), EVENT_TRACE).size(), 1u);
  ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  EXPECT_TRUE(events().empty());

  // Every event of one packet carries the same timestamp (one clock read per packet).
  setPolicy(b_, {allowEntry(0, POLICY_INGRESS)});
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  events();
  ASSERT_EQ(fromContainer(a_, from(a_).ipv4(a_.pod.ip, b_.pod.ip).udp(7, 8).build()).retval,
            TC_ACT_REDIRECT);
  auto evs = events();
  ASSERT_EQ(evs.size(), 3u) << describe(evs);  // two verdicts, to-endpoint
  EXPECT_EQ(evs[0].ktime_ns, evs[2].ktime_ns);
  EXPECT_GT(evs[0].ktime_ns, 0u);
}

TEST_F(LxcEventsTest, NoAggregationTracesEveryPacket) {
  datapath::Config cfg = dp_->config();
  cfg.monitor_aggregation = datapath::MonitorAggregation::kNone;
  reload(cfg);
  allowOut();
  setPolicy(b_, {allowEntry(0, POLICY_INGRESS)});
  events();
  for (int i = 0; i < 4; i++) ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  auto traces = ofType(events(), EVENT_TRACE);
  ASSERT_EQ(traces.size(), 8u);
  for (size_t i = 0; i < traces.size(); i++)
    EXPECT_EQ(traces[i].subtype, i % 2 ? TRACE_TO_STACK : TRACE_FROM_LXC);

  // Local delivery: from the sender, then to the receiving endpoint, on its behalf.
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  events();
  ASSERT_EQ(fromContainer(a_, from(a_).ipv4(a_.pod.ip, b_.pod.ip).udp(1, 2).build()).retval,
            TC_ACT_REDIRECT);
  traces = ofType(events(), EVENT_TRACE);
  ASSERT_EQ(traces.size(), 2u);
  EXPECT_EQ(traces[1].subtype, TRACE_TO_LXC);
  EXPECT_EQ(traces[1].source, b_.id);
  EXPECT_EQ(traces[1].dst_id, b_.id);
  EXPECT_EQ(traces[1].dir, METRIC_INGRESS);
}

TEST_F(LxcEventsTest, RateLimitSuppressesEventsNotPackets) {
  datapath::Config cfg = dp_->config();
  cfg.events_rate = 1;
  cfg.events_burst = 5;
  reload(cfg);
  auto before = dp_->eventCounters();
  ASSERT_TRUE(before.ok());
  constexpr int kPackets = 40;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kPackets; i++)
    EXPECT_EQ(fromContainer(a_, denied(static_cast<uint16_t>(50000 + i))).retval, TC_ACT_SHOT);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(metric(DROP_POLICY, METRIC_EGRESS), static_cast<uint64_t>(kPackets));
  auto evs = events();
  // Each drop is worth two events (verdict and drop). Buckets are per CPU: each holds 5 and
  // refills one per second while the packets run.
  size_t cpus = bpf::possibleCpus();
  size_t most = cpus * (5 + static_cast<size_t>(elapsed) + 1);
  EXPECT_GE(evs.size(), 5u);
  EXPECT_LE(evs.size(), most) << "in " << elapsed << " s on " << cpus << " CPUs";
  EXPECT_LT(evs.size(), 2u * kPackets);
  auto after = dp_->eventCounters();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->emitted - before->emitted, evs.size());
  EXPECT_EQ(after->rate_limited - before->rate_limited, size_t{2} * kPackets - evs.size());
  EXPECT_EQ(after->lost, before->lost);
}

TEST_F(LxcEventsTest, AFullRingLosesEventsNotPackets) {
  datapath::Config cfg = dp_->config();
  cfg.events_ring_bytes = 4096;  // ~40 records
  reload(cfg);
  allowOut();
  auto before = dp_->eventCounters();
  ASSERT_TRUE(before.ok());
  constexpr int kPackets = 100;
  // Nobody reads while these run.
  for (int i = 0; i < kPackets; i++)
    ASSERT_EQ(fromContainer(a_, denied(static_cast<uint16_t>(50000 + i))).retval, TC_ACT_SHOT);
  for (int i = 0; i < 10; i++)
    ASSERT_EQ(fromContainer(a_, out(tcp::kSyn, static_cast<uint16_t>(20000 + i))).retval,
              TC_ACT_OK);
  EXPECT_EQ(metric(DROP_POLICY, METRIC_EGRESS), static_cast<uint64_t>(kPackets));
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 10u);
  auto after = dp_->eventCounters();
  ASSERT_TRUE(after.ok());
  uint64_t lost = after->lost - before->lost;
  uint64_t emitted = after->emitted - before->emitted;
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(lost + emitted, 2u * kPackets + 2u * 10);  // deny: verdict, drop; new: verdict, trace
  auto evs = events();
  EXPECT_EQ(evs.size(), emitted);
  EXPECT_EQ(reader_->malformed(), 0u);
  // Once drained, events flow again.
  ASSERT_EQ(fromContainer(a_, denied(60000)).retval, TC_ACT_SHOT);
  EXPECT_EQ(ofType(events(), EVENT_DROP).size(), 1u);
}

TEST_F(LxcEventsTest, ReaderWaitsForEventsWithATimeout) {
  allowOut();
  events();
  auto t0 = std::chrono::steady_clock::now();
  auto n = reader_->poll(std::chrono::milliseconds(100));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
  ASSERT_EQ(fromContainer(a_, denied(61000)).retval, TC_ACT_SHOT);
  // Two records are below the wakeup threshold: they are handed over when the poll times out.
  n = reader_->poll(std::chrono::milliseconds(100));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_GE(reader_->fd(), 0);
  // Another process's view: the pinned ring.
  std::vector<cilium_event> seen;
  auto pinned = datapath::EventReader::openPinned(
      dp_->config().pin_dir, [&](const cilium_event& ev) { seen.push_back(ev); });
  ASSERT_TRUE(pinned.ok()) << pinned.error().toString();
  ASSERT_EQ(fromContainer(a_, denied(61001)).retval, TC_ACT_SHOT);
  ASSERT_TRUE((*pinned)->consume().ok());
  EXPECT_EQ(ofType(seen, EVENT_DROP).size(), 1u);
}

}  // namespace
}  // namespace cilium::testing
