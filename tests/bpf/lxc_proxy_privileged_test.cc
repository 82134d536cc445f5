// bpf tier: the L7 redirect decision of bpf_lxc on crafted packets (bpf/abi/proxy.h): an allow
// with a proxy port goes to the proxy's socket or drops (fail closed) when none listens; the
// conntrack entry remembers the redirect for established packets and sends replies of a proxy's
// connections up the stack; packets the proxies mark are judged with the identity they carry;
// a connection opened before an L7 rule existed is cut; cil_to_proxy on lo. Every test runs over
// IPv4 and IPv6 (dual-stack endpoints; the IPv6 proxy listens on [::1]).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/fd.h"
#include "agent/common/inet.h"
#include "agent/common/netns.h"
#include "tests/bpf/lxc_fixture.h"

namespace cilium::testing {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr uint8_t E = POLICY_EGRESS, I = POLICY_INGRESS;
constexpr uint16_t kProxyPort = 15001;

datapath::PolicyEntry redirectEntry(uint32_t identity, uint8_t dir, uint8_t proto, uint16_t port,
                                    uint16_t proxy_port) {
  datapath::PolicyEntry e = allowEntry(identity, dir, proto, port, 16);
  e.value.proxy_port = htons(proxy_port);
  return e;
}

class LxcProxyTest : public LxcTest {
 protected:
  void SetUp() override {
    LxcTest::SetUp();
    // The IPv6 listeners need ::1 in the node namespace.
    if (family_ == Family::kV6) {
      ASSERT_TRUE(topo_->enableNodeIpv6().ok());
    }
  }

  // A transparent listener on the proxy address of the test's family (127.0.0.1 or ::1):port in
  // the node namespace, as the proxy opens it.
  UniqueFd listen(uint16_t port, int type = SOCK_STREAM) {
    bool v6 = family_ == Family::kV6;
    auto fd = runInNetnsValue<UniqueFd>(topo_->nodeNetns(), [&]() -> Result<UniqueFd> {
      UniqueFd s(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
      if (!s) return errnoError(errno, "socket");
      int one = 1;
      if (v6) {
        ::setsockopt(s.get(), SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
        ::setsockopt(s.get(), SOL_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      } else {
        ::setsockopt(s.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
      }
      ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_storage ss{};
      socklen_t len;
      if (v6) {
        auto& sa = reinterpret_cast<sockaddr_in6&>(ss);
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(port);
        sa.sin6_addr = in6addr_loopback;
        len = sizeof(sa);
      } else {
        auto& sa = reinterpret_cast<sockaddr_in&>(ss);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(sa);
      }
      if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
        return errnoError(errno, "bind");
      if (type == SOCK_STREAM && ::listen(s.get(), 16) != 0) return errnoError(errno, "listen");
      return s;
    });
    EXPECT_TRUE(fd.ok()) << fd.error().toString();
    return fd.ok() ? std::move(*fd) : UniqueFd();
  }

  std::vector<cilium_event> drops() { return ofType(events(), EVENT_DROP); }

  // The conntrack entry of a tuple of the test's family (IPv6: the pinned ct6 maps).
  std::optional<ct_entry> ctOf(const std::string& saddr, const std::string& daddr, uint16_t sport,
                               uint16_t dport, uint8_t proto, uint8_t dir) {
    if (family_ == Family::kV4)
      return ctEntry(saddr.c_str(), daddr.c_str(), sport, dport, proto, dir);
    auto s = IpAddr::parse(saddr);
    auto d = IpAddr::parse(daddr);
    auto pin = topo_->pinDir();
    EXPECT_TRUE(s.ok() && d.ok() && pin.ok());
    if (!s.ok() || !d.ok() || !pin.ok()) return std::nullopt;
    ct_key6 k{};
    std::memcpy(&k.saddr, s->bytes().data(), 16);
    std::memcpy(&k.daddr, d->bytes().data(), 16);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.nexthdr = proto;
    k.flags = dir;
    auto map = bpf::KernelMap<ct_key6, ct_entry>::fromPinned(
        *pin + (proto == kTcp ? "/cilium_ct6_global" : "/cilium_ct_any6_global"));
    EXPECT_TRUE(map.ok()) << (map.ok() ? "" : map.error().toString());
    if (!map.ok()) return std::nullopt;
    auto r = (*map)->lookup(k);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  }
};

using LxcProxyFamilyTest = FamilyTest<LxcProxyTest>;
CILIUM_INSTANTIATE_FAMILIES(LxcProxyFamilyTest);

TEST_P(LxcProxyFamilyTest, EgressRedirectFailsClosedWithoutAProxy) {
  setPolicy(a_, {redirectEntry(kRemoteId1, E, kTcp, 80, kProxyPort)});
  events();
  auto syn = from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40000, 80, tcp::kSyn).build();
  EXPECT_EQ(fromContainer(a_, syn).retval, TC_ACT_SHOT);
  auto evs = events();
  auto d = ofType(evs, EVENT_DROP);
  ASSERT_EQ(d.size(), 1u) << describe(evs);
  EXPECT_EQ(d[0].subtype, DROP_PROXY_LOOKUP_FAILED);
  auto v = ofType(evs, EVENT_POLICY_VERDICT);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].verdict, kProxyPort) << "a redirect is reported with its proxy port";
  // The entry remembers the redirect: a retransmitted SYN is judged the same way.
  auto ct = ctOf(ipOf(a_), addr(kRemote1), 40000, 80, kTcp, CT_KEY_EGRESS);
  ASSERT_TRUE(ct.has_value());
  EXPECT_TRUE(ct->flags & CT_F_PROXY_REDIRECT);
  EXPECT_EQ(ntohs(ct->proxy_port), kProxyPort);
  EXPECT_EQ(fromContainer(a_, syn).retval, TC_ACT_SHOT);
  d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_PROXY_LOOKUP_FAILED);
  // Data of that connection never passes at L4 either.
  auto data = from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40000, 80, tcp::kAck | tcp::kPsh).build();
  EXPECT_EQ(fromContainer(a_, data).retval, TC_ACT_SHOT);
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 0u);
}

TEST_P(LxcProxyFamilyTest, EgressRedirectFindsTheListeningProxy) {
  setPolicy(a_, {redirectEntry(kRemoteId1, E, kTcp, 80, kProxyPort),
                 allowEntry(kRemoteId1, E, kTcp, 81, 16)});
  UniqueFd l = listen(kProxyPort);
  ASSERT_TRUE(l);
  events();
  auto syn = from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40001, 80, tcp::kSyn).build();
  auto r = fromContainer(a_, syn);
  auto d = drops();
  // BPF_PROG_TEST_RUN does not run at tc ingress, where alone the kernel assigns sockets: the
  // lookup found the listener, and only the assignment (done for real in the netns tier) fails.
  if (r.retval == TC_ACT_OK) {
    ASSERT_TRUE(r.ctx.has_value());
    EXPECT_EQ(r.ctx->mark, (uint32_t{kProxyPort} << 16) | MARK_MAGIC_TO_PROXY);
  } else {
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].subtype, DROP_PROXY_SET_FAILED) << "the listener must have been found";
  }
  // Port 81 is a plain allow: no proxy.
  auto plain =
      fromContainer(a_, from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40002, 81, tcp::kSyn).build());
  EXPECT_EQ(plain.retval, TC_ACT_OK);
  ASSERT_TRUE(plain.ctx.has_value());
  EXPECT_EQ(plain.ctx->mark & MARK_MAGIC_HOST_MASK, 0u);
  // A UDP redirect looks for the proxy's UDP socket only.
  setPolicy(a_, {redirectEntry(0, E, kUdp, 53, kProxyPort + 1)});
  events();
  auto q = from(a_).ip(ipOf(a_), addr(kRemote1)).udp(41000, 53).build();
  EXPECT_EQ(fromContainer(a_, q).retval, TC_ACT_SHOT);
  d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_PROXY_LOOKUP_FAILED) << "no UDP socket on the DNS proxy port";
  UniqueFd u = listen(kProxyPort + 1, SOCK_DGRAM);
  ASSERT_TRUE(u);
  auto q2 = from(a_).ip(ipOf(a_), addr(kRemote1)).udp(41001, 53).build();
  auto r2 = fromContainer(a_, q2);
  d = drops();
  if (r2.retval != TC_ACT_OK) {
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].subtype, DROP_PROXY_SET_FAILED);
  }
}

TEST_P(LxcProxyFamilyTest, RepliesOfProxiedConnectionsGoUpTheStack) {
  setPolicy(a_, {redirectEntry(kRemoteId1, E, kTcp, 80, kProxyPort)});
  events();
  // The redirect made a's egress entry (the SYN itself drops here: no proxy listens).
  fromContainer(a_, from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40010, 80, tcp::kSyn).build());
  events();
  // The proxy answers the pod with its mark: delivered into the pod.
  auto synack = to(a_).ip(addr(kRemote1), ipOf(a_)).tcp(80, 40010, tcp::kSyn | tcp::kAck).build();
  auto r = toContainer(a_, synack, proxy_mark(MARK_MAGIC_PROXY_EGRESS, 0));
  EXPECT_EQ(r.retval, TC_ACT_OK);
  // The same tuple from the world (the answer to the proxy's upstream connection, which kept
  // the pod's address and port): back in through lo, marked for local delivery.
  auto upstream_reply = to(a_).ip(addr(kRemote1), ipOf(a_)).tcp(80, 40010, tcp::kAck).build();
  r = toContainer(a_, upstream_reply);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  ASSERT_TRUE(r.ctx.has_value());
  EXPECT_EQ(r.ctx->mark, uint32_t{MARK_MAGIC_TO_PROXY});
  ASSERT_GE(r.packet.size(), 14u);
  for (int i = 0; i < 6; i++) EXPECT_EQ(r.packet[i], 0) << "lo's own (zero) address";
  // A RST the node sends because no socket is left (the proxy died) is the pod's to see.
  auto rst = to(a_).ip(addr(kRemote1), ipOf(a_)).tcp(80, 40010, tcp::kRst).build();
  EXPECT_EQ(toContainer(a_, rst).retval, TC_ACT_OK);
}

TEST_P(LxcProxyFamilyTest, PodToPodIngressRedirectAndRepliesToTheProxy) {
  // b's ingress TCP/80 from a goes through the proxy; a may send anything.
  setPolicy(a_, {allowEntry(0, E)});
  setPolicy(b_, {redirectEntry(kIdentityA, I, kTcp, 80, kProxyPort)});
  events();
  auto syn = from(a_).ip(ipOf(a_), ipOf(b_)).tcp(40020, 80, tcp::kSyn).build();
  EXPECT_EQ(fromContainer(a_, syn).retval, TC_ACT_SHOT) << "no proxy: fail closed";
  auto d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_PROXY_LOOKUP_FAILED);
  EXPECT_EQ(d[0].source, b_.id) << "dropped on b's behalf";
  auto ct = ctOf(ipOf(a_), ipOf(b_), 40020, 80, kTcp, CT_KEY_INGRESS);
  ASSERT_TRUE(ct.has_value());
  EXPECT_TRUE(ct->flags & CT_F_PROXY_REDIRECT);

  // The ingress proxy's upstream connection (a's address and port kept) enters b through the
  // stack with the proxy's mark: not redirected again, b's policy not asked again.
  auto up = to(b_).ip(ipOf(a_), ipOf(b_)).tcp(40020, 80, tcp::kSyn).build();
  auto r = toContainer(b_, up, proxy_mark(MARK_MAGIC_PROXY_INGRESS, kIdentityA));
  EXPECT_EQ(r.retval, TC_ACT_OK);
  // b answers: the reply belongs to the proxy's socket, so up the stack instead of into a.
  auto reply = from(b_).ip(ipOf(b_), ipOf(a_)).tcp(80, 40020, tcp::kSyn | tcp::kAck).build();
  r = fromContainer(b_, reply);
  EXPECT_EQ(r.retval, TC_ACT_OK) << "not TC_ACT_REDIRECT (delivery into a)";
  ASSERT_TRUE(r.ctx.has_value());
  EXPECT_EQ(r.ctx->mark, uint32_t{MARK_MAGIC_TO_PROXY});

  // An upstream connection on another port (the proxy could not reuse a's) gets its own entry,
  // and its replies go to the proxy too.
  auto up2 = to(b_).ip(ipOf(a_), ipOf(b_)).tcp(50000, 80, tcp::kSyn).build();
  EXPECT_EQ(toContainer(b_, up2, proxy_mark(MARK_MAGIC_PROXY_INGRESS, kIdentityA)).retval,
            TC_ACT_OK);
  auto ct2 = ctOf(ipOf(a_), ipOf(b_), 50000, 80, kTcp, CT_KEY_INGRESS);
  ASSERT_TRUE(ct2.has_value());
  EXPECT_TRUE(ct2->flags & CT_F_PROXY_REDIRECT);
  EXPECT_EQ(ct2->src_sec_id, kIdentityA) << "the identity from the proxy's mark";
  r = fromContainer(b_, from(b_).ip(ipOf(b_), ipOf(a_)).tcp(80, 50000, tcp::kAck).build());
  EXPECT_EQ(r.retval, TC_ACT_OK);
  ASSERT_TRUE(r.ctx.has_value());
  EXPECT_EQ(r.ctx->mark, uint32_t{MARK_MAGIC_TO_PROXY});

  // Without the proxy's mark nothing gets to b on port 80 through the stack: redirected.
  auto direct = to(b_).ip(addr(kRemote1), ipOf(b_)).tcp(40021, 80, tcp::kSyn).build();
  setPolicy(b_, {redirectEntry(kRemoteId1, I, kTcp, 80, kProxyPort)});
  events();
  r = toContainer(b_, direct);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT) << "hairpinned through lo to the proxy";
  ASSERT_TRUE(r.ctx.has_value());
  EXPECT_EQ(r.ctx->mark, (uint32_t{kProxyPort} << 16) | MARK_MAGIC_TO_PROXY);
}

TEST_P(LxcProxyFamilyTest, EgressProxyPacketsAreJudgedWithTheIdentityOfTheirMark) {
  setPolicy(b_, {allowEntry(kIdentityA, I, kTcp, 80, 16)});
  events();
  auto up = [&](uint16_t sport) {
    return to(b_).ip(ipOf(a_), ipOf(b_)).tcp(sport, 80, tcp::kSyn).build();
  };
  EXPECT_EQ(toContainer(b_, up(40030), proxy_mark(MARK_MAGIC_PROXY_EGRESS, kIdentityA)).retval,
            TC_ACT_OK);
  EXPECT_EQ(toContainer(b_, up(40031), proxy_mark(MARK_MAGIC_PROXY_EGRESS, kIdentityC)).retval,
            TC_ACT_SHOT);
  auto d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_POLICY);
  EXPECT_EQ(d[0].src_identity, kIdentityC);
  // A mark that is not a proxy's carries no identity: the ipcache's (a's) counts.
  EXPECT_EQ(toContainer(b_, up(40032), 0x0C00 | (kIdentityC << 16)).retval, TC_ACT_OK);
}

TEST_P(LxcProxyFamilyTest, ConnectionsOpenedBeforeAnL7RuleAreCut) {
  setPolicy(a_, {allowEntry(kRemoteId1, E, kTcp, 80, 16)});
  auto pkt = [&](uint8_t flags) {
    return from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(40040, 80, flags).build();
  };
  ASSERT_EQ(fromContainer(a_, pkt(tcp::kSyn)).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, pkt(tcp::kAck)).retval, TC_ACT_OK);
  events();
  // The port now needs the proxy: the open connection never got there, so it may not go on.
  setPolicy(a_, {redirectEntry(kRemoteId1, E, kTcp, 80, kProxyPort)});
  events();
  EXPECT_EQ(fromContainer(a_, pkt(tcp::kAck | tcp::kPsh)).retval, TC_ACT_SHOT);
  auto d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_POLICY);
}

TEST_P(LxcProxyFamilyTest, ToProxyOnLoAssignsOnlyMarkedPackets) {
  const bpf_program* prog = dp_->programs().to_proxy;
  ASSERT_NE(prog, nullptr);
  auto pkt = PacketBuilder()
                 .eth({}, {})
                 .ip(addr("10.200.0.1"), ipOf(b_))
                 .tcp(40050, 80, tcp::kSyn)
                 .build();
  events();
  EXPECT_EQ(run(prog, a_, pkt, 0).retval, TC_ACT_OK) << "plain loopback traffic";
  EXPECT_EQ(run(prog, a_, pkt, MARK_MAGIC_TO_PROXY).retval, TC_ACT_OK)
      << "port 0: the stack finds the proxy's socket itself";
  EXPECT_EQ(run(prog, a_, pkt, MARK_MAGIC_TO_PROXY | (uint32_t{kProxyPort} << 16)).retval,
            TC_ACT_SHOT);
  auto d = drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subtype, DROP_PROXY_LOOKUP_FAILED);
}

}  // namespace
}  // namespace cilium::testing
