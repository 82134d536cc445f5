// bpf tier: what bpf_lxc does to packets: local delivery (MAC rewrite, TTL, redirect), the ARP
// and neighbour discovery responders, source IP verification, fragments and unsupported L3
// protocols. Local delivery and source verification run over IPv4 and IPv6.
#include <algorithm>
#include <cstring>

#include "agent/common/inet.h"
#include "tests/bpf/lxc_fixture.h"

namespace cilium::testing {
namespace {

class LxcPacketTest : public LxcTest {
 protected:
  void SetUp() override {
    LxcTest::SetUp();
    setPolicy(a_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    setPolicy(b_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    events();
  }
};

using LxcPacketFamilyTest = FamilyTest<LxcPacketTest>;
CILIUM_INSTANTIATE_FAMILIES(LxcPacketFamilyTest);

TEST_P(LxcPacketFamilyTest, LocalDeliveryRewritesL2AndTtlAndRedirects) {
  for (uint8_t proto : {6, 17, 1}) {
    SCOPED_TRACE(int(proto));
    PacketBuilder b = from(a_);
    b.ip(ipOf(a_), ipOf(b_), 64);
    if (proto == 6) b.tcp(41000, 80, tcp::kSyn);
    if (proto == 17) b.udp(41000, 53).payload("hello");
    if (proto == 1) b.echoRequest(41000, 1);
    auto in = b.build();
    auto r = fromContainer(a_, in);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->dst_mac, b_.mac) << "delivered to the destination pod's MAC";
    EXPECT_EQ(p->src_mac, b_.host_mac) << "from the destination's host-side veth";
    EXPECT_EQ(p->ttl, 63) << "TTL or hop limit";
    EXPECT_TRUE(p->ip_csum_ok) << "TTL change must keep the IP checksum valid";
    EXPECT_TRUE(p->l4_csum_ok);
    EXPECT_EQ(srcOf(*p), ipOf(a_));
    EXPECT_EQ(dstOf(*p), ipOf(b_));
  }
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 3u);
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_INGRESS), 3u);
}

TEST_F(LxcPacketTest, ExpiringTtlIsDropped) {
  auto in = from(a_).ipv4(a_.pod.ip, b_.pod.ip, 1).udp(41001, 53).build();
  EXPECT_EQ(fromContainer(a_, in).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_TTL_EXCEEDED);
}

TEST_F(LxcPacketTest, TrafficToTheNodeAndOutsideGoesToTheStack) {
  auto r = fromContainer(a_, from(a_).ipv4(a_.pod.ip, topo_->routerIp()).icmp(8, 0, 7, 1).build());
  EXPECT_EQ(r.retval, TC_ACT_OK);
  r = fromContainer(a_, from(a_).ipv4(a_.pod.ip, kWorld).tcp(41002, 443, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_OK);
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ttl, 64) << "the stack routes and decrements it";
  auto evs = events();
  auto verdicts = ofType(evs, EVENT_POLICY_VERDICT);
  ASSERT_EQ(verdicts.size(), 2u) << describe(evs);
  EXPECT_EQ(verdicts[0].dst_identity, IDENTITY_HOST);
  EXPECT_EQ(verdicts[1].dst_identity, IDENTITY_WORLD);
}

TEST_P(LxcPacketFamilyTest, SpoofedSourceIsDropped) {
  uint64_t before = metric(DROP_INVALID_SIP, METRIC_EGRESS);
  // Another address of the pod CIDR, another pod's, the unspecified one (and for IPv6 a
  // link-local one: only neighbour discovery and MLD may use those).
  std::vector<std::string> spoofed = {addr("10.200.0.99"), ipOf(b_),
                                      family_ == Family::kV6 ? "::" : "0.0.0.0"};
  if (family_ == Family::kV6) spoofed.push_back("fe80::1");
  for (const auto& src : spoofed) {
    SCOPED_TRACE(src);
    auto in = from(a_).ip(src, ipOf(b_)).udp(41003, 53).build();
    EXPECT_EQ(fromContainer(a_, in).retval, TC_ACT_SHOT);
    auto drops = ofType(events(), EVENT_DROP);
    ASSERT_EQ(drops.size(), 1u);
    EXPECT_EQ(drops[0].subtype, DROP_INVALID_SIP);
    EXPECT_EQ(drops[0].source, a_.id);
    EXPECT_EQ(drops[0].src_identity, kIdentityA);
    EXPECT_EQ(tupleAddr(drops[0].tuple, true), src);
  }
  EXPECT_EQ(metric(DROP_INVALID_SIP, METRIC_EGRESS), before + spoofed.size());
  EXPECT_EQ(datapath::dropReasonName(DROP_INVALID_SIP), "Invalid source ip");
}

// An endpoint without an address of a family (IPv4-only endpoints and IPv6; IPv6-only ones,
// enable-ipv4=false, and IPv4): that family drops with DROP_UNKNOWN_L3 both ways, never passing
// unenforced; the family it has keeps working.
TEST_P(LxcPacketFamilyTest, FamilyTheEndpointLacksIsDropped) {
  const uint32_t ifindex = static_cast<uint32_t>(a_.pod.host_ifindex);
  auto info = maps().endpoints_by_ifindex->lookup(ifindex);
  ASSERT_TRUE(info.ok() && *info);
  endpoint_info lacking = **info;
  if (family_ == Family::kV4)
    lacking.ipv4 = 0;
  else
    std::memset(lacking.ipv6, 0, sizeof(lacking.ipv6));
  ASSERT_TRUE(maps().endpoints_by_ifindex->update(ifindex, lacking).ok());
  uint64_t egress = metric(DROP_UNKNOWN_L3, METRIC_EGRESS);
  uint64_t ingress = metric(DROP_UNKNOWN_L3, METRIC_INGRESS);

  auto out = from(a_).ip(ipOf(a_), ipOf(b_)).udp(41000, 53).build();
  auto in = to(a_).ip(addr(kRemote1), ipOf(a_)).udp(53, 41000).build();
  EXPECT_EQ(fromContainer(a_, out).retval, TC_ACT_SHOT);
  EXPECT_EQ(toContainer(a_, in).retval, TC_ACT_SHOT);
  auto evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 2u) << describe(evs);
  for (const auto& d : drops) {
    EXPECT_EQ(d.subtype, DROP_UNKNOWN_L3);
    EXPECT_EQ(d.tuple.family, family_ == Family::kV6 ? ENDPOINT_KEY_IPV6 : ENDPOINT_KEY_IPV4);
  }
  EXPECT_EQ(tupleAddr(drops[0].tuple, true), ipOf(a_));
  EXPECT_EQ(tupleAddr(drops[1].tuple, true), addr(kRemote1));
  EXPECT_EQ(metric(DROP_UNKNOWN_L3, METRIC_EGRESS), egress + 1);
  EXPECT_EQ(metric(DROP_UNKNOWN_L3, METRIC_INGRESS), ingress + 1);

  // The same packets pass once the endpoint has the address again.
  ASSERT_TRUE(maps().endpoints_by_ifindex->update(ifindex, **info).ok());
  EXPECT_EQ(fromContainer(a_, out).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(toContainer(a_, in).retval, TC_ACT_OK);
}

TEST_F(LxcPacketTest, FragmentsAndOtherL3AreDropped) {
  auto frag = from(a_).ipv4(a_.pod.ip, b_.pod.ip).udp(41004, 53).fragment(0x2000).build();
  EXPECT_EQ(fromContainer(a_, frag).retval, TC_ACT_SHOT);
  auto later =
      from(a_).ipv4(a_.pod.ip, b_.pod.ip).protocol(17).payload(16).fragment(0x0010).build();
  EXPECT_EQ(fromContainer(a_, later).retval, TC_ACT_SHOT);
  auto in_frag = to(a_).ipv4(kRemote1, a_.pod.ip).udp(53, 41004).fragment(0x2000).build();
  EXPECT_EQ(toContainer(a_, in_frag).retval, TC_ACT_SHOT);
  auto df = from(a_).ipv4(a_.pod.ip, b_.pod.ip).udp(41005, 53).fragment(0x4000).build();
  EXPECT_EQ(fromContainer(a_, df).retval, TC_ACT_REDIRECT) << "don't-fragment is no fragment";
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 3u);
  for (const auto& d : drops) EXPECT_EQ(d.subtype, DROP_FRAG_NOSUPPORT);

  // An IPv6 UDP packet (fe80::1 -> ff02::1): the kernel wants a plausible header.
  std::vector<uint8_t> v6(14 + 40 + 8, 0);
  std::copy(a_.host_mac.begin(), a_.host_mac.end(), v6.begin());
  std::copy(a_.mac.begin(), a_.mac.end(), v6.begin() + 6);
  v6[12] = 0x86, v6[13] = 0xdd, v6[14] = 0x60, v6[19] = 8, v6[20] = 17, v6[21] = 64;
  v6[22] = 0xfe, v6[23] = 0x80, v6[37] = 1, v6[38] = 0xff, v6[39] = 0x02, v6[53] = 1;
  v6[55] = 1, v6[57] = 2, v6[59] = 8;
  EXPECT_EQ(fromContainer(a_, v6).retval, TC_ACT_SHOT);
  EXPECT_EQ(toContainer(a_, v6).retval, TC_ACT_SHOT);
  drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0].subtype, DROP_UNKNOWN_L3);
  EXPECT_EQ(drops[1].subtype, DROP_UNKNOWN_L3);
  for (const auto& d : drops) {
    // The IPv6 tuple, not an empty IPv4 one.
    EXPECT_EQ(d.tuple.family, ENDPOINT_KEY_IPV6);
    EXPECT_EQ(d.tuple.saddr.ip6[0], 0xfe);
    EXPECT_EQ(d.tuple.saddr.ip6[15], 1);
    EXPECT_EQ(d.tuple.daddr.ip6[0], 0xff);
    EXPECT_EQ(d.tuple.daddr.ip6[15], 1);
    EXPECT_EQ(d.tuple.proto, 17);
    EXPECT_EQ(ntohs(d.tuple.sport), 1);
    EXPECT_EQ(ntohs(d.tuple.dport), 2);
  }
  EXPECT_EQ(metric(DROP_UNKNOWN_L3, METRIC_EGRESS), 1u);
  EXPECT_EQ(metric(DROP_UNKNOWN_L3, METRIC_INGRESS), 1u);

  auto truncated = from(a_).ipv4(a_.pod.ip, b_.pod.ip).tcp(41006, 80, tcp::kSyn).build();
  truncated.resize(14 + 20 + 10);
  truncated[14 + 3] = 30;  // total length matching the cut
  EXPECT_EQ(fromContainer(a_, truncated).retval, TC_ACT_SHOT);
  drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_CT_INVALID_HDR);
}

std::vector<uint8_t> arpRequest(const Mac& sha, const std::string& spa, const std::string& tpa) {
  std::vector<uint8_t> f(42, 0);
  for (int i = 0; i < 6; i++) f[i] = 0xff;
  std::copy(sha.begin(), sha.end(), f.begin() + 6);
  f[12] = 0x08, f[13] = 0x06;
  f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0, f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;
  std::copy(sha.begin(), sha.end(), f.begin() + 22);
  uint32_t s = ipv4(spa), t = ipv4(tpa);
  for (int i = 0; i < 4; i++) {
    f[28 + i] = static_cast<uint8_t>(s >> (24 - 8 * i));
    f[38 + i] = static_cast<uint8_t>(t >> (24 - 8 * i));
  }
  return f;
}

TEST_F(LxcPacketTest, ArpRequestsAreAnsweredWithTheHostVethMac) {
  auto r = fromContainer(a_, arpRequest(a_.mac, a_.pod.ip, topo_->routerIp()));
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  const auto& f = r.packet;
  ASSERT_GE(f.size(), 42u);
  EXPECT_TRUE(std::equal(a_.mac.begin(), a_.mac.end(), f.begin())) << "to the pod";
  EXPECT_TRUE(std::equal(a_.host_mac.begin(), a_.host_mac.end(), f.begin() + 6));
  EXPECT_EQ(f[21], 2) << "an ARP reply";
  EXPECT_TRUE(std::equal(a_.host_mac.begin(), a_.host_mac.end(), f.begin() + 22)) << "sender MAC";
  uint32_t spa = uint32_t{f[28]} << 24 | f[29] << 16 | f[30] << 8 | f[31];
  uint32_t tpa = uint32_t{f[38]} << 24 | f[39] << 16 | f[40] << 8 | f[41];
  EXPECT_EQ(spa, ipv4(topo_->routerIp()));
  EXPECT_EQ(tpa, ipv4(a_.pod.ip));
  EXPECT_TRUE(std::equal(a_.mac.begin(), a_.mac.end(), f.begin() + 32)) << "target MAC";

  // Any address the pod asks for (it routes everything through the node).
  EXPECT_EQ(fromContainer(a_, arpRequest(a_.mac, a_.pod.ip, "10.200.0.12")).retval,
            TC_ACT_REDIRECT);
  // Gratuitous ARP and duplicate address probes are not answered.
  EXPECT_EQ(fromContainer(a_, arpRequest(a_.mac, a_.pod.ip, a_.pod.ip)).retval, TC_ACT_OK);
  EXPECT_EQ(fromContainer(a_, arpRequest(a_.mac, "0.0.0.0", a_.pod.ip)).retval, TC_ACT_OK);
  // The node's ARP towards the pod passes.
  EXPECT_EQ(toContainer(a_, arpRequest(a_.host_mac, topo_->routerIp(), a_.pod.ip)).retval,
            TC_ACT_OK);
  EXPECT_TRUE(ofType(events(), EVENT_DROP).empty());
}

class LxcNdpTest : public LxcPacketTest {
 protected:
  void SetUp() override {
    dual_stack_ = true;
    family_ = Family::kV6;
    LxcPacketTest::SetUp();
  }
  // A solicitation from pod `ep` for `target`, to its solicited-node multicast address.
  std::vector<uint8_t> solicit(const TestEndpoint& ep, const std::string& src,
                               const std::string& target, bool with_option = true) {
    return from(ep)
        .ipv6(src, "ff02::1:ff00:1", 255)
        .neighborSolicit(target, with_option ? ep.mac : Mac{})
        .build();
  }
};

TEST_F(LxcNdpTest, NeighbourSolicitationsAreAnsweredWithTheHostVethMac) {
  const std::string router = addr(topo_->routerIp());
  for (bool with_option : {true, false}) {
    SCOPED_TRACE(with_option ? "with source link-layer option" : "without options");
    auto r = fromContainer(a_, solicit(a_, ipOf(a_), router, with_option));
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->dst_mac, a_.mac) << "to the pod";
    EXPECT_EQ(p->src_mac, a_.host_mac);
    EXPECT_EQ(p->src6, router);
    EXPECT_EQ(p->dst6, ipOf(a_));
    EXPECT_EQ(p->ttl, 255) << "the hop limit neighbour discovery requires";
    EXPECT_EQ(p->proto, 58);
    EXPECT_EQ(p->icmp_type, 136) << "a neighbour advertisement";
    EXPECT_TRUE(p->l4_csum_ok) << "the pod drops advertisements with a bad checksum";
    ASSERT_EQ(p->l4.size(), 32u);
    EXPECT_EQ(p->l4[4], 0xe0) << "router, solicited, override";
    auto target = IpAddr::parse(router);
    ASSERT_TRUE(target.ok());
    EXPECT_TRUE(std::equal(target->bytes().begin(), target->bytes().end(), p->l4.begin() + 8));
    EXPECT_EQ(p->l4[24], 2) << "target link-layer address option";
    EXPECT_EQ(p->l4[25], 1);
    EXPECT_TRUE(std::equal(a_.host_mac.begin(), a_.host_mac.end(), p->l4.begin() + 26));
  }

  // Any address the pod asks for (it routes everything through the node), from its link-local
  // address too.
  EXPECT_EQ(fromContainer(a_, solicit(a_, "fe80::11", ipOf(b_))).retval, TC_ACT_REDIRECT);
  // Duplicate address detection and solicitations for the pod's own address are not answered.
  EXPECT_EQ(fromContainer(a_, solicit(a_, "::", ipOf(a_))).retval, TC_ACT_OK);
  EXPECT_EQ(fromContainer(a_, solicit(a_, "fe80::11", ipOf(a_))).retval, TC_ACT_OK);
  // The node resolving the pod passes, and so does the pod's advertisement back.
  EXPECT_EQ(toContainer(a_, to(a_)
                                .ipv6("fe80::1", "ff02::1:ff00:11", 255)
                                .neighborSolicit(ipOf(a_), a_.host_mac)
                                .build())
                .retval,
            TC_ACT_OK);
  EXPECT_EQ(
      fromContainer(a_, from(a_).ipv6(ipOf(a_), "fe80::1", 255).icmp(136, 0).payload(16).build())
          .retval,
      TC_ACT_OK);
  EXPECT_TRUE(ofType(events(), EVENT_DROP).empty());

  // A pod is no router: its router advertisements never reach the node.
  auto ra = from(a_).ipv6("fe80::11", "ff02::1", 255).icmp(134, 0).payload(8).build();
  EXPECT_EQ(fromContainer(a_, ra).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_INVALID_SIP);
}

}  // namespace
}  // namespace cilium::testing
