#include "agent/datapath/monitor.h"

#include <arpa/inet.h>

#include <cstring>

#include <gtest/gtest.h>

#include "agent/datapath/events.h"

namespace cilium::datapath {
namespace {

TEST(MonitorTest, DropReasonsReadAsCiliumsDo) {
  EXPECT_EQ(dropReasonName(DROP_POLICY), "Policy denied");
  EXPECT_EQ(dropReasonName(DROP_POLICY_DENY), "Policy denied by denylist");
  EXPECT_EQ(dropReasonName(DROP_INVALID_SIP), "Invalid source ip");
  EXPECT_EQ(dropReasonName(DROP_FRAG_NOSUPPORT), "IP fragmentation not supported");
  EXPECT_EQ(dropReasonName(DROP_UNKNOWN_L3), "Unsupported L3 protocol");
  EXPECT_EQ(dropReasonName(DROP_CT_CREATE_FAILED), "CT: Map insertion failed");
  EXPECT_EQ(dropReasonName(DROP_TTL_EXCEEDED), "TTL exceeded");
  EXPECT_EQ(dropReasonName(DROP_EP_NOT_READY), "Endpoint policy program not available");
  EXPECT_EQ(dropReasonName(250), "250");
  // Every code the datapath can emit has a name.
  for (uint8_t r : {DROP_INVALID_SIP, DROP_POLICY, DROP_INVALID, DROP_CT_INVALID_HDR,
                    DROP_UNKNOWN_L3, DROP_CT_CREATE_FAILED, DROP_FRAG_NOSUPPORT, DROP_POLICY_DENY,
                    DROP_TTL_EXCEEDED, DROP_EP_NOT_READY})
    EXPECT_NE(dropReasonName(r), std::to_string(r)) << int(r);
}

TEST(MonitorTest, CodeNames) {
  EXPECT_EQ(tracePointName(TRACE_TO_LXC), "to-endpoint");
  EXPECT_EQ(tracePointName(TRACE_FROM_LXC), "from-endpoint");
  EXPECT_EQ(tracePointName(TRACE_TO_STACK), "to-stack");
  EXPECT_EQ(tracePointName(200), "unknown");
  EXPECT_EQ(ctStatusName(CT_REPLY), "reply");
  EXPECT_EQ(eventTypeName(EVENT_POLICY_VERDICT), "policy-verdict");
  EXPECT_EQ(policyMatchName(POLICY_MATCH_L3_L4), "L3-L4");
}

cilium_event dropEvent() {
  cilium_event ev{};
  ev.type = EVENT_DROP;
  ev.subtype = DROP_POLICY;
  ev.source = 12;
  ev.src_identity = 1001;
  ev.dst_identity = 1002;
  ev.dir = METRIC_INGRESS;
  ev.tuple.saddr.ip4 = htonl(0x0ac8000b);
  ev.tuple.daddr.ip4 = htonl(0x0ac8000c);
  ev.tuple.sport = htons(40000);
  ev.tuple.dport = htons(80);
  ev.tuple.proto = 6;
  ev.tuple.tcp_flags = 0x02;
  return ev;
}

TEST(MonitorTest, FormatsEvents) {
  EXPECT_EQ(formatEvent(dropEvent()),
            "drop (Policy denied) 10.200.0.11:40000 -> 10.200.0.12:80 tcp [SYN] identity 1001 -> "
            "1002 ep 12 ingress ct new");
  cilium_event v = dropEvent();
  v.type = EVENT_POLICY_VERDICT;
  v.verdict = -DROP_POLICY_DENY;
  v.match_type = POLICY_MATCH_L4_ONLY;
  EXPECT_NE(formatEvent(v).find("policy-verdict deny (Policy denied by denylist, L4-Only)"),
            std::string::npos);
  cilium_event icmp = dropEvent();
  icmp.tuple.proto = 1;
  icmp.tuple.icmp_type = 8;
  EXPECT_NE(formatEvent(icmp).find("10.200.0.11 -> 10.200.0.12 icmp type 8 code 0"),
            std::string::npos);
}

TEST(MonitorTest, DecodesRecordsAndRejectsShortOnes) {
  cilium_event ev = dropEvent();
  std::vector<uint8_t> buf(sizeof(ev));
  std::memcpy(buf.data(), &ev, sizeof(ev));
  auto d = decodeEvent(buf);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->subtype, DROP_POLICY);
  EXPECT_EQ(d->tuple.dport, htons(80));
  // A newer datapath may append fields: the known prefix still decodes.
  buf.resize(sizeof(ev) + 16, 0xee);
  EXPECT_TRUE(decodeEvent(buf).ok());
  for (size_t n : {size_t{0}, size_t{1}, sizeof(ev) - 1}) {
    auto bad = decodeEvent(std::span<const uint8_t>(buf.data(), n));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace cilium::datapath
