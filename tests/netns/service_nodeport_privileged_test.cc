// netns tier: NodePort from outside the cluster with real traffic through bpf_host on the node's
// native device. An "outside" client and a "remote node" (holding a remote backend) share an L2
// segment (a bridge in a "fabric" namespace) with the node's device:
//
//   outside 192.168.77.100 --+
//   remote  192.168.77.2   --+-- br0 (fabric) -- ext0 192.168.77.1 [node] -- lxc -- pod b1
//     (backend 10.250.0.5 on its lo)
//
// Checked as the client and the backends see it: a local backend gets the client's address, a
// remote one the node's (SNAT) and both answer through the NodePort; externalTrafficPolicy=Local
// keeps outside clients on local backends; a NodePort without backends refuses. The IPv6 runs
// do the same over the fabric's IPv6 addresses (2001:db8::/64, remote backend fd00:250::5) to
// the dual-stack pod's IPv6 address (lib/nodeport6.h).
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/bpf/attach.h"
#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/conntrack.h"
#include "agent/datapath/datapath.h"
#include "agent/service/host_datapath.h"
#include "agent/service/service.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/fabric.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/service_maps.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using testing::Fabric;
using testing::Family;
constexpr const char* kNodeIp = Fabric::kNodeIp;
constexpr const char* kClientIp = Fabric::kClientIp;
constexpr const char* kRemoteBackend = Fabric::kRemoteBackend;
constexpr uint16_t kNodePort = 30080;

Status ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runChecked(argv);
  if (!r.ok()) return r.error();
  return okStatus();
}

// The peer IP of an accepted socket.
std::string peerOf(int fd) { return testing::socketIp(fd); }

// One connection from `netns` to the NodePort on `node_ip`, accepted on `l1` or `l2` (-1: none);
// data both ways. Returns which listener got it (1 or 2) and the client address the backend saw.
std::pair<int, std::string> connectOnce(const std::string& netns, const std::string& node_ip,
                                        int l1, int l2) {
  auto c = testing::connectTcp(netns, node_ip, kNodePort);
  EXPECT_TRUE(c.ok()) << c.error().toString();
  if (!c.ok()) return {0, ""};
  pollfd pfds[2] = {{l1, POLLIN, 0}, {l2, POLLIN, 0}};
  int n = ::poll(pfds, l2 >= 0 ? 2 : 1, 3000);
  EXPECT_GT(n, 0);
  if (n <= 0) return {0, ""};
  int which = (pfds[0].revents & POLLIN) ? 1 : 2;
  auto s = testing::acceptTcp(which == 1 ? l1 : l2);
  EXPECT_TRUE(s.ok());
  if (!s.ok()) return {0, ""};
  std::string big(32 * 1024, 'x');
  EXPECT_TRUE(testing::sendAll(c->get(), big).ok());
  auto got = testing::recvExactly(s->get(), big.size());
  EXPECT_TRUE(got.ok()) << got.error().toString();
  EXPECT_TRUE(testing::sendAll(s->get(), "pong").ok());
  auto back = testing::recvExactly(c->get(), 4);
  EXPECT_TRUE(back.ok()) << "the reply reaches the client through the NodePort: "
                         << back.error().toString();
  return {which, peerOf(s->get())};
}

// How bpf_host is attached to ext0, and which family the test speaks.
struct NodePortCase {
  service::XdpMode xdp;
  Family family;
};

class ServiceNodePortTest : public ::testing::TestWithParam<NodePortCase> {
 protected:
  void SetUp() override {
    auto topo = testing::Topology::create(204);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    // IPv6 runs: a dual-stack pod, IPv6 on the node and across the fabric.
    if (v6()) {
      ASSERT_TRUE(topo_->enableNodeIpv6().ok());
    }
    auto b1 = topo_->addPod("b1", "10.204.0.21", v6() ? "fd00:204::21" : "");
    ASSERT_TRUE(b1.ok()) << b1.error().toString();
    b1_ = *b1;
    auto built = net_.build(*topo_);
    ASSERT_TRUE(built.ok()) << built.error().toString();
    if (v6()) {
      auto on = net_.enableIpv6(*topo_);
      ASSERT_TRUE(on.ok()) << on.error().toString();
    }
    if (GetParam().xdp == service::XdpMode::kNative) {
      auto wire = net_.wireForDriverXdp();
      ASSERT_TRUE(wire.ok()) << wire.error().toString();
    }

    auto dp = datapath::Datapath::load({*topo_->pinDir()});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    // Open policy: these tests are about translation; world may reach the pod.
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    ASSERT_TRUE(testing::programEndpoint(maps, b1_, 1, 1001).ok());
    ASSERT_TRUE(maps.policy->replace(1, open).ok());
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    ASSERT_TRUE(
        runInNetns(topo_->nodeNetns(), [&] { return dp_->attachEndpoint(b1_.host_ifindex); }).ok());

    std::string pin = *topo_->pinDir();
    auto host = service::HostDatapath::load(pin);
    ASSERT_TRUE(host.ok()) << host.error().toString();
    host_ = std::move(*host);
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&]() -> Status {
                  int ifindex = static_cast<int>(::if_nametoindex("ext0"));
                  if (ifindex == 0) return errnoError(errno, "ext0");
                  std::optional<IpAddr> node6;
                  if (v6()) node6 = *IpAddr::parse(Fabric::kNodeIp6);
                  return host_->attachDevice(ifindex, *IpAddr::parse(Fabric::kNodeIp),
                                             GetParam().xdp, node6);
                }).ok());

    auto lb = testing::openServiceMaps(pin);
    ASSERT_TRUE(lb.ok()) << lb.error().toString();
    lb_ = std::move(*lb);
    service::ManagerConfig cfg{{*IpAddr::parse(Fabric::kNodeIp)}};
    if (v6()) cfg.node_ips.push_back(*IpAddr::parse(Fabric::kNodeIp6));
    mgr_ = std::make_unique<service::Manager>(lb_.maps(), cfg);
  }

  bool v6() const { return GetParam().family == Family::kV6; }
  // The addresses of the test's family.
  std::string nodeIp() const { return v6() ? Fabric::kNodeIp6 : Fabric::kNodeIp; }
  std::string clientIp() const { return v6() ? Fabric::kClientIp6 : Fabric::kClientIp; }
  std::string remoteIp() const { return v6() ? Fabric::kRemoteBackend6 : Fabric::kRemoteBackend; }
  std::string localIp() const { return v6() ? b1_.ip6 : b1_.ip; }

  void program(service::Protocol proto, std::vector<service::Backend> bes,
               service::TrafficPolicy etp = service::TrafficPolicy::kCluster) {
    service::Service s;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse("10.96.0.10");
    if (v6()) s.more_cluster_ips = {*IpAddr::parse("fd00:96::10")};
    s.ext_traffic_policy = etp;
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = 80;
    p.node_port = kNodePort;
    p.backends = std::move(bes);
    s.ports.push_back(p);
    auto st = mgr_->upsertService(s);
    ASSERT_TRUE(st.ok()) << st.error().toString();
  }
  service::Backend localBackend() {
    return {*IpAddr::parse(localIp()), 8080, service::BackendState::kActive, true};
  }
  service::Backend remoteBackend() {
    return {*IpAddr::parse(remoteIp()), 8080, service::BackendState::kActive, false};
  }

  // Packets any program dropped, whatever the reason.
  uint64_t drops() {
    auto m = dp_->readMetrics();
    EXPECT_TRUE(m.ok());
    uint64_t n = 0;
    if (m.ok())
      for (const auto& e : m.value())
        if (e.reason != REASON_FORWARDED) n += e.packets;
    return n;
  }
  // Packets cil_xdp_entry translated and sent back out itself (the SERVICE direction).
  uint64_t xdpForwarded() {
    auto m = dp_->readMetrics();
    EXPECT_TRUE(m.ok());
    uint64_t n = 0;
    if (m.ok())
      for (const auto& e : m.value())
        if (e.reason == REASON_FORWARDED && e.dir == METRIC_SERVICE) n += e.packets;
    return n;
  }
  // Whether XDP translates this test's connections (both families).
  bool xdp() const { return GetParam().xdp != service::XdpMode::kDisabled; }
  std::pair<int, std::string> connectOnce(int l1, int l2) {
    return ::cilium::connectOnce(net_.outsideNetns(), nodeIp(), l1, l2);
  }

  std::unique_ptr<testing::Topology> topo_;
  testing::Pod b1_;
  testing::Fabric net_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::unique_ptr<service::HostDatapath> host_;
  testing::ServiceMapSet lb_;
  std::unique_ptr<service::Manager> mgr_;
};

TEST_P(ServiceNodePortTest, OutsideReachesLocalBackendWithItsOwnAddress) {
  auto l = testing::listenTcp(b1_.netns, localIp(), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, {localBackend()});
  for (int i = 0; i < 5; i++) {
    auto [which, peer] = connectOnce(l->get(), -1);
    EXPECT_EQ(which, 1);
    EXPECT_EQ(peer, clientIp()) << "no SNAT towards a local backend";
  }
  EXPECT_EQ(drops(), 0u);
  EXPECT_EQ(xdpForwarded(), 0u) << "local backends are tc's (bpf_lxc policy)";
}

// Pods of this node reach the NodePort on the node's address too, through the per-packet LB in
// bpf_lxc (these test sockets are in no socket-LB cgroup): a client pod keeps its address, and
// the backend reaching its own NodePort is hairpinned.
TEST_P(ServiceNodePortTest, PodsReachTheNodePortOnTheNodeAddress) {
  auto c = topo_->addPod("c", "10.204.0.31", v6() ? "fd00:204::31" : "");
  ASSERT_TRUE(c.ok()) << c.error().toString();
  auto maps = dp_->maps();
  ASSERT_TRUE(testing::programEndpoint(maps, *c, 2, 1002).ok());
  std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                          {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
  ASSERT_TRUE(maps.policy->replace(2, open).ok());
  ASSERT_TRUE(
      runInNetns(topo_->nodeNetns(), [&] { return dp_->attachEndpoint(c->host_ifindex); }).ok());
  auto l = testing::listenTcp(b1_.netns, localIp(), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, {localBackend()});

  auto [which, peer] = ::cilium::connectOnce(c->netns, nodeIp(), l->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(peer, v6() ? c->ip6 : c->ip) << "a pod client keeps its address";
  std::tie(which, peer) = ::cilium::connectOnce(b1_.netns, nodeIp(), l->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(peer, v6() ? "fe80::1" : "169.254.42.1") << "hairpin";
  EXPECT_EQ(drops(), 0u);
}

TEST_P(ServiceNodePortTest, OutsideReachesRemoteBackendThroughSnat) {
  auto l = testing::listenTcp(net_.remoteNetns(), remoteIp(), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, {remoteBackend()});
  for (int i = 0; i < 5; i++) {
    auto [which, peer] = connectOnce(l->get(), -1);
    EXPECT_EQ(which, 1);
    EXPECT_EQ(peer, nodeIp()) << "SNAT to the node, so replies come back through it";
  }
  EXPECT_EQ(drops(), 0u) << "a dropped segment costs a retransmission, not a failure";
  // 5 connections of 32 KiB each way and back: dozens of segments both ways. The first SYN may
  // go through tc while the neighbour is unresolved; the rest is XDP's when it is on.
  if (xdp())
    EXPECT_GT(xdpForwarded(), 40u);
  else
    EXPECT_EQ(xdpForwarded(), 0u);
}

// The SNAT mapping of a connection lives as long as the connection: closing it (FIN both ways,
// seen by whichever program translates it: tc or XDP) moves its service conntrack entry to the
// close timeout, and the NAT GC then frees the node port; an open connection keeps its mapping
// and keeps working.
TEST_P(ServiceNodePortTest, ClosedConnectionsFreeTheirNodePorts) {
  auto l = testing::listenTcp(net_.remoteNetns(), remoteIp(), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, {remoteBackend()});
  auto open = testing::connectTcp(net_.outsideNetns(), nodeIp(), kNodePort);
  ASSERT_TRUE(open.ok()) << open.error().toString();
  auto served = testing::acceptTcp(l->get());
  ASSERT_TRUE(served.ok()) << served.error().toString();
  for (int i = 0; i < 3; i++) connectOnce(l->get(), -1);  // both ends close when it returns

  constexpr uint16_t kClosing = CT_F_RX_CLOSING | CT_F_TX_CLOSING;
  auto closing = [&] {
    size_t n = 0;
    auto count = [&](const auto& k, const ct_entry& e) {
      if (k.flags == CT_KEY_SERVICE && (e.flags & kClosing) == kClosing) n++;
      return true;
    };
    EXPECT_TRUE(
        (v6() ? dp_->maps().ct6_tcp->forEach(count) : dp_->maps().ct_tcp->forEach(count)).ok());
    return n;
  };
  ASSERT_TRUE(testing::eventually([&] { return closing() == 3; }))
      << "the service entries of the closed connections saw FIN both ways: " << closing();
  auto natEntries = [&] {
    size_t n = 0;
    auto count = [&](const auto&, const auto&) { return ++n, true; };
    EXPECT_TRUE((v6() ? host_->nat6().forEach(count) : host_->nat().forEach(count)).ok());
    return n;
  };
  EXPECT_EQ(natEntries(), 8u) << "two entries per connection";

  // As the agent's GC would run once the close timeout has passed.
  auto gc = host_->collectNat(datapath::monotonicSeconds() + CT_TIMEOUT_TCP_CLOSE + 1);
  ASSERT_TRUE(gc.ok()) << gc.error().toString();
  EXPECT_EQ(gc->deleted, 6u);
  EXPECT_EQ(natEntries(), 2u) << "the open connection keeps its node port";
  EXPECT_TRUE(testing::sendAll(open->get(), "still").ok());
  auto got = testing::recvExactly(served->get(), 5);
  EXPECT_TRUE(got.ok()) << got.error().toString();
  EXPECT_TRUE(testing::sendAll(served->get(), "here").ok());
  auto back = testing::recvExactly(open->get(), 4);
  EXPECT_TRUE(back.ok()) << "replies still translated: " << back.error().toString();
}

// More connections to one remote backend than there are node ports (4535), each reset as soon
// as it is established: a finished connection's node port is taken over at once, so none fails
// and nothing is dropped, long before the NAT GC would have freed anything.
TEST_P(ServiceNodePortTest, ChurnToOneBackendDoesNotRunOutOfNodePorts) {
  auto l = testing::listenTcp(net_.remoteNetns(), remoteIp(), 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  program(service::Protocol::kTcp, {remoteBackend()});
  constexpr int kConnections = NAT_PORT_MAX - NAT_PORT_MIN + 1 + 1500;
  int failed = 0;
  auto st = runInNetns(net_.outsideNetns(), [&]() -> Status {
    sockaddr_storage a{};
    socklen_t alen = 0;
    if (v6()) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(kNodePort);
      ::inet_pton(AF_INET6, Fabric::kNodeIp6, &a6->sin6_addr);
      alen = sizeof(*a6);
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
      a4->sin_family = AF_INET;
      a4->sin_port = htons(kNodePort);
      ::inet_pton(AF_INET, Fabric::kNodeIp, &a4->sin_addr);
      alen = sizeof(*a4);
    }
    linger rst{1, 0};
    timeval limit{2, 0};  // a lost SYN would cost 1 s: fail instead of hiding it
    for (int i = 0; i < kConnections; i++) {
      UniqueFd fd(::socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) return errnoError(errno, "socket");
      ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
      ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), alen) != 0 && ++failed > 10)
        break;  // exhausted: enough to know, no need to wait out the rest
      // Accept and drop the server side now and then so its backlog (128) never fills.
      if (i % 64 == 63)
        while (testing::acceptTcp(l->get(), std::chrono::milliseconds(0)).ok()) {
        }
    }
    return okStatus();
  });
  ASSERT_TRUE(st.ok()) << st.error().toString();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(drops(), 0u) << "no DROP_NAT_NO_MAPPING";
}

TEST_P(ServiceNodePortTest, BothBackendsUsedWithClusterPolicy) {
  auto l1 = testing::listenTcp(b1_.netns, localIp(), 8080);
  auto l2 = testing::listenTcp(net_.remoteNetns(), remoteIp(), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  program(service::Protocol::kTcp, {localBackend(), remoteBackend()});
  std::map<int, int> hits;
  for (int i = 0; i < 24 && (hits[1] == 0 || hits[2] == 0); i++) {
    auto [which, peer] = connectOnce(l1->get(), l2->get());
    hits[which]++;
    EXPECT_EQ(peer, which == 1 ? clientIp() : nodeIp());
  }
  EXPECT_GT(hits[1], 0);
  EXPECT_GT(hits[2], 0);
  EXPECT_EQ(drops(), 0u);
}

TEST_P(ServiceNodePortTest, ExternalTrafficPolicyLocalKeepsClientAddressAndLocalBackends) {
  auto l1 = testing::listenTcp(b1_.netns, localIp(), 8080);
  auto l2 = testing::listenTcp(net_.remoteNetns(), remoteIp(), 8080);
  ASSERT_TRUE(l1.ok() && l2.ok());
  program(service::Protocol::kTcp, {localBackend(), remoteBackend()},
          service::TrafficPolicy::kLocal);
  for (int i = 0; i < 12; i++) {
    auto [which, peer] = connectOnce(l1->get(), l2->get());
    EXPECT_EQ(which, 1) << "outside clients only get local backends";
    EXPECT_EQ(peer, clientIp()) << "client address preserved";
  }
}

TEST_P(ServiceNodePortTest, NoBackendIsRefusedToTheOutside) {
  // Node sockets on the NodePort: only bpf_host can refuse before the stack delivers to them.
  auto node_tcp = testing::listenTcp(topo_->nodeNetns(), nodeIp(), kNodePort);
  auto node_udp = testing::bindUdp(topo_->nodeNetns(), nodeIp(), kNodePort);
  ASSERT_TRUE(node_tcp.ok() && node_udp.ok());
  program(service::Protocol::kTcp, {});
  auto c = testing::connectTcp(net_.outsideNetns(), nodeIp(), kNodePort, std::chrono::seconds(3));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refused"), std::string::npos)
      << "an RST, not a timeout: " << c.error().toString();

  program(service::Protocol::kUdp, {});
  auto refused = testing::expectUdpRefused(net_.outsideNetns(), nodeIp(), kNodePort);
  EXPECT_TRUE(refused.ok()) << "a NodePort without backends: " << refused.error().toString();
}

// A UDP backend with nothing listening answers ICMP port unreachable, and the client learns it
// as ECONNREFUSED on the socket it connected to the NodePort: the error is translated like the
// datagram it quotes, from a remote backend (SNATed, ingress) and from a local one (egress).
TEST_P(ServiceNodePortTest, BackendsRefusalsReachTheClient) {
  program(service::Protocol::kUdp, {remoteBackend()});
  auto refused = testing::expectUdpRefused(net_.outsideNetns(), nodeIp(), kNodePort);
  EXPECT_TRUE(refused.ok()) << "a remote backend's port unreachable: "
                            << refused.error().toString();
  program(service::Protocol::kUdp, {localBackend()});
  refused = testing::expectUdpRefused(net_.outsideNetns(), nodeIp(), kNodePort);
  EXPECT_TRUE(refused.ok()) << "a local backend's port unreachable: " << refused.error().toString();
}

// IPv6 with native XDP attached: XDP passes IPv6 on to tc, which translates it.
INSTANTIATE_TEST_SUITE_P(Xdp, ServiceNodePortTest,
                         ::testing::Values(NodePortCase{service::XdpMode::kDisabled, Family::kV4},
                                           NodePortCase{service::XdpMode::kNative, Family::kV4},
                                           NodePortCase{service::XdpMode::kGeneric, Family::kV4},
                                           NodePortCase{service::XdpMode::kDisabled, Family::kV6},
                                           NodePortCase{service::XdpMode::kNative, Family::kV6}),
                         [](const auto& info) {
                           std::string mode = info.param.xdp == service::XdpMode::kNative ? "Native"
                                              : info.param.xdp == service::XdpMode::kGeneric
                                                  ? "Generic"
                                                  : "TcOnly";
                           return mode + (info.param.family == Family::kV6 ? "IPv6" : "");
                         });

// The agent: `devices` attaches bpf_host and makes the device's address a NodePort address; a
// NodePort frontend made through the REST API works from outside, keeps working while the agent
// is down (pinned links and maps), and a restart without the device detaches it.
class AgentNodePortTest : public testing::AgentNodeTest {
 protected:
  AgentNodePortTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  // PUT /v1/service/{id}; the HTTP status.
  int putService(int id, const std::string& body) {
    auto r = runChecked({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                         sock_, "-X", "PUT", "-H", "Content-Type: application/json", "--data", body,
                         fmt::format("http://localhost/v1/service/{}", id)});
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? std::atoi(r->c_str()) : 0;
  }
  std::vector<uint32_t> ingressPrograms(const std::string& dev = "ext0") {
    auto ids = runInNetnsValue<std::vector<uint32_t>>(
        topo_->nodeNetns(), [&]() -> Result<std::vector<uint32_t>> {
          int ifindex = static_cast<int>(::if_nametoindex(dev.c_str()));
          if (ifindex == 0) return errnoError(errno, dev);
          return bpf::tcxProgramIds(ifindex, bpf::TcDirection::kIngress);
        });
    EXPECT_TRUE(ids.ok()) << ids.error().toString();
    return ids.ok() ? *ids : std::vector<uint32_t>{};
  }
  // The id of the driver-mode XDP program on `dev`, 0 for none.
  uint32_t xdpProgram(const std::string& dev = "ext0") {
    auto id = runInNetnsValue<uint32_t>(topo_->nodeNetns(), [&]() -> Result<uint32_t> {
      int ifindex = static_cast<int>(::if_nametoindex(dev.c_str()));
      if (ifindex == 0) return errnoError(errno, dev);
      uint32_t prog = 0;
      int err = ::bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &prog);
      if (err != 0) return errnoError(-err, "query XDP of " + dev);
      return prog;
    });
    EXPECT_TRUE(id.ok()) << id.error().toString();
    return id.ok() ? *id : 0;
  }
  std::string nodePortBody(const char* backend, const char* node = kNodeIp, int id = 7) {
    return fmt::format(
        R"({{"id":{},"frontend-address":{{"ip":"{}","port":{},"protocol":"TCP"}},)"
        R"("backend-addresses":[{{"ip":"{}","port":8080}}],"flags":{{"type":"NodePort"}}}})",
        id, node, kNodePort, backend);
  }
};

TEST_F(AgentNodePortTest, DevicesServeNodePortAcrossRestarts) {
  testing::Fabric net;
  ASSERT_TRUE(net.build(*topo_).ok());
  auto l = testing::listenTcp(net.remoteNetns(), kRemoteBackend, 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();

  Process* agent = node_->startReady("agent1", {"--devices=ext0"});
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(ingressPrograms().size(), 1u);
  ASSERT_EQ(putService(7, nodePortBody(kRemoteBackend)), 201) << node_->log("agent1");
  auto [which, peer] = connectOnce(net.outsideNetns(), kNodeIp, l->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(peer, kNodeIp);

  // Down: the pinned links and maps keep serving.
  EXPECT_EQ(agent->stop(), 0) << node_->log("agent1");
  std::tie(which, peer) = connectOnce(net.outsideNetns(), kNodeIp, l->get(), -1);
  EXPECT_EQ(which, 1) << "NodePort works while the agent is down";

  // Restarted with the same device: the programs are swapped in place, not stacked.
  agent = node_->startReady("agent2", {"--devices=ext0"});
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(ingressPrograms().size(), 1u);
  std::tie(which, peer) = connectOnce(net.outsideNetns(), kNodeIp, l->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(agent->stop(), 0);

  // Restarted without it: detached.
  agent = node_->startReady("agent3", {});
  ASSERT_NE(agent, nullptr);
  EXPECT_TRUE(ingressPrograms().empty()) << "a device no longer configured is detached";
}

// enable-ipv6: the device's IPv6 address is its IPv6 SNAT address, so an IPv6 NodePort reaches a
// remote backend (SNATed to that address) next to the IPv4 one; a device without a global IPv6
// address serves IPv4 only and the agent says so rather than failing.
TEST_F(AgentNodePortTest, DualStackDeviceServesIpv6NodePort) {
  testing::Fabric net;
  ASSERT_TRUE(net.build(*topo_).ok());
  ASSERT_TRUE(net.enableIpv6(*topo_).ok());
  auto l4 = testing::listenTcp(net.remoteNetns(), kRemoteBackend, 8080);
  auto l6 = testing::listenTcp(net.remoteNetns(), Fabric::kRemoteBackend6, 8080);
  ASSERT_TRUE(l4.ok() && l6.ok());

  Process* agent = node_->startReady(
      "agent1", {"--devices=ext0", "--enable-ipv6=true", "--ipv6-range=fd00:204::/112"});
  ASSERT_NE(agent, nullptr) << node_->log("agent1");
  EXPECT_NE(node_->log("agent1").find(fmt::format("snat6={}", Fabric::kNodeIp6)),
            std::string::npos)
      << node_->log("agent1");
  ASSERT_EQ(putService(7, nodePortBody(kRemoteBackend)), 201) << node_->log("agent1");
  ASSERT_EQ(putService(8, nodePortBody(Fabric::kRemoteBackend6, Fabric::kNodeIp6, 8)), 201)
      << node_->log("agent1");
  auto [which, peer] = connectOnce(net.outsideNetns(), Fabric::kNodeIp6, l6->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(peer, Fabric::kNodeIp6) << "SNAT to the device's IPv6 address";
  std::tie(which, peer) = connectOnce(net.outsideNetns(), kNodeIp, l4->get(), -1);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(peer, kNodeIp);
  EXPECT_EQ(agent->stop(), 0) << node_->log("agent1");

  // Without a global IPv6 address on the device: IPv4 NodePort only, said in the log.
  std::string node = topo_->nodeNetns().substr(std::string("/run/netns/").size());
  ASSERT_TRUE(ip({"-n", node, "-6", "addr", "del", std::string(Fabric::kNodeIp6) + "/64", "dev",
                  "ext0"})
                  .ok());
  agent = node_->startReady(
      "agent2", {"--devices=ext0", "--enable-ipv6=true", "--ipv6-range=fd00:204::/112"});
  ASSERT_NE(agent, nullptr) << node_->log("agent2");
  EXPECT_NE(node_->log("agent2").find("no IPv6 NodePort on it"), std::string::npos)
      << node_->log("agent2");
  std::tie(which, peer) = connectOnce(net.outsideNetns(), kNodeIp, l4->get(), -1);
  EXPECT_EQ(which, 1) << "IPv4 NodePort still served";
}

// bpf-lb-acceleration=native: the agent attaches cil_xdp_entry in driver mode next to the tc
// programs, XDP finishes the remote-backend connections, and turning it off detaches it.
TEST_F(AgentNodePortTest, XdpAccelerationServesRemoteBackends) {
  testing::Fabric net;
  ASSERT_TRUE(net.build(*topo_).ok());
  ASSERT_TRUE(net.wireForDriverXdp().ok());
  auto l = testing::listenTcp(net.remoteNetns(), kRemoteBackend, 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();

  Process* agent = node_->startReady("agent1", {"--devices=ext0", "--bpf-lb-acceleration=native"});
  ASSERT_NE(agent, nullptr);
  EXPECT_NE(xdpProgram(), 0u);
  EXPECT_EQ(ingressPrograms().size(), 1u) << "tc stays: XDP passes what it cannot finish";
  ASSERT_EQ(putService(7, nodePortBody(kRemoteBackend)), 201) << node_->log("agent1");
  for (int i = 0; i < 3; i++) {
    auto [which, peer] = connectOnce(net.outsideNetns(), kNodeIp, l->get(), -1);
    EXPECT_EQ(which, 1);
    EXPECT_EQ(peer, kNodeIp);
  }
  auto metrics = runChecked({CILIUM_DBG_BINARY, "-H", sock_, "bpf", "metrics", "list"});
  ASSERT_TRUE(metrics.ok()) << metrics.error().toString();
  EXPECT_NE(metrics->find("SERVICE"), std::string::npos)
      << "XDP's translations are counted in the SERVICE direction:\n"
      << *metrics;
  // A connection that stays open across the restart below.
  auto kept = testing::connectTcp(net.outsideNetns(), kNodeIp, kNodePort);
  ASSERT_TRUE(kept.ok()) << kept.error().toString();
  auto served = testing::acceptTcp(l->get());
  ASSERT_TRUE(served.ok()) << served.error().toString();
  EXPECT_EQ(agent->stop(), 0);

  agent = node_->startReady("agent2", {"--devices=ext0", "--prometheus-serve-addr=127.0.0.1:9962"});
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(xdpProgram(), 0u) << "acceleration turned off detaches XDP";
  auto [which, peer] = connectOnce(net.outsideNetns(), kNodeIp, l->get(), -1);
  EXPECT_EQ(which, 1) << "tc alone serves the same connections";
  // The NAT GC's first run, at the start, counted the mappings still in use (the kept
  // connection's at least): the NAT map's pressure is exported.
  std::string needle = "cilium_bpf_map_pressure{map_name=\"cilium_snat_v4_external\"} ";
  std::string scraped;
  EXPECT_TRUE(testing::eventually([&] {
    auto r = topo_->exec(topo_->nodeNetns(), {"curl", "-sf", "http://127.0.0.1:9962/metrics"});
    scraped = r.ok() ? r->out : "";
    auto at = scraped.find(needle);
    return at != std::string::npos && std::stod(scraped.substr(at + needle.size())) > 0;
  })) << scraped;
  EXPECT_TRUE(testing::sendAll(kept->get(), "x").ok());
  EXPECT_TRUE(testing::recvExactly(served->get(), 1).ok()) << "kept across the restart";
}

// A device whose driver has no XDP (a bridge; this kernel has no dummy devices): native fails the
// start naming the device, best-effort serves it with tc only.
TEST_F(AgentNodePortTest, BestEffortAccelerationFallsBackToTc) {
  std::string node = topo_->nodeNetns().substr(std::string("/run/netns/").size());
  ASSERT_TRUE(ip({"-n", node, "link", "add", "dum0", "type", "bridge"}).ok());
  ASSERT_TRUE(ip({"-n", node, "addr", "add", "192.168.88.1/24", "dev", "dum0"}).ok());
  ASSERT_TRUE(ip({"-n", node, "link", "set", "dum0", "up"}).ok());

  auto p = node_->start("native", {"--devices=dum0", "--bpf-lb-acceleration=native"});
  ASSERT_TRUE(p.ok());
  auto code = (*p)->wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_NE(*code, 0);
  EXPECT_NE(node_->log("native").find("dum0"), std::string::npos) << node_->log("native");

  Process* agent =
      node_->startReady("best-effort", {"--devices=dum0", "--bpf-lb-acceleration=best-effort"});
  ASSERT_NE(agent, nullptr) << node_->log("best-effort");
  EXPECT_EQ(ingressPrograms("dum0").size(), 1u);
  EXPECT_EQ(xdpProgram("dum0"), 0u);
  EXPECT_NE(node_->log("best-effort").find("without XDP acceleration"), std::string::npos)
      << node_->log("best-effort");
}

// enable-bpf-masquerade through the agent: a pod made through the API reaches an outside host
// (which has no route to the pods) from the node's address; cilium-dbg shows the pod CIDR as
// the non-masquerade set and the mappings.
TEST_F(AgentNodePortTest, BpfMasqueradeOfAPodToTheOutside) {
  testing::Fabric net;
  ASSERT_TRUE(net.build(*topo_).ok());
  auto l = testing::listenTcp(net.outsideNetns(), kClientIp, 8080);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  Process* agent = node_->startReady("agent", {"--devices=ext0", "--enable-bpf-masquerade"});
  ASSERT_NE(agent, nullptr);
  auto pod = topo_->addPod("m1", "10.200.0.31");
  ASSERT_TRUE(pod.ok()) << pod.error().toString();
  api::EndpointChangeRequest req;
  req.container_id = "ctr-m1";
  req.container_interface_name = "eth0";
  req.interface_name = pod->host_ifname;
  req.interface_index = pod->host_ifindex;
  req.mac = pod->mac;
  req.host_mac = pod->host_mac;
  req.addressing = api::AddressPair{};
  req.addressing->ipv4 = pod->ip;
  req.k8s_namespace = "default";
  req.k8s_pod_name = "m1";
  req.netns = pod->netns;
  req.labels = {"k8s:app=m1"};
  auto put = node_->client().putEndpoint(*api::parseEndpointRef("container-id:ctr-m1"), req);
  ASSERT_TRUE(put.ok()) << put.error().toString() << node_->log("agent");

  auto c = testing::connectTcp(pod->netns, kClientIp, 8080);
  ASSERT_TRUE(c.ok()) << c.error().toString() << node_->log("agent");
  auto s = testing::acceptTcp(l->get());
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ(peerOf(s->get()), kNodeIp) << "the outside host sees the node's address";
  ASSERT_TRUE(testing::sendAll(s->get(), "pong").ok());
  EXPECT_TRUE(testing::recvExactly(c->get(), 4).ok());

  auto nat = runChecked({CILIUM_DBG_BINARY, "-H", sock_, "bpf", "nat", "list"});
  ASSERT_TRUE(nat.ok()) << nat.error().toString();
  EXPECT_NE(nat->find("TCP OUT 10.200.0.31:"), std::string::npos) << *nat;
  EXPECT_NE(nat->find("Masquerade"), std::string::npos) << *nat;
  auto masq = runChecked({CILIUM_DBG_BINARY, "-H", sock_, "bpf", "ipmasq", "list"});
  ASSERT_TRUE(masq.ok()) << masq.error().toString();
  EXPECT_NE(masq->find("10.200.0.0/24"), std::string::npos) << "the node's pod CIDR: " << *masq;
}

// enable-ip-masq-agent: the file's CIDRs join the non-masquerade set, and a change to the file
// is applied while the agent runs; a file that does not parse fails the start.
TEST_F(AgentNodePortTest, IpMasqAgentFileIsAppliedAndReloaded) {
  testing::Fabric net;
  ASSERT_TRUE(net.build(*topo_).ok());
  std::string file = dir_ + "/ip-masq-agent";
  { std::ofstream(file) << "nonMasqueradeCIDRs: [10.0.0.0/8\n"; }
  auto bad = node_->start("bad", {"--devices=ext0", "--enable-bpf-masquerade",
                                  "--enable-ip-masq-agent", "--ip-masq-agent-config-path=" + file});
  ASSERT_TRUE(bad.ok());
  auto code = (*bad)->wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_NE(*code, 0);
  EXPECT_NE(node_->log("bad").find("ip-masq-agent"), std::string::npos) << node_->log("bad");

  { std::ofstream(file) << "nonMasqueradeCIDRs:\n  - 192.0.2.0/24\n  - 198.51.100.0/24\n"; }
  Process* agent =
      node_->startReady("agent", {"--devices=ext0", "--enable-bpf-masquerade",
                                  "--enable-ip-masq-agent", "--ip-masq-agent-config-path=" + file});
  ASSERT_NE(agent, nullptr);
  auto list = [&] {
    auto r = runChecked({CILIUM_DBG_BINARY, "-H", sock_, "bpf", "ipmasq", "list"});
    return r.ok() ? *r : r.error().toString();
  };
  std::string got = list();
  for (const char* want : {"10.200.0.0/24", "192.0.2.0/24", "198.51.100.0/24", "169.254.0.0/16"})
    EXPECT_NE(got.find(want), std::string::npos) << want << " in\n" << got;

  // The ConfigMap changes: applied without a restart.
  {
    std::ofstream(file + ".new")
        << R"({"nonMasqueradeCIDRs": ["203.0.113.0/24"], "masqLinkLocal": true})";
  }
  ASSERT_EQ(::rename((file + ".new").c_str(), file.c_str()), 0);
  EXPECT_TRUE(testing::eventually([&] {
    got = list();
    return got.find("203.0.113.0/24") != std::string::npos &&
           got.find("192.0.2.0/24") == std::string::npos;
  })) << got;
  EXPECT_EQ(got.find("169.254.0.0/16"), std::string::npos) << "masqLinkLocal: true";
  EXPECT_NE(got.find("10.200.0.0/24"), std::string::npos) << "the pod CIDR stays";

  // A broken edit keeps the set in force.
  { std::ofstream(file + ".new") << "nonMasqueradeCIDRs: 7\n"; }
  ASSERT_EQ(::rename((file + ".new").c_str(), file.c_str()), 0);
  EXPECT_TRUE(testing::eventually([&] {
    return node_->log("agent").find("keeping the CIDRs in force") != std::string::npos;
  })) << node_->log("agent");
  EXPECT_NE(list().find("203.0.113.0/24"), std::string::npos);
}

TEST_F(AgentNodePortTest, UnknownDeviceFailsTheStartNamingIt) {
  auto p = node_->start("agent", {"--devices=nosuchdev0"});
  ASSERT_TRUE(p.ok());
  auto code = (*p)->wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_NE(*code, 0);
  EXPECT_NE(node_->log("agent").find("nosuchdev0"), std::string::npos) << node_->log("agent");
}

}  // namespace
}  // namespace cilium
