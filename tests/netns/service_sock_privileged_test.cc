// netns tier: socket LB (bpf_sock on the test's own cgroup-v2 directory) with real pods. A client
// pod connects to a ClusterIP that exists nowhere on the network; the connect hook sends it
// straight to a backend pod, UDP replies come back from the VIP, and a service without backends
// refuses connections. Every test runs over IPv4 and over IPv6 (an IPv6 ClusterIP, dual-stack
// pods delivered by bpf_lxc); an IPv6 socket to a v4-mapped ClusterIP is balanced through the
// IPv4 Service.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/service/lb_datapath.h"
#include "agent/service/service.h"
#include "tests/harness/cgroup.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using service::Backend;
using service::BackendState;
using service::Protocol;

constexpr const char* kVip4 = "10.96.0.10";
using testing::CgroupMembership;

class SockLbTest : public ::testing::TestWithParam<testing::Family> {
 protected:
  bool v6() const { return GetParam() == testing::Family::kV6; }
  const std::string& ip(const testing::Pod& p) const { return v6() ? p.ip6 : p.ip; }

  void SetUp() override {
    vip_ = v6() ? testing::v6Twin(kVip4) : kVip4;
    vip_port80_ = v6() ? "[" + vip_ + "]:80" : vip_ + ":80";
    auto topo = testing::Topology::create(201);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    for (auto [name, ip] : {std::pair{"client", "10.201.0.11"}, std::pair{"b1", "10.201.0.21"},
                            std::pair{"b2", "10.201.0.22"}}) {
      auto p = v6() ? topo_->addPod(name, ip, testing::v6Twin(ip)) : topo_->addPod(name, ip);
      ASSERT_TRUE(p.ok()) << p.error().toString();
      pods_[name] = *p;
    }
    auto pin = topo_->pinDir();
    ASSERT_TRUE(pin.ok()) << pin.error().toString();
    // IPv6 between the pods needs bpf_lxc (its neighbour discovery and delivery: the node keeps
    // IPv6 off); IPv4 goes through the node's stack.
    if (v6()) {
      ASSERT_NO_FATAL_FAILURE(attachLxc());
    }
    auto dp = service::LbDatapath::load({*pin});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto cg = topo_->cgroupDir();
    ASSERT_TRUE(cg.ok()) << cg.error().toString();
    ASSERT_TRUE(dp_->attachCgroup(*cg).ok());
    mgr_ = std::make_unique<service::Manager>(dp_->maps(), service::ManagerConfig{});
    auto m = CgroupMembership::join(*cg);
    ASSERT_TRUE(m.ok()) << m.error().toString();
    member_ = std::move(*m);
  }
  void attachLxc() {
    auto lxc = datapath::Datapath::load({*topo_->pinDir()});
    ASSERT_TRUE(lxc.ok()) << lxc.error().toString();
    lxc_ = std::move(*lxc);
    auto maps = lxc_->maps();
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    uint16_t id = 1;
    for (auto& [name, pod] : pods_) {
      ASSERT_TRUE(testing::programEndpoint(maps, pod, id, 1000 + id).ok());
      ASSERT_TRUE(maps.policy->replace(id, open).ok());
      id++;
    }
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&]() -> Status {
                  for (auto& [name, pod] : pods_)
                    CILIUM_RETURN_IF_ERROR(lxc_->attachEndpoint(pod.host_ifindex));
                  return okStatus();
                }).ok());
  }

  void TearDown() override {
    member_.reset();
    if (dp_) {
      EXPECT_TRUE(dp_->detachCgroup().ok());
    }
  }

  Backend backend(const char* pod, uint16_t port, BackendState st = BackendState::kActive) {
    return Backend{*IpAddr::parse(ip(pods_[pod])), port, st, true};
  }
  Status program(Protocol proto, uint16_t port, std::vector<Backend> bes, bool affinity = false,
                 const std::string& vip = "") {
    service::Service s;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse(vip.empty() ? vip_ : vip);
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = port;
    p.backends = std::move(bes);
    s.ports.push_back(p);
    s.session_affinity = affinity;
    s.affinity_timeout = 60;
    return mgr_->upsertService(s);
  }

  // Connects to the VIP and returns the connection with the name of the backend that accepted.
  std::pair<UniqueFd, std::string> connectVip(uint16_t port, std::map<std::string, int>& lfds,
                                              std::map<std::string, UniqueFd>* accepted = nullptr,
                                              const std::string& vip = "") {
    auto c = testing::connectTcp(pods_["client"].netns, vip.empty() ? vip_ : vip, port);
    EXPECT_TRUE(c.ok()) << c.error().toString();
    if (!c.ok()) return {UniqueFd(), ""};
    std::vector<pollfd> pfds;
    std::vector<std::string> names;
    for (auto& [name, fd] : lfds) {
      pfds.push_back({fd, POLLIN, 0});
      names.push_back(name);
    }
    if (::poll(pfds.data(), pfds.size(), 3000) <= 0) return {std::move(*c), "none"};
    for (size_t i = 0; i < pfds.size(); i++) {
      if (!(pfds[i].revents & POLLIN)) continue;
      auto s = testing::acceptTcp(pfds[i].fd);
      if (s.ok() && accepted) (*accepted)[names[i]] = std::move(*s);
      return {std::move(*c), names[i]};
    }
    return {std::move(*c), "none"};
  }

  std::string vip_;  // the family's ClusterIP
  std::string vip_port80_;
  std::unique_ptr<testing::Topology> topo_;
  std::map<std::string, testing::Pod> pods_;
  std::unique_ptr<datapath::Datapath> lxc_;
  std::unique_ptr<service::LbDatapath> dp_;
  std::unique_ptr<service::Manager> mgr_;
  std::unique_ptr<CgroupMembership> member_;
};

TEST_P(SockLbTest, TcpToClusterIpUsesBothBackendsAndPeerIsTheVip) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, ip(pods_["b1"]), 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, ip(pods_["b2"]), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend("b1", 8080), backend("b2", 8080)}).ok());
  std::map<std::string, int> lfds{{"b1", l1->get()}, {"b2", l2->get()}};
  std::map<std::string, int> hits;
  for (int i = 0; i < 40; i++) {
    auto [c, who] = connectVip(80, lfds);
    ASSERT_TRUE(c.valid());
    hits[who]++;
    EXPECT_EQ(testing::socketAddress(c.get()), vip_port80_);
  }
  EXPECT_GT(hits["b1"], 0);
  EXPECT_GT(hits["b2"], 0);
  EXPECT_EQ(hits["none"], 0);
}

TEST_P(SockLbTest, UdpRepliesComeFromTheVipAndBothBackendsServe) {
  auto s1 = testing::bindUdp(pods_["b1"].netns, ip(pods_["b1"]), 5353);
  auto s2 = testing::bindUdp(pods_["b2"].netns, ip(pods_["b2"]), 5353);
  auto c = testing::bindUdp(pods_["client"].netns, ip(pods_["client"]), 0);
  ASSERT_TRUE(s1.ok() && s2.ok() && c.ok());
  ASSERT_TRUE(program(Protocol::kUdp, 53, {backend("b1", 5353), backend("b2", 5353)}).ok());
  std::map<std::string, int> hits;
  for (int i = 0; i < 30; i++) {
    ASSERT_TRUE(testing::sendUdp(c->get(), vip_, 53, "q" + std::to_string(i)).ok());
    pollfd pfds[2] = {{s1->get(), POLLIN, 0}, {s2->get(), POLLIN, 0}};
    ASSERT_GT(::poll(pfds, 2, 3000), 0);
    int srv = (pfds[0].revents & POLLIN) ? s1->get() : s2->get();
    hits[srv == s1->get() ? "b1" : "b2"]++;
    std::string from;
    uint16_t from_port = 0;
    auto q = testing::recvUdp(srv, std::chrono::seconds(2), &from, &from_port);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(testing::sendUdp(srv, from, from_port, "a" + *q).ok());
    std::string rfrom;
    uint16_t rport = 0;
    auto a = testing::recvUdp(c->get(), std::chrono::seconds(2), &rfrom, &rport);
    ASSERT_TRUE(a.ok()) << a.error().toString();
    EXPECT_EQ(*a, "aq" + std::to_string(i));
    EXPECT_EQ(rfrom, vip_);
    EXPECT_EQ(rport, 53);
  }
  EXPECT_GT(hits["b1"], 0);
  EXPECT_GT(hits["b2"], 0);
}

TEST_P(SockLbTest, NoBackendRefusesTheConnection) {
  ASSERT_TRUE(program(Protocol::kTcp, 80, {}).ok());
  auto c = testing::connectTcp(pods_["client"].netns, vip_, 80, std::chrono::seconds(2));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos) << c.error().toString();
  // Only terminating backends: still nothing for new connections.
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend("b1", 8080, BackendState::kTerminating)}).ok());
  c = testing::connectTcp(pods_["client"].netns, vip_, 80, std::chrono::seconds(2));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos) << c.error().toString();
}

TEST_P(SockLbTest, RemovedBackendGetsNoNewConnectionsButKeepsItsOwn) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, ip(pods_["b1"]), 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, ip(pods_["b2"]), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend("b1", 8080), backend("b2", 8080)}).ok());
  std::map<std::string, int> lfds{{"b1", l1->get()}, {"b2", l2->get()}};
  // An established connection to b1.
  std::map<std::string, UniqueFd> accepted;
  UniqueFd kept;
  for (int i = 0; i < 50 && !kept.valid(); i++) {
    auto [c, who] = connectVip(80, lfds, &accepted);
    if (who == "b1") kept = std::move(c);
  }
  ASSERT_TRUE(kept.valid());
  ASSERT_TRUE(accepted.count("b1"));
  // b1 leaves the service (terminating first, then gone).
  ASSERT_TRUE(program(Protocol::kTcp, 80,
                      {backend("b1", 8080, BackendState::kTerminating), backend("b2", 8080)})
                  .ok());
  for (int i = 0; i < 20; i++) EXPECT_EQ(connectVip(80, lfds).second, "b2");
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend("b2", 8080)}).ok());
  for (int i = 0; i < 20; i++) EXPECT_EQ(connectVip(80, lfds).second, "b2");
  // The old connection still carries data both ways.
  ASSERT_TRUE(testing::sendAll(kept.get(), "ping").ok());
  auto got = testing::recvExactly(accepted["b1"].get(), 4);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "ping");
  ASSERT_TRUE(testing::sendAll(accepted["b1"].get(), "pong").ok());
  got = testing::recvExactly(kept.get(), 4);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "pong");
}

TEST_P(SockLbTest, SessionAffinityKeepsTheClientOnOneBackend) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, ip(pods_["b1"]), 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, ip(pods_["b2"]), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend("b1", 8080), backend("b2", 8080)}, true).ok());
  std::map<std::string, int> lfds{{"b1", l1->get()}, {"b2", l2->get()}};
  std::set<std::string> used;
  for (int i = 0; i < 20; i++) used.insert(connectVip(80, lfds).second);
  EXPECT_EQ(used.size(), 1u);
  EXPECT_EQ(used.count("none"), 0u);
  // The chosen backend leaves: the client moves to the other one and stays there.
  std::string first = *used.begin();
  std::string other = first == "b1" ? "b2" : "b1";
  ASSERT_TRUE(program(Protocol::kTcp, 80, {backend(other.c_str(), 8080)}, true).ok());
  for (int i = 0; i < 10; i++) EXPECT_EQ(connectVip(80, lfds).second, other);
}

// An IPv6 socket connecting to the v4-mapped address of an IPv4 ClusterIP (::ffff:10.96.0.10)
// is balanced through the IPv4 Service, and sees the v4-mapped VIP as its peer.
TEST_P(SockLbTest, V4MappedClusterIpIsBalancedThroughTheIpv4Service) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, pods_["b1"].ip, 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, pods_["b2"].ip, 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  service::Backend b1{*IpAddr::parse(pods_["b1"].ip), 8080, BackendState::kActive, true};
  service::Backend b2{*IpAddr::parse(pods_["b2"].ip), 8080, BackendState::kActive, true};
  ASSERT_TRUE(program(Protocol::kTcp, 80, {b1, b2}, false, kVip4).ok());
  std::map<std::string, int> lfds{{"b1", l1->get()}, {"b2", l2->get()}};
  const std::string mapped = std::string("::ffff:") + kVip4;
  std::map<std::string, int> hits;
  for (int i = 0; i < 30; i++) {
    auto [c, who] = connectVip(80, lfds, nullptr, mapped);
    ASSERT_TRUE(c.valid());
    hits[who]++;
    EXPECT_EQ(testing::socketAddress(c.get()), "[" + mapped + "]:80");
  }
  EXPECT_GT(hits["b1"], 0);
  EXPECT_GT(hits["b2"], 0);
  EXPECT_EQ(hits["none"], 0);
  // No backend: refused as for an IPv4 socket.
  ASSERT_TRUE(program(Protocol::kTcp, 80, {}, false, kVip4).ok());
  auto c = testing::connectTcp(pods_["client"].netns, mapped, 80, std::chrono::seconds(2));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos) << c.error().toString();
}

CILIUM_INSTANTIATE_FAMILIES(SockLbTest);

}  // namespace
}  // namespace cilium
