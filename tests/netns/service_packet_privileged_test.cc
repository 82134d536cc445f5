// netns tier: per-packet service LB in bpf_lxc with real traffic. The test process is not in a
// socket-LB cgroup, so its connections to the ClusterIP leave the client pod untranslated and
// bpf_lxc DNATs them on the pod's veth; replies come back from the VIP. A service without
// backends answers TCP with RST and UDP with ICMP port unreachable; a backend's ICMP errors come
// back as from the VIP; a pod that is its own backend reaches itself (hairpin). The tests run
// over IPv4 and over IPv6 (dual-stack pods, an IPv6 ClusterIP; IPv6 refuses both protocols with
// ICMPv6 port unreachable), except what IPv6 does not have yet (said where skipped).
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/service/service.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/service_maps.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

constexpr const char* kVip4 = "10.96.0.10";

class ServicePacketTest : public ::testing::TestWithParam<testing::Family> {
 protected:
  bool v6() const { return GetParam() == testing::Family::kV6; }
  const std::string& ip(const testing::Pod& p) const { return v6() ? p.ip6 : p.ip; }
  const std::string& ip(const char* pod) { return ip(pods_[pod]); }

  void SetUp() override {
    vip_ = v6() ? testing::v6Twin(kVip4) : kVip4;
    auto topo = testing::Topology::create(203);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    uint16_t id = 1;
    for (auto [name, ip] : {std::pair{"client", "10.203.0.11"}, std::pair{"b1", "10.203.0.21"},
                            std::pair{"b2", "10.203.0.22"}}) {
      auto p = topo_->addPod(name, ip, testing::v6Twin(ip));
      ASSERT_TRUE(p.ok()) << p.error().toString();
      pods_[name] = *p;
    }
    auto dp = datapath::Datapath::load({*topo_->pinDir()});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    for (auto& [name, pod] : pods_) {
      ASSERT_TRUE(testing::programEndpoint(maps, pod, id, 1000 + id).ok());
      ASSERT_TRUE(maps.policy->replace(id, open).ok());
      id++;
    }
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&]() -> Status {
                  for (auto& [name, pod] : pods_)
                    CILIUM_RETURN_IF_ERROR(dp_->attachEndpoint(pod.host_ifindex));
                  return okStatus();
                }).ok());
    std::string pin = *topo_->pinDir();
    auto lb = testing::openServiceMaps(pin);
    ASSERT_TRUE(lb.ok()) << lb.error().toString();
    lb_ = std::move(*lb);
    mgr_ = std::make_unique<service::Manager>(lb_.maps(), service::ManagerConfig{});
  }

  void program(service::Protocol proto, uint16_t port, std::vector<const char*> pods) {
    service::Service s;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse(vip_);
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = port;
    for (const char* name : pods)
      p.backends.push_back({*IpAddr::parse(ip(name)), 8080, service::BackendState::kActive, true});
    s.ports.push_back(p);
    ASSERT_TRUE(mgr_->upsertService(s).ok());
  }

  // `to_server` bytes from the client, `to_client` back: checksums of translated segments hold.
  void exchange(int client_fd, int server_fd, size_t to_server, size_t to_client) {
    ASSERT_TRUE(testing::sendAll(client_fd, std::string(to_server, 'x')).ok());
    auto got = testing::recvExactly(server_fd, to_server);
    ASSERT_TRUE(got.ok()) << got.error().toString();
    ASSERT_TRUE(testing::sendAll(server_fd, std::string(to_client, 'y')).ok());
    auto back = testing::recvExactly(client_fd, to_client);
    ASSERT_TRUE(back.ok()) << back.error().toString();
  }

  // A query from `client` to the VIP's port 53 reaches `server` from `expect_from` (and the
  // client's port); the answer comes back to the client from the VIP.
  void udpQueryAnswer(int client_fd, int server_fd, const std::string& expect_from) {
    ASSERT_TRUE(testing::sendUdp(client_fd, vip_, 53, "q").ok());
    std::string from;
    uint16_t from_port = 0;
    auto q = testing::recvUdp(server_fd, std::chrono::seconds(3), &from, &from_port);
    ASSERT_TRUE(q.ok()) << q.error().toString();
    EXPECT_EQ(from, expect_from);
    EXPECT_EQ(from_port, *testing::localPort(client_fd));
    ASSERT_TRUE(testing::sendUdp(server_fd, from, from_port, "a").ok());
    std::string rfrom;
    uint16_t rport = 0;
    auto a = testing::recvUdp(client_fd, std::chrono::seconds(3), &rfrom, &rport);
    ASSERT_TRUE(a.ok()) << a.error().toString();
    EXPECT_EQ(rfrom, vip_);
    EXPECT_EQ(rport, 53);
  }

  std::string vip_;
  std::unique_ptr<testing::Topology> topo_;
  std::map<std::string, testing::Pod> pods_;
  std::unique_ptr<datapath::Datapath> dp_;
  testing::ServiceMapSet lb_;
  std::unique_ptr<service::Manager> mgr_;
};

TEST_P(ServicePacketTest, TcpThroughClusterIpUsesBothBackendsAndCarriesData) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, ip("b1"), 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, ip("b2"), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  program(service::Protocol::kTcp, 80, {"b1", "b2"});
  std::map<int, int> hits;
  for (int i = 0; i < 30; i++) {
    auto c = testing::connectTcp(pods_["client"].netns, vip_, 80);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    pollfd pfds[2] = {{l1->get(), POLLIN, 0}, {l2->get(), POLLIN, 0}};
    ASSERT_GT(::poll(pfds, 2, 3000), 0);
    int lfd = (pfds[0].revents & POLLIN) ? l1->get() : l2->get();
    hits[lfd == l1->get() ? 1 : 2]++;
    auto s = testing::acceptTcp(lfd);
    ASSERT_TRUE(s.ok());
    ASSERT_NO_FATAL_FAILURE(exchange(c->get(), s->get(), 64 * 1024, 4));
  }
  EXPECT_GT(hits[1], 0);
  EXPECT_GT(hits[2], 0);
}

TEST_P(ServicePacketTest, UdpRepliesComeFromTheVip) {
  auto s1 = testing::bindUdp(pods_["b1"].netns, ip("b1"), 8080);
  auto c = testing::bindUdp(pods_["client"].netns, ip("client"), 0);
  ASSERT_TRUE(s1.ok() && c.ok());
  program(service::Protocol::kUdp, 53, {"b1"});
  ASSERT_NO_FATAL_FAILURE(udpQueryAnswer(c->get(), s1->get(), ip("client")));
}

TEST_P(ServicePacketTest, NoBackendIsRefusedNotDropped) {
  program(service::Protocol::kTcp, 80, {});
  auto c = testing::connectTcp(pods_["client"].netns, vip_, 80, std::chrono::seconds(3));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos)
      << "an RST, not a timeout: " << c.error().toString();

  program(service::Protocol::kUdp, 53, {});
  // A connected UDP socket reports the ICMP port unreachable as ECONNREFUSED.
  auto refused = testing::expectUdpRefused(pods_["client"].netns, vip_, 53);
  EXPECT_TRUE(refused.ok()) << refused.error().toString();
}

// A backend's ICMP error about a translated connection reaches the client as from the VIP:
// here b1 has no UDP socket on the backend port, so its port unreachable (quoting
// client -> b1:8080) must become one quoting client -> VIP:53, or the client's socket, connected
// to the VIP, never learns of it and waits.
TEST_P(ServicePacketTest, BackendsPortUnreachableReachesTheClientAsFromTheVip) {
  program(service::Protocol::kUdp, 53, {"b1"});
  auto refused = testing::expectUdpRefused(pods_["client"].netns, vip_, 53);
  EXPECT_TRUE(refused.ok()) << refused.error().toString();
}

// Hairpin: the client is the only backend of the Service it connects to. The packets come back
// into the client from the service loopback address (a packet from its own address would be a
// martian there; IPv6: fe80::1 on the pod's eth0), and the replies leave it to that address and
// come back from the VIP.
TEST_P(ServicePacketTest, PodReachesItselfThroughItsService) {
  const testing::Pod& pod = pods_["client"];
  std::string loopback = "169.254.42.1", loopback_peer = loopback;
  if (v6()) {
    unsigned eth0 = 0;
    ASSERT_TRUE(runInNetns(pod.netns, [&]() -> Status {
                  eth0 = ::if_nametoindex("eth0");
                  return okStatus();
                }).ok());
    ASSERT_NE(eth0, 0u);
    loopback = "fe80::1%" + std::to_string(eth0);
    loopback_peer = "[fe80::1]";
  }
  auto l = testing::listenTcp(pod.netns, ip(pod), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, 80, {"client"});
  for (int i = 0; i < 3; i++) {
    auto c = testing::connectTcp(pod.netns, vip_, 80);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    auto s = testing::acceptTcp(l->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    std::string client_port = std::to_string(*testing::localPort(c->get()));
    EXPECT_EQ(testing::socketAddress(s->get()), loopback_peer + ":" + client_port);
    ASSERT_NO_FATAL_FAILURE(exchange(c->get(), s->get(), 64 * 1024, 64 * 1024));
  }

  auto server = testing::bindUdp(pod.netns, ip(pod), 8080);
  auto c = testing::bindUdp(pod.netns, ip(pod), 0);
  ASSERT_TRUE(server.ok() && c.ok());
  program(service::Protocol::kUdp, 53, {"client"});
  ASSERT_NO_FATAL_FAILURE(udpQueryAnswer(c->get(), server->get(), loopback));
  // Without a listener on the backend port, the pod's own port unreachable reaches its client
  // socket as from the VIP.
  server->reset();
  auto refused = testing::expectUdpRefused(pod.netns, vip_, 53);
  EXPECT_TRUE(refused.ok()) << refused.error().toString();

  // Nothing else reaches the pod through the loopback address: a datagram to it that answers no
  // hairpin connection is dropped, not delivered.
  auto no_mapping = [&] {
    auto m = dp_->readMetrics();
    uint64_t n = 0;
    if (m.ok())
      for (const auto& e : *m)
        if (e.reason == DROP_NAT_NO_MAPPING && e.dir == METRIC_EGRESS) n += e.packets;
    return n;
  };
  uint64_t before = no_mapping();
  auto stray = testing::bindUdp(pod.netns, ip(pod), 0);
  ASSERT_TRUE(stray.ok());
  ASSERT_TRUE(testing::sendUdp(stray->get(), loopback, 9, "x").ok());
  EXPECT_TRUE(testing::eventually([&] { return no_mapping() > before; }, std::chrono::seconds(3)));
}

// A dual-stack Service: one ClusterIP per family, each with its own family's backends, reached
// over both families from one dual-stack pod.
TEST_P(ServicePacketTest, DualStackServiceServesEachFamilyItsOwnBackends) {
  if (v6()) GTEST_SKIP() << "one run covers both families";
  auto l4 = testing::listenTcp(pods_["b1"].netns, pods_["b1"].ip, 8080);
  auto l6 = testing::listenTcp(pods_["b2"].netns, pods_["b2"].ip6, 8080);
  ASSERT_TRUE(l4.ok() && l6.ok());
  service::Service s;
  s.name = {"default", "dual"};
  s.cluster_ip = *IpAddr::parse(kVip4);
  s.more_cluster_ips = {*IpAddr::parse(testing::v6Twin(kVip4))};
  service::ServicePort p;
  p.name = "p";
  p.port = 80;
  // Both families' EndpointSlices in one list: b1 by IPv4, b2 by IPv6.
  p.backends = {{*IpAddr::parse(pods_["b1"].ip), 8080, service::BackendState::kActive, true},
                {*IpAddr::parse(pods_["b2"].ip6), 8080, service::BackendState::kActive, true}};
  s.ports.push_back(p);
  ASSERT_TRUE(mgr_->upsertService(s).ok());
  for (int i = 0; i < 5; i++) {
    for (const auto& [vip, lfd] :
         {std::pair{std::string(kVip4), l4->get()}, std::pair{testing::v6Twin(kVip4), l6->get()}}) {
      auto c = testing::connectTcp(pods_["client"].netns, vip, 80);
      ASSERT_TRUE(c.ok()) << vip << ": " << c.error().toString();
      auto srv = testing::acceptTcp(lfd, std::chrono::seconds(3));
      ASSERT_TRUE(srv.ok()) << vip << " reached the other family's backend";
      ASSERT_NO_FATAL_FAILURE(exchange(c->get(), srv->get(), 4096, 4096));
    }
  }
}

CILIUM_INSTANTIATE_FAMILIES(ServicePacketTest);

}  // namespace
}  // namespace cilium
