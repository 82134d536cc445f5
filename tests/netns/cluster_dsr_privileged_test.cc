// netns tier: NodePort DSR between real nodes. Two node namespaces and an "outside" host share an
// underlay bridge (tests/netns/cluster_fixture.h: the fake apiserver and the operator
// on the underlay, one real agent per node, routing-mode=native with auto-direct-node-routes,
// ul0 the native device); the agents run with bpf-lb-mode=dsr or hybrid (the parameter). The
// outside host connects to node-1's NodePort whose backend is a pod on node-2: the backend sees
// the client's own address, the client sees the NodePort, and the answer reaches the client
// straight from node-2's link (captured on the outside host), never through node-1. UDP goes the
// same way in dsr mode and through node-1's SNAT in hybrid mode. node-2 enforces the backend's
// ingress policy on the real client: a second outside address the policy leaves out is denied.
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "api/client/client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/packet.h"
#include "tests/harness/sockets.h"
#include "tests/netns/cluster_fixture.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kTcpPort = 8080, kUdpPort = 5353;
constexpr uint16_t kNodePort = 30080, kUdpNodePort = 30053;
constexpr int kNodes = 2;
constexpr const char* kOutsideIp = "172.31.242.100";  // allowed by the backend's policy
constexpr const char* kDeniedIp = "172.31.242.101";   // another outside host, not allowed

// Frames an outside host receives on its interface, from the moment it is opened (AF_PACKET).
class Capture {
 public:
  static Result<Capture> open(const std::string& netns, const std::string& ifname) {
    CILIUM_ASSIGN_OR_RETURN(
        UniqueFd fd, runInNetnsValue<UniqueFd>(netns, [&]() -> Result<UniqueFd> {
          UniqueFd s(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_IP)));
          if (!s) return errnoError(errno, "packet socket");
          sockaddr_ll a{};
          a.sll_family = AF_PACKET;
          a.sll_protocol = htons(ETH_P_IP);
          a.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
          if (a.sll_ifindex == 0) return errnoError(errno, "if_nametoindex " + ifname);
          if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
            return errnoError(errno, "bind packet socket");
          return s;
        }));
    Capture c;
    c.fd_ = std::move(fd);
    return c;
  }
  // Every frame received so far (incoming only).
  std::vector<std::vector<uint8_t>> drain() {
    std::vector<std::vector<uint8_t>> out;
    for (;;) {
      std::vector<uint8_t> buf(2048);
      sockaddr_ll from{};
      socklen_t len = sizeof(from);
      ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0,
                             reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) break;
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      buf.resize(static_cast<size_t>(n));
      out.push_back(std::move(buf));
    }
    return out;
  }

 private:
  UniqueFd fd_;
};

std::string macText(const Mac& m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

class ClusterDsrTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool udpDsr() const { return GetParam() == "dsr"; }

  void SetUp() override {
    // ul0 is each agent's native device; two outside hosts, the policy admits the first only.
    cluster_.build({.agent_binary = CILIUM_AGENT_BINARY,
                    .operator_binary = CILIUM_OPERATOR_BINARY,
                    .nodes = kNodes,
                    .underlay_octet = 242,
                    .native_routing = true,
                    .agent_flags = {"--devices=ul0", "--kube-proxy-replacement=true",
                                    "--bpf-lb-mode=" + GetParam(), "--bpf-lb-dsr-dispatch=opt"},
                    .outside_hosts = {kOutsideIp, kDeniedIp}});
    if (HasFatalFailure()) return;
    cluster_.startAll();
  }

  std::string underlayIp(int i) const { return cluster_.underlayIp(i); }
  std::string outsideNetns(int i) const { return cluster_.outsideNetns(i); }

  Pod addPod(int i, const std::string& name, const std::string& app, int host) {
    return cluster_.addPod(i, name, app, host);
  }

  // A NodePort Service "echo" (TCP kNodePort -> kTcpPort, UDP kUdpNodePort -> kUdpPort) whose
  // one backend is `backend` on node `node`.
  void addService(const Pod& backend, const std::string& backend_name, const std::string& node) {
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::Service>::info(),
                            {{"apiVersion", "v1"},
                             {"kind", "Service"},
                             {"metadata", {{"name", "echo"}, {"namespace", "default"}}},
                             {"spec",
                              {{"type", "NodePort"},
                               {"clusterIP", "10.96.0.80"},
                               {"ports",
                                {{{"name", "tcp"},
                                  {"port", 80},
                                  {"targetPort", kTcpPort},
                                  {"nodePort", kNodePort},
                                  {"protocol", "TCP"}},
                                 {{"name", "udp"},
                                  {"port", 53},
                                  {"targetPort", kUdpPort},
                                  {"nodePort", kUdpNodePort},
                                  {"protocol", "UDP"}}}}}}})
                    .ok());
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::EndpointSlice>::info(),
                            {{"apiVersion", "discovery.k8s.io/v1"},
                             {"kind", "EndpointSlice"},
                             {"metadata",
                              {{"name", "echo-1"},
                               {"namespace", "default"},
                               {"labels", {{"kubernetes.io/service-name", "echo"}}}}},
                             {"addressType", "IPv4"},
                             {"ports",
                              {{{"name", "tcp"}, {"port", kTcpPort}, {"protocol", "TCP"}},
                               {{"name", "udp"}, {"port", kUdpPort}, {"protocol", "UDP"}}}},
                             {"endpoints",
                              {{{"addresses", {backend.ip}},
                                {"conditions", {{"ready", true}}},
                                {"nodeName", node}}}}})
                    .ok());
    // The backend admits the first outside host only (and the nodes: hybrid mode's UDP comes
    // SNATed from node-1's address).
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(),
                            json::parse(fmt::format(R"({{
      "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
      "metadata": {{"name": "echo", "namespace": "default"}},
      "spec": {{"endpointSelector": {{"matchLabels": {{"app": "echo"}}}},
               "ingress": [{{"fromCIDR": ["{}/32"]}}, {{"fromEntities": ["remote-node"]}}]}}}})",
                                                    kOutsideIp)))
                    .ok());
    // In force on node-2 before any traffic: the denied client must never find the backend
    // without its policy.
    ASSERT_TRUE(eventually(
        [&] {
          auto ep = cluster_.nodes[1].client().getEndpoint(
              *api::parseEndpointRef("pod-name:default/" + backend_name));
          return ep.ok() && ep->status && ep->status->policy && ep->status->policy->realized &&
                 ep->status->policy->realized->policy_enabled ==
                     api::EndpointPolicyEnabled::kIngress;
        },
        30s))
        << "the backend's ingress policy is not in force on node-2";
    for (int i = 0; i < kNodes; i++)
      ASSERT_TRUE(eventually(
          [&] {
            auto svcs = cluster_.nodes[i].client().listServices();
            if (!svcs.ok()) return false;
            int n = 0;
            for (const auto& s : *svcs)
              if (s.spec && (s.spec->frontend_address.port == kNodePort ||
                             s.spec->frontend_address.port == kUdpNodePort))
                n++;
            return n == 2;
          },
          20s))
          << cluster_.nodes[i].name << " has not both NodePorts";
  }

  // Frames from `ip`:`sport` that the capture saw: the source MACs they came with.
  static std::set<std::string> sendersOf(Capture& cap, const std::string& ip, uint16_t sport,
                                         uint8_t proto) {
    std::set<std::string> out;
    for (const auto& f : cap.drain()) {
      auto p = parsePacket(f);
      if (p && p->proto == proto && p->saddr == ipv4(ip) && p->sport == sport)
        out.insert(macText(p->src_mac));
    }
    return out;
  }

  Cluster cluster_;
};

TEST_P(ClusterDsrTest, OutsideClientThroughNodeOneToABackendOnNodeTwo) {
  Pod backend = addPod(1, "echo-2", "echo", 10);
  ASSERT_FALSE(HasFailure());
  auto l = listenTcp(backend.netns, backend.ip, kTcpPort);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  auto u = bindUdp(backend.netns, backend.ip, kUdpPort);
  ASSERT_TRUE(u.ok()) << u.error().toString();
  addService(backend, "echo-2", cluster_.nodes[1].name);
  if (HasFatalFailure()) return;
  const std::string frontend = underlayIp(0);
  auto cap = Capture::open(outsideNetns(0), "eth0");
  ASSERT_TRUE(cap.ok()) << cap.error().toString();

  // TCP, retried until node-1 knows the backend's route and node-2 the policy.
  Result<UniqueFd> c = Error(ErrorCode::kDeadlineExceeded, "not tried");
  ASSERT_TRUE(eventually(
      [&] {
        c = connectTcp(outsideNetns(0), frontend, kNodePort, 2s);
        return c.ok();
      },
      30s))
      << c.error().toString() << cluster_.nodes[0].node->log("agent")
      << cluster_.nodes[1].node->log("agent");
  auto s = acceptTcp(l->get(), 5s);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ(socketAddress(s->get()).rfind(std::string(kOutsideIp) + ":", 0), 0u)
      << "the backend sees the client's own address: " << socketAddress(s->get());
  EXPECT_EQ(socketAddress(c->get()), frontend + ":" + std::to_string(kNodePort));
  // A full-size exchange both ways: only the SYN carries the option.
  std::string big(64 * 1024, 'x');
  ASSERT_TRUE(sendAll(c->get(), big).ok());
  auto got = recvExactly(s->get(), big.size(), 5s);
  ASSERT_TRUE(got.ok() && *got == big) << "client -> backend";
  ASSERT_TRUE(sendAll(s->get(), big).ok());
  auto back = recvExactly(c->get(), big.size(), 5s);
  ASSERT_TRUE(back.ok() && *back == big) << "backend -> client";
  EXPECT_EQ(sendersOf(*cap, frontend, kNodePort, 6),
            std::set<std::string>{cluster_.nodes[1].ul_mac})
      << "the answers come from node-2's link (node-1 is " << cluster_.nodes[0].ul_mac << ")";

  // UDP: an echo through the NodePort.
  auto q = bindUdp(outsideNetns(0), kOutsideIp, 0);
  ASSERT_TRUE(q.ok());
  std::string src;
  uint16_t sport = 0;
  bool echoed = eventually(
      [&] {
        if (!sendUdp(q->get(), frontend, kUdpNodePort, "hello").ok()) return false;
        auto r = recvUdp(u->get(), 1s, &src, &sport);
        return r.ok() && *r == "hello";
      },
      20s);
  ASSERT_TRUE(echoed) << "the datagram reached the backend";
  EXPECT_EQ(src, udpDsr() ? std::string(kOutsideIp) : frontend)
      << (udpDsr() ? "dsr: the client's address" : "hybrid: UDP is SNATed by node-1");
  (void)cap->drain();
  ASSERT_TRUE(sendUdp(u->get(), src, sport, "olleh").ok());
  std::string from;
  uint16_t from_port = 0;
  auto answer = recvUdp(q->get(), 5s, &from, &from_port);
  ASSERT_TRUE(answer.ok() && *answer == "olleh") << "the client gets the answer";
  EXPECT_EQ(from, frontend) << "from the NodePort";
  EXPECT_EQ(from_port, kUdpNodePort);
  EXPECT_EQ(sendersOf(*cap, frontend, kUdpNodePort, 17),
            std::set<std::string>{udpDsr() ? cluster_.nodes[1].ul_mac : cluster_.nodes[0].ul_mac})
      << (udpDsr() ? "dsr: straight from node-2" : "hybrid: back through node-1");

  // node-2 enforces the backend's policy on the real client: the other outside host is denied,
  // through the same NodePort, while the admitted one still gets through.
  auto denied = connectTcp(outsideNetns(1), frontend, kNodePort, 2s);
  EXPECT_FALSE(denied.ok()) << "a client the backend's ingress policy leaves out";
  EXPECT_FALSE(acceptTcp(l->get(), 500ms).ok()) << "nothing reached the backend";
  auto again = connectTcp(outsideNetns(0), frontend, kNodePort, 5s);
  EXPECT_TRUE(again.ok()) << "the admitted client, still";
}

INSTANTIATE_TEST_SUITE_P(Modes, ClusterDsrTest, ::testing::Values("dsr", "hybrid"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cilium::testing
