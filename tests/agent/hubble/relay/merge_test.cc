// FlowMerger: time order across sources, bounded buffers (a full source blocks), a slow source
// waited for within the drain timeout, a quiet source drained after it, sources ending, notices.
#include "agent/hubble/relay/merge.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "tests/harness/eventually.h"

namespace cilium::hubble::relay {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;

observer::GetFlowsResponse at(int64_t ns, std::string node = "") {
  observer::GetFlowsResponse r;
  r.mutable_time()->set_seconds(ns / 1000000000);
  r.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  r.mutable_flow()->mutable_time()->CopyFrom(r.time());
  r.set_node_name(std::move(node));
  return r;
}

// Pops until kEnd (or `max` events); gives up after 60 s (the test then fails on the count).
std::vector<observer::GetFlowsResponse> drain(FlowMerger& m, size_t max = SIZE_MAX) {
  std::vector<observer::GetFlowsResponse> out;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  observer::GetFlowsResponse ev;
  while (out.size() < max && std::chrono::steady_clock::now() < deadline) {
    auto r = m.pop(ev, 50ms);
    if (r == FlowMerger::Pop::kEnd) break;
    if (r == FlowMerger::Pop::kEvent) out.push_back(ev);
  }
  return out;
}

std::vector<int64_t> times(const std::vector<observer::GetFlowsResponse>& evs) {
  std::vector<int64_t> out;
  for (const auto& e : evs) out.push_back(eventTimeNs(e));
  return out;
}

// Exact order as long as no buffer fills (a full one goes out without waiting for the others,
// see QuietSourceDoesNotThrottleABusyOne): here each buffer holds a whole source.
TEST(FlowMerger, MergesConcurrentSourcesInTimeOrder) {
  constexpr int kSources = 3, kPerSource = 500;
  FlowMerger m({kPerSource + 1, 10s, false});
  std::vector<std::thread> producers;
  for (int s = 0; s < kSources; ++s) {
    int id = m.addSource("node-" + std::to_string(s));
    producers.emplace_back([&m, id, s] {
      // Interleaved times: source s has s, s+3, s+6, ...
      for (int i = 0; i < kPerSource; ++i) ASSERT_TRUE(m.push(id, at(1000 + i * kSources + s)));
      m.end(id);
    });
  }
  auto out = drain(m);
  m.close();  // a stalled merge fails the test below instead of hanging it
  for (auto& t : producers) t.join();
  ASSERT_EQ(out.size(), size_t{kSources * kPerSource});
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(eventTimeNs(out[i]), 1000 + int64_t(i)) << i;
}

TEST(FlowMerger, FullSourceBlocksUntilTheConsumerTakes) {
  FlowMerger m({2, 1h, false});
  int a = m.addSource("a"), b = m.addSource("b");
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(m.push(a, at(100 + i)));
      ++pushed;
    }
    m.end(a);
  });
  ASSERT_TRUE(eventually([&] { return pushed == 2; }));
  // Nobody pops: nothing more fits (a negative, so a bounded look rather than a condition).
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(pushed, 2);
  // One taken (a's buffer is full, so it goes although b is quiet): one more fits.
  observer::GetFlowsResponse ev;
  ASSERT_EQ(m.pop(ev, 1s), FlowMerger::Pop::kEvent);
  EXPECT_EQ(eventTimeNs(ev), 100);
  ASSERT_TRUE(eventually([&] { return pushed == 3; }));
  m.end(b);
  auto out = drain(m);
  m.close();
  producer.join();
  EXPECT_EQ(times(out), (std::vector<int64_t>{101, 102, 103, 104, 105, 106, 107, 108, 109}));
}

// A node that answers late, but within the drain timeout, still gets its flows in order.
TEST(FlowMerger, SlowSourceWithinTheDrainTimeoutKeepsTheOrder) {
  FlowMerger m({100, 10s, false});
  int fast = m.addSource("fast"), slow = m.addSource("slow");
  for (int64_t t : {1, 3, 5}) ASSERT_TRUE(m.push(fast, at(t)));
  m.end(fast);
  std::thread late([&] {
    std::this_thread::sleep_for(300ms);  // the slow node's answer takes this long
    for (int64_t t : {2, 4, 6}) ASSERT_TRUE(m.push(slow, at(t)));
    m.end(slow);
  });
  auto out = drain(m);
  m.close();
  late.join();
  EXPECT_EQ(times(out), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

// Following: a node without traffic delays the others' flows by the drain timeout, no more.
TEST(FlowMerger, QuietSourceIsNotWaitedForBeyondTheDrainTimeout) {
  FlowMerger m({100, 200ms, true});
  int busy = m.addSource("busy");
  m.addSource("quiet");  // open, never sends
  auto start = std::chrono::steady_clock::now();
  for (int64_t t : {10, 20, 30}) ASSERT_TRUE(m.push(busy, at(t)));
  auto out = drain(m, 3);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(times(out), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_GE(waited, 200ms);
  // keep_open: no end while following, only kWait.
  observer::GetFlowsResponse ev;
  EXPECT_EQ(m.pop(ev, 20ms), FlowMerger::Pop::kWait);
  m.close();
  EXPECT_EQ(m.pop(ev, 20ms), FlowMerger::Pop::kEnd);
}

// A quiet node must not throttle a busy one to a buffer per drain timeout: once the busy
// source's buffer is full its events go out without waiting.
TEST(FlowMerger, QuietSourceDoesNotThrottleABusyOne) {
  FlowMerger m({4, 1h, true});
  int busy = m.addSource("busy");
  m.addSource("quiet");
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i)
      if (!m.push(busy, at(100 + i))) break;  // closed once the test has what it waits for
  });
  auto out = drain(m, 996);  // the last ones stay: the buffer is no longer full
  m.close();
  producer.join();
  ASSERT_EQ(out.size(), 996u);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(eventTimeNs(out[i]), 100 + int64_t(i));
}

// The relay writes what popBatch hands it in one go: the events due now, up to the maximum, in
// the order single pops give; never one that still waits for a quiet source; notices first.
TEST(FlowMerger, PopBatchTakesWhatIsDueInTimeOrder) {
  constexpr int kPerSource = 300;
  FlowMerger m({kPerSource, 1h, false});
  std::vector<std::thread> producers;
  for (int s = 0; s < 2; ++s) {
    int id = m.addSource("node-" + std::to_string(s));
    producers.emplace_back([&m, id, s] {
      for (int i = 0; i < kPerSource; ++i) ASSERT_TRUE(m.push(id, at(1000 + 2 * i + s)));
      m.end(id);
    });
  }
  for (auto& t : producers) t.join();  // everything buffered: the batches are full ones
  std::vector<observer::GetFlowsResponse> got;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  size_t batches = 0;
  for (;;) {
    std::vector<observer::GetFlowsResponse> batch;
    auto r = m.popBatch(batch, 64, 50ms);
    if (r == FlowMerger::Pop::kEnd || std::chrono::steady_clock::now() > deadline) break;
    EXPECT_LE(batch.size(), 64u);
    batches += r == FlowMerger::Pop::kEvent;
    got.insert(got.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(got.size(), size_t{2 * kPerSource});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(eventTimeNs(got[i]), 1000 + int64_t(i)) << i;
  EXPECT_EQ(batches, (got.size() + 63) / 64);

  // Not due (a quiet open source, buffers not full): nothing, after max_wait.
  FlowMerger q({100, 1h, true});
  int x = q.addSource("x");
  q.addSource("quiet");
  ASSERT_TRUE(q.push(x, at(5)));
  std::vector<observer::GetFlowsResponse> none;
  EXPECT_EQ(q.popBatch(none, 64, 20ms), FlowMerger::Pop::kWait);
  EXPECT_TRUE(none.empty());
  // Notices come first, then what is due.
  observer::GetFlowsResponse status;
  status.mutable_node_status()->set_state_change(::relay::NODE_CONNECTED);
  q.notice(status);
  EXPECT_EQ(q.popBatch(none, 64, 20ms), FlowMerger::Pop::kEvent);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(none[0].has_node_status());
}

TEST(FlowMerger, EndedSourceNoLongerHoldsTheOthers) {
  FlowMerger m({100, 1h, false});
  int a = m.addSource("a"), b = m.addSource("b"), c = m.addSource("c");
  ASSERT_TRUE(m.push(a, at(5)));
  ASSERT_TRUE(m.push(b, at(1)));
  m.end(b);  // b goes away after one flow
  ASSERT_TRUE(m.push(c, at(3)));
  ASSERT_TRUE(m.push(c, at(7)));
  observer::GetFlowsResponse ev;
  // a and c have heads, b ended with its flow buffered: 1, 3, 5 go out, then a is empty & open.
  std::vector<int64_t> got;
  while (m.pop(ev, 20ms) == FlowMerger::Pop::kEvent) got.push_back(eventTimeNs(ev));
  EXPECT_EQ(got, (std::vector<int64_t>{1, 3, 5}));
  m.end(a);
  EXPECT_EQ(times(drain(m, 1)), (std::vector<int64_t>{7}));
  EXPECT_EQ(m.openSources(), 1u);  // c
  m.end(c);
  EXPECT_EQ(m.pop(ev, 20ms), FlowMerger::Pop::kEnd);
}

TEST(FlowMerger, NoticesGoFirstAndUntimedEventsKeepTheirPlace) {
  FlowMerger m({100, 1h, false});
  int a = m.addSource("a"), b = m.addSource("b");
  ASSERT_TRUE(m.push(a, at(10)));
  observer::GetFlowsResponse lost;
  lost.mutable_lost_events()->set_num_events_lost(3);
  ASSERT_TRUE(m.push(a, lost));  // no time: after a's 10
  ASSERT_TRUE(m.push(a, at(30)));
  ASSERT_TRUE(m.push(b, at(20)));
  m.end(a);
  m.end(b);
  observer::GetFlowsResponse status;
  status.mutable_node_status()->set_state_change(::relay::NODE_UNAVAILABLE);
  m.notice(status);
  auto out = drain(m);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(out[0].has_node_status());
  EXPECT_EQ(eventTimeNs(out[1]), 10);
  EXPECT_TRUE(out[2].has_lost_events());
  EXPECT_EQ(eventTimeNs(out[3]), 20);
  EXPECT_EQ(eventTimeNs(out[4]), 30);
}

TEST(FlowMerger, CloseReleasesBlockedSources) {
  FlowMerger m({1, 1h, false});
  int a = m.addSource("a");
  m.addSource("b");
  ASSERT_TRUE(m.push(a, at(1)));
  std::atomic<int> result{-1};
  std::thread blocked([&] { result = m.push(a, at(2)) ? 1 : 0; });
  m.close();
  blocked.join();
  EXPECT_EQ(result, 0);
  EXPECT_FALSE(m.push(a, at(3)));
}

}  // namespace
}  // namespace cilium::hubble::relay
