// netns tier: per-packet service LB in bpf_lxc with real traffic. The test process is not in a
// socket-LB cgroup, so its connections to the ClusterIP leave the client pod untranslated and
// bpf_lxc DNATs them on the pod's veth; replies come back from the VIP. A service without
// backends answers TCP with RST and UDP with ICMP port unreachable.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/service/service.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

constexpr const char* kVip = "10.96.0.10";

template <typename K, typename V>
std::unique_ptr<bpf::KernelMap<K, V>> pinned(const std::string& dir, const char* name) {
  auto m = bpf::KernelMap<K, V>::fromPinned(dir + "/" + name);
  EXPECT_TRUE(m.ok()) << name << ": " << m.error().toString();
  return m.ok() ? std::move(*m) : nullptr;
}

class ServicePacketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto topo = testing::Topology::create(203);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    uint16_t id = 1;
    for (auto [name, ip] : {std::pair{"client", "10.203.0.11"}, std::pair{"b1", "10.203.0.21"},
                            std::pair{"b2", "10.203.0.22"}}) {
      auto p = topo_->addPod(name, ip);
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
    services_ = pinned<lb4_key, lb4_service>(pin, "cilium_lb4_services");
    slots_ = pinned<lb4_slot_key, uint32_t>(pin, "cilium_lb4_slots");
    backends_ = pinned<uint32_t, lb4_backend>(pin, "cilium_lb4_backends");
    revnat_ = pinned<uint32_t, lb4_reverse_nat>(pin, "cilium_lb4_reverse_nat");
    ASSERT_TRUE(services_ && slots_ && backends_ && revnat_);
    mgr_ = std::make_unique<service::Manager>(
        service::ServiceMaps{services_.get(), slots_.get(), backends_.get(), revnat_.get()},
        service::ManagerConfig{});
  }

  void program(service::Protocol proto, uint16_t port, std::vector<const char*> pods) {
    service::Service s;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse(kVip);
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = port;
    for (const char* name : pods)
      p.backends.push_back(
          {*IpAddr::parse(pods_[name].ip), 8080, service::BackendState::kActive, true});
    s.ports.push_back(p);
    ASSERT_TRUE(mgr_->upsertService(s).ok());
  }

  std::unique_ptr<testing::Topology> topo_;
  std::map<std::string, testing::Pod> pods_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::unique_ptr<bpf::KernelMap<lb4_key, lb4_service>> services_;
  std::unique_ptr<bpf::KernelMap<lb4_slot_key, uint32_t>> slots_;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb4_backend>> backends_;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb4_reverse_nat>> revnat_;
  std::unique_ptr<service::Manager> mgr_;
};

TEST_F(ServicePacketTest, TcpThroughClusterIpUsesBothBackendsAndCarriesData) {
  auto l1 = testing::listenTcp(pods_["b1"].netns, pods_["b1"].ip, 8080);
  auto l2 = testing::listenTcp(pods_["b2"].netns, pods_["b2"].ip, 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  program(service::Protocol::kTcp, 80, {"b1", "b2"});
  std::map<int, int> hits;
  for (int i = 0; i < 30; i++) {
    auto c = testing::connectTcp(pods_["client"].netns, kVip, 80);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    pollfd pfds[2] = {{l1->get(), POLLIN, 0}, {l2->get(), POLLIN, 0}};
    ASSERT_GT(::poll(pfds, 2, 3000), 0);
    int lfd = (pfds[0].revents & POLLIN) ? l1->get() : l2->get();
    hits[lfd == l1->get() ? 1 : 2]++;
    auto s = testing::acceptTcp(lfd);
    ASSERT_TRUE(s.ok());
    // Data both ways, 64 KiB from the client: checksums of the translated segments hold.
    std::string big(64 * 1024, 'x');
    ASSERT_TRUE(testing::sendAll(c->get(), big).ok());
    auto got = testing::recvExactly(s->get(), big.size());
    ASSERT_TRUE(got.ok()) << got.error().toString();
    ASSERT_TRUE(testing::sendAll(s->get(), "pong").ok());
    auto back = testing::recvExactly(c->get(), 4);
    ASSERT_TRUE(back.ok()) << back.error().toString();
  }
  EXPECT_GT(hits[1], 0);
  EXPECT_GT(hits[2], 0);
}

TEST_F(ServicePacketTest, UdpRepliesComeFromTheVip) {
  auto s1 = testing::bindUdp(pods_["b1"].netns, pods_["b1"].ip, 8080);
  auto c = testing::bindUdp(pods_["client"].netns, pods_["client"].ip, 0);
  ASSERT_TRUE(s1.ok() && c.ok());
  program(service::Protocol::kUdp, 53, {"b1"});
  ASSERT_TRUE(testing::sendUdp(c->get(), kVip, 53, "q").ok());
  std::string from;
  uint16_t from_port = 0;
  auto q = testing::recvUdp(s1->get(), std::chrono::seconds(3), &from, &from_port);
  ASSERT_TRUE(q.ok()) << q.error().toString();
  EXPECT_EQ(from, pods_["client"].ip);
  ASSERT_TRUE(testing::sendUdp(s1->get(), from, from_port, "a").ok());
  std::string rfrom;
  uint16_t rport = 0;
  auto a = testing::recvUdp(c->get(), std::chrono::seconds(3), &rfrom, &rport);
  ASSERT_TRUE(a.ok()) << a.error().toString();
  EXPECT_EQ(rfrom, kVip);
  EXPECT_EQ(rport, 53);
}

TEST_F(ServicePacketTest, NoBackendIsRefusedNotDropped) {
  program(service::Protocol::kTcp, 80, {});
  auto c = testing::connectTcp(pods_["client"].netns, kVip, 80, std::chrono::seconds(3));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos)
      << "an RST, not a timeout: " << c.error().toString();

  program(service::Protocol::kUdp, 53, {});
  // A connected UDP socket reports the ICMP port unreachable as ECONNREFUSED.
  auto fd = runInNetnsValue<UniqueFd>(pods_["client"].netns, []() -> Result<UniqueFd> {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return errnoError(errno, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(53);
    inet_pton(AF_INET, kVip, &a.sin_addr);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      return errnoError(errno, "connect");
    return s;
  });
  ASSERT_TRUE(fd.ok()) << fd.error().toString();
  ASSERT_EQ(::send(fd->get(), "q", 1, 0), 1);
  pollfd p{fd->get(), POLLIN | POLLERR, 0};
  ASSERT_GT(::poll(&p, 1, 3000), 0) << "no answer: dropped silently";
  char buf[8];
  EXPECT_EQ(::recv(fd->get(), buf, sizeof(buf), 0), -1);
  EXPECT_EQ(errno, ECONNREFUSED);
}

}  // namespace
}  // namespace cilium
