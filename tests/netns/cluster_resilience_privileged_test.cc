// netns tier: a three-node cluster (tests/netns/cluster_fixture.h: node namespaces on an
// underlay bridge, the fake apiserver, the real operator, one real agent per node in tunnel
// mode with CRD identities) under the events a cluster lives through: an agent killed with
// SIGKILL while cross-node TCP connections carry data and a denied identity keeps knocking; a pod
// deleted on one node; a node leaving the cluster and joining again; payloads above the tunnel
// MTU; and a pod reaching another node's NodePort whose backend is on that node.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/inet.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "api/client/client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/sockets.h"
#include "tests/netns/cluster_fixture.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kTcpPort = 8080;
constexpr uint16_t kNodePort = 30080;
constexpr int kNodes = 3;

class ClusterResilienceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ul0 is each agent's native device (NodePort). Orphaned CiliumEndpoints and CiliumNodes are
    // collected within seconds (a node leaving).
    cluster_.build(
        {.agent_binary = CILIUM_AGENT_BINARY,
         .operator_binary = CILIUM_OPERATOR_BINARY,
         .dbg_binary = CILIUM_DBG_BINARY,
         .nodes = kNodes,
         .underlay_octet = 241,
         .agent_flags = {"--devices=ul0", "--kube-proxy-replacement=true"},
         .operator_flags = {"--cilium-endpoint-gc-interval=1s", "--nodes-gc-interval=1s"}});
    if (HasFatalFailure()) return;
    cluster_.startAll();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kNodes; i++)
      EXPECT_EQ(cluster_.nodes[i].cidr, fmt::format("10.{}.0.0/16", 200 + i))
          << "the operator's CIDR";
  }

  std::string underlayIp(int i) const { return cluster_.underlayIp(i); }

  // A pod on node i (Pod object with app=<app>, namespace, veth, endpoint through the API).
  Pod addPod(int i, const std::string& name, const std::string& app, int host, int mtu = 1450) {
    return cluster_.addPod(i, name, app, host, mtu);
  }

  std::map<std::string, json> ipcache(int i, const std::string& table = "ipcache") {
    return cluster_.ipcache(i, table);
  }

  // True once node i's ipcache has `ip`/32 with tunnel endpoint node `on` (any identity >= 256).
  bool knows(int i, const Pod& pod, int on) {
    auto seen = ipcache(i);
    auto it = seen.find(pod.ip + "/32");
    return it != seen.end() && it->second.value("identity", 0) >= 256 &&
           it->second.value("tunnel-endpoint", "") == underlayIp(on);
  }

  bool tcp(const Pod& from, const std::string& ip, uint16_t port = kTcpPort,
           std::chrono::milliseconds timeout = 2s) {
    return connectTcp(from.netns, ip, port, timeout).ok();
  }

  void importPolicy() {
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), json::parse(R"({
      "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
      "metadata": {"name": "servers", "namespace": "default"},
      "spec": {"endpointSelector": {"matchLabels": {"app": "server"}},
               "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}},
                                              {"matchLabels": {"app": "lone-client"}}]}]}})"))
                    .ok());
  }

  // An accepted connection from `from` to the listener `l` on `to`: {client fd, server fd}.
  std::pair<UniqueFd, UniqueFd> connectPair(const Pod& from, const Pod& to, int l) {
    UniqueFd c, s;
    EXPECT_TRUE(eventually(
        [&] {
          auto r = connectTcp(from.netns, to.ip, kTcpPort, 1s);
          if (!r.ok()) return false;
          auto a = acceptTcp(l, 2s);
          if (!a.ok()) return false;
          c = std::move(*r);
          s = std::move(*a);
          return true;
        },
        20s))
        << from.ip << " -> " << to.ip;
    return {std::move(c), std::move(s)};
  }

  Cluster cluster_;
};

// Echoes one connection continuously (a request of kChunk bytes, the same back) on two threads,
// counting round trips and remembering the first error (a reset, an EOF, a stall over 5 s).
class EchoStream {
 public:
  static constexpr size_t kChunk = 4096;
  EchoStream(UniqueFd client, UniqueFd server, std::string name)
      : client_(std::move(client)), server_(std::move(server)), name_(std::move(name)) {
    echo_ = std::thread([this] {
      while (!stop_) {
        auto got = recvExactly(server_.get(), kChunk, 6s);
        if (!got.ok()) return fail("server recv: " + got.error().toString());
        if (auto st = sendAll(server_.get(), *got); !st.ok())
          return fail("server send: " + st.error().toString());
      }
    });
    pump_ = std::thread([this] {
      std::string data(kChunk, 'x');
      for (uint64_t n = 0; !stop_; n++) {
        data[0] = static_cast<char>('a' + n % 26);
        if (auto st = sendAll(client_.get(), data); !st.ok())
          return fail("client send: " + st.error().toString());
        auto back = recvExactly(client_.get(), kChunk, 5s);
        if (!back.ok()) return fail("client recv: " + back.error().toString());
        if (*back != data) return fail("client recv: different bytes");
        rounds_++;
      }
    });
  }
  ~EchoStream() { stop(); }
  void stop() {
    stop_ = true;
    // The pump stops after its current round; the echo side is woken by the shutdown.
    if (pump_.joinable()) pump_.join();
    ::shutdown(client_.get(), SHUT_WR);
    if (echo_.joinable()) echo_.join();
  }
  uint64_t rounds() const { return rounds_; }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  const std::string& name() const { return name_; }

 private:
  void fail(std::string e) {
    if (stop_) return;  // the shutdown at the end
    std::lock_guard lock(mu_);
    if (error_.empty()) error_ = name_ + ": " + e;
  }
  UniqueFd client_, server_;
  std::string name_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> rounds_{0};
  mutable std::mutex mu_;
  std::string error_;
  std::thread echo_, pump_;
};

// True when every stream makes at least `n` more round trips within `timeout`.
bool allProgress(const std::vector<std::unique_ptr<EchoStream>>& streams, uint64_t n,
                 std::chrono::milliseconds timeout) {
  std::vector<uint64_t> base;
  for (const auto& s : streams) base.push_back(s->rounds());
  return eventually(
      [&] {
        for (size_t i = 0; i < streams.size(); i++)
          if (streams[i]->rounds() < base[i] + n) return false;
        return true;
      },
      timeout, 20ms);
}

TEST_F(ClusterResilienceTest, AgentKill9KeepsConnectionsAndPolicy) {
  Pod c1 = addPod(0, "client-1", "client", 10), s1 = addPod(0, "server-1", "server", 11),
      o1 = addPod(0, "other-1", "other", 12);
  // Its identity is used on node-1 only: node-2 knows it from the cluster (CiliumIdentity).
  Pod lone1 = addPod(0, "lone-1", "lone-client", 13);
  Pod c2 = addPod(1, "client-2", "client", 10), s2 = addPod(1, "server-2", "server", 11),
      o2 = addPod(1, "other-2", "other", 12);
  ASSERT_FALSE(HasFailure());
  importPolicy();
  auto l1 = listenTcp(s1.netns, s1.ip, kTcpPort);
  auto l2 = listenTcp(s2.netns, s2.ip, kTcpPort);
  ASSERT_TRUE(l1.ok() && l2.ok());
  for (auto [i, pod, on] :
       {std::tuple{0, &c2, 1}, std::tuple{0, &s2, 1}, std::tuple{1, &c1, 0}, std::tuple{1, &s1, 0},
        std::tuple{0, &o2, 1}, std::tuple{1, &o1, 0}, std::tuple{1, &lone1, 0}})
    ASSERT_TRUE(eventually([&] { return knows(i, *pod, on); }, 30s)) << i << " " << pod->ip;
  // The denied pods are denied before the agent goes away (else the probe proves nothing).
  ASSERT_FALSE(tcp(o1, s2.ip, kTcpPort, 1s));
  ASSERT_FALSE(tcp(o2, s1.ip, kTcpPort, 1s));

  // Two connections each way between node-1 and node-2, carrying data all the time.
  std::vector<std::unique_ptr<EchoStream>> streams;
  for (int k = 0; k < 2; k++) {
    auto [a, b] = connectPair(c1, s2, l2->get());
    ASSERT_TRUE(a.valid() && b.valid());
    streams.push_back(std::make_unique<EchoStream>(std::move(a), std::move(b), "node-1->node-2"));
    auto [x, y] = connectPair(c2, s1, l1->get());
    ASSERT_TRUE(x.valid() && y.valid());
    streams.push_back(std::make_unique<EchoStream>(std::move(x), std::move(y), "node-2->node-1"));
  }
  // The denied identity knocks all the time, both ways; every answered SYN is counted.
  std::atomic<bool> probing{true};
  // New connections of an allowed identity known to node-2 only from the cluster are admitted
  // all along, the restart included (every refused one is counted).
  ASSERT_TRUE(eventually([&] { return tcp(lone1, s2.ip, kTcpPort, 1s); }, 20s));
  std::atomic<int> admitted{0}, probes{0}, refused{0}, allowed_probes{0};
  std::thread prober([&] {
    while (probing) {
      for (auto [from, to] : {std::pair{&o1, &s2}, std::pair{&o2, &s1}}) {
        if (tcp(*from, to->ip, kTcpPort, 200ms)) admitted++;
        probes++;
      }
      if (!tcp(lone1, s2.ip, kTcpPort, 1s)) refused++;
      allowed_probes++;
      while (acceptTcp(l2->get(), 0ms).ok()) {
      }
    }
  });
  auto finish = [&] {
    probing = false;
    if (prober.joinable()) prober.join();
    for (auto& s : streams) s->stop();
  };
  ASSERT_TRUE(allProgress(streams, 20, 10s)) << "no data before the kill";

  // SIGKILL: nothing is cleaned up; the pinned programs and maps keep forwarding.
  cluster_.nodes[1].agent->signal(SIGKILL);
  ASSERT_TRUE(cluster_.nodes[1].agent->wait(10s).ok());
  int probes_at_kill = probes;
  EXPECT_TRUE(allProgress(streams, 50, 10s)) << "data stopped while node-2 had no agent";
  EXPECT_TRUE(eventually([&] { return probes >= probes_at_kill + 6; }, 10s));

  // The same agent again: it restores endpoints, ipcache, policy, and keeps the CT.
  cluster_.startAgent(1, "agent-restarted");
  if (HasFatalFailure()) return finish();
  EXPECT_TRUE(eventually(
      [&] {
        auto l = cluster_.nodes[1].node->log("agent-restarted");
        return l.find("ipcache feeds synced") != std::string::npos;
      },
      30s));
  EXPECT_TRUE(allProgress(streams, 50, 10s)) << "data stopped after the restart";
  int probes_at_restart = probes;
  EXPECT_TRUE(eventually([&] { return probes >= probes_at_restart + 6; }, 10s));
  finish();

  for (const auto& s : streams) EXPECT_EQ(s->error(), "") << "a connection broke";
  EXPECT_EQ(admitted.load(), 0) << "a denied identity got through, of " << probes << " probes";
  EXPECT_GT(probes.load(), 20);
  EXPECT_EQ(refused.load(), 0) << "an allowed identity was refused, of " << allowed_probes
                               << " probes";
  // Still enforcing both ways after the restart, and new allowed connections work.
  EXPECT_TRUE(eventually([&] { return tcp(c1, s2.ip); }, 10s));
  EXPECT_TRUE(eventually([&] { return tcp(c2, s1.ip); }, 10s));
  EXPECT_FALSE(tcp(o1, s2.ip, kTcpPort, 1s));
  EXPECT_FALSE(tcp(o2, s1.ip, kTcpPort, 1s));
  auto eps = cluster_.nodes[1].client().listEndpoints();
  ASSERT_TRUE(eps.ok());
  EXPECT_GE(eps->size(), 3u) << "the restarted agent re-adopted its endpoints";
}

TEST_F(ClusterResilienceTest, PodDeletedAndNodeLeavingAndJoining) {
  Pod c1 = addPod(0, "client-1", "client", 10);
  Pod s2 = addPod(1, "server-2", "server", 10), x2 = addPod(1, "gone-2", "server", 11);
  Pod s3 = addPod(2, "server-3", "server", 10);
  ASSERT_FALSE(HasFailure());
  auto l2 = listenTcp(s2.netns, s2.ip, kTcpPort);
  auto lx = listenTcp(x2.netns, x2.ip, kTcpPort);
  auto l3 = listenTcp(s3.netns, s3.ip, kTcpPort);
  ASSERT_TRUE(l2.ok() && lx.ok() && l3.ok());
  for (auto [pod, on] : {std::pair{&s2, 1}, std::pair{&x2, 1}, std::pair{&s3, 2}})
    ASSERT_TRUE(eventually([&] { return knows(0, *pod, on); }, 30s)) << pod->ip;
  EXPECT_TRUE(eventually([&] { return tcp(c1, x2.ip); }, 20s));

  // A pod deleted on node-2: gone from node-1's ipcache and tunnel map, and from node-3's.
  ASSERT_TRUE(cluster_.nodes[1]
                  .client()
                  .deleteEndpoint(*api::parseEndpointRef("container-id:ctr-gone-2"))
                  .ok());
  ASSERT_TRUE(cluster_.server.remove(k8s::Resource<k8s::Pod>::info(), "default", "gone-2").ok());
  for (int i : {0, 2})
    EXPECT_TRUE(eventually([&] { return ipcache(i).count(x2.ip + "/32") == 0; }, 20s))
        << cluster_.nodes[i].name << " still has " << x2.ip;
  EXPECT_EQ(ipcache(0, "tunnel").count(x2.ip + "/32"), 0u);
  // Its address now only matches node-2's pod CIDR (still node-2's): nothing answers there,
  // even though the pod's namespace still listens (node-2 has no endpoint for it).
  EXPECT_FALSE(tcp(c1, x2.ip, kTcpPort, 1s)) << "the deleted pod's address still answers";
  EXPECT_TRUE(tcp(c1, s2.ip)) << "the other pod of node-2 stays reachable";

  // node-3 leaves: its agent stops, its Node and Pods go (the operator collects its CiliumNode
  // and CiliumEndpoints): the others drop its pod CIDR, its pods and its address.
  EXPECT_TRUE(tcp(c1, s3.ip));
  cluster_.nodes[2].agent->stop();
  ASSERT_TRUE(cluster_.server.remove(k8s::Resource<k8s::Pod>::info(), "default", "server-3").ok());
  ASSERT_TRUE(cluster_.server.remove(k8s::Resource<k8s::Node>::info(), "", "node-3").ok());
  for (int i : {0, 1}) {
    EXPECT_TRUE(eventually(
        [&] {
          auto seen = ipcache(i);
          return seen.count(s3.ip + "/32") == 0 && seen.count(cluster_.nodes[2].cidr) == 0 &&
                 seen.count(underlayIp(2) + "/32") == 0;
        },
        30s))
        << cluster_.nodes[i].name << " still has node-3's entries: " << json(ipcache(i)).dump();
  }
  EXPECT_TRUE(eventually(
      [&] { return !cluster_.server.get(k8s::Resource<k8s::CiliumNode>::info(), "", "node-3"); },
      20s))
      << "the operator collects the CiliumNode";
  EXPECT_FALSE(tcp(c1, s3.ip, kTcpPort, 1s)) << "node-3's pod is still reachable";
  EXPECT_TRUE(tcp(c1, s2.ip)) << "node-2 is unaffected";

  // node-3 joins again: a new Node, the agent started on its state (a pod CIDR from the
  // operator: the old one or the next). Its pod was deleted while it was away. With the old
  // CIDR the endpoint is restored and the runtime's CNI DEL removes it; with another one the
  // agent does not restore it at all (its address is no longer the node's). New pods there:
  // cross-node traffic works both ways.
  cluster_.addNodeObject(2);
  cluster_.startAgent(2, "agent-rejoined");
  ASSERT_FALSE(HasFatalFailure());
  const auto old_ep = *api::parseEndpointRef("container-id:ctr-server-3");
  if (IpPrefix::parse(cluster_.nodes[2].cidr)->contains(*IpAddr::parse(s3.ip))) {
    ASSERT_TRUE(cluster_.nodes[2].client().deleteEndpoint(old_ep).ok());
  } else {
    EXPECT_FALSE(cluster_.nodes[2].client().getEndpoint(old_ep).ok())
        << "an endpoint outside the new pod CIDR " << cluster_.nodes[2].cidr << " was restored";
  }
  const std::string cidr3 = cluster_.nodes[2].cidr;
  Pod s3b = addPod(2, "server-3b", "server", 30), c3 = addPod(2, "client-3", "client", 20);
  ASSERT_FALSE(HasFailure());
  auto l3b = listenTcp(s3b.netns, s3b.ip, kTcpPort);
  ASSERT_TRUE(l3b.ok());
  for (int i : {0, 1}) {
    EXPECT_TRUE(eventually(
        [&] {
          auto seen = ipcache(i);
          auto it = seen.find(cidr3);
          return knows(i, s3b, 2) && knows(i, c3, 2) && it != seen.end() &&
                 it->second.value("tunnel-endpoint", "") == underlayIp(2) &&
                 seen.count(s3.ip + "/32") == 0;
        },
        30s))
        << cluster_.nodes[i].name << " " << json(ipcache(i)).dump()
        << cluster_.nodes[2].node->log("agent-rejoined");
  }
  EXPECT_TRUE(eventually([&] { return tcp(c1, s3b.ip); }, 20s)) << "node-1 -> node-3 again";
  EXPECT_TRUE(eventually([&] { return tcp(c3, s2.ip); }, 20s)) << "node-3 -> node-2 again";
}

// Runs a command in a pod; its output, or "" when it could not run.
std::string podRun(Topology& topo, const Pod& pod, const std::vector<std::string>& argv) {
  auto r = topo.exec(pod.netns, argv, 30s);
  return r.ok() ? r->out + r->err : "";
}

// `bytes` from one end of a connection to the other and back, checked byte for byte.
void bulkBothWays(const Pod& from, const Pod& to, int l, size_t bytes) {
  auto c = connectTcp(from.netns, to.ip, kTcpPort, 5s);
  ASSERT_TRUE(c.ok()) << from.ip << " -> " << to.ip << ": " << c.error().toString();
  // The listener may still queue earlier probes' connections: take this one.
  const std::string client_addr = socketAddress(c->get(), true);
  Result<UniqueFd> s = Error(ErrorCode::kNotFound, "not accepted");
  while (true) {
    s = acceptTcp(l, 5s);
    ASSERT_TRUE(s.ok()) << s.error().toString();
    if (socketAddress(s->get()) == client_addr) break;
  }
  // A stalled transfer fails the send instead of hanging the test.
  for (int fd : {c->get(), s->get()}) {
    timeval tv{30, 0};
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
  }
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; i++) data[i] = static_cast<char>((i * 131) >> 3);
  // Each direction in turn: one side sends everything while the other reads it.
  for (auto [tx, rx, what] : {std::tuple{c->get(), s->get(), from.ip + " -> " + to.ip},
                              std::tuple{s->get(), c->get(), to.ip + " -> " + from.ip}}) {
    Status sent = okStatus();
    std::thread sender([&, tx = tx] { sent = sendAll(tx, data); });
    auto got = recvExactly(rx, bytes, 30s);
    sender.join();
    ASSERT_TRUE(sent.ok()) << what << ": " << sent.error().toString();
    ASSERT_TRUE(got.ok()) << what << ": " << got.error().toString();
    EXPECT_TRUE(*got == data) << "different bytes " << what;
  }
}

TEST_F(ClusterResilienceTest, PayloadsAboveTheTunnelMtu) {
  // The pods' MTU accounts for the tunnel: 1450 = the underlay's 1500 - 50 bytes of VXLAN.
  Pod c1 = addPod(0, "client-1", "client", 10);
  Pod s2 = addPod(1, "server-2", "server", 10);
  ASSERT_FALSE(HasFailure());
  auto l2 = listenTcp(s2.netns, s2.ip, kTcpPort);
  ASSERT_TRUE(l2.ok());
  ASSERT_TRUE(eventually([&] { return knows(1, c1, 0) && knows(0, s2, 1); }, 30s));
  auto cfg = cluster_.nodes[0].client().getConfig();
  ASSERT_TRUE(cfg.ok() && cfg->status);
  EXPECT_EQ(cfg->status->device_mtu, 1450) << "the pod MTU leaves room for the tunnel";
  EXPECT_TRUE(eventually([&] { return tcp(c1, s2.ip); }, 20s));

  // Several MB each way, in full-size segments (and GSO aggregates) through the tunnel.
  bulkBothWays(c1, s2, l2->get(), 8 << 20);
  if (HasFatalFailure()) return;

  // A full-size packet with DF (1450 bytes) crosses the tunnel both ways: encapsulated it is
  // exactly the underlay's 1500.
  for (auto [from, to, topo] : {std::tuple{&c1, &s2, cluster_.nodes[0].topo.get()},
                                std::tuple{&s2, &c1, cluster_.nodes[1].topo.get()}}) {
    std::string out;
    EXPECT_TRUE(eventually(
        [&] {
          out = podRun(*topo, *from,
                       {"ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1422", to->ip});
          return out.find(" 1 received") != std::string::npos;
        },
        10s))
        << from->ip << " -> " << to->ip << ": " << out;
    // One byte more with DF: refused by the pod's own stack, which names the MTU (the pod is
    // told, nothing is lost on the way).
    out = podRun(*topo, *from,
                 {"ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1423", to->ip});
    EXPECT_NE(out.find("mtu=1450"), std::string::npos) << out;
  }
  // UDP with DF above the pod MTU: EMSGSIZE; at the MTU it arrives whole.
  auto rx = bindUdp(s2.netns, s2.ip, 5353);
  auto tx = bindUdp(c1.netns, c1.ip, 0);
  ASSERT_TRUE(rx.ok() && tx.ok());
  int df = IP_PMTUDISC_DO;
  ASSERT_EQ(setsockopt(tx->get(), IPPROTO_IP, IP_MTU_DISCOVER, &df, sizeof(df)), 0);
  auto too_big = sendUdp(tx->get(), s2.ip, 5353, std::string(1450 - 28 + 1, 'u'));
  EXPECT_FALSE(too_big.ok()) << "a DF datagram above the pod MTU was sent";
  if (!too_big.ok()) {
    EXPECT_NE(too_big.error().toString().find("too long"), std::string::npos)
        << too_big.error().toString();
  }
  const std::string full(1450 - 28, 'v');
  std::string got_udp;
  EXPECT_TRUE(eventually(
      [&] {
        if (!sendUdp(tx->get(), s2.ip, 5353, full).ok()) return false;
        auto got = recvUdp(rx->get(), 500ms);
        return got.ok() && *got == full;
      },
      10s))
      << "a full-size DF datagram did not cross the tunnel";
}

// A pod on node-1 connects to node-2's NodePort whose only backend is on node-2: the backend's
// reply must leave node-2 as from the NodePort (it goes into the tunnel to node-1, not out of
// the device where NodePort replies are usually translated back).
TEST_F(ClusterResilienceTest, PodReachesNodePortOfAnotherNodeWithLocalBackend) {
  Pod c1 = addPod(0, "client-1", "client", 10);
  Pod s2 = addPod(1, "server-2", "echo", 10), s3 = addPod(2, "server-3", "echo3", 10);
  ASSERT_FALSE(HasFailure());
  auto l2 = listenTcp(s2.netns, s2.ip, kTcpPort);
  auto l3 = listenTcp(s3.netns, s3.ip, kTcpPort);
  ASSERT_TRUE(l2.ok() && l3.ok());
  auto service = [&](const std::string& name, const Pod& backend, uint16_t node_port,
                     const std::string& node) {
    ASSERT_TRUE(cluster_.server
                    .create(k8s::Resource<k8s::Service>::info(),
                            {{"apiVersion", "v1"},
                             {"kind", "Service"},
                             {"metadata", {{"name", name}, {"namespace", "default"}}},
                             {"spec",
                              {{"type", "NodePort"},
                               {"clusterIP", "10.96.0." + std::to_string(node_port % 100)},
                               {"ports",
                                {{{"name", "http"},
                                  {"port", 80},
                                  {"targetPort", kTcpPort},
                                  {"nodePort", node_port},
                                  {"protocol", "TCP"}}}}}}})
                    .ok());
    ASSERT_TRUE(
        cluster_.server
            .create(k8s::Resource<k8s::EndpointSlice>::info(),
                    {{"apiVersion", "discovery.k8s.io/v1"},
                     {"kind", "EndpointSlice"},
                     {"metadata",
                      {{"name", name + "-1"},
                       {"namespace", "default"},
                       {"labels", {{"kubernetes.io/service-name", name}}}}},
                     {"addressType", "IPv4"},
                     {"ports", {{{"name", "http"}, {"port", kTcpPort}, {"protocol", "TCP"}}}},
                     {"endpoints",
                      {{{"addresses", {backend.ip}},
                        {"conditions", {{"ready", true}}},
                        {"nodeName", node}}}}})
            .ok());
  };
  service("echo", s2, kNodePort, "node-2");
  service("echo3", s3, kNodePort + 1, "node-3");
  for (int i = 0; i < kNodes; i++)
    ASSERT_TRUE(eventually(
        [&] {
          auto svcs = cluster_.nodes[i].client().listServices();
          if (!svcs.ok()) return false;
          int n = 0;
          for (const auto& s : *svcs)
            if (s.spec && s.spec->frontend_address.port == kNodePort) n++;
          return n > 0;
        },
        20s))
        << cluster_.nodes[i].name << " has no NodePort";
  ASSERT_TRUE(eventually([&] { return knows(1, c1, 0) && knows(2, c1, 0); }, 30s));

  // One connection with data both ways; the client sees the NodePort as its peer.
  auto check = [&](int node, uint16_t port, int l, const std::string& what) {
    Result<UniqueFd> c = Error(ErrorCode::kDeadlineExceeded, "not tried");
    EXPECT_TRUE(eventually(
        [&] {
          c = connectTcp(c1.netns, underlayIp(node), port, 2s);
          return c.ok();
        },
        20s))
        << what << ": " << c.error().toString();
    if (!c.ok()) return;
    auto s = acceptTcp(l, 5s);
    ASSERT_TRUE(s.ok()) << what;
    EXPECT_EQ(socketAddress(s->get()).rfind(c1.ip + ":", 0), 0u)
        << what << ": the backend sees the client's address, not a node's";
    EXPECT_EQ(socketAddress(c->get()), underlayIp(node) + ":" + std::to_string(port)) << what;
    ASSERT_TRUE(sendAll(c->get(), "ping").ok());
    auto got = recvExactly(s->get(), 4, 5s);
    ASSERT_TRUE(got.ok() && *got == "ping") << what;
    ASSERT_TRUE(sendAll(s->get(), "pong").ok());
    auto back = recvExactly(c->get(), 4, 5s);
    ASSERT_TRUE(back.ok() && *back == "pong") << what << ": the backend's reply";
  };
  check(1, kNodePort, l2->get(), "node-2's NodePort, backend on node-2");
  check(2, kNodePort + 1, l3->get(), "node-3's NodePort, backend on node-3");
}

}  // namespace
}  // namespace cilium::testing
