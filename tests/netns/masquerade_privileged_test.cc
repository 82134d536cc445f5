// netns tier: BPF masquerade with real traffic, IPv4 and IPv6 (each test once per family). A
// dual-stack pod of the node reaches a host outside the cluster, which has no route back to the
// pods: only masquerading (bpf_host on ext0) makes the replies come back.
//
//   far 192.168.78.9 / 2001:db8:78::9 --(MTU 1280)-- outside 192.168.77.100 / 2001:db8::100
//     --- br0 (fabric) --- ext0 192.168.77.1 / 2001:db8::1 [node] -- lxc -- pod p1
//
// Checked as the outside host sees it (the peer address of TCP and UDP is the node's) and as the
// pod does (replies arrive, ping works); ICMP errors from the outside reach the pod's socket (a
// closed UDP port refuses, a router's "packet too big" lowers the path MTU); many connections at
// once get distinct node ports and many short ones in a row never fail; cilium-dbg lists the
// mappings and the NAT GC collects them once their connections are over.
#include <arpa/inet.h>
#include <net/if.h>

#include <set>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/conntrack.h"
#include "agent/datapath/datapath.h"
#include "agent/service/host_datapath.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/fabric.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using testing::Family;

std::string peerOf(int fd) { return testing::socketIp(fd); }
uint16_t peerPortOf(int fd) { return testing::socketPort(fd); }

class MasqueradeTest : public ::testing::TestWithParam<Family> {
 protected:
  bool v6() const { return GetParam() == Family::kV6; }
  // The node's and the outside host's addresses, and the pod's, in the test's family.
  std::string nodeIp() const { return v6() ? testing::Fabric::kNodeIp6 : testing::Fabric::kNodeIp; }
  std::string outsideIp() const {
    return v6() ? testing::Fabric::kClientIp6 : testing::Fabric::kClientIp;
  }
  std::string podIp() const { return v6() ? p1_.ip6 : p1_.ip; }
  // "addr:port" as cilium-dbg prints it.
  std::string hostPort(const std::string& a, uint16_t port) const {
    return (v6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
  }

  void SetUp() override {
    auto topo = testing::Topology::create(205);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    auto p1 = topo_->addPod("p1", "10.205.0.21", testing::v6Twin("10.205.0.21"));
    ASSERT_TRUE(p1.ok()) << p1.error().toString();
    p1_ = *p1;
    auto built = net_.build(*topo_);
    ASSERT_TRUE(built.ok()) << built.error().toString();
    auto v6on = net_.enableIpv6(*topo_);
    ASSERT_TRUE(v6on.ok()) << v6on.error().toString();

    datapath::Config cfg;
    cfg.pin_dir = *topo_->pinDir();
    // Short conntrack timeouts, so that the GC's part is seen within the test.
    cfg.ct_timeouts.tcp_close = 1;
    cfg.ct_timeouts.non_tcp = 2;
    auto dp = datapath::Datapath::load(cfg);
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    ASSERT_TRUE(testing::programEndpoint(maps, p1_, 1, 1001).ok());
    ASSERT_TRUE(maps.policy->replace(1, open).ok());
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    ASSERT_TRUE(
        runInNetns(topo_->nodeNetns(), [&] { return dp_->attachEndpoint(p1_.host_ifindex); }).ok());

    auto host = service::HostDatapath::load(
        cfg.pin_dir, {.enable_masquerade = true, .enable_masquerade6 = true});
    ASSERT_TRUE(host.ok()) << host.error().toString();
    host_ = std::move(*host);
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&]() -> Status {
                  int ifindex = static_cast<int>(::if_nametoindex("ext0"));
                  if (ifindex == 0) return errnoError(errno, "ext0");
                  return host_->attachDevice(ifindex, *IpAddr::parse(testing::Fabric::kNodeIp),
                                             service::XdpMode::kDisabled,
                                             *IpAddr::parse(testing::Fabric::kNodeIp6));
                }).ok());
    ASSERT_TRUE(host_
                    ->setNonMasqueradeCidrs({*IpPrefix::parse("10.205.0.0/16"),
                                             *IpPrefix::parse("fd00:205::/64")})
                    .ok());
  }

  // Masquerade mappings in the family's NAT map (both halves).
  size_t masqEntries() {
    size_t n = 0;
    auto count = [&](const auto&, const auto& v) {
      if (v.flags & NAT_F_MASQ) n++;
      return true;
    };
    EXPECT_TRUE((v6() ? host_->nat6().forEach(count) : host_->nat().forEach(count)).ok());
    return n;
  }
  uint64_t drops() {
    auto m = dp_->readMetrics();
    EXPECT_TRUE(m.ok());
    uint64_t n = 0;
    if (m.ok())
      for (const auto& e : m.value())
        if (e.reason != REASON_FORWARDED) n += e.packets;
    return n;
  }

  std::unique_ptr<testing::Topology> topo_;
  testing::Pod p1_;
  testing::Fabric net_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::unique_ptr<service::HostDatapath> host_;
};

TEST_P(MasqueradeTest, TcpUdpAndPingReachTheOutsideFromTheNodeAddress) {
  const std::string kNodeIp = nodeIp(), kOutsideIp = outsideIp();
  // TCP: the server sees the node; data both ways.
  auto l = testing::listenTcp(net_.outsideNetns(), kOutsideIp, 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  auto c = testing::connectTcp(p1_.netns, kOutsideIp, 8080);
  ASSERT_TRUE(c.ok()) << "the SYN-ACK comes back only through the masquerade: "
                      << c.error().toString();
  auto s = testing::acceptTcp(l->get());
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ(peerOf(s->get()), kNodeIp) << "the outside host sees the node's address";
  EXPECT_GE(peerPortOf(s->get()), NAT_PORT_MIN);
  std::string big(64 * 1024, 'x');
  ASSERT_TRUE(testing::sendAll(c->get(), big).ok());
  EXPECT_TRUE(testing::recvExactly(s->get(), big.size()).ok());
  ASSERT_TRUE(testing::sendAll(s->get(), big).ok());
  EXPECT_TRUE(testing::recvExactly(c->get(), big.size()).ok()) << "replies reach the pod";

  // UDP: the datagram arrives from the node; the answer reaches the pod's socket.
  auto server = testing::bindUdp(net_.outsideNetns(), kOutsideIp, 5353);
  ASSERT_TRUE(server.ok()) << server.error().toString();
  auto client = testing::bindUdp(p1_.netns, podIp(), 0);
  ASSERT_TRUE(client.ok()) << client.error().toString();
  ASSERT_TRUE(testing::sendUdp(client->get(), kOutsideIp, 5353, "ping").ok());
  std::string from;
  uint16_t from_port = 0;
  auto got = testing::recvUdp(server->get(), std::chrono::seconds(3), &from, &from_port);
  ASSERT_TRUE(got.ok()) << got.error().toString();
  EXPECT_EQ(*got, "ping");
  EXPECT_EQ(from, kNodeIp);
  EXPECT_GE(from_port, NAT_PORT_MIN);
  ASSERT_TRUE(testing::sendUdp(server->get(), from, from_port, "pong").ok());
  auto back = testing::recvUdp(client->get(), std::chrono::seconds(3));
  ASSERT_TRUE(back.ok()) << back.error().toString();
  EXPECT_EQ(*back, "pong");

  // ICMP echo.
  auto ping = topo_->exec(p1_.netns, {"ping", "-c", "2", "-W", "2", kOutsideIp.c_str()});
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->exit_code, 0) << ping->out << ping->err;
  EXPECT_EQ(drops(), 0u);

  // cilium-dbg lists the mappings, from the pinned map.
  auto list = runChecked({CILIUM_DBG_BINARY, "bpf", "nat", "list", "--pin-dir", *topo_->pinDir()});
  ASSERT_TRUE(list.ok()) << list.error().toString();
  std::string pod = v6() ? "[" + podIp() + "]:" : podIp() + ":";
  for (const std::string& needle :
       {"TCP OUT " + pod, "UDP OUT " + pod, (v6() ? "ICMPv6 OUT " : "ICMP OUT ") + pod,
        "TCP IN " + hostPort(kOutsideIp, 8080) + " -> " + (v6() ? "[" + kNodeIp + "]" : kNodeIp) +
            ":",
        std::string("Masquerade")})
    EXPECT_NE(list->find(needle), std::string::npos) << needle << " in\n" << *list;
  auto masq =
      runChecked({CILIUM_DBG_BINARY, "bpf", "ipmasq", "list", "--pin-dir", *topo_->pinDir()});
  ASSERT_TRUE(masq.ok()) << masq.error().toString();
  EXPECT_NE(masq->find("10.205.0.0/16"), std::string::npos) << *masq;
  EXPECT_NE(masq->find("fd00:205::/64"), std::string::npos) << *masq;
}

TEST_P(MasqueradeTest, IcmpErrorsFromOutsideReachThePodsSocket) {
  // A UDP datagram to a closed port of the outside host: its port unreachable, sent to the node
  // about {node:nport -> outside}, reaches the pod's connected socket as ECONNREFUSED.
  EXPECT_TRUE(testing::expectUdpRefused(p1_.netns, outsideIp(), 9).ok())
      << "the ICMP error comes back only through the masquerade";

  // A datagram too big for the link behind the outside host: the host, as a router, answers the
  // node with "packet too big" (IPv4: fragmentation needed), which must lower the pod's path MTU.
  ASSERT_TRUE(net_.addFarHost(*topo_, 1280).ok());
  std::string far = v6() ? testing::Fabric::kFarIp6 : testing::Fabric::kFarIp;
  auto fd = runInNetnsValue<UniqueFd>(p1_.netns, [&]() -> Result<UniqueFd> {
    sockaddr_storage ss{};
    socklen_t len;
    UniqueFd s(::socket(v6() ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return errnoError(errno, "socket");
    if (v6()) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(9);
      ::inet_pton(AF_INET6, far.c_str(), &a->sin6_addr);
      len = sizeof(*a);
      int pmtu = IPV6_PMTUDISC_DO;
      ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(9);
      ::inet_pton(AF_INET, far.c_str(), &a->sin_addr);
      len = sizeof(*a);
      int pmtu = IP_PMTUDISC_DO;
      ::setsockopt(s.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
      return errnoError(errno, "connect");
    return s;
  });
  ASSERT_TRUE(fd.ok()) << fd.error().toString();
  auto pathMtu = [&] {
    int mtu = 0;
    socklen_t len = sizeof(mtu);
    if (v6())
      ::getsockopt(fd->get(), IPPROTO_IPV6, IPV6_MTU, &mtu, &len);
    else
      ::getsockopt(fd->get(), IPPROTO_IP, IP_MTU, &mtu, &len);
    return mtu;
  };
  EXPECT_EQ(pathMtu(), 1500);
  std::string big(1400, 'x');
  EXPECT_TRUE(testing::eventually(
      [&] {
        // Resent until the error has come back: the first may go before neighbours resolve.
        (void)::send(fd->get(), big.data(), big.size(), MSG_DONTWAIT);
        return pathMtu() == 1280;
      },
      std::chrono::seconds(10)))
      << "path MTU " << pathMtu() << ": the router's error did not reach the pod";
  EXPECT_EQ(drops(), 0u);
}

TEST_P(MasqueradeTest, ManyConnectionsGetDistinctPortsAndAreCollectedWhenOver) {
  const std::string kNodeIp = nodeIp(), kOutsideIp = outsideIp();
  auto l = testing::listenTcp(net_.outsideNetns(), kOutsideIp, 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  // 200 connections open at once: 200 distinct node ports.
  std::vector<UniqueFd> clients, served;
  std::set<uint16_t> ports;
  for (int i = 0; i < 200; i++) {
    auto c = testing::connectTcp(p1_.netns, kOutsideIp, 8080);
    ASSERT_TRUE(c.ok()) << "connection " << i << ": " << c.error().toString();
    auto s = testing::acceptTcp(l->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_EQ(peerOf(s->get()), kNodeIp);
    EXPECT_TRUE(ports.insert(peerPortOf(s->get())).second)
        << "node port " << peerPortOf(s->get()) << " serves two connections";
    clients.push_back(std::move(*c));
    served.push_back(std::move(*s));
  }
  EXPECT_EQ(masqEntries(), 400u) << "two entries per connection";
  clients.clear();
  served.clear();

  // 500 short connections in a row, each with data both ways: none fails.
  for (int i = 0; i < 500; i++) {
    auto c = testing::connectTcp(p1_.netns, kOutsideIp, 8080);
    ASSERT_TRUE(c.ok()) << "connection " << i << ": " << c.error().toString();
    auto s = testing::acceptTcp(l->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_EQ(peerOf(s->get()), kNodeIp);
    ASSERT_TRUE(testing::sendAll(c->get(), "q").ok());
    ASSERT_TRUE(testing::recvExactly(s->get(), 1).ok());
    ASSERT_TRUE(testing::sendAll(s->get(), "a").ok());
    ASSERT_TRUE(testing::recvExactly(c->get(), 1).ok()) << "connection " << i;
  }
  EXPECT_EQ(drops(), 0u);

  // All closed: once their conntrack entries expire, the GC removes every mapping.
  ASSERT_GT(masqEntries(), 0u);
  EXPECT_TRUE(testing::eventually(
      [&] {
        auto r = host_->collectNat(static_cast<uint32_t>(datapath::monotonicSeconds()));
        EXPECT_TRUE(r.ok());
        return masqEntries() == 0;
      },
      std::chrono::seconds(30)))
      << masqEntries() << " masquerade entries left";
}

CILIUM_INSTANTIATE_FAMILIES(MasqueradeTest);

}  // namespace
}  // namespace cilium
