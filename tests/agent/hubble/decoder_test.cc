// The decoder on records as the datapath writes them: what a user sees in `hubble observe`.
#include "agent/hubble/decoder.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "agent/hubble/peer.h"
#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"

namespace cilium::hubble {
namespace {

using testing::EventSpec;
using testing::makeEvent;

class DecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    resolver_.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                          {*IpAddr::parse("10.200.0.11")});
    resolver_.addEndpoint({2, 257, "server-7f9c", "shop", {"k8s:app=server", "k8s:tier=db"}},
                          {*IpAddr::parse("10.200.0.12")});
    resolver_.addIdentity(300, {"k8s:app=remote"});
  }
  flow::Flow decode(const EventSpec& s) {
    flow::Flow f;
    auto st = decoder_.decode(makeEvent(s), f);
    EXPECT_TRUE(st.ok()) << st.error().toString();
    return f;
  }

  StaticResolver resolver_;
  Decoder decoder_{DecoderOptions{"node-a", 1'700'000'000'000'000'000}, &resolver_, &resolver_};
};

TEST_F(DecoderTest, ForwardedTcpSynToEndpoint) {
  auto f = decode(EventSpec{});
  EXPECT_EQ(f.verdict(), flow::FORWARDED);
  EXPECT_EQ(f.trace_observation_point(), flow::TO_ENDPOINT);
  EXPECT_EQ(f.ip().source(), "10.200.0.11");
  EXPECT_EQ(f.ip().destination(), "10.200.0.12");
  EXPECT_EQ(f.ip().ipversion(), flow::IPv4);
  ASSERT_TRUE(f.l4().has_tcp());
  EXPECT_EQ(f.l4().tcp().source_port(), 40000u);
  EXPECT_EQ(f.l4().tcp().destination_port(), 8080u);
  EXPECT_TRUE(f.l4().tcp().flags().syn());
  EXPECT_FALSE(f.l4().tcp().flags().ack());
  EXPECT_EQ(f.source().identity(), 256u);
  EXPECT_EQ(f.source().pod_name(), "client");
  EXPECT_EQ(f.source().namespace_(), "default");
  EXPECT_EQ(f.source().id(), 1u);
  EXPECT_EQ(f.destination().pod_name(), "server-7f9c");
  EXPECT_EQ(f.destination().namespace_(), "shop");
  ASSERT_EQ(f.destination().labels_size(), 2);
  EXPECT_EQ(f.destination().labels(0), "k8s:app=server");
  EXPECT_EQ(f.traffic_direction(), flow::INGRESS);
  ASSERT_TRUE(f.has_is_reply());
  EXPECT_FALSE(f.is_reply().value());
  EXPECT_EQ(f.node_name(), "node-a");
  EXPECT_EQ(f.type(), flow::L3_L4);
  EXPECT_EQ(f.event_type().type(), EVENT_TRACE);
  EXPECT_EQ(f.event_type().sub_type(), TRACE_TO_LXC);
  EXPECT_EQ(f.interface().index(), 7u);
  // Monotonic 1000 ns after the offset.
  EXPECT_EQ(f.time().seconds(), 1'700'000'000);
  EXPECT_EQ(f.time().nanos(), 1000);
  EXPECT_EQ(f.uuid().size(), 36u);
}

TEST_F(DecoderTest, PolicyDropCarriesReasonAndDescription) {
  auto f = decode(testing::policyDrop());
  EXPECT_EQ(f.verdict(), flow::DROPPED);
  EXPECT_EQ(f.drop_reason(), 133u);
  EXPECT_EQ(f.drop_reason_desc(), flow::POLICY_DENIED);
  EXPECT_EQ(dropReasonDesc(f.drop_reason_desc()), "Policy denied");
  EXPECT_EQ(f.trace_observation_point(), flow::UNKNOWN_POINT);
  EXPECT_EQ(f.destination().pod_name(), "server-7f9c");
}

TEST_F(DecoderTest, DenyListDropAndUnknownReason) {
  auto s = testing::policyDrop();
  s.subtype = DROP_POLICY_DENY;
  EXPECT_EQ(decode(s).drop_reason_desc(), flow::POLICY_DENY);
  s.subtype = 250;  // not in flow.proto
  auto f = decode(s);
  EXPECT_EQ(f.drop_reason(), 250u);
  EXPECT_EQ(f.drop_reason_desc(), flow::DROP_REASON_UNKNOWN);
}

TEST_F(DecoderTest, PolicyVerdicts) {
  EventSpec s;
  s.type = EVENT_POLICY_VERDICT;
  s.subtype = 0;
  s.match_type = POLICY_MATCH_L3_L4;
  auto allow = decode(s);
  EXPECT_EQ(allow.verdict(), flow::FORWARDED);
  EXPECT_EQ(allow.policy_match_type(), 2u);
  s.verdict = -DROP_POLICY;
  s.match_type = POLICY_MATCH_NONE;
  auto deny = decode(s);
  EXPECT_EQ(deny.verdict(), flow::DROPPED);
  EXPECT_EQ(deny.drop_reason_desc(), flow::POLICY_DENIED);
  s.verdict = 15001;
  auto redirect = decode(s);
  EXPECT_EQ(redirect.verdict(), flow::REDIRECTED);
  EXPECT_EQ(redirect.proxy_port(), 15001u);
}

TEST_F(DecoderTest, ReplyFlipsTrafficDirection) {
  EventSpec s;
  s.src = "10.200.0.12";
  s.dst = "10.200.0.11";
  s.sport = 8080;
  s.dport = 40000;
  s.tcp_flags = 0x12;  // SYN-ACK
  s.ct_state = CT_REPLY;
  s.dir = METRIC_EGRESS;  // leaving the server, which was connected to
  s.source = 2;
  s.src_identity = 257;
  s.dst_identity = 256;
  auto f = decode(s);
  EXPECT_TRUE(f.is_reply().value());
  EXPECT_TRUE(f.reply());
  EXPECT_EQ(f.traffic_direction(), flow::INGRESS);
  EXPECT_TRUE(f.l4().tcp().flags().syn());
  EXPECT_TRUE(f.l4().tcp().flags().ack());
  EXPECT_EQ(tcpFlagsString(f.l4().tcp().flags()), "SYN, ACK");
}

// As Hubble: drops and denials do not know whether the packet was a reply (is_reply unset);
// an allowed verdict is a connection's first packet (false); traces know from conntrack.
TEST_F(DecoderTest, IsReplyOnlyWhereKnown) {
  auto drop = decode(testing::policyDrop());
  EXPECT_FALSE(drop.has_is_reply());
  EXPECT_FALSE(drop.reply());
  EventSpec v;
  v.type = EVENT_POLICY_VERDICT;
  v.subtype = 0;
  auto allowed = decode(v);
  ASSERT_TRUE(allowed.has_is_reply());
  EXPECT_FALSE(allowed.is_reply().value());
  v.verdict = -DROP_POLICY;
  EXPECT_FALSE(decode(v).has_is_reply());
  EventSpec t;
  t.ct_state = CT_REPLY;
  ASSERT_TRUE(decode(t).has_is_reply());
  EXPECT_TRUE(decode(t).is_reply().value());
}

// A delivery to a local pod is reported by the sender's program (the sender's veth in the
// record); the flow names the receiving endpoint's interface, as Hubble does.
TEST_F(DecoderTest, ToEndpointNamesTheReceivingInterface) {
  StaticResolver r;
  EndpointInfo client{1, 256, "client", "default", {"k8s:app=client"}, 11, "lxc-client"};
  EndpointInfo server{2, 257, "server", "default", {"k8s:app=server"}, 12, "lxc-server"};
  r.addEndpoint(client, {*IpAddr::parse("10.200.0.11")});
  r.addEndpoint(server, {*IpAddr::parse("10.200.0.12")});
  Decoder d(DecoderOptions{"default/node-a", 1}, &r, &r);
  EventSpec to;  // TO_LXC, run on the client's veth
  to.ifindex = 11;
  flow::Flow f;
  ASSERT_TRUE(d.decode(makeEvent(to), f).ok());
  EXPECT_EQ(f.interface().index(), 12u);
  EXPECT_EQ(f.interface().name(), "lxc-server");
  EXPECT_EQ(f.node_name(), "default/node-a");
  EventSpec from;
  from.subtype = TRACE_FROM_LXC;
  from.dir = METRIC_EGRESS;
  from.source = 1;
  from.ifindex = 11;
  ASSERT_TRUE(d.decode(makeEvent(from), f).ok());
  EXPECT_EQ(f.interface().index(), 11u);
  EXPECT_EQ(f.interface().name(), "lxc-client");
}

TEST_F(DecoderTest, SummaryAndServices) {
  EXPECT_EQ(decode(EventSpec{}).summary(), "TCP Flags: SYN");
  EventSpec icmp;
  icmp.proto = 1;
  auto ev = makeEvent(icmp);
  ev.tuple.icmp_type = 8;
  flow::Flow f;
  ASSERT_TRUE(decoder_.decode(ev, f).ok());
  EXPECT_EQ(f.summary(), "ICMPv4 EchoRequest");
  EventSpec udp;
  udp.proto = 17;
  EXPECT_EQ(decode(udp).summary(), "UDP");
  StaticResolver svc;
  svc.addService({*IpAddr::parse("10.200.0.12"), 8080, 6, {"web", "shop"}});
  svc.addService({*IpAddr::parse("10.200.0.12"), 8080, 17, {"web-udp", "shop"}});
  Decoder d(DecoderOptions{"n", 1, &svc}, &resolver_, &resolver_);
  ASSERT_TRUE(d.decode(makeEvent(EventSpec{}), f).ok());
  EXPECT_EQ(f.destination_service().name(), "web");
  EXPECT_EQ(f.destination_service().namespace_(), "shop");
  EXPECT_FALSE(f.has_source_service());
  EventSpec other;
  other.dport = 9090;
  ASSERT_TRUE(d.decode(makeEvent(other), f).ok());
  EXPECT_FALSE(f.has_destination_service());
}

// Names by (endpoint, address), as the agent's DNS cache answers.
class FakeNames final : public NameResolver {
 public:
  std::map<std::pair<uint32_t, std::string>, std::vector<std::string>> names;
  std::vector<std::string> namesOf(uint32_t ep, const IpAddr& ip) const override {
    auto it = names.find({ep, ip.toString()});
    return it == names.end() ? std::vector<std::string>{} : it->second;
  }
};

TEST_F(DecoderTest, PeerNamesComeFromTheLocalEndpointsLookups) {
  FakeNames names;
  names.names[{1, "93.184.216.34"}] = {"example.com", "www.example.com"};
  names.names[{2, "93.184.216.34"}] = {"other-endpoint.example"};
  Decoder d(DecoderOptions{"n", 1, nullptr, &names}, &resolver_, &resolver_);
  // Endpoint 1 sends to an address it looked up: the destination has its names.
  EventSpec out;
  out.type = EVENT_TRACE;
  out.subtype = TRACE_TO_STACK;
  out.dir = METRIC_EGRESS;
  out.source = 1;
  out.dst_id = 0;
  out.dst = "93.184.216.34";
  out.dst_identity = 2;
  flow::Flow f;
  ASSERT_TRUE(d.decode(makeEvent(out), f).ok());
  ASSERT_EQ(f.destination_names_size(), 2);
  EXPECT_EQ(f.destination_names(0), "example.com");
  EXPECT_EQ(f.destination_names(1), "www.example.com");
  EXPECT_EQ(f.source_names_size(), 0);
  // The reply reaching endpoint 1: the source has the names endpoint 1 looked up, not those of
  // endpoint 2.
  EventSpec back;
  back.dir = METRIC_INGRESS;
  back.source = 1;
  back.src = "93.184.216.34";
  back.dst = "10.200.0.11";
  back.src_identity = 2;
  ASSERT_TRUE(d.decode(makeEvent(back), f).ok());
  ASSERT_EQ(f.source_names_size(), 2);
  EXPECT_EQ(f.source_names(0), "example.com");
  EXPECT_EQ(f.destination_names_size(), 0);
  // Without a resolver nothing is named.
  ASSERT_TRUE(decoder_.decode(makeEvent(out), f).ok());
  EXPECT_EQ(f.destination_names_size(), 0);
}

TEST(NodeNameTest, ClusterPrefix) {
  EXPECT_EQ(absoluteNodeName("default", "k8s1"), "default/k8s1");
  EXPECT_EQ(absoluteNodeName("", "k8s1"), "k8s1");
  EXPECT_EQ(hubbleTlsServerName("c1", "node.a"), "node-a.c1.hubble-grpc.cilium.io");
}

TEST_F(DecoderTest, ReservedAndRemoteIdentitiesGetLabels) {
  EventSpec s;
  s.src = "192.0.2.1";  // unknown address: labels come from the identity
  s.src_identity = 2;   // world
  s.dst = "10.9.9.9";
  s.dst_identity = 300;
  s.source = 0;
  s.dst_id = 0;
  auto f = decode(s);
  ASSERT_EQ(f.source().labels_size(), 1);
  EXPECT_EQ(f.source().labels(0), "reserved:world");
  EXPECT_TRUE(f.source().pod_name().empty());
  ASSERT_EQ(f.destination().labels_size(), 1);
  EXPECT_EQ(f.destination().labels(0), "k8s:app=remote");
}

TEST_F(DecoderTest, UdpAndIcmp) {
  EventSpec s;
  s.proto = 17;
  s.sport = 5353;
  s.dport = 53;
  auto udp = decode(s);
  ASSERT_TRUE(udp.l4().has_udp());
  EXPECT_EQ(udp.l4().udp().destination_port(), 53u);
  EXPECT_EQ(l4ProtocolName(udp), "udp");
  s.proto = 1;
  auto ev = makeEvent(s);
  ev.tuple.icmp_type = 8;
  flow::Flow icmp;
  ASSERT_TRUE(decoder_.decode(ev, icmp).ok());
  ASSERT_TRUE(icmp.l4().has_icmpv4());
  EXPECT_EQ(icmp.l4().icmpv4().type(), 8u);
  EXPECT_EQ(destinationPort(icmp), 0u);
}

TEST_F(DecoderTest, WithoutResolversIdentitiesStillShow) {
  Decoder bare(DecoderOptions{"n", 1}, nullptr, nullptr);
  flow::Flow f;
  ASSERT_TRUE(bare.decode(makeEvent(EventSpec{}), f).ok());
  EXPECT_EQ(f.source().identity(), 256u);
  EXPECT_TRUE(f.source().pod_name().empty());
}

TEST_F(DecoderTest, RefusesWhatNoDatapathWrites) {
  flow::Flow f;
  auto ev = makeEvent(EventSpec{});
  ev.type = EVENT_DEBUG;
  EXPECT_EQ(decoder_.decode(ev, f).error().code(), ErrorCode::kUnimplemented);
  ev.type = 99;
  EXPECT_EQ(decoder_.decode(ev, f).error().code(), ErrorCode::kInvalidArgument);
  ev = makeEvent(EventSpec{});
  ev.tuple.family = 9;
  EXPECT_EQ(decoder_.decode(ev, f).error().code(), ErrorCode::kInvalidArgument);
  ev = makeEvent(EventSpec{});
  ev.subtype = 200;
  EXPECT_EQ(decoder_.decode(ev, f).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(DecoderTest, Ipv6AndNonIpDrops) {
  // An IPv6 UDP packet the IPv4-only datapath dropped: its IPv6 tuple, not 0.0.0.0.
  auto ev = makeEvent(testing::policyDrop());
  ev.subtype = DROP_UNKNOWN_L3;
  ev.verdict = -DROP_UNKNOWN_L3;
  std::memset(&ev.tuple, 0, sizeof ev.tuple);
  ev.tuple.family = ENDPOINT_KEY_IPV6;
  inet_pton(AF_INET6, "fd00::11", ev.tuple.saddr.ip6);
  inet_pton(AF_INET6, "fd00::12", ev.tuple.daddr.ip6);
  ev.tuple.proto = 17;
  ev.tuple.sport = htons(5353);
  ev.tuple.dport = htons(53);
  flow::Flow f;
  ASSERT_TRUE(decoder_.decode(ev, f).ok());
  EXPECT_EQ(f.ip().ipversion(), flow::IPv6);
  EXPECT_EQ(f.ip().source(), "fd00::11");
  EXPECT_EQ(f.ip().destination(), "fd00::12");
  EXPECT_EQ(f.l4().udp().source_port(), 5353u);
  EXPECT_EQ(f.l4().udp().destination_port(), 53u);
  EXPECT_EQ(f.verdict(), flow::DROPPED);

  // ICMPv6.
  ev.tuple.proto = 58;
  ev.tuple.sport = ev.tuple.dport = 0;
  ev.tuple.icmp_type = 128;
  f.Clear();
  ASSERT_TRUE(decoder_.decode(ev, f).ok());
  EXPECT_EQ(f.l4().icmpv6().type(), 128u);

  // Neither IPv4 nor IPv6 (family 0): a drop without L3 or L4.
  std::memset(&ev.tuple, 0, sizeof ev.tuple);
  f.Clear();
  ASSERT_TRUE(decoder_.decode(ev, f).ok());
  EXPECT_FALSE(f.has_ip());
  EXPECT_FALSE(f.has_l4());
  EXPECT_EQ(f.summary(), "Ethernet");
  // Only drops are written without L3.
  ev.type = EVENT_TRACE;
  ev.subtype = TRACE_TO_LXC;
  EXPECT_EQ(decoder_.decode(ev, f).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(DecoderTest, RawRecords) {
  auto ev = makeEvent(testing::policyDrop());
  std::vector<uint8_t> rec(sizeof ev);
  std::memcpy(rec.data(), &ev, sizeof ev);
  flow::Flow f;
  ASSERT_TRUE(decoder_.decodeRecord(rec, f).ok());
  EXPECT_EQ(f.verdict(), flow::DROPPED);
  rec.resize(sizeof ev - 1);
  EXPECT_FALSE(decoder_.decodeRecord(rec, f).ok());
  rec.resize(sizeof ev + 16, 0xff);  // a newer datapath's longer record
  std::memcpy(rec.data(), &ev, sizeof ev);
  EXPECT_TRUE(decoder_.decodeRecord(rec, f).ok());
}

// Records bpf_lxc wrote during the netns Hubble test (tests/fuzz/corpus/hubble_decode/recorded-*,
// made with CILIUM_HUBBLE_RECORD_DIR): client -> server:8080 allowed, other -> server denied.
TEST_F(DecoderTest, RecordedRecordsFromTheDatapath) {
  namespace fs = std::filesystem;
  resolver_.addEndpoint({3, 1003, "other", "default", {"k8s:app=other"}},
                        {*IpAddr::parse("10.200.0.13")});
  resolver_.addEndpoint({2, 1002, "server", "default", {"k8s:app=server"}},
                        {*IpAddr::parse("10.200.0.12")});
  resolver_.addEndpoint({1, 1001, "client", "default", {"k8s:app=client"}},
                        {*IpAddr::parse("10.200.0.11")});
  int n = 0;
  bool denied_syn = false, forwarded_syn = false, verdict_allow = false;
  for (const auto& e :
       fs::directory_iterator(CILIUM_SOURCE_DIR "/tests/fuzz/corpus/hubble_decode")) {
    if (!e.path().filename().string().starts_with("recorded-")) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::vector<uint8_t> rec((std::istreambuf_iterator<char>(in)), {});
    flow::Flow f;
    auto st = decoder_.decodeRecord(rec, f);
    ASSERT_TRUE(st.ok()) << e.path() << ": " << st.error().toString();
    ++n;
    const bool syn = f.l4().tcp().flags().syn() && !f.l4().tcp().flags().ack();
    if (f.verdict() == flow::DROPPED && f.source().pod_name() == "other" && syn) {
      denied_syn = true;
      EXPECT_EQ(f.drop_reason_desc(), flow::POLICY_DENIED);
      EXPECT_EQ(f.source().identity(), 1003u);
      EXPECT_EQ(f.destination().identity(), 1002u);
      EXPECT_EQ(f.destination().pod_name(), "server");
      EXPECT_EQ(f.l4().tcp().destination_port(), 8080u);
      EXPECT_EQ(f.traffic_direction(), flow::INGRESS);
    }
    if (f.event_type().type() == EVENT_TRACE && syn && f.source().pod_name() == "client" &&
        f.trace_observation_point() == flow::TO_ENDPOINT) {
      forwarded_syn = true;
      EXPECT_EQ(f.verdict(), flow::FORWARDED);
      EXPECT_EQ(f.destination().pod_name(), "server");
    }
    if (f.event_type().type() == EVENT_POLICY_VERDICT && f.verdict() == flow::FORWARDED)
      verdict_allow = true;
  }
  EXPECT_GE(n, 10);
  EXPECT_TRUE(denied_syn);
  EXPECT_TRUE(forwarded_syn);
  EXPECT_TRUE(verdict_allow);
}

}  // namespace
}  // namespace cilium::hubble

namespace cilium::hubble {
namespace {

proxy::AccessRecord httpRecord(proxy::AccessRecord::Type type,
                               proxy::AccessRecord::Verdict verdict) {
  proxy::AccessRecord r;
  r.type = type;
  r.verdict = verdict;
  r.ingress = true;
  r.time_ns = 1'700'000'000'123'456'789;
  r.endpoint_id = 2;
  r.src_ip = "10.200.0.11";
  r.dst_ip = "10.200.0.12";
  r.src_port = 40000;
  r.dst_port = 80;
  r.src_identity = 256;
  r.dst_identity = 257;
  r.proxy_port = 15001;
  r.method = "PUT";
  r.url = "http://deathstar/v1/exhaust-port";
  r.protocol = "HTTP/1.1";
  r.headers = {{"x-test", "1"}};
  return r;
}

TEST_F(DecoderTest, HttpRequestAndResponseAsL7Flows) {
  flow::Flow req;
  auto r = httpRecord(proxy::AccessRecord::Type::kRequest,
                      proxy::AccessRecord::Verdict::kForwarded);
  ASSERT_TRUE(decoder_.decodeL7(r, req).ok());
  EXPECT_EQ(req.type(), flow::L7);
  EXPECT_EQ(req.event_type().type(), kMessageTypeAccessLog);
  EXPECT_EQ(req.verdict(), flow::FORWARDED);
  EXPECT_EQ(req.time().seconds(), 1'700'000'000);
  EXPECT_EQ(req.time().nanos(), 123'456'789);
  EXPECT_EQ(req.ip().source(), "10.200.0.11");
  EXPECT_EQ(req.l4().tcp().destination_port(), 80u);
  EXPECT_EQ(req.source().pod_name(), "client");
  EXPECT_EQ(req.destination().pod_name(), "server-7f9c");
  EXPECT_EQ(req.traffic_direction(), flow::INGRESS);
  EXPECT_FALSE(req.is_reply().value());
  EXPECT_EQ(req.proxy_port(), 15001u);
  EXPECT_EQ(req.l7().type(), flow::REQUEST);
  EXPECT_EQ(req.l7().http().method(), "PUT");
  EXPECT_EQ(req.l7().http().url(), "http://deathstar/v1/exhaust-port");
  ASSERT_EQ(req.l7().http().headers_size(), 1);
  EXPECT_EQ(req.l7().http().headers(0).key(), "x-test");
  EXPECT_EQ(req.summary(), "HTTP/1.1 PUT http://deathstar/v1/exhaust-port");

  // The response goes from the server back to the client.
  r.type = proxy::AccessRecord::Type::kResponse;
  r.code = 200;
  r.latency_ns = 3'400'000;
  flow::Flow resp;
  ASSERT_TRUE(decoder_.decodeL7(r, resp).ok());
  EXPECT_EQ(resp.ip().source(), "10.200.0.12");
  EXPECT_EQ(resp.l4().tcp().source_port(), 80u);
  EXPECT_EQ(resp.source().pod_name(), "server-7f9c");
  EXPECT_EQ(resp.source().identity(), 257u);
  EXPECT_EQ(resp.destination().pod_name(), "client");
  EXPECT_TRUE(resp.is_reply().value());
  EXPECT_EQ(resp.l7().type(), flow::RESPONSE);
  EXPECT_EQ(resp.l7().latency_ns(), 3'400'000u);
  EXPECT_EQ(resp.summary(), "HTTP/1.1 200 3ms (PUT http://deathstar/v1/exhaust-port)");
}

TEST_F(DecoderTest, DeniedAndUnparsableRequests) {
  flow::Flow f;
  auto denied =
      httpRecord(proxy::AccessRecord::Type::kRequest, proxy::AccessRecord::Verdict::kDenied);
  denied.code = 403;
  ASSERT_TRUE(decoder_.decodeL7(denied, f).ok());
  EXPECT_EQ(f.verdict(), flow::DROPPED);
  EXPECT_EQ(f.l7().http().code(), 403u);
  auto broken =
      httpRecord(proxy::AccessRecord::Type::kRequest, proxy::AccessRecord::Verdict::kError);
  ASSERT_TRUE(decoder_.decodeL7(broken, f).ok());
  EXPECT_EQ(f.verdict(), flow::ERROR);
  broken.src_ip = "not-an-address";
  EXPECT_FALSE(decoder_.decodeL7(broken, f).ok());
}

// The DNS proxy's records: the query from the pod to the server, the answer back, over UDP,
// with Hubble's DNS fields and summaries.
TEST_F(DecoderTest, DnsQueryAndAnswerAsL7Flows) {
  proxy::AccessRecord r;
  r.ingress = false;
  r.endpoint_id = 1;
  r.src_ip = "10.200.0.11";
  r.src_port = 41000;
  r.src_identity = 256;
  r.dst_ip = "10.200.0.12";
  r.dst_port = 53;
  r.dst_identity = 257;
  r.l4_protocol = 17;
  r.dns = proxy::AccessRecord::Dns{"allowed.example.test.", {}, {}, {"A"}, {}, 0, 0, "proxy"};
  flow::Flow q;
  ASSERT_TRUE(decoder_.decodeL7(r, q).ok());
  EXPECT_EQ(q.type(), flow::L7);
  EXPECT_EQ(q.l7().type(), flow::REQUEST);
  EXPECT_FALSE(q.l7().has_http());
  EXPECT_EQ(q.l7().dns().query(), "allowed.example.test.");
  EXPECT_EQ(q.l4().udp().destination_port(), 53u);
  EXPECT_FALSE(q.l4().has_tcp());
  EXPECT_EQ(q.source().pod_name(), "client");
  EXPECT_EQ(q.traffic_direction(), flow::EGRESS);
  EXPECT_EQ(q.summary(), "DNS Query allowed.example.test. A");

  r.type = proxy::AccessRecord::Type::kResponse;
  r.latency_ns = 1'500'000;
  r.dns->ips = {"10.99.0.1", "10.99.0.2"};
  r.dns->ttl = 30;
  r.dns->cnames = {"www.example.test."};
  r.dns->rrtypes = {"CNAME", "A", "A"};
  flow::Flow a;
  ASSERT_TRUE(decoder_.decodeL7(r, a).ok());
  EXPECT_EQ(a.l7().type(), flow::RESPONSE);
  EXPECT_EQ(a.ip().source(), "10.200.0.12");
  EXPECT_EQ(a.l4().udp().source_port(), 53u);
  EXPECT_EQ(a.destination().pod_name(), "client");
  EXPECT_TRUE(a.is_reply().value());
  EXPECT_EQ(a.l7().latency_ns(), 1'500'000u);
  ASSERT_EQ(a.l7().dns().ips_size(), 2);
  EXPECT_EQ(a.l7().dns().ttl(), 30u);
  EXPECT_EQ(a.l7().dns().rrtypes_size(), 3);
  EXPECT_EQ(a.l7().dns().observation_source(), "proxy");
  EXPECT_EQ(a.summary(),
            "DNS Answer \"10.99.0.1,10.99.0.2\" CNAMEs: \"www.example.test.\" TTL: 30 (Proxy "
            "allowed.example.test. A)");
  r.dns->rcode = 2;
  r.verdict = proxy::AccessRecord::Verdict::kError;
  ASSERT_TRUE(decoder_.decodeL7(r, a).ok());
  EXPECT_EQ(a.verdict(), flow::ERROR);
  EXPECT_EQ(a.summary(), "DNS Answer RCode: SERVFAIL TTL: 30 (Proxy allowed.example.test. A)");
}

}  // namespace
}  // namespace cilium::hubble
