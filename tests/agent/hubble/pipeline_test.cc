// The flow ring and the pipeline: bounded memory, losses counted and reported, never blocking.
#include "agent/hubble/pipeline.h"

#include <atomic>

#include <gtest/gtest.h>

#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"

namespace cilium::hubble {
namespace {

using namespace std::chrono_literals;

EventPtr flowAt(uint32_t port) {
  auto r = std::make_shared<observer::GetFlowsResponse>();
  r->mutable_flow()->mutable_l4()->mutable_tcp()->set_destination_port(port);
  return r;
}

TEST(FlowRingTest, KeepsTheLastCapacityEvents) {
  FlowRing ring(4);
  for (uint32_t i = 0; i < 10; ++i) ring.write(flowAt(i));
  EXPECT_EQ(ring.size(), 4u);
  EXPECT_EQ(ring.next(), 10u);
  EXPECT_EQ(ring.oldest(), 6u);
  auto r = ring.read(6);
  ASSERT_TRUE(r.event);
  EXPECT_EQ(r.event->flow().l4().tcp().destination_port(), 6u);
  EXPECT_EQ(r.lost, 0u);
}

TEST(FlowRingTest, LappedReaderLearnsHowManyItMissed) {
  FlowRing ring(4);
  for (uint32_t i = 0; i < 10; ++i) ring.write(flowAt(i));
  auto r = ring.read(1);
  EXPECT_EQ(r.lost, 5u);
  EXPECT_EQ(r.seq, 6u);
  EXPECT_EQ(r.event->flow().l4().tcp().destination_port(), 6u);
  EXPECT_FALSE(ring.read(10).event);
}

TEST(FlowRingTest, WaitReadWakesOnWrite) {
  FlowRing ring(4);
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);  // the reader must be waiting first
    ring.write(flowAt(42));
  });
  auto r = ring.waitRead(0, 5s);
  writer.join();
  ASSERT_TRUE(r.event);
  EXPECT_EQ(r.event->flow().l4().tcp().destination_port(), 42u);
}

TEST(FlowRingTest, WaitReadManyTakesABatchAndCountsWhatWasLapped) {
  FlowRing ring(4);
  for (uint32_t i = 0; i < 10; ++i) ring.write(flowAt(i));
  std::vector<EventPtr> out;
  auto r = ring.waitReadMany(1, 0ms, out, 3);  // 1..5 overwritten
  EXPECT_EQ(r.lost, 5u);
  EXPECT_EQ(r.next, 9u);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]->flow().l4().tcp().destination_port(), 6u);
  EXPECT_EQ(out[2]->flow().l4().tcp().destination_port(), 8u);
  out.clear();
  r = ring.waitReadMany(r.next, 0ms, out, 100);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.next, 10u);
  ASSERT_EQ(out.size(), 1u);
  out.clear();
  r = ring.waitReadMany(10, 1ms, out, 100);  // nothing new: waits, then returns empty
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(r.next, 10u);
}

TEST(FlowPipelineTest, DecodesIntoTheRing) {
  StaticResolver res;
  res.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                  {*IpAddr::parse("10.200.0.12")});
  PipelineOptions o;
  o.node_name = "n1";
  o.ring_capacity = 16;
  FlowPipeline p(o, &res, &res);
  std::vector<std::string> seen;
  p.addFlowObserver([&](const flow::Flow& f) { seen.push_back(f.destination().pod_name()); });
  ASSERT_TRUE(p.start().ok());
  p.onEvent(testing::makeEvent(testing::EventSpec{}));
  p.onEvent(testing::makeEvent(testing::policyDrop()));
  auto bad = testing::makeEvent(testing::EventSpec{});
  bad.type = EVENT_DEBUG;
  p.onEvent(bad);
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(p.ring().size(), 2u);
  auto st = p.stats();
  EXPECT_EQ(st.seen_flows, 2u);
  // The debug record became a DebugEvent, in its own ring.
  EXPECT_EQ(st.debug_events, 1u);
  EXPECT_EQ(p.debugEvents().size(), 1u);
  EXPECT_EQ(st.queue_lost, 0u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "server");
  auto last = p.ring().read(1).event;
  EXPECT_EQ(last->flow().verdict(), flow::DROPPED);
  EXPECT_EQ(last->node_name(), "n1");
  EXPECT_EQ(last->time().seconds(), last->flow().time().seconds());
}

// The L7 proxy's access records become L7 flows in the same ring, counted by flush().
TEST(FlowPipelineTest, AccessRecordsBecomeL7Flows) {
  PipelineOptions o;
  o.node_name = "n1";
  o.ring_capacity = 16;
  FlowPipeline p(o, nullptr, nullptr);
  ASSERT_TRUE(p.start().ok());
  proxy::AccessRecord r;
  r.src_ip = "10.200.0.11";
  r.dst_ip = "10.200.0.12";
  r.method = "GET";
  r.url = "http://web/";
  r.protocol = "HTTP/1.1";
  p.onAccessRecord(r);
  p.onEvent(testing::makeEvent(testing::EventSpec{}));
  r.src_ip = "bad";
  p.onAccessRecord(r);
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(p.ring().size(), 2u);
  EXPECT_EQ(p.stats().malformed, 1u);
  bool l7 = false;
  for (uint64_t i = 0; i < 2; i++) {
    auto e = p.ring().read(i).event;
    if (e && e->flow().type() == flow::L7) {
      l7 = true;
      EXPECT_EQ(e->flow().l7().http().url(), "http://web/");
      EXPECT_EQ(e->node_name(), "n1");
    }
  }
  EXPECT_TRUE(l7);
}

TEST(FlowPipelineTest, RingOverflowKeepsNewestFlows) {
  PipelineOptions o;
  o.ring_capacity = 8;
  o.queue_size = 1024;
  FlowPipeline p(o, nullptr, nullptr);
  ASSERT_TRUE(p.start().ok());
  for (uint16_t i = 0; i < 100; ++i) {
    testing::EventSpec s;
    s.dport = 1000 + i;
    p.onEvent(testing::makeEvent(s));
  }
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(p.ring().size(), 8u);
  EXPECT_EQ(p.stats().seen_flows, 100u);
  auto newest = p.ring().read(p.ring().next() - 1).event;
  EXPECT_EQ(newest->flow().l4().tcp().destination_port(), 1099u);
}

TEST(FlowPipelineTest, FullQueueLosesEventsAndReportsThem) {
  PipelineOptions o;
  o.ring_capacity = 64;
  o.queue_size = 4;
  o.lost_poll = 10ms;
  FlowPipeline p(o, nullptr, nullptr);
  std::atomic<uint64_t> reported{0};
  p.addLostObserver([&](flow::LostEventSource s, uint64_t n) {
    if (s == flow::OBSERVER_EVENTS_QUEUE) reported += n;
  });
  // Not started: nothing drains the queue, so the fifth record on is lost, without blocking.
  for (int i = 0; i < 10; ++i) p.onEvent(testing::makeEvent(testing::EventSpec{}));
  EXPECT_EQ(p.stats().queue_lost, 6u);
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(p.flush(5s));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (reported.load() < 6 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(reported.load(), 6u);
  bool found = false;
  for (uint64_t s = p.ring().oldest(); s < p.ring().next(); ++s) {
    auto ev = p.ring().read(s).event;
    if (ev->has_lost_events()) {
      EXPECT_EQ(ev->lost_events().source(), flow::OBSERVER_EVENTS_QUEUE);
      EXPECT_EQ(ev->lost_events().num_events_lost(), 6u);
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(FlowPipelineTest, DatapathLossesAfterStartAreReported) {
  std::atomic<uint64_t> dp_lost{100};  // before start: not ours
  PipelineOptions o;
  o.lost_poll = 10ms;
  o.datapath_lost = [&] { return dp_lost.load(); };
  FlowPipeline p(o, nullptr, nullptr);
  std::atomic<uint64_t> reported{0};
  p.addLostObserver([&](flow::LostEventSource s, uint64_t n) {
    if (s == flow::PERF_EVENT_RING_BUFFER) reported += n;
  });
  ASSERT_TRUE(p.start().ok());
  dp_lost = 107;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (reported.load() < 7 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(reported.load(), 7u);
  EXPECT_EQ(p.stats().datapath_lost, 107u);
}

// Events a lapped follower missed (the server counts them) reach the lost observers as
// HUBBLE_RING_BUFFER (hubble_lost_events_total{source="hubble_ring_buffer"}) and the stats.
TEST(FlowPipelineTest, FollowerLossesAreReported) {
  PipelineOptions o;
  o.lost_poll = 10ms;
  FlowPipeline p(o, nullptr, nullptr);
  std::atomic<uint64_t> reported{0};
  p.addLostObserver([&](flow::LostEventSource s, uint64_t n) {
    if (s == flow::HUBBLE_RING_BUFFER) reported += n;
  });
  ASSERT_TRUE(p.start().ok());
  p.countReaderLost(5);
  p.countReaderLost(2);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (reported.load() < 7 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(reported.load(), 7u);
  EXPECT_EQ(p.stats().ring_lost, 7u);
  // Each follower got its own notice: nothing goes into the ring for every reader.
  for (uint64_t s = p.ring().oldest(); s < p.ring().next(); ++s)
    EXPECT_FALSE(p.ring().read(s).event->has_lost_events());
}

}  // namespace
}  // namespace cilium::hubble
