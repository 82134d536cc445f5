// Hubble's filter semantics: AND inside a filter, OR across filters, blacklist wins.
#include "agent/hubble/filter.h"

#include <gtest/gtest.h>

#include "agent/hubble/decoder.h"
#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"

namespace cilium::hubble {
namespace {

using testing::EventSpec;

class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    resolver_.addEndpoint({1, 256, "client-abc", "default", {"k8s:app=client", "k8s:env=prod"}},
                          {*IpAddr::parse("10.200.0.11")});
    resolver_.addEndpoint({2, 257, "server-7f9c", "shop", {"k8s:app=server"}},
                          {*IpAddr::parse("10.200.0.12")});
    Decoder d(DecoderOptions{"kind-worker", 1}, &resolver_, &resolver_);
    EXPECT_TRUE(d.decode(testing::makeEvent(EventSpec{}), fwd_).ok());
    EXPECT_TRUE(d.decode(testing::makeEvent(testing::policyDrop()), drop_).ok());
    EventSpec u;
    u.proto = 17;
    u.dport = 53;
    EXPECT_TRUE(d.decode(testing::makeEvent(u), udp_).ok());
  }
  bool allows(const std::vector<flow::FlowFilter>& wl, const std::vector<flow::FlowFilter>& bl,
              const flow::Flow& f) {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w(wl.begin(), wl.end()),
        b(bl.begin(), bl.end());
    auto ff = FlowFilters::compile(w, b);
    EXPECT_TRUE(ff.ok()) << ff.error().toString();
    return ff.ok() && ff->allows(f);
  }
  bool match(const flow::FlowFilter& f, const flow::Flow& fl) { return allows({f}, {}, fl); }
  Error compileError(const flow::FlowFilter& f) {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    *w.Add() = f;
    auto ff = FlowFilters::compile(w, b);
    EXPECT_FALSE(ff.ok());
    return ff.ok() ? Error(ErrorCode::kInternal, "") : ff.error();
  }

  StaticResolver resolver_;
  flow::Flow fwd_, drop_, udp_;
};

TEST_F(FilterTest, EmptyFiltersPassEverything) {
  EXPECT_TRUE(allows({}, {}, fwd_));
  EXPECT_TRUE(match(flow::FlowFilter{}, drop_));
}

TEST_F(FilterTest, PodPrefixWithAndWithoutNamespace) {
  flow::FlowFilter f;
  f.add_source_pod("default/client-");
  EXPECT_TRUE(match(f, fwd_));
  f.clear_source_pod();
  f.add_source_pod("shop/client-");
  EXPECT_FALSE(match(f, fwd_));
  f.clear_source_pod();
  f.add_source_pod("client");  // any namespace
  EXPECT_TRUE(match(f, fwd_));
  f.clear_source_pod();
  f.add_destination_pod("shop/");  // the whole namespace
  EXPECT_TRUE(match(f, fwd_));
  f.clear_destination_pod();
  f.add_destination_pod("default/");
  EXPECT_FALSE(match(f, fwd_));
}

TEST_F(FilterTest, FieldsAndValuesCombine) {
  flow::FlowFilter f;
  f.add_source_pod("default/client");
  f.add_verdict(flow::DROPPED);
  EXPECT_TRUE(match(f, drop_));
  EXPECT_FALSE(match(f, fwd_));  // AND across fields
  f.add_verdict(flow::FORWARDED);
  EXPECT_TRUE(match(f, fwd_));  // OR across values
}

TEST_F(FilterTest, WhitelistOrBlacklistWins) {
  flow::FlowFilter drops, udp;
  drops.add_verdict(flow::DROPPED);
  udp.add_protocol("UDP");
  EXPECT_TRUE(allows({drops, udp}, {}, udp_));
  EXPECT_TRUE(allows({drops, udp}, {}, drop_));
  EXPECT_FALSE(allows({drops, udp}, {}, fwd_));
  EXPECT_FALSE(allows({drops, udp}, {udp}, udp_));
  EXPECT_TRUE(allows({}, {drops}, fwd_));
  EXPECT_FALSE(allows({}, {drops}, drop_));
}

TEST_F(FilterTest, IpAndCidr) {
  flow::FlowFilter f;
  f.add_destination_ip("10.200.0.0/24");
  EXPECT_TRUE(match(f, fwd_));
  f.clear_destination_ip();
  f.add_destination_ip("10.201.0.0/16");
  EXPECT_FALSE(match(f, fwd_));
  f.add_destination_ip("10.200.0.12");
  EXPECT_TRUE(match(f, fwd_));
  f.clear_destination_ip();
  f.add_source_ip("10.200.0.11/32");
  EXPECT_TRUE(match(f, fwd_));

  // IPv6 flows (dual-stack pods): exact addresses and prefixes, never matched across families.
  flow::Flow v6 = fwd_;
  v6.mutable_ip()->set_ipversion(flow::IPv6);
  v6.mutable_ip()->set_source("fd00:200::11");
  v6.mutable_ip()->set_destination("fd00:200::12");
  f.clear_source_ip();
  f.add_source_ip("fd00:200::11");
  EXPECT_TRUE(match(f, v6));
  EXPECT_FALSE(match(f, fwd_));
  f.clear_source_ip();
  f.add_destination_ip("fd00:200::/120");
  EXPECT_TRUE(match(f, v6));
  EXPECT_FALSE(match(f, fwd_));
  f.clear_destination_ip();
  f.add_destination_ip("fd00:201::/120");
  EXPECT_FALSE(match(f, v6));
}

TEST_F(FilterTest, LabelSelectors) {
  flow::FlowFilter f;
  f.add_source_label("app=client");
  EXPECT_TRUE(match(f, fwd_));
  f.set_source_label(0, "k8s:app=client,env in (prod, staging)");
  EXPECT_TRUE(match(f, fwd_));
  f.set_source_label(0, "app=client,env notin (prod)");
  EXPECT_FALSE(match(f, fwd_));
  f.set_source_label(0, "!env");
  EXPECT_FALSE(match(f, fwd_));
  f.set_source_label(0, "app!=server");
  EXPECT_TRUE(match(f, fwd_));
  f.clear_source_label();
  f.add_destination_label("app==server");
  EXPECT_TRUE(match(f, fwd_));
  f.set_destination_label(0, "reserved:app=server");
  EXPECT_FALSE(match(f, fwd_));
}

TEST_F(FilterTest, PortsProtocolsIdentitiesFlagsEventTypes) {
  flow::FlowFilter f;
  f.add_destination_port("8080");
  f.add_protocol("tcp");
  f.add_source_identity(256);
  EXPECT_TRUE(match(f, fwd_));
  EXPECT_FALSE(match(f, udp_));

  flow::FlowFilter icmp;
  icmp.add_protocol("icmp");
  EXPECT_FALSE(match(icmp, fwd_));

  flow::FlowFilter syn;
  syn.add_tcp_flags()->set_syn(true);
  EXPECT_TRUE(match(syn, fwd_));
  syn.mutable_tcp_flags(0)->set_ack(true);
  EXPECT_FALSE(match(syn, fwd_));

  flow::FlowFilter ev;
  ev.add_event_type()->set_type(EVENT_DROP);
  EXPECT_TRUE(match(ev, drop_));
  EXPECT_FALSE(match(ev, fwd_));
  flow::FlowFilter trace;
  auto* t = trace.add_event_type();
  t->set_type(EVENT_TRACE);
  t->set_match_sub_type(true);
  t->set_sub_type(TRACE_TO_STACK);
  EXPECT_FALSE(match(trace, fwd_));
  t->set_sub_type(TRACE_TO_LXC);
  EXPECT_TRUE(match(trace, fwd_));

  flow::FlowFilter reason;
  reason.add_drop_reason_desc(flow::POLICY_DENIED);
  EXPECT_TRUE(match(reason, drop_));
  EXPECT_FALSE(match(reason, fwd_));

  flow::FlowFilter reply;
  reply.add_reply(true);
  EXPECT_FALSE(match(reply, fwd_));

  flow::FlowFilter dir;
  dir.add_traffic_direction(flow::INGRESS);
  EXPECT_TRUE(match(dir, fwd_));

  flow::FlowFilter node;
  node.add_node_name("kind-*");
  EXPECT_TRUE(match(node, fwd_));
  node.set_node_name(0, "other*");
  EXPECT_FALSE(match(node, fwd_));
}

TEST_F(FilterTest, BadValuesAreErrorsNamingTheField) {
  flow::FlowFilter f;
  f.add_source_ip("10.0.0.300");
  EXPECT_NE(compileError(f).message().find("source_ip"), std::string::npos);
  f.Clear();
  f.add_destination_port("http");
  EXPECT_NE(compileError(f).message().find("destination_port"), std::string::npos);
  f.Clear();
  f.add_protocol("carrier-pigeon");
  EXPECT_NE(compileError(f).message().find("protocol"), std::string::npos);
  f.Clear();
  f.add_source_label("app in (a");
  EXPECT_NE(compileError(f).message().find("source_label"), std::string::npos);
  f.Clear();
  f.add_destination_ip("10.0.0.0/40");
  EXPECT_EQ(compileError(f).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cilium::hubble
