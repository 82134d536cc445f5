// NAT GC: a NodePort SNAT mapping goes with its connection's service conntrack entry, a
// masquerade mapping with its pod's egress conntrack entry, never before, and never takes a
// port that already serves another connection with it.
#include "agent/service/nat_gc.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <set>

#include <gtest/gtest.h>

#include "agent/bpf/fake_map.h"

namespace cilium::service {
namespace {

constexpr uint32_t kNow = 1000;

uint32_t ip(const char* s) {
  in_addr a{};
  ::inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

class NatGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lb4_reverse_nat fe{};
    fe.address = ip("192.168.77.1");
    fe.port = htons(30080);
    ASSERT_TRUE(revnat_.update(7, fe).ok());
  }

  // The two halves of a mapping as bpf_host writes them, created at `created`.
  void addMapping(const char* client, uint16_t cport, uint16_t node_port, uint32_t created,
                  uint8_t proto = IPPROTO_TCP) {
    nat4_key fwd{};
    fwd.saddr = ip(client);
    fwd.daddr = ip("10.250.0.5");
    fwd.sport = htons(cport);
    fwd.dport = htons(8080);
    fwd.proto = proto;
    fwd.dir = NAT_DIR_EGRESS;
    nat4_entry out{};
    out.to_addr = ip("192.168.77.1");
    out.to_port = htons(node_port);
    out.rev_nat_index = 7;
    out.created = created;
    ASSERT_TRUE(nat_.update(fwd, out).ok());
    nat4_key rev{};
    rev.saddr = fwd.daddr;
    rev.daddr = out.to_addr;
    rev.sport = fwd.dport;
    rev.dport = out.to_port;
    rev.proto = proto;
    rev.dir = NAT_DIR_INGRESS;
    nat4_entry back{};
    back.to_addr = fwd.saddr;
    back.to_port = fwd.sport;
    back.rev_nat_index = 7;
    back.created = created;
    ASSERT_TRUE(nat_.update(rev, back).ok());
  }
  // The connection's CT_KEY_SERVICE entry {client -> frontend}.
  void addConnection(const char* client, uint16_t cport, uint32_t lifetime,
                     uint8_t proto = IPPROTO_TCP) {
    ct_key4 k{};
    k.saddr = ip(client);
    k.daddr = ip("192.168.77.1");
    k.sport = htons(cport);
    k.dport = htons(30080);
    k.nexthdr = proto;
    k.flags = CT_KEY_SERVICE;
    ct_entry e{};
    e.lifetime = lifetime;
    ASSERT_TRUE((proto == IPPROTO_TCP ? ct_tcp_ : ct_any_).update(k, e).ok());
  }
  size_t natSize() {
    size_t n = 0;
    EXPECT_TRUE(nat_.forEach([&](const nat4_key&, const nat4_entry&) { return ++n, true; }).ok());
    return n;
  }
  NatGcStats gc(uint32_t now = kNow) {
    auto r = gcNat({&nat_, &ct_tcp_, &ct_any_, &revnat_}, now);
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : NatGcStats{};
  }

  bpf::FakeMap<nat4_key, nat4_entry> nat_{"cilium_snat_v4_external"};
  bpf::FakeMap<ct_key4, ct_entry> ct_tcp_{"cilium_ct4_global"};
  bpf::FakeMap<ct_key4, ct_entry> ct_any_{"cilium_ct_any4_global"};
  bpf::FakeMap<uint32_t, lb4_reverse_nat> revnat_{"cilium_lb4_reverse_nat"};
};

TEST_F(NatGcTest, LiveConnectionsKeepTheirMappings) {
  addMapping("192.168.77.100", 40000, 61001, kNow - 100);
  addConnection("192.168.77.100", 40000, kNow + 5);
  addMapping("192.168.77.101", 40000, 61002, kNow - 100, IPPROTO_UDP);
  addConnection("192.168.77.101", 40000, kNow, IPPROTO_UDP);  // alive up to and including now
  auto s = gc();
  EXPECT_EQ(s.scanned, 4u);
  EXPECT_EQ(s.deleted, 0u);
  EXPECT_EQ(natSize(), 4u);
}

TEST_F(NatGcTest, FinishedConnectionsLoseBothHalves) {
  addMapping("192.168.77.100", 40000, 61001, kNow - 100);
  addConnection("192.168.77.100", 40000, kNow - 1);        // expired, not yet collected
  addMapping("192.168.77.100", 40001, 61002, kNow - 100);  // conntrack entry already collected
  addMapping("192.168.77.102", 40000, 61003, kNow - 100, IPPROTO_UDP);
  addConnection("192.168.77.102", 40000, kNow + 30, IPPROTO_TCP);  // same tuple, other protocol
  EXPECT_EQ(gc().deleted, 6u);
  EXPECT_EQ(natSize(), 0u);
}

TEST_F(NatGcTest, ARemovedServiceEndsItsMappings) {
  addMapping("192.168.77.100", 40000, 61001, kNow - 100);
  addConnection("192.168.77.100", 40000, kNow + 100);
  ASSERT_TRUE(revnat_.remove(7).ok());
  EXPECT_EQ(gc().deleted, 2u);
}

TEST_F(NatGcTest, YoungMappingsAreLeftForTheNextRun) {
  addMapping("192.168.77.100", 40000, 61001, kNow - 1);  // the datapath may be mid-creation
  EXPECT_EQ(gc().deleted, 0u);
  EXPECT_EQ(gc(kNow + kNatGcMinAgeSeconds).deleted, 2u);
}

TEST_F(NatGcTest, OrphanHalvesGoButAPortServingAnotherConnectionStays) {
  // The forward half of 40000 was evicted by the LRU: its reverse half is an orphan.
  addMapping("192.168.77.100", 40000, 61001, kNow - 100);
  addConnection("192.168.77.100", 40000, kNow + 100);
  nat4_key fwd{};
  fwd.saddr = ip("192.168.77.100");
  fwd.daddr = ip("10.250.0.5");
  fwd.sport = htons(40000);
  fwd.dport = htons(8080);
  fwd.proto = IPPROTO_TCP;
  fwd.dir = NAT_DIR_EGRESS;
  ASSERT_TRUE(nat_.remove(fwd).ok());
  EXPECT_EQ(gc().deleted, 1u);
  EXPECT_EQ(natSize(), 0u);

  // A finished connection whose node port now serves another client: only its forward half
  // goes; the reverse entry belongs to the live one.
  addMapping("192.168.77.102", 40001, 61001, kNow - 100);  // finished (no conntrack)
  addMapping("192.168.77.101", 40005, 61001, kNow - 50);   // live, same node port
  addConnection("192.168.77.101", 40005, kNow + 100);
  EXPECT_EQ(natSize(), 3u);  // the second mapping's reverse half replaced the first's
  EXPECT_EQ(gc().deleted, 1u);
  EXPECT_EQ(natSize(), 2u);
  EXPECT_EQ(gc().deleted, 0u);
}

// A pod's masqueraded connection (NAT_F_MASQ) lives as long as the pod's CT_KEY_EGRESS entry
// {pod -> remote}; no service is involved.
TEST_F(NatGcTest, MasqueradeMappingsGoWithThePodsEgressEntry) {
  auto addMasq = [&](uint16_t pport, uint16_t node_port, uint8_t proto) {
    nat4_key fwd{};
    fwd.saddr = ip("10.200.0.21");
    fwd.daddr = ip("192.168.77.100");
    fwd.sport = htons(pport);
    fwd.dport = htons(proto == IPPROTO_ICMP ? 0 : 80);
    fwd.proto = proto;
    fwd.dir = NAT_DIR_EGRESS;
    nat4_entry out{};
    out.to_addr = ip("192.168.77.1");
    out.to_port = htons(node_port);
    out.flags = NAT_F_MASQ;
    out.created = kNow - 100;
    ASSERT_TRUE(nat_.update(fwd, out).ok());
    nat4_key rev{};
    rev.saddr = fwd.daddr;
    rev.daddr = out.to_addr;
    rev.sport = fwd.dport;
    rev.dport = out.to_port;
    rev.proto = proto;
    rev.dir = NAT_DIR_INGRESS;
    nat4_entry back{};
    back.to_addr = fwd.saddr;
    back.to_port = fwd.sport;
    back.flags = NAT_F_MASQ;
    back.created = kNow - 100;
    ASSERT_TRUE(nat_.update(rev, back).ok());
  };
  auto addEgress = [&](uint16_t pport, uint8_t proto, uint32_t lifetime) {
    ct_key4 k{};
    k.saddr = ip("10.200.0.21");
    k.daddr = ip("192.168.77.100");
    k.sport = htons(pport);
    k.dport = htons(proto == IPPROTO_ICMP ? 0 : 80);
    k.nexthdr = proto;
    k.flags = CT_KEY_EGRESS;
    ct_entry e{};
    e.lifetime = lifetime;
    ASSERT_TRUE((proto == IPPROTO_TCP ? ct_tcp_ : ct_any_).update(k, e).ok());
  };
  addMasq(40000, 61001, IPPROTO_TCP);
  addEgress(40000, IPPROTO_TCP, kNow + 10);  // live
  addMasq(40001, 61002, IPPROTO_TCP);
  addEgress(40001, IPPROTO_TCP, kNow - 1);  // over
  addMasq(77, 61003, IPPROTO_ICMP);
  addEgress(77, IPPROTO_ICMP, kNow + 10);  // a ping still answered
  addMasq(5353, 61004, IPPROTO_UDP);       // its conntrack entry already collected
  // No revnat entry 0 exists: a masquerade mapping must not be judged as a NodePort one.
  EXPECT_EQ(gc().deleted, 4u);
  EXPECT_EQ(natSize(), 4u);
  addEgress(40000, IPPROTO_TCP, kNow - 1);
  EXPECT_EQ(gc().deleted, 2u);
  EXPECT_EQ(natSize(), 2u) << "the ping's mapping stays";
}

// IPv6 masquerade and NodePort: the same rules on the IPv6 maps (gcNat6).
TEST(NatGc6Test, MappingsGoWithTheirConnections) {
  bpf::FakeMap<nat6_key, nat6_entry> nat{"cilium_snat_v6_external"};
  bpf::FakeMap<ct_key6, ct_entry> ct_tcp{"cilium_ct6_global"}, ct_any{"cilium_ct_any6_global"};
  bpf::FakeMap<uint32_t, lb6_reverse_nat> revnat{"cilium_lb6_reverse_nat"};
  auto ip6 = [](const char* s) {
    v4v6_addr a{};
    ::inet_pton(AF_INET6, s, a.ip6);
    return a;
  };
  const v4v6_addr pod = ip6("fd00:200::21"), remote = ip6("2001:db8::100"),
                  node = ip6("2001:db8::1");
  lb6_reverse_nat fe{};
  fe.address = node;
  fe.port = htons(30080);
  ASSERT_TRUE(revnat.update(7, fe).ok());
  // A mapping as bpf_host writes it: masquerade (NAT_F_MASQ) of the pod's connection, or
  // NodePort's (flags 0) of service `svc` for a client at the pod's address.
  auto addMapping = [&](uint16_t pport, uint16_t node_port, uint8_t proto, uint16_t flags,
                        uint32_t svc = 0) {
    nat6_key fwd{};
    fwd.saddr = pod;
    fwd.daddr = remote;
    fwd.sport = htons(pport);
    fwd.dport = htons(80);
    fwd.proto = proto;
    fwd.dir = NAT_DIR_EGRESS;
    nat6_entry out{};
    out.to_addr = node;
    out.to_port = htons(node_port);
    out.flags = flags;
    out.rev_nat_index = svc;
    out.created = kNow - 100;
    ASSERT_TRUE(nat.update(fwd, out).ok());
    nat6_key rev{};
    rev.saddr = remote;
    rev.daddr = node;
    rev.sport = htons(80);
    rev.dport = htons(node_port);
    rev.proto = proto;
    rev.dir = NAT_DIR_INGRESS;
    nat6_entry back{};
    back.to_addr = pod;
    back.to_port = htons(pport);
    back.flags = flags;
    back.rev_nat_index = svc;
    back.created = kNow - 100;
    ASSERT_TRUE(nat.update(rev, back).ok());
  };
  auto addEgress = [&](uint16_t pport, uint8_t proto, uint32_t lifetime) {
    ct_key6 k{};
    k.saddr = pod;
    k.daddr = remote;
    k.sport = htons(pport);
    k.dport = htons(80);
    k.nexthdr = proto;
    k.flags = CT_KEY_EGRESS;
    ct_entry e{};
    e.lifetime = lifetime;
    ASSERT_TRUE((proto == IPPROTO_TCP ? ct_tcp : ct_any).update(k, e).ok());
  };
  // The client's CT_KEY_SERVICE entry {client -> frontend} of a NodePort connection.
  auto addService = [&](uint16_t cport, uint32_t lifetime) {
    ct_key6 k{};
    k.saddr = pod;
    k.daddr = node;
    k.sport = htons(cport);
    k.dport = htons(30080);
    k.nexthdr = IPPROTO_TCP;
    k.flags = CT_KEY_SERVICE;
    ct_entry e{};
    e.lifetime = lifetime;
    ASSERT_TRUE(ct_tcp.update(k, e).ok());
  };
  addMapping(40000, 61001, IPPROTO_TCP, NAT_F_MASQ);
  addEgress(40000, IPPROTO_TCP, kNow + 10);  // live
  addMapping(40001, 61002, IPPROTO_TCP, NAT_F_MASQ);
  addEgress(40001, IPPROTO_TCP, kNow - 1);  // over
  addMapping(5353, 61003, IPPROTO_UDP, NAT_F_MASQ);
  addEgress(5353, IPPROTO_UDP, kNow + 10);  // live, in the other map
  addMapping(40002, 61004, IPPROTO_TCP, 0, 7);
  addService(40002, kNow + 10);  // a live NodePort connection
  addMapping(40003, 61005, IPPROTO_TCP, 0, 7);
  addService(40003, kNow - 1);                  // over
  addMapping(40004, 61006, IPPROTO_TCP, 0, 9);  // its service is gone
  auto r = gcNat6({&nat, &ct_tcp, &ct_any, &revnat}, kNow);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->scanned, 12u);
  EXPECT_EQ(r->deleted, 6u);
  std::set<uint16_t> kept;
  EXPECT_TRUE(nat.forEach([&](const nat6_key& k, const nat6_entry&) {
                   if (k.dir == NAT_DIR_EGRESS) kept.insert(ntohs(k.sport));
                   return true;
                 })
                  .ok());
  EXPECT_EQ(kept, (std::set<uint16_t>{40000, 5353, 40002})) << "the live connections";
}

}  // namespace
}  // namespace cilium::service
