// bpf tier: connection tracking as bpf_lxc uses it: replies and related ICMP errors of allowed
// connections pass although the reverse direction is denied; TCP state (RST closes, FIN both
// ways closes, a new SYN reopens); per-direction counters; expiry; a full table; the agent's GC.
// Replies run over IPv4 and IPv6 (the IPv6 maps, cilium_ct6_global / cilium_ct_any6_global).
#include "agent/datapath/conntrack.h"
#include "tests/bpf/lxc_fixture.h"

namespace cilium::testing {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;
constexpr uint8_t E = POLICY_EGRESS;

class LxcConntrackTest : public LxcTest {
 protected:
  std::vector<uint8_t> icmpError(const std::string& from_ip, const std::string& to_ip, uint8_t type,
                                 uint8_t code, const std::vector<uint8_t>& quoted,
                                 const TestEndpoint& towards) {
    return to(towards).ipv4(from_ip, to_ip).icmpError(type, code, quoted).build();
  }
};

using LxcConntrackFamilyTest = FamilyTest<LxcConntrackTest>;
CILIUM_INSTANTIATE_FAMILIES(LxcConntrackFamilyTest);

TEST_P(LxcConntrackFamilyTest, RepliesPassAlthoughTheReverseIsDenied) {
  // a may open TCP/80 to b; b admits that. Nothing may be opened towards a or from b.
  setPolicy(a_, {allowEntry(kIdentityB, E, kTcp, 80, 16), allowEntry(IDENTITY_WORLD, E, kUdp),
                 allowEntry(IDENTITY_WORLD, E, icmpProto())});
  setPolicy(b_, {allowEntry(kIdentityA, POLICY_INGRESS, kTcp, 80, 16)});
  events();

  auto a2b = [&](uint8_t flags) {
    return from(a_).ip(ipOf(a_), ipOf(b_)).tcp(40000, 80, flags).build();
  };
  auto b2a = [&](uint8_t flags) {
    return from(b_).ip(ipOf(b_), ipOf(a_)).tcp(80, 40000, flags).build();
  };
  EXPECT_EQ(fromContainer(a_, a2b(tcp::kSyn)).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(fromContainer(b_, b2a(tcp::kSyn | tcp::kAck)).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(fromContainer(a_, a2b(tcp::kAck)).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(fromContainer(b_, b2a(tcp::kAck | tcp::kPsh)).retval, TC_ACT_REDIRECT);
  auto evs = events();
  EXPECT_EQ(ofType(evs, EVENT_POLICY_VERDICT).size(), 2u)
      << "only the first SYN needed verdicts" << describe(evs);
  for (const auto& t : ofType(evs, EVENT_TRACE)) {
    if (t.source == b_.id && t.dir == METRIC_EGRESS) {
      EXPECT_EQ(t.ct_state, CT_REPLY);
    }
  }
  // A bare SYN is never a reply, even on the mirrored tuple of an open connection.
  EXPECT_EQ(fromContainer(b_, b2a(tcp::kSyn)).retval, TC_ACT_SHOT);
  auto syn_drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(syn_drops.size(), 1u);
  EXPECT_EQ(syn_drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(syn_drops[0].ct_state, CT_NEW);

  // A connection b opens itself is denied by b's (empty) egress policy.
  auto fresh = from(b_).ip(ipOf(b_), ipOf(a_)).tcp(5555, 40000, tcp::kSyn).build();
  EXPECT_EQ(fromContainer(b_, fresh).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].source, b_.id);

  // Through the stack: the reply from the world enters via the node and a's to_container.
  ASSERT_EQ(fromContainer(a_, from(a_).ip(ipOf(a_), addr(kWorld)).udp(41000, 53).build()).retval,
            TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, to(a_).ip(addr(kWorld), ipOf(a_)).udp(53, 41000).build()).retval,
            TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, to(a_).ip(addr(kWorld), ipOf(a_)).udp(53, 41001).build()).retval,
            TC_ACT_SHOT)
      << "a datagram that answers nothing is new, and a's ingress denies it";
  // ICMP echo: the reply carries the request's identifier.
  ASSERT_EQ(
      fromContainer(a_, from(a_).ip(ipOf(a_), addr(kWorld)).echoRequest(777, 1).build()).retval,
      TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, to(a_).ip(addr(kWorld), ipOf(a_)).echoReply(777, 1).build()).retval,
            TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, to(a_).ip(addr(kWorld), ipOf(a_)).echoReply(778, 1).build()).retval,
            TC_ACT_SHOT);
  EXPECT_EQ(toContainer(a_, to(a_).ip(addr(kWorld), ipOf(a_)).echoRequest(777, 1).build()).retval,
            TC_ACT_SHOT)
      << "an echo request from the world is no reply";
}

TEST_F(LxcConntrackTest, RelatedIcmpErrorsPass) {
  setPolicy(a_, {allowEntry(0, E)});
  setPolicy(b_, {allowEntry(kIdentityA, POLICY_INGRESS, kUdp, 53, 16)});
  events();

  // a -> world UDP, then the world (or a router on the way) reports an error back.
  auto out = from(a_).ipv4(a_.pod.ip, kWorld).udp(41000, 53).build();
  ASSERT_EQ(fromContainer(a_, out).retval, TC_ACT_OK);
  events();
  std::vector<uint8_t> quoted(out.begin() + 14, out.end());
  auto r = toContainer(a_, icmpError(kWorld, a_.pod.ip, 3, 3, quoted, a_));
  EXPECT_EQ(r.retval, TC_ACT_OK);
  r = toContainer(a_, icmpError(kRemote1, a_.pod.ip, 11, 0, quoted, a_));
  EXPECT_EQ(r.retval, TC_ACT_OK) << "time exceeded from a router on the path";
  auto evs = events();
  EXPECT_TRUE(ofType(evs, EVENT_POLICY_VERDICT).empty()) << describe(evs);
  EXPECT_TRUE(ofType(evs, EVENT_DROP).empty()) << describe(evs);
  auto traces = ofType(evs, EVENT_TRACE);
  ASSERT_FALSE(traces.empty());
  EXPECT_EQ(traces[0].ct_state, CT_RELATED);

  // TCP: fragmentation needed for an open connection.
  auto syn = from(a_).ipv4(a_.pod.ip, kWorld).tcp(41002, 443, tcp::kSyn).build();
  ASSERT_EQ(fromContainer(a_, syn).retval, TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, icmpError(kRemote2, a_.pod.ip, 3, 4,
                                      std::vector<uint8_t>(syn.begin() + 14, syn.end()), a_))
                .retval,
            TC_ACT_OK);

  // An error quoting a connection that does not exist is new traffic, and a's ingress denies it.
  auto never = from(a_).ipv4(a_.pod.ip, kWorld).udp(49999, 53).build();
  r = toContainer(a_, icmpError(kWorld, a_.pod.ip, 3, 3,
                                std::vector<uint8_t>(never.begin() + 14, never.end()), a_));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);

  // Pod to pod: b answers a's datagram with port unreachable; b's egress and a's ingress allow
  // nothing, the error passes both.
  auto a2b = from(a_).ipv4(a_.pod.ip, b_.pod.ip).udp(42000, 53).build();
  ASSERT_EQ(fromContainer(a_, a2b).retval, TC_ACT_REDIRECT);
  auto err = from(b_)
                 .ipv4(b_.pod.ip, a_.pod.ip)
                 .icmpError(3, 3, std::vector<uint8_t>(a2b.begin() + 14, a2b.end()))
                 .build();
  EXPECT_EQ(fromContainer(b_, err).retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(ofType(events(), EVENT_DROP).empty());
}

TEST_F(LxcConntrackTest, TcpStateRstClosesFinClosesSynReopens) {
  setPolicy(a_, {allowEntry(kRemoteId1, E, kTcp)});
  auto out = [&](uint8_t flags) {
    return from(a_).ipv4(a_.pod.ip, kRemote1).tcp(40000, 80, flags).build();
  };
  auto in = [&](uint8_t flags) {
    return to(a_).ipv4(kRemote1, a_.pod.ip).tcp(80, 40000, flags).build();
  };
  auto entry = [&] { return ctEntry(a_.pod.ip.c_str(), kRemote1, 40000, 80, kTcp, CT_KEY_EGRESS); };
  uint32_t now = datapath::monotonicSeconds();

  ASSERT_EQ(fromContainer(a_, out(tcp::kSyn)).retval, TC_ACT_OK);
  auto e = entry();
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->flags & CT_F_SEEN_NON_SYN);
  EXPECT_NEAR(e->lifetime, now + CT_TIMEOUT_TCP_SYN, 2);
  EXPECT_EQ(e->src_sec_id, kRemoteId1);

  ASSERT_EQ(toContainer(a_, in(tcp::kSyn | tcp::kAck)).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  e = entry();
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->flags & CT_F_SEEN_NON_SYN) << "handshake complete";
  EXPECT_NEAR(e->lifetime, now + CT_TIMEOUT_TCP_ESTABLISHED, 2);
  EXPECT_EQ(e->tx_packets, 2u);
  EXPECT_EQ(e->rx_packets, 1u);
  EXPECT_EQ(e->tx_bytes, out(tcp::kSyn).size() + out(tcp::kAck).size());
  EXPECT_EQ(e->rx_bytes, in(tcp::kSyn | tcp::kAck).size());
  EXPECT_EQ(e->tx_flags_seen, tcp::kSyn | tcp::kAck);
  EXPECT_EQ(e->rx_flags_seen, tcp::kSyn | tcp::kAck);

  // RST from the peer closes the entry at once.
  ASSERT_EQ(toContainer(a_, in(tcp::kRst)).retval, TC_ACT_OK);
  e = entry();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->flags & (CT_F_RX_CLOSING | CT_F_TX_CLOSING), CT_F_RX_CLOSING | CT_F_TX_CLOSING);
  EXPECT_LE(e->lifetime, datapath::monotonicSeconds() + CT_TIMEOUT_TCP_CLOSE);

  // A new SYN on the closing entry is a new connection: checked, reported, entry reset.
  events();
  ASSERT_EQ(fromContainer(a_, out(tcp::kSyn)).retval, TC_ACT_OK);
  auto verdicts = ofType(events(), EVENT_POLICY_VERDICT);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].ct_state, CT_REOPENED);
  e = entry();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->flags & (CT_F_RX_CLOSING | CT_F_TX_CLOSING), 0);
  EXPECT_EQ(e->tx_packets, 1u);
  EXPECT_EQ(e->rx_packets, 0u) << "nothing of the old connection is kept";
  EXPECT_EQ(e->rx_flags_seen, 0);
  EXPECT_EQ(e->tx_flags_seen, tcp::kSyn);
  EXPECT_NEAR(e->lifetime, datapath::monotonicSeconds() + CT_TIMEOUT_TCP_SYN, 2);

  // FIN one way keeps the connection; FIN both ways closes it.
  ASSERT_EQ(toContainer(a_, in(tcp::kSyn | tcp::kAck)).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, out(tcp::kAck)).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, out(tcp::kFin | tcp::kAck)).retval, TC_ACT_OK);
  e = entry();
  EXPECT_EQ(e->flags & (CT_F_RX_CLOSING | CT_F_TX_CLOSING), CT_F_TX_CLOSING);
  EXPECT_GT(e->lifetime, datapath::monotonicSeconds() + CT_TIMEOUT_TCP_CLOSE);
  ASSERT_EQ(toContainer(a_, in(tcp::kFin | tcp::kAck)).retval, TC_ACT_OK);
  e = entry();
  EXPECT_EQ(e->flags & (CT_F_RX_CLOSING | CT_F_TX_CLOSING), CT_F_RX_CLOSING | CT_F_TX_CLOSING);
  EXPECT_LE(e->lifetime, datapath::monotonicSeconds() + CT_TIMEOUT_TCP_CLOSE);

  // Reopening goes through policy: once denied, the new SYN is dropped.
  setPolicy(a_, {});
  events();
  EXPECT_EQ(fromContainer(a_, out(tcp::kSyn)).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].ct_state, CT_REOPENED);
}

TEST_F(LxcConntrackTest, ExpiredEntriesAreTreatedAsAbsent) {
  setPolicy(a_, {allowEntry(0, E)});
  ASSERT_EQ(fromContainer(a_, from(a_).ipv4(a_.pod.ip, kWorld).udp(41000, 53).build()).retval,
            TC_ACT_OK);
  ct_key4 k{};
  k.saddr = htonl(ipv4(a_.pod.ip));
  k.daddr = htonl(ipv4(kWorld));
  k.sport = htons(41000);
  k.dport = htons(53);
  k.nexthdr = kUdp;
  k.flags = CT_KEY_EGRESS;
  auto e = maps().ct_any->lookup(k);
  ASSERT_TRUE(e.ok() && *e);
  ct_entry old = **e;
  old.lifetime = datapath::monotonicSeconds() - 1;
  ASSERT_TRUE(maps().ct_any->update(k, old).ok());

  // The reply finds no live connection: new traffic, denied by a's ingress.
  EXPECT_EQ(toContainer(a_, to(a_).ipv4(kWorld, a_.pod.ip).udp(53, 41000).build()).retval,
            TC_ACT_SHOT);
  // The next datagram out is a new connection that overwrites the dead entry.
  events();
  ASSERT_EQ(fromContainer(a_, from(a_).ipv4(a_.pod.ip, kWorld).udp(41000, 53).build()).retval,
            TC_ACT_OK);
  EXPECT_EQ(ofType(events(), EVENT_POLICY_VERDICT).size(), 1u);
  e = maps().ct_any->lookup(k);
  ASSERT_TRUE(e.ok() && *e);
  EXPECT_EQ((*e)->tx_packets, 1u);
  EXPECT_NEAR((*e)->lifetime, datapath::monotonicSeconds() + CT_TIMEOUT_NONTCP, 2);
}

// The agent's GC with the datapath's own entries, in each family's maps (the same rule for both).
TEST_P(LxcConntrackFamilyTest, GarbageCollectionDeletesOnlyExpiredEntries) {
  setPolicy(a_, {allowEntry(0, E)});
  const std::string pod = ipOf(a_), world = addr(kWorld);
  ASSERT_EQ(fromContainer(a_, from(a_).ip(pod, world).udp(41000, 53).build()).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, from(a_).ip(pod, world).tcp(41001, 80, tcp::kSyn).build()).retval,
            TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, from(a_).ip(pod, world).tcp(41002, 80, tcp::kAck).build()).retval,
            TC_ACT_OK);
  uint32_t now = datapath::monotonicSeconds();
  const bool v6 = family_ == Family::kV6;
  auto gc = [&](bool tcp, uint32_t at) {
    auto m = maps();
    return v6 ? datapath::gcConntrack(*(tcp ? m.ct6_tcp : m.ct6_any), at)
              : datapath::gcConntrack(*(tcp ? m.ct_tcp : m.ct_any), at);
  };
  ASSERT_TRUE(ctEntry(pod, world, 41000, 53, kUdp, CT_KEY_EGRESS)) << "in the family's own map";

  auto none = gc(false, now);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->deleted, 0u);
  // 61 s later the datagram flow and the unanswered SYN are dead, the established one is not.
  auto any = gc(false, now + CT_TIMEOUT_NONTCP + 2);
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->deleted, 1u);
  auto tcp = gc(true, now + CT_TIMEOUT_TCP_SYN + 2);
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->scanned, 2u);
  EXPECT_EQ(tcp->deleted, 1u);
  EXPECT_FALSE(ctEntry(pod, world, 41001, 80, kTcp, CT_KEY_EGRESS));
  EXPECT_TRUE(ctEntry(pod, world, 41002, 80, kTcp, CT_KEY_EGRESS));
  EXPECT_FALSE(ctEntry(pod, world, 41000, 53, kUdp, CT_KEY_EGRESS));
  // The other family's maps never held these connections.
  auto m = maps();
  EXPECT_EQ(v6 ? *m.ct_tcp->count() : *m.ct6_tcp->count(), 0u);
  EXPECT_EQ(v6 ? *m.ct_any->count() : *m.ct6_any->count(), 0u);
}

class LxcConntrackFullTest : public LxcTest {
 protected:
  static constexpr uint32_t kSize = 256;
  void SetUp() override {
    datapath::Config cfg;
    cfg.ct_any_map_entries = kSize;
    setUpWith(cfg);
  }
};

// A full table never refuses a connection: the least recently used entries make room. An
// evicted connection's next packet is new again, so its replies face the policy.
TEST_F(LxcConntrackFullTest, FullTableEvictsTheLeastRecentlyUsed) {
  setPolicy(a_, {allowEntry(IDENTITY_WORLD, E, kUdp)});
  constexpr int kFlows = 4 * kSize;
  for (int i = 0; i < kFlows; i++) {
    auto pkt = from(a_).ipv4(a_.pod.ip, kWorld).udp(static_cast<uint16_t>(10000 + i), 53).build();
    ASSERT_EQ(fromContainer(a_, pkt).retval, TC_ACT_OK) << "flow " << i;
  }
  EXPECT_EQ(metric(DROP_CT_CREATE_FAILED, METRIC_EGRESS), 0u);
  auto n = maps().ct_any->count();
  ASSERT_TRUE(n.ok());
  EXPECT_LE(*n, kSize);
  EXPECT_GT(*n, kSize / 2);
  EXPECT_TRUE(ctEntry(a_.pod.ip.c_str(), kWorld, 10000 + kFlows - 1, 53, kUdp, CT_KEY_EGRESS));
  // The kernel's LRU is approximate (per-CPU free lists, and the test may migrate between
  // CPUs), so no single old flow is certain to be gone; the oldest quarter of the flows lost
  // most of its entries, and far more than the newest quarter.
  auto present = [&](int i) {
    return ctEntry(a_.pod.ip.c_str(), kWorld, static_cast<uint16_t>(10000 + i), 53, kUdp,
                   CT_KEY_EGRESS);
  };
  int oldest_kept = 0;
  int newest_kept = 0;
  int first_evicted = -1;
  for (int i = 0; i < static_cast<int>(kSize); i++) {
    if (present(i)) {
      ++oldest_kept;
    } else if (first_evicted < 0) {
      first_evicted = i;
    }
    if (present(kFlows - 1 - i)) ++newest_kept;
  }
  EXPECT_LT(oldest_kept, static_cast<int>(kSize / 2));
  EXPECT_GT(newest_kept, 2 * oldest_kept);
  ASSERT_GE(first_evicted, 0);

  EXPECT_EQ(
      toContainer(
          a_,
          to(a_).ipv4(kWorld, a_.pod.ip).udp(53, static_cast<uint16_t>(10000 + kFlows - 1)).build())
          .retval,
      TC_ACT_OK);
  EXPECT_EQ(toContainer(a_, to(a_)
                                .ipv4(kWorld, a_.pod.ip)
                                .udp(53, static_cast<uint16_t>(10000 + first_evicted))
                                .build())
                .retval,
            TC_ACT_SHOT)
      << "the evicted flow's reply is new traffic";
}

}  // namespace
}  // namespace cilium::testing
