// bpf tier: per-packet service load balancing in bpf_lxc (lib/lb_packet.h): DNAT of packets a
// pod sends to a frontend, reverse NAT of the replies and of backends' ICMP errors, the backend
// kept per connection, the refusal of connections to a service without backends, and hairpin.
// The service Manager programs the maps. The LxcServiceFamilyTest tests run over IPv4 and IPv6
// (lib/lb6_packet.h: dual-stack endpoints, an IPv6 ClusterIP).
#include <set>

#include "agent/datapath/conntrack.h"
#include "agent/service/service.h"
#include "tests/bpf/lxc_fixture.h"
#include "tests/harness/family.h"
#include "tests/harness/packet_assert.h"
#include "tests/harness/service_maps.h"

namespace cilium::testing {
namespace {

constexpr const char* kVip = "10.96.0.10";

class LxcServiceTest : public LxcTest {
 protected:
  void SetUp() override {
    LxcTest::SetUp();
    addEndpoint(c_);
    setPolicy(a_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    setPolicy(b_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    setPolicy(c_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    std::string pin = *topo_->pinDir();
    auto lb = testing::openServiceMaps(pin);
    ASSERT_TRUE(lb.ok()) << lb.error().toString();
    lb_ = std::move(*lb);
    mgr_ = std::make_unique<service::Manager>(lb_.maps(), service::ManagerConfig{});
    events();
  }

  void program(service::Protocol proto, std::vector<service::Backend> bes, bool affinity = false) {
    service::Service s;
    s.session_affinity = affinity;
    s.affinity_timeout = 60;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse(addr(kVip));
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = 80;
    p.backends = std::move(bes);
    s.ports.push_back(p);
    ASSERT_TRUE(mgr_->upsertService(s).ok());
  }
  service::Backend backend(const TestEndpoint& ep,
                           service::BackendState st = service::BackendState::kActive) {
    return {*IpAddr::parse(ipOf(ep)), 8080, st, true};
  }

  testing::ServiceMapSet lb_;
  std::unique_ptr<service::Manager> mgr_;
};

using LxcServiceFamilyTest = FamilyTest<LxcServiceTest>;
CILIUM_INSTANTIATE_FAMILIES(LxcServiceFamilyTest);

TEST_P(LxcServiceFamilyTest, TcpToFrontendIsTranslatedAndRepliesComeFromTheFrontend) {
  program(service::Protocol::kTcp, {backend(b_)});
  const std::string vip = addr(kVip);
  auto syn = from(a_).ip(ipOf(a_), vip).tcp(41000, 80, tcp::kSyn).build();
  auto r = fromContainer(a_, syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), ipOf(b_));
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(srcOf(*p), ipOf(a_));
  EXPECT_EQ(p->dst_mac, b_.mac) << "delivered to the backend pod";
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  auto synack = from(b_).ip(ipOf(b_), ipOf(a_)).tcp(8080, 41000, tcp::kSyn | tcp::kAck).build();
  r = fromContainer(b_, synack);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), vip) << "the client sees the frontend";
  EXPECT_EQ(p->sport, 80);
  EXPECT_EQ(dstOf(*p), ipOf(a_));
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  auto ack = from(a_).ip(ipOf(a_), vip).tcp(41000, 80, tcp::kAck).build();
  r = fromContainer(a_, ack);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(dstOf(*parsePacket(r.packet)), ipOf(b_));
}

TEST_P(LxcServiceFamilyTest, UdpBothBackendsUsedAndEachFlowSticks) {
  program(service::Protocol::kUdp, {backend(b_), backend(c_)});
  std::map<std::string, int> hits;
  for (uint16_t sport = 42000; sport < 42040; sport++) {
    auto q = from(a_).ip(ipOf(a_), addr(kVip)).udp(sport, 80).payload("q").build();
    auto r = fromContainer(a_, q);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p && p->l4_csum_ok);
    hits[dstOf(*p)]++;
    // The same flow again: the same backend.
    auto again = parsePacket(fromContainer(a_, q).packet);
    EXPECT_EQ(dstOf(*again), dstOf(*p));
  }
  EXPECT_GT(hits[ipOf(b_)], 0);
  EXPECT_GT(hits[ipOf(c_)], 0);
}

TEST_P(LxcServiceFamilyTest, TerminatingBackendKeepsItsConnectionOnly) {
  program(service::Protocol::kTcp, {backend(b_)});
  const std::string vip = addr(kVip);
  auto syn = from(a_).ip(ipOf(a_), vip).tcp(41100, 80, tcp::kSyn).build();
  ASSERT_EQ(dstOf(*parsePacket(fromContainer(a_, syn).packet)), ipOf(b_));
  program(service::Protocol::kTcp, {backend(b_, service::BackendState::kTerminating), backend(c_)});
  auto ack = from(a_).ip(ipOf(a_), vip).tcp(41100, 80, tcp::kAck).build();
  EXPECT_EQ(dstOf(*parsePacket(fromContainer(a_, ack).packet)), ipOf(b_));
  for (uint16_t sport = 41101; sport < 41111; sport++) {
    auto s = from(a_).ip(ipOf(a_), vip).tcp(sport, 80, tcp::kSyn).build();
    EXPECT_EQ(dstOf(*parsePacket(fromContainer(a_, s).packet)), ipOf(c_));
  }
}

TEST_P(LxcServiceFamilyTest, SessionAffinityKeepsAClientOnOneBackendAcrossConnections) {
  program(service::Protocol::kTcp, {backend(b_), backend(c_)}, true);
  std::set<std::string> used;
  for (uint16_t sport = 43000; sport < 43020; sport++) {
    auto syn = from(a_).ip(ipOf(a_), addr(kVip)).tcp(sport, 80, tcp::kSyn).build();
    auto r = fromContainer(a_, syn);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    used.insert(dstOf(*parsePacket(r.packet)));
  }
  EXPECT_EQ(used.size(), 1u) << "every new connection of the client went to one backend";
}

// A frontend without backends refuses TCP with the RST the frontend would send, in both families
// (lib/lb_reject.h), and says NO_SERVICE all the same; a stray RST gets no answer.
TEST_P(LxcServiceFamilyTest, NoBackendAnswersTcpWithRst) {
  program(service::Protocol::kTcp, {});
  const std::string vip = addr(kVip);
  auto syn = from(a_).ip(ipOf(a_), vip).tcp(41200, 80, tcp::kSyn).build();
  auto r = fromContainer(a_, syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << "the answer goes back into the pod";
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), vip);
  EXPECT_EQ(dstOf(*p), ipOf(a_));
  EXPECT_EQ(p->sport, 80);
  EXPECT_EQ(p->dport, 41200);
  EXPECT_EQ(p->tcp_flags, tcp::kRst | tcp::kAck);
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_EQ(p->src_mac, a_.host_mac);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok) << "TCP checksum over the pseudo-header";
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_NO_SERVICE) << "still reported";
  auto rst = from(a_).ip(ipOf(a_), vip).tcp(41201, 80, tcp::kRst).build();
  EXPECT_EQ(fromContainer(a_, rst).retval, TC_ACT_SHOT);
}

// IPv6 UDP: ICMPv6 port unreachable from the frontend, quoting the refused datagram (IPv4's
// ICMP answer: NoBackendAnswersUdpWithPortUnreachable).
TEST_P(LxcServiceFamilyTest, NoBackendIpv6AnswersUdpWithPortUnreachable) {
  if (family_ != Family::kV6) GTEST_SKIP() << "IPv4's answer: NoBackendAnswersUdpWith...";
  const std::string vip = addr(kVip);
  program(service::Protocol::kUdp, {});
  auto in = from(a_).ip(ipOf(a_), vip).udp(41200, 80).payload("query").build();
  auto r = fromContainer(a_, in);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << "the answer goes back into the pod";
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->proto, 58);
  EXPECT_EQ(p->icmp_type, 1) << "destination unreachable";
  EXPECT_EQ(p->icmp_code, 4) << "port unreachable";
  EXPECT_EQ(p->src6, vip);
  EXPECT_EQ(p->dst6, ipOf(a_));
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_EQ(p->src_mac, a_.host_mac);
  EXPECT_TRUE(p->l4_csum_ok) << "ICMPv6 checksum over the pseudo-header";
  // The quote: the refused datagram's IPv6 header and its ports.
  ASSERT_EQ(r.packet.size(), 14u + 40 + 8 + 48);
  EXPECT_TRUE(std::equal(in.begin() + 14, in.begin() + 14 + 40, r.packet.begin() + 14 + 48));
  EXPECT_EQ((r.packet[14 + 48 + 40] << 8) | r.packet[14 + 48 + 41], 41200);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_NO_SERVICE) << "still reported";
}

// sessionAffinityConfig.clientIP.timeoutSeconds: the client keeps its backend while it comes
// back within the timeout, and is balanced afresh once the timeout has passed. Time is moved by
// ageing the affinity entry, as the datapath's clock would after that long.
TEST_F(LxcServiceTest, SessionAffinityEndsAfterItsTimeout) {
  program(service::Protocol::kTcp, {backend(b_), backend(c_)}, true);  // timeout 60 s
  auto opened = bpf::KernelMap<lb4_affinity_key, lb4_affinity_val>::fromPinned(
      *topo_->pinDir() + "/cilium_lb4_affinity");
  ASSERT_TRUE(opened.ok()) << opened.error().toString();
  auto& affinity = *opened;
  // Sets the client's entry's last use `ago` seconds back; false when there is no entry.
  auto age = [&](uint32_t ago) {
    std::optional<lb4_affinity_key> key;
    EXPECT_TRUE(affinity
                    ->forEach([&](const lb4_affinity_key& k, const lb4_affinity_val&) {
                      key = k;
                      return false;
                    })
                    .ok());
    if (!key) return false;
    auto v = affinity->lookup(*key);
    if (!v.ok() || !*v) return false;
    lb4_affinity_val aged = **v;
    aged.last_used = datapath::monotonicSeconds() - ago;
    return affinity->update(*key, aged).ok();
  };
  uint16_t sport = 44000;
  auto connect = [&] {
    auto syn = from(a_).ipv4(a_.pod.ip, kVip).tcp(sport++, 80, tcp::kSyn).build();
    auto r = fromContainer(a_, syn);
    EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
    auto parsed = parsePacket(r.packet);
    return parsed ? parsed->daddr : 0u;
  };
  uint32_t first = connect();
  ASSERT_NE(first, 0u);
  for (int i = 0; i < 10; i++) {
    ASSERT_TRUE(age(59));
    EXPECT_EQ(connect(), first) << "within the timeout the client keeps its backend";
  }
  std::set<uint32_t> after_timeout;
  for (int i = 0; i < 24 && after_timeout.size() < 2; i++) {
    ASSERT_TRUE(age(61));
    after_timeout.insert(connect());
  }
  EXPECT_EQ(after_timeout.size(), 2u) << "past the timeout the client is balanced afresh";
}

TEST_F(LxcServiceTest, NoBackendAnswersUdpWithPortUnreachable) {
  program(service::Protocol::kUdp, {});
  auto q = from(a_).ipv4(a_.pod.ip, kVip).udp(41202, 80).payload("query").build();
  auto r = fromContainer(a_, q);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->proto, 1);
  EXPECT_EQ(p->icmp_type, 3);
  EXPECT_EQ(p->icmp_code, 3);
  EXPECT_EQ(p->saddr, ipv4(kVip));
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok) << "ICMP checksum";
  // The quote names the refused datagram: its IPv4 header and UDP ports.
  ASSERT_EQ(r.packet.size(), 14u + 20 + 8 + 28);
  EXPECT_EQ(r.packet[14 + 20 + 8 + 9], 17);
  EXPECT_EQ((r.packet[14 + 20 + 8 + 20] << 8) | r.packet[14 + 20 + 8 + 21], 41202);
}

TEST_F(LxcServiceTest, OtherPortsOfTheVipAreNotTranslated) {
  program(service::Protocol::kTcp, {backend(b_)});
  auto syn = from(a_).ipv4(a_.pod.ip, kVip).tcp(41300, 81, tcp::kSyn).build();
  auto r = fromContainer(a_, syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(parsePacket(r.packet)->daddr, ipv4(kVip));
}

// A backend's ICMP error about a translated connection (here b's port unreachable about a's
// datagram to b:8080) reaches a as from the frontend: outer source and quoted destination.
TEST_P(LxcServiceFamilyTest, BackendsIcmpErrorComesFromTheFrontend) {
  program(service::Protocol::kUdp, {backend(b_)});
  const std::string vip = addr(kVip);
  auto q = from(a_).ip(ipOf(a_), vip).udp(41400, 80).payload("query").build();
  auto r = fromContainer(a_, q);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  std::vector<uint8_t> delivered(r.packet.begin() + 14, r.packet.end());
  // Port unreachable: ICMP 3/3, ICMPv6 1/4.
  const bool v6 = family_ == Family::kV6;
  auto err = from(b_).ip(ipOf(b_), ipOf(a_)).icmpError(v6 ? 1 : 3, v6 ? 4 : 3, delivered).build();
  r = fromContainer(b_, err);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  EXPECT_TRUE(isIcmpError(r.packet, vip, ipOf(a_), ipOf(a_), 41400, vip, 80));
  EXPECT_EQ(parsePacket(r.packet)->dst_mac, a_.mac);
}

// Hairpin (lb4_hairpin): a is the backend of the service it calls. Its packets come back into it
// from the service loopback address, its replies come back from the frontend, and nothing else
// gets in through the loopback address.
TEST_F(LxcServiceTest, HairpinComesBackFromTheLoopbackAddress) {
  constexpr const char* kLoopback = "169.254.42.1";
  program(service::Protocol::kTcp, {backend(a_)});
  auto syn = from(a_).ipv4(a_.pod.ip, kVip).tcp(41500, 80, tcp::kSyn).build();
  auto r = fromContainer(a_, syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kLoopback));
  EXPECT_EQ(p->sport, 41500);
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(p->dst_mac, a_.mac) << "back into the pod";
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  auto synack = from(a_).ipv4(a_.pod.ip, kLoopback).tcp(8080, 41500, tcp::kSyn | tcp::kAck).build();
  r = fromContainer(a_, synack);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kVip));
  EXPECT_EQ(p->sport, 80);
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_EQ(p->dport, 41500);
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // The pod's ICMP error about a hairpin datagram (no listener on the backend port) reaches the
  // client in the pod as from the frontend.
  program(service::Protocol::kUdp, {backend(a_)});
  auto q = from(a_).ipv4(a_.pod.ip, kVip).udp(41600, 80).payload("query").build();
  r = fromContainer(a_, q);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  std::vector<uint8_t> delivered(r.packet.begin() + 14, r.packet.end());
  auto err = from(a_).ipv4(a_.pod.ip, kLoopback).icmpError(3, 3, delivered).build();
  r = fromContainer(a_, err);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  EXPECT_TRUE(isIcmpError(r.packet, kVip, a_.pod.ip, a_.pod.ip, 41600, kVip, 80));
  EXPECT_EQ(parsePacket(r.packet)->dst_mac, a_.mac);

  // Not a reply of a hairpin connection: dropped, whatever policy says.
  uint64_t before = metric(DROP_NAT_NO_MAPPING, METRIC_EGRESS);
  auto stray = from(a_).ipv4(a_.pod.ip, kLoopback).tcp(8080, 41501, tcp::kAck).build();
  EXPECT_EQ(fromContainer(a_, stray).retval, TC_ACT_SHOT);
  EXPECT_EQ(metric(DROP_NAT_NO_MAPPING, METRIC_EGRESS), before + 1);
}

}  // namespace
}  // namespace cilium::testing
