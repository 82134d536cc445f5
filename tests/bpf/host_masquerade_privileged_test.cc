// bpf tier: BPF masquerade in bpf_host (lib/masquerade.h) through BPF_PROG_TEST_RUN: a pod's
// TCP, UDP and ICMP echo to the outside leave the device from the node's address and a node port,
// replies (and ICMP errors about them) are translated back to the pod, colliding tuples get
// distinct ports, a full port range drops with "No mapping for NAT masquerade", and what must not
// be masqueraded is left alone. The translation tests run once per family (IPv6 masquerade).
#include <arpa/inet.h>
#include <linux/bpf.h>

#include <cstring>

#include <set>

#include "agent/common/netns.h"
#include "agent/datapath/conntrack.h"
#include "agent/service/host_datapath.h"
#include "tests/bpf/lxc_fixture.h"
#include "tests/harness/packet_assert.h"

namespace cilium::testing {
namespace {

constexpr const char* kNode = "10.200.0.1";      // the device's address
constexpr const char* kGateway = "10.200.0.50";  // the "ext" pod: the device's neighbour
constexpr const char* kOutside = "192.0.2.10";   // a host outside the cluster

class HostMasqueradeTest : public LxcTest {
 protected:
  void SetUp() override {
    LxcTest::SetUp();
    setPolicy(a_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    setPolicy(b_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    auto ext = topo_->addPod("ext", kGateway);
    ASSERT_TRUE(ext.ok()) << ext.error().toString();
    ext_ = *ext;
    auto host = service::HostDatapath::load(
        *topo_->pinDir(), {.enable_masquerade = true, .enable_masquerade6 = true});
    ASSERT_TRUE(host.ok()) << host.error().toString();
    host_ = std::move(*host);
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&] {
                  return host_->attachDevice(ext_.host_ifindex, *IpAddr::parse(kNode),
                                             service::XdpMode::kDisabled,
                                             *IpAddr::parse(v6Twin(kNode)));
                }).ok());
    // The pods' /16 (tests/harness/netns.h) is the non-masquerade set, as the node's pod CIDR is;
    // for IPv6 the /64 of their twins.
    pod_cidr_ = IpPrefix(*IpAddr::parse(a_.pod.ip), 16);
    ASSERT_TRUE(host_
                    ->setNonMasqueradeCidrs(
                        {pod_cidr_, IpPrefix(*IpAddr::parse(v6Twin(a_.pod.ip)), 64)})
                    .ok());
    events();
  }

  bpf::TestRunResult runOnDevice(const bpf_program* prog, const std::vector<uint8_t>& packet) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ext_.host_ifindex);
    auto r = runInNetnsValue<bpf::TestRunResult>(
        topo_->nodeNetns(), [&] { return bpf::testRun(prog, packet, {.repeat = 1, .ctx = ctx}); });
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : bpf::TestRunResult{.retval = -1};
  }
  bpf::TestRunResult ingress(const std::vector<uint8_t>& packet) {
    return runOnDevice(host_->programs().from_netdev, packet);
  }
  bpf::TestRunResult egress(const std::vector<uint8_t>& packet) {
    return runOnDevice(host_->programs().to_netdev, packet);
  }
  // A packet the node's stack routes out of the device.
  PacketBuilder toNetwork() const {
    PacketBuilder b;
    b.eth(mac(ext_.host_mac), mac(ext_.mac));
    return b;
  }
  // A packet arriving from the network on the device.
  PacketBuilder fromNetwork() const {
    PacketBuilder b;
    b.eth(mac(ext_.mac), mac(ext_.host_mac));
    return b;
  }
  // The pod's packet as bpf_lxc sees it (its egress conntrack entry), then out of the device.
  bpf::TestRunResult podOut(const TestEndpoint& ep, PacketBuilder l3) {
    auto r = fromContainer(ep, l3.eth(ep.mac, ep.host_mac).build());
    EXPECT_EQ(r.retval, TC_ACT_OK) << "bpf_lxc passes it to the stack: " << describe(events());
    return egress(l3.eth(mac(ext_.host_mac), mac(ext_.mac)).build());
  }
  std::optional<nat4_entry> nat(const char* saddr, const char* daddr, uint16_t sport,
                                uint16_t dport, uint8_t proto, uint8_t dir) {
    nat4_key k{};
    k.saddr = htonl(ipv4(saddr));
    k.daddr = htonl(ipv4(daddr));
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = proto;
    k.dir = dir;
    auto v = host_->nat().lookup(k);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : std::nullopt;
  }

  // The translation of NAT entry {saddr:sport -> daddr:dport, proto, dir} in the family of
  // `saddr`, as "addr:port".
  std::optional<std::string> natTo(const std::string& saddr, const std::string& daddr,
                                   uint16_t sport, uint16_t dport, uint8_t proto, uint8_t dir) {
    auto s = IpAddr::parse(saddr), d = IpAddr::parse(daddr);
    EXPECT_TRUE(s.ok() && d.ok());
    if (s->isV4()) {
      auto v = nat(saddr.c_str(), daddr.c_str(), sport, dport, proto, dir);
      if (!v) return std::nullopt;
      if (!(v->flags & NAT_F_MASQ)) return "not masquerade";
      return IpAddr::fromNetworkOrder(v->to_addr).toString() + ":" +
             std::to_string(ntohs(v->to_port));
    }
    nat6_key k{};
    std::memcpy(k.saddr.ip6, s->bytes().data(), 16);
    std::memcpy(k.daddr.ip6, d->bytes().data(), 16);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = proto;
    k.dir = dir;
    auto v = host_->nat6().lookup(k);
    EXPECT_TRUE(v.ok());
    if (!v.ok() || !*v) return std::nullopt;
    if (!((*v)->flags & NAT_F_MASQ)) return "not masquerade";
    return IpAddr::fromBytes(IpFamily::kV6, (*v)->to_addr.ip6).toString() + ":" +
           std::to_string(ntohs((*v)->to_port));
  }

  Pod ext_;
  IpPrefix pod_cidr_;
  std::unique_ptr<service::HostDatapath> host_;
};

TEST_F(HostMasqueradeTest, TcpLeavesWithTheNodeAddressAndRepliesReachThePod) {
  auto r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).tcp(40000, 80, tcp::kSyn));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kNode)) << "masqueraded to the device's address";
  uint16_t node_port = p->sport;
  EXPECT_GE(node_port, NAT_PORT_MIN);
  EXPECT_LE(node_port, NAT_PORT_MAX);
  EXPECT_EQ(p->daddr, ipv4(kOutside));
  EXPECT_EQ(p->dport, 80);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  auto fwd = nat(a_.pod.ip.c_str(), kOutside, 40000, 80, 6, NAT_DIR_EGRESS);
  ASSERT_TRUE(fwd);
  EXPECT_TRUE(fwd->flags & NAT_F_MASQ);
  EXPECT_EQ(ntohs(fwd->to_port), node_port);
  auto rev = nat(kOutside, kNode, 80, node_port, 6, NAT_DIR_INGRESS);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->to_addr, htonl(ipv4(a_.pod.ip)));
  EXPECT_EQ(ntohs(rev->to_port), 40000);

  // The reply comes back to the pod, through the egress of its veth (bpf_lxc's ingress side).
  r = ingress(
      fromNetwork().ipv4(kOutside, kNode).tcp(80, node_port, tcp::kSyn | tcp::kAck).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_EQ(p->dport, 40000);
  EXPECT_EQ(p->saddr, ipv4(kOutside));
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  // bpf_lxc takes it as the reply of the pod's connection.
  r = toContainer(a_, r.packet);
  EXPECT_EQ(r.retval, TC_ACT_OK) << describe(events());

  // The connection keeps its port.
  r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).tcp(40000, 80, tcp::kAck));
  ASSERT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(parsePacket(r.packet)->sport, node_port);
}

TEST_F(HostMasqueradeTest, UdpAndIcmpEchoAreMasqueraded) {
  auto r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).udp(5353, 53));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kNode));
  uint16_t udp_port = p->sport;
  EXPECT_GE(udp_port, NAT_PORT_MIN);
  EXPECT_TRUE(p->l4_csum_ok);
  r = ingress(fromNetwork().ipv4(kOutside, kNode).udp(53, udp_port).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_EQ(p->dport, 5353);
  EXPECT_TRUE(p->l4_csum_ok);

  // ICMP echo: the identifier is the port.
  r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).icmp(8, 0, 77, 1));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kNode));
  uint16_t id = p->sport;
  EXPECT_GE(id, NAT_PORT_MIN);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  r = ingress(fromNetwork().ipv4(kOutside, kNode).icmp(0, 0, id, 1).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
  EXPECT_EQ(p->sport, 77) << "the pod's own identifier back";
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // An ICMP error about the UDP flow, from a router on the way: to the pod, about its own
  // datagram.
  auto sent = PacketBuilder().ipv4(kNode, kOutside).udp(udp_port, 53).build();
  r = ingress(fromNetwork()
                  .ipv4("192.0.2.1", kNode)
                  .icmpError(3, 3, {sent.begin() + 14, sent.end()})
                  .build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  EXPECT_TRUE(isIcmpError(r.packet, "192.0.2.1", a_.pod.ip, a_.pod.ip, 5353, kOutside, 53));
}

TEST_F(HostMasqueradeTest, CollidingTuplesGetDistinctPorts) {
  // Two pods with the same source port to the same server; then many connections of one pod.
  std::set<uint16_t> ports;
  for (const TestEndpoint* ep : {&a_, &b_}) {
    auto r = podOut(*ep, PacketBuilder().ipv4(ep->pod.ip, kOutside).tcp(40000, 80, tcp::kSyn));
    ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
    ports.insert(parsePacket(r.packet)->sport);
  }
  EXPECT_EQ(ports.size(), 2u);
  for (uint16_t sport = 41000; sport < 41300; sport++) {
    auto r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).tcp(sport, 80, tcp::kSyn));
    ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    ASSERT_TRUE(ports.insert(p->sport).second) << "node port " << p->sport << " given twice";
  }
}

TEST_F(HostMasqueradeTest, NoFreePortDropsAndAFinishedConnectionsPortIsTakenOver) {
  // Every node port towards kOutside:80 taken by a live connection of pod b.
  uint32_t node = htonl(ipv4(kNode)), outside = htonl(ipv4(kOutside)),
           pod_b = htonl(ipv4(b_.pod.ip));
  uint32_t now = static_cast<uint32_t>(datapath::monotonicSeconds());
  for (uint32_t port = NAT_PORT_MIN; port <= NAT_PORT_MAX; port++) {
    uint16_t owner_port = static_cast<uint16_t>(port - NAT_PORT_MIN + 1000);
    nat4_key rk{};
    rk.saddr = outside;
    rk.daddr = node;
    rk.sport = htons(80);
    rk.dport = htons(static_cast<uint16_t>(port));
    rk.proto = 6;
    rk.dir = NAT_DIR_INGRESS;
    nat4_entry rv{};
    rv.to_addr = pod_b;
    rv.to_port = htons(owner_port);
    rv.flags = NAT_F_MASQ;
    rv.created = now;
    ASSERT_TRUE(host_->nat().update(rk, rv).ok());
    ct_key4 ck{};
    ck.saddr = pod_b;
    ck.daddr = outside;
    ck.sport = htons(owner_port);
    ck.dport = htons(80);
    ck.nexthdr = 6;
    ck.flags = CT_KEY_EGRESS;
    ct_entry ce{};
    ce.lifetime = now + 3600;
    ce.flags = CT_F_SEEN_NON_SYN;
    ASSERT_TRUE(maps().ct_tcp->update(ck, ce).ok());
  }
  uint64_t before = metric(DROP_NAT_NO_MAPPING, METRIC_EGRESS);
  auto r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).tcp(40500, 80, tcp::kSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT) << "a pod's address never leaves untranslated";
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_FALSE(drops.empty());
  EXPECT_EQ(drops.back().subtype, DROP_NAT_NO_MAPPING);
  EXPECT_EQ(metric(DROP_NAT_NO_MAPPING, METRIC_EGRESS), before + 1);

  // Close every connection of pod b (FIN both ways): their ports can be taken over at once.
  ASSERT_TRUE(maps()
                  .ct_tcp
                  ->forEach([&](const ct_key4& k, const ct_entry& v) {
                    if (k.saddr != pod_b) return true;
                    ct_entry closed = v;
                    closed.flags |= CT_F_RX_CLOSING | CT_F_TX_CLOSING;
                    EXPECT_TRUE(maps().ct_tcp->update(k, closed).ok());
                    return true;
                  })
                  .ok());
  r = podOut(a_, PacketBuilder().ipv4(a_.pod.ip, kOutside).tcp(40501, 80, tcp::kSyn));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  auto p = parsePacket(r.packet);
  EXPECT_EQ(p->saddr, ipv4(kNode));
  auto rev = nat(kOutside, kNode, 80, p->sport, 6, NAT_DIR_INGRESS);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->to_addr, htonl(ipv4(a_.pod.ip))) << "the port now names pod a";
}

TEST_F(HostMasqueradeTest, WhatMustNotBeMasqueradedIsLeftAlone) {
  // A destination in the non-masquerade set (the pod CIDR here).
  std::string other_pod =
      IpAddr::fromHostOrder(ntohl(pod_cidr_.addr().v4NetworkOrder()) + 77).toString();
  auto in_cidr = toNetwork().ipv4(a_.pod.ip, other_pod).tcp(40000, 80, tcp::kSyn).build();
  auto r = egress(in_cidr);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, in_cidr);
  // The node's own traffic.
  auto own = toNetwork().ipv4(kNode, kOutside).tcp(22, 40000, tcp::kAck).build();
  r = egress(own);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, own);
  // A pod answering a connection from outside (its ingress conntrack entry) keeps its address.
  auto syn_in = to(a_).ipv4(kOutside, a_.pod.ip).tcp(50000, 8080, tcp::kSyn).build();
  ASSERT_EQ(toContainer(a_, syn_in).retval, TC_ACT_OK) << describe(events());
  auto synack =
      toNetwork().ipv4(a_.pod.ip, kOutside).tcp(8080, 50000, tcp::kSyn | tcp::kAck).build();
  r = egress(synack);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, synack);
  // A ping reply to an outside host's ping.
  auto pong = toNetwork().ipv4(a_.pod.ip, kOutside).icmp(0, 0, 9, 1).build();
  r = egress(pong);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, pong);
  // A packet to a node port nobody allocated is the node's own business.
  auto stray = fromNetwork().ipv4(kOutside, kNode).tcp(80, 64999, tcp::kAck).build();
  r = ingress(stray);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, stray);
  EXPECT_TRUE(ofType(events(), EVENT_DROP).empty());
}

TEST_F(HostMasqueradeTest, WhatCannotBeTranslatedIsDropped) {
  // A protocol without ports (GRE) and an ICMP message that is not an echo, and a fragment.
  auto gre = toNetwork().ipv4(a_.pod.ip, kOutside).protocol(47).payload(16).build();
  auto r = egress(gre);
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto ts = toNetwork().ipv4(a_.pod.ip, kOutside).icmp(13, 0, 1, 1).build();
  r = egress(ts);
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto frag =
      toNetwork().ipv4(a_.pod.ip, kOutside).fragment(0x0010).protocol(17).payload(32).build();
  r = egress(frag);
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 3u) << describe(drops);
  EXPECT_EQ(drops[0].subtype, DROP_NAT_UNSUPP_PROTO);
  EXPECT_EQ(drops[1].subtype, DROP_NAT_UNSUPP_PROTO);
  EXPECT_EQ(drops[2].subtype, DROP_FRAG_NOSUPPORT);
}

TEST_F(HostMasqueradeTest, NonMasqueradeCidrsAreReplacedPerFamily) {
  auto cidrs = [&] {
    std::set<std::string> out;
    EXPECT_TRUE(host_->ipMasq()
                    .forEach([&](const ipmasq_key4& k, const uint8_t&) {
                      out.insert(IpPrefix(IpAddr::fromHostOrder(ntohl(k.addr)),
                                          static_cast<int>(k.prefixlen))
                                     .toString());
                      return true;
                    })
                    .ok());
    return out;
  };
  ASSERT_TRUE(host_
                  ->setNonMasqueradeCidrs(
                      {*IpPrefix::parse("10.0.0.0/8"), *IpPrefix::parse("172.16.0.0/12")})
                  .ok());
  EXPECT_EQ(cidrs(), (std::set<std::string>{"10.0.0.0/8", "172.16.0.0/12"}));
  ASSERT_TRUE(host_
                  ->setNonMasqueradeCidrs(
                      {*IpPrefix::parse("172.16.0.0/12"), *IpPrefix::parse("192.0.2.0/24")})
                  .ok());
  EXPECT_EQ(cidrs(), (std::set<std::string>{"172.16.0.0/12", "192.0.2.0/24"}));
  // Now the outside host is in the set: its traffic keeps the pod's address.
  auto syn = toNetwork().ipv4(a_.pod.ip, kOutside).tcp(40000, 80, tcp::kSyn).build();
  auto r = egress(syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, syn);
  // IPv6 prefixes go to the IPv6 map; the IPv4 set is replaced by the new list's IPv4 part.
  ASSERT_TRUE(host_
                  ->setNonMasqueradeCidrs(
                      {*IpPrefix::parse("192.0.2.0/24"), *IpPrefix::parse("fd00::/64")})
                  .ok());
  EXPECT_EQ(cidrs(), (std::set<std::string>{"192.0.2.0/24"}));
  std::set<std::string> v6;
  EXPECT_TRUE(host_->ipMasq6()
                  .forEach([&](const ipmasq_key6& k, const uint8_t&) {
                    v6.insert(IpPrefix(IpAddr::fromBytes(IpFamily::kV6, k.addr.ip6),
                                       static_cast<int>(k.prefixlen))
                                  .toString());
                    return true;
                  })
                  .ok());
  EXPECT_EQ(v6, (std::set<std::string>{"fd00::/64"}));
}

// The same translations for both families (IPv6: cilium_snat_v6_external, ICMPv6).
using HostMasqueradeFamilyTest = FamilyTest<HostMasqueradeTest>;

TEST_P(HostMasqueradeFamilyTest, TcpLeavesWithTheNodeAddressAndRepliesReachThePod) {
  const std::string node = addr(kNode), outside = addr(kOutside), pod = ipOf(a_);
  auto r = podOut(a_, PacketBuilder().ip(pod, outside).tcp(40000, 80, tcp::kSyn));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node) << "masqueraded to the device's address";
  uint16_t node_port = p->sport;
  EXPECT_GE(node_port, NAT_PORT_MIN);
  EXPECT_LE(node_port, NAT_PORT_MAX);
  EXPECT_EQ(dstOf(*p), outside);
  EXPECT_EQ(p->dport, 80);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  EXPECT_EQ(natTo(pod, outside, 40000, 80, 6, NAT_DIR_EGRESS),
            node + ":" + std::to_string(node_port));
  EXPECT_EQ(natTo(outside, node, 80, node_port, 6, NAT_DIR_INGRESS), pod + ":40000");

  // The reply comes back to the pod, through the egress of its veth (bpf_lxc's ingress side).
  r = ingress(fromNetwork().ip(outside, node).tcp(80, node_port, tcp::kSyn | tcp::kAck).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), pod);
  EXPECT_EQ(p->dport, 40000);
  EXPECT_EQ(srcOf(*p), outside);
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->l4_csum_ok);
  r = toContainer(a_, r.packet);
  EXPECT_EQ(r.retval, TC_ACT_OK) << "bpf_lxc takes it as the reply: " << describe(events());

  // The connection keeps its port.
  r = podOut(a_, PacketBuilder().ip(pod, outside).tcp(40000, 80, tcp::kAck));
  ASSERT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(parsePacket(r.packet)->sport, node_port);
}

TEST_P(HostMasqueradeFamilyTest, UdpEchoAndIcmpErrorsAreTranslated) {
  const std::string node = addr(kNode), outside = addr(kOutside), pod = ipOf(a_);
  const std::string router = addr("192.0.2.1");
  auto r = podOut(a_, PacketBuilder().ip(pod, outside).udp(5353, 53));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node);
  uint16_t udp_port = p->sport;
  EXPECT_GE(udp_port, NAT_PORT_MIN);
  EXPECT_TRUE(p->l4_csum_ok);
  r = ingress(fromNetwork().ip(outside, node).udp(53, udp_port).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  EXPECT_EQ(dstOf(*p), pod);
  EXPECT_EQ(p->dport, 5353);
  EXPECT_TRUE(p->l4_csum_ok);

  // Echo: the identifier is the port (ICMPv6's checksum covers the addresses too).
  r = podOut(a_, PacketBuilder().ip(pod, outside).echoRequest(77, 1));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node);
  uint16_t id = p->sport;
  EXPECT_GE(id, NAT_PORT_MIN);
  EXPECT_TRUE(p->l4_csum_ok);
  r = ingress(fromNetwork().ip(outside, node).echoReply(id, 1).build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), pod);
  EXPECT_EQ(p->sport, 77) << "the pod's own identifier back";
  EXPECT_TRUE(p->l4_csum_ok);

  // Errors from a router on the way about the UDP flow (unreachable; IPv6 also packet too big
  // and time exceeded): to the pod, about its own datagram, checksums right.
  auto sent = PacketBuilder().ip(node, outside).udp(udp_port, 53).payload(64).build();
  std::vector<uint8_t> quoted(sent.begin() + 14, sent.end());
  std::vector<std::pair<uint8_t, uint8_t>> errors = {{3, 3}};
  if (family_ == Family::kV6) errors = {{1, 4}, {2, 0}, {3, 0}};
  for (auto [type, code] : errors) {
    r = ingress(fromNetwork().ip(router, node).icmpError(type, code, quoted).build());
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << int(type) << " " << describe(events());
    if (family_ == Family::kV4) {
      EXPECT_TRUE(isIcmpError(r.packet, "192.0.2.1", pod, pod, 5353, outside, 53));
      continue;
    }
    p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(srcOf(*p), router);
    EXPECT_EQ(dstOf(*p), pod);
    EXPECT_EQ(p->icmp_type, type);
    EXPECT_TRUE(p->l4_csum_ok) << "ICMPv6 checksum (pseudo-header and quote) of type "
                               << int(type);
    ASSERT_GE(p->l4.size(), 8u + 40u + 4u);
    const uint8_t* q = p->l4.data() + 8;
    IpAddr qs = IpAddr::fromBytes(IpFamily::kV6, q + 8), qd = IpAddr::fromBytes(IpFamily::kV6, q + 24);
    EXPECT_EQ(qs.toString(), pod) << "the quote names the pod's own datagram";
    EXPECT_EQ(qd.toString(), outside);
    EXPECT_EQ((q[40] << 8) | q[41], 5353);
    EXPECT_EQ((q[42] << 8) | q[43], 53);
    r = toContainer(a_, r.packet);
    EXPECT_EQ(r.retval, TC_ACT_OK) << "related to the pod's connection: " << describe(events());
  }
}

TEST_P(HostMasqueradeFamilyTest, PodsErrorsAboutRepliesLeaveFromTheNode) {
  const std::string node = addr(kNode), outside = addr(kOutside), pod = ipOf(a_);
  auto r = podOut(a_, PacketBuilder().ip(pod, outside).udp(5353, 53));
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  uint16_t node_port = parsePacket(r.packet)->sport;
  // The pod refuses a reply it got (as the translated reply reached it: outside -> pod).
  auto reply = PacketBuilder().ip(outside, pod).udp(53, 5353).build();
  auto err = toNetwork()
                 .ip(pod, outside)
                 .icmpError(family_ == Family::kV6 ? 1 : 3, family_ == Family::kV6 ? 4 : 3,
                            {reply.begin() + 14, reply.end()})
                 .build();
  r = egress(err);
  ASSERT_EQ(r.retval, TC_ACT_OK) << describe(events());
  if (family_ == Family::kV4) {
    EXPECT_TRUE(isIcmpError(r.packet, kNode, kOutside, kOutside, 53, kNode, node_port));
    return;
  }
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node) << "the pod's address never leaves";
  EXPECT_TRUE(p->l4_csum_ok);
  const uint8_t* q = p->l4.data() + 8;
  EXPECT_EQ(IpAddr::fromBytes(IpFamily::kV6, q + 24).toString(), node);
  EXPECT_EQ((q[42] << 8) | q[43], node_port);
}

TEST_P(HostMasqueradeFamilyTest, WhatMustNotBeMasqueradedIsLeftAlone) {
  const std::string node = addr(kNode), outside = addr(kOutside), pod = ipOf(a_);
  // A destination in the non-masquerade set (the pods' network).
  auto in_cidr = toNetwork().ip(pod, ipOf(b_)).tcp(40000, 80, tcp::kSyn).build();
  auto r = egress(in_cidr);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, in_cidr);
  // The node's own traffic.
  auto own = toNetwork().ip(node, outside).tcp(22, 40000, tcp::kAck).build();
  r = egress(own);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, own);
  // A ping reply to an outside host's ping.
  auto pong = toNetwork().ip(pod, outside).echoReply(9, 1).build();
  r = egress(pong);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, pong);
  // A packet to a node port nobody allocated is the node's own business.
  auto stray = fromNetwork().ip(outside, node).tcp(80, 64999, tcp::kAck).build();
  r = ingress(stray);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, stray);
  // What cannot be translated drops: a protocol without ports, a non-echo ICMP message.
  auto gre = toNetwork().ip(pod, outside).protocol(47).payload(16).build();
  EXPECT_EQ(egress(gre).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u) << describe(drops);
  EXPECT_EQ(drops[0].subtype, DROP_NAT_UNSUPP_PROTO);
}

CILIUM_INSTANTIATE_FAMILIES(HostMasqueradeFamilyTest);

}  // namespace
}  // namespace cilium::testing
