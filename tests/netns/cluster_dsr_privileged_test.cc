// netns tier: NodePort DSR between real nodes. Two node namespaces and an "outside" host share an
// underlay bridge (as in cluster_resilience_privileged_test: the fake apiserver and the operator
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
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/packet.h"
#include "tests/harness/sockets.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kTcpPort = 8080, kUdpPort = 5353;
constexpr uint16_t kNodePort = 30080, kUdpNodePort = 30053;
constexpr int kNodes = 2;
constexpr const char* kApiServerIp = "172.31.242.254";
constexpr const char* kOutsideIp = "172.31.242.100";  // allowed by the backend's policy
constexpr const char* kDeniedIp = "172.31.242.101";   // another outside host, not allowed
std::string underlayIp(int i) { return "172.31.242." + std::to_string(i + 1); }

void runOk(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  ASSERT_TRUE(r.ok()) << r.error().toString();
}

std::string netnsName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

struct Underlay {
  std::string name;
  std::vector<std::string> hosts;  // outside hosts' namespaces
  std::string netns() const { return "/run/netns/" + name; }
  ~Underlay() {
    for (const auto& h : hosts) (void)runChecked({"ip", "netns", "delete", h});
    if (!name.empty()) (void)runChecked({"ip", "netns", "delete", name});
  }
};

struct ClusterNode {
  std::unique_ptr<Topology> topo;
  std::optional<AgentNode> node;
  std::string name;
  Process* agent = nullptr;
  std::string cidr;
  std::string ul_mac;  // ul0's MAC
  api::Client client() const { return node->client(); }
};

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
    for (int i = 0; i < kNodes; i++) {
      auto& n = nodes_[i];
      n.name = "node-" + std::to_string(i + 1);
      auto topo = Topology::create(200 + i);
      ASSERT_TRUE(topo.ok()) << topo.error().toString();
      n.topo = std::move(*topo);
      auto node = AgentNode::create(*n.topo, CILIUM_AGENT_BINARY);
      ASSERT_TRUE(node.ok()) << node.error().toString();
      n.node.emplace(std::move(*node));
    }
    buildUnderlay();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(runInNetns(underlay_.netns(), [&] { return server_.start(kApiServerIp, 0); }).ok());
    ASSERT_TRUE(
        server_
            .create(
                k8s::Resource<k8s::Namespace>::info(),
                {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}})
            .ok());
    auto op = nodes_[0].topo->spawnIn(
        underlay_.netns(),
        {CILIUM_OPERATOR_BINARY, "--k8s-api-server=" + server_.url(),
         "--cluster-pool-ipv4-cidr=10.200.0.0/14", "--cluster-pool-ipv4-mask-size=16",
         "--leader-election-retry-period=100ms"},
        "operator");
    ASSERT_TRUE(op.ok()) << op.error().toString();
    for (int i = 0; i < kNodes; i++) {
      startAgent(i);
      if (HasFatalFailure()) return;
    }
  }

  void buildUnderlay() {
    underlay_.name = nodes_[0].topo->prefix() + "-ul";
    runOk({"ip", "netns", "add", underlay_.name});
    runOk({"ip", "-n", underlay_.name, "link", "set", "lo", "up"});
    runOk({"ip", "-n", underlay_.name, "link", "add", "br0", "type", "bridge"});
    runOk({"ip", "-n", underlay_.name, "addr", "add", std::string(kApiServerIp) + "/24", "dev",
           "br0"});
    runOk({"ip", "-n", underlay_.name, "link", "set", "br0", "up"});
    auto attach = [&](const std::string& ns, const std::string& ifname, const std::string& ip,
                      const std::string& port) {
      runOk({"ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns",
             underlay_.name});
      runOk({"ip", "-n", ns, "addr", "add", ip + "/24", "dev", ifname});
      runOk({"ip", "-n", ns, "link", "set", ifname, "up"});
      runOk({"ip", "-n", underlay_.name, "link", "set", port, "master", "br0"});
      runOk({"ip", "-n", underlay_.name, "link", "set", port, "up"});
    };
    for (int i = 0; i < kNodes; i++) {
      std::string ns = netnsName(nodes_[i].topo->nodeNetns());
      attach(ns, "ul0", underlayIp(i), "ul" + std::to_string(i));
      // `ip -o link show ul0`: "... link/ether <mac> brd ...".
      auto r = runChecked({"ip", "-n", ns, "-o", "link", "show", "ul0"});
      ASSERT_TRUE(r.ok()) << r.error().toString();
      auto at = r->find("link/ether ");
      ASSERT_NE(at, std::string::npos) << *r;
      nodes_[i].ul_mac = r->substr(at + 11, 17);
    }
    // Two outside hosts: the policy admits the first only.
    for (const auto& [ip, tag] : {std::pair{kOutsideIp, "o1"}, std::pair{kDeniedIp, "o2"}}) {
      std::string ns = nodes_[0].topo->prefix() + "-" + tag;
      underlay_.hosts.push_back(ns);
      runOk({"ip", "netns", "add", ns});
      runOk({"ip", "-n", ns, "link", "set", "lo", "up"});
      attach(ns, "eth0", ip, tag);
    }
  }
  std::string outsideNetns(int i) const { return "/run/netns/" + underlay_.hosts[i]; }

  void startAgent(int i) {
    auto& n = nodes_[i];
    ASSERT_TRUE(
        server_
            .create(k8s::Resource<k8s::Node>::info(),
                    {{"apiVersion", "v1"},
                     {"kind", "Node"},
                     {"metadata", {{"name", n.name}}},
                     {"status",
                      {{"addresses", {{{"type", "InternalIP"}, {"address", underlayIp(i)}}}}}}})
            .ok());
    auto cgroup = n.topo->cgroupDir();
    ASSERT_TRUE(cgroup.ok()) << cgroup.error().toString();
    auto argv = n.node->args(
        {"--ipv4-range=auto", "--k8s-api-server=" + server_.url(), "--k8s-sync-timeout=60",
         "--identity-allocation-mode=crd", "--cgroup-root=" + *cgroup, "--devices=ul0",
         "--routing-mode=native", "--ipv4-native-routing-cidr=10.200.0.0/14",
         "--auto-direct-node-routes", "--kube-proxy-replacement=true", "--bpf-lb-mode=" + GetParam(),
         "--bpf-lb-dsr-dispatch=opt"});
    for (auto& a : argv)
      if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + n.name;
    auto p = n.topo->spawnIn(n.topo->nodeNetns(), argv, "agent");
    ASSERT_TRUE(p.ok()) << p.error().toString();
    n.agent = *p;
    ASSERT_TRUE(n.node->waitReady(n.agent, 60s)) << n.node->log("agent");
    auto cfg = n.client().getConfig();
    ASSERT_TRUE(cfg.ok() && cfg->status && cfg->status->addressing &&
                cfg->status->addressing->ipv4);
    n.cidr = cfg->status->addressing->ipv4->alloc_range;
  }

  Pod addPod(int i, const std::string& name, const std::string& app, int host) {
    auto& n = nodes_[i];
    std::string ip = n.cidr.substr(0, n.cidr.find(".0.0/")) + ".0." + std::to_string(host);
    EXPECT_TRUE(
        server_
            .create(k8s::Resource<k8s::Pod>::info(),
                    {{"apiVersion", "v1"},
                     {"kind", "Pod"},
                     {"metadata",
                      {{"name", name}, {"namespace", "default"}, {"labels", {{"app", app}}}}},
                     {"spec", {{"nodeName", n.name}}},
                     {"status", {{"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}})
            .ok());
    auto pod = n.topo->addPod(name, ip);
    EXPECT_TRUE(pod.ok()) << pod.error().toString();
    if (!pod.ok()) return {};
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + name;
    req.container_interface_name = "eth0";
    req.interface_name = pod->host_ifname;
    req.interface_index = pod->host_ifindex;
    req.mac = pod->mac;
    req.host_mac = pod->host_mac;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = pod->ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = name;
    req.netns = pod->netns;
    auto st =
        n.client().putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id), req);
    EXPECT_TRUE(st.ok()) << st.error().toString() << n.node->log("agent");
    return *pod;
  }

  // A NodePort Service "echo" (TCP kNodePort -> kTcpPort, UDP kUdpNodePort -> kUdpPort) whose
  // one backend is `backend` on node `node`.
  void addService(const Pod& backend, const std::string& backend_name, const std::string& node) {
    ASSERT_TRUE(server_
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
    ASSERT_TRUE(server_
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
    ASSERT_TRUE(server_
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
          auto ep = nodes_[1].client().getEndpoint(
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
            auto svcs = nodes_[i].client().listServices();
            if (!svcs.ok()) return false;
            int n = 0;
            for (const auto& s : *svcs)
              if (s.spec && (s.spec->frontend_address.port == kNodePort ||
                             s.spec->frontend_address.port == kUdpNodePort))
                n++;
            return n == 2;
          },
          20s))
          << nodes_[i].name << " has not both NodePorts";
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

  Underlay underlay_;  // declared first: removed last
  FakeApiServer server_;
  ClusterNode nodes_[kNodes];
};

TEST_P(ClusterDsrTest, OutsideClientThroughNodeOneToABackendOnNodeTwo) {
  Pod backend = addPod(1, "echo-2", "echo", 10);
  ASSERT_FALSE(HasFailure());
  auto l = listenTcp(backend.netns, backend.ip, kTcpPort);
  ASSERT_TRUE(l.ok()) << l.error().toString();
  auto u = bindUdp(backend.netns, backend.ip, kUdpPort);
  ASSERT_TRUE(u.ok()) << u.error().toString();
  addService(backend, "echo-2", nodes_[1].name);
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
      << c.error().toString() << nodes_[0].node->log("agent") << nodes_[1].node->log("agent");
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
  EXPECT_EQ(sendersOf(*cap, frontend, kNodePort, 6), std::set<std::string>{nodes_[1].ul_mac})
      << "the answers come from node-2's link (node-1 is " << nodes_[0].ul_mac << ")";

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
            std::set<std::string>{udpDsr() ? nodes_[1].ul_mac : nodes_[0].ul_mac})
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
