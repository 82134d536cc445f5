// EventHub fan-out and unsubscription, the API form of datapath records, and /monitor's
// query validation.
#include "agent/monitor/event_hub.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include "agent/monitor/api.h"

namespace cilium::monitor {
namespace {

cilium_event dropEvent() {
  cilium_event ev{};
  ev.type = EVENT_DROP;
  ev.subtype = DROP_POLICY;
  ev.source = 12;
  ev.ifindex = 7;
  ev.src_identity = 256;
  ev.dst_identity = 257;
  ev.dir = METRIC_INGRESS;
  ev.line = 120;
  ev.file = DROP_FILE_BPF_LXC;
  ev.tuple.saddr.ip4 = htonl(0x0a000001);
  ev.tuple.daddr.ip4 = htonl(0x0a000002);
  ev.tuple.sport = htons(40000);
  ev.tuple.dport = htons(80);
  ev.tuple.proto = 6;
  ev.tuple.tcp_flags = 0x02;
  return ev;
}

TEST(EventHubTest, FansOutInOrderAndStopsAfterUnsubscribe) {
  auto hub = EventHub::detached();
  std::vector<uint16_t> a, b;
  auto sa = hub->subscribe([&](const cilium_event& ev) { a.push_back(ev.source); });
  EventHub::Subscription sb =
      hub->subscribe([&](const cilium_event& ev) { b.push_back(ev.source); });
  cilium_event ev = dropEvent();
  for (uint16_t i = 1; i <= 3; i++) {
    ev.source = i;
    hub->publish(ev);
  }
  EXPECT_EQ(a, (std::vector<uint16_t>{1, 2, 3}));
  EXPECT_EQ(b, (std::vector<uint16_t>{1, 2, 3}));
  EXPECT_EQ(hub->subscribers(), 2u);

  // Moving keeps the subscription; destroying it ends it.
  EventHub::Subscription moved = std::move(sb);
  EXPECT_FALSE(sb);
  ev.source = 4;
  hub->publish(ev);
  moved.reset();
  ev.source = 5;
  hub->publish(ev);
  EXPECT_EQ(a, (std::vector<uint16_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(b, (std::vector<uint16_t>{1, 2, 3, 4}));
  EXPECT_EQ(hub->subscribers(), 1u);
  EXPECT_EQ(hub->delivered(), 5u);
}

TEST(EventHubTest, ApiFormOfADrop) {
  api::MonitorEvent e = toApiEvent(dropEvent(), 0);
  EXPECT_EQ(e.type, "drop");
  EXPECT_EQ(e.drop_reason, DROP_POLICY);
  EXPECT_EQ(e.drop_reason_desc, "Policy denied");
  EXPECT_EQ(e.source, 12);
  EXPECT_EQ(e.src_identity, 256);
  EXPECT_EQ(e.direction, "ingress");
  ASSERT_TRUE(e.tuple);
  EXPECT_EQ(e.tuple->src, "10.0.0.1");
  EXPECT_EQ(e.tuple->dport, 80);
  EXPECT_EQ(e.tuple->protocol, "tcp");
  EXPECT_EQ(e.tuple->tcp_flags, "SYN");

  cilium_event v = dropEvent();
  v.type = EVENT_POLICY_VERDICT;
  v.verdict = -DROP_POLICY_DENY;
  v.match_type = POLICY_MATCH_L3_L4;
  api::MonitorEvent pv = toApiEvent(v, 0);
  EXPECT_EQ(pv.type, "policy-verdict");
  EXPECT_EQ(pv.verdict, "deny");
  EXPECT_EQ(pv.drop_reason_desc, "Policy denied by denylist");
}

TEST(EventHubTest, MonitorRouteValidatesTheQuery) {
  auto hub = EventHub::detached();
  api::Router router;
  ASSERT_TRUE(registerRoutes(router, *hub).ok());
  EXPECT_EQ(router.dispatch("GET", "/v1/monitor?type=bogus", {}, "").status, 400);
  EXPECT_EQ(router.dispatch("GET", "/v1/monitor?from=x", {}, "").status, 400);
  auto ok = router.dispatch("GET", "/v1/monitor?type=drop&to=12", {}, "");
  ASSERT_EQ(ok.status, 200);
  ASSERT_TRUE(ok.stream);
  EXPECT_EQ(hub->subscribers(), 1u);
  cilium_event trace = dropEvent();
  trace.type = EVENT_TRACE;
  hub->publish(trace);  // filtered out: not a drop
  hub->publish(dropEvent());
  auto first = ok.stream->next(std::chrono::milliseconds(100));
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["type"], "drop");
  EXPECT_FALSE(ok.stream->next(std::chrono::milliseconds(10)));
  ok.stream.reset();
  EXPECT_EQ(hub->subscribers(), 0u) << "a closed stream unsubscribes";
}

}  // namespace
}  // namespace cilium::monitor
