// netns tier: two nodes joined by a veth underlay, each with its own datapath (pin dir), its
// cilium_vxlan device made by the agent's tunnel code and bpf_overlay on it, a pod on one node
// and two on the other, the remote pods in each node's ipcache with their identity and the other
// node's underlay address as tunnel endpoint. Real ICMP and TCP cross the overlay; the server's
// ingress policy admits only the client's identity, so a pod with another identity on the same
// node is dropped on the server's node: the identity really crossed in the VNI.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/map_config.h"
#include "agent/datapath/monitor.h"
#include "agent/datapath/netlink.h"
#include "agent/datapath/tunnel.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/packet.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using datapath::PolicyEntry;
using namespace std::chrono_literals;

constexpr uint32_t kClientId = 1001, kOtherId = 1002, kServerId = 1003;
// The underlay between the two node namespaces.
constexpr const char* kUnderlayA = "172.31.250.1";
constexpr const char* kUnderlayB = "172.31.250.2";
constexpr uint32_t kUnderlayMtu = 1500;

PolicyEntry allow(uint32_t identity, uint8_t dir, uint8_t proto = 0, uint16_t port = 0) {
  return {datapath::policyKey(identity, dir, proto, port, port ? 16 : 0), {}};
}

uint32_t be(const std::string& ip) { return htonl(testing::ipv4(ip)); }

// One node: its namespaces, its datapath and its event ring.
struct Node {
  std::unique_ptr<testing::Topology> topo;
  std::unique_ptr<datapath::Datapath> dp;
  std::unique_ptr<datapath::EventReader> reader;
  std::vector<cilium_event> events;
  int vxlan_ifindex = 0;
};

class OverlayNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto [node, octet] : {std::pair{&a_, 201}, std::pair{&b_, 202}}) {
      auto topo = testing::Topology::create(octet);
      ASSERT_TRUE(topo.ok()) << topo.error().toString();
      node->topo = std::move(*topo);
    }
    buildUnderlay();
    for (auto [pod, node, name, ip] : {std::tuple{&client_, &a_, "client", "10.201.0.11"},
                                       std::tuple{&other_, &a_, "other", "10.201.0.12"},
                                       std::tuple{&server_, &b_, "server", "10.202.0.11"}}) {
      auto p = node->topo->addPod(name, ip);
      ASSERT_TRUE(p.ok()) << p.error().toString();
      *pod = *p;
      // What cilium-cni gives pods in tunnel mode: room for the VXLAN headers.
      auto mtu = datapath::podMtu(kUnderlayMtu, true);
      ASSERT_TRUE(mtu.ok());
      auto r = node->topo->exec(
          node->topo->nodeNetns(),
          {"ip", "-n", netnsName(pod->netns), "link", "set", "eth0", "mtu", std::to_string(*mtu)});
      ASSERT_TRUE(r.ok() && r->exit_code == 0);
    }
    for (Node* n : {&a_, &b_}) {
      auto pin = n->topo->pinDir();
      ASSERT_TRUE(pin.ok()) << pin.error().toString();
      auto dp = datapath::Datapath::load({*pin});
      ASSERT_TRUE(dp.ok()) << dp.error().toString();
      n->dp = std::move(*dp);
      auto reader =
          n->dp->openEventReader([n](const cilium_event& ev) { n->events.push_back(ev); });
      ASSERT_TRUE(reader.ok()) << reader.error().toString();
      n->reader = std::move(*reader);
      ASSERT_TRUE(testing::programNode(n->dp->maps(), n->topo->routerIp()).ok());
    }
    auto ma = a_.dp->maps(), mb = b_.dp->maps();
    ASSERT_TRUE(testing::programEndpoint(ma, client_, 1, kClientId).ok());
    ASSERT_TRUE(testing::programEndpoint(ma, other_, 2, kOtherId).ok());
    ASSERT_TRUE(testing::programEndpoint(mb, server_, 1, kServerId).ok());
    // The remote pods, as the agent will learn them from the cluster (next phase).
    setRemote(ma, server_.ip, kServerId, kUnderlayB);
    setRemote(mb, client_.ip, kClientId, kUnderlayA);
    setRemote(mb, other_.ip, kOtherId, kUnderlayA);

    // Both clients may send anything; the server admits only the client's identity and may open
    // nothing itself (its replies pass through conntrack).
    setPolicy(a_, 1, {allow(0, POLICY_EGRESS)});
    setPolicy(a_, 2, {allow(0, POLICY_EGRESS)});
    setPolicy(b_, 1, {allow(kClientId, POLICY_INGRESS)});

    attach(a_, {&client_, &other_});
    attach(b_, {&server_});
  }

  static std::string netnsName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

  // A veth between the node namespaces, each end with its underlay address.
  void buildUnderlay() {
    std::string na = netnsName(a_.topo->nodeNetns()), nb = netnsName(b_.topo->nodeNetns());
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "-n", na, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns",
              nb},
             {"ip", "-n", na, "addr", "add", std::string(kUnderlayA) + "/24", "dev", "ul0"},
             {"ip", "-n", nb, "addr", "add", std::string(kUnderlayB) + "/24", "dev", "ul0"},
             {"ip", "-n", na, "link", "set", "ul0", "up"},
             {"ip", "-n", nb, "link", "set", "ul0", "up"}}) {
      auto r = runChecked(argv);
      ASSERT_TRUE(r.ok()) << r.error().toString();
    }
  }

  void setRemote(const datapath::Maps& maps, const std::string& ip, uint32_t identity,
                 const char* node) {
    remote_endpoint_info info{};
    info.sec_identity = identity;
    info.tunnel_endpoint.ip4 = be(node);
    info.flags = IPCACHE_F_HAS_TUNNEL_EP;
    auto s = maps.ipcache->update(datapath::ipcacheKeyV4(be(ip), 32), info);
    ASSERT_TRUE(s.ok()) << s.error().toString();
  }

  void setPolicy(Node& n, uint16_t id, const std::vector<PolicyEntry>& entries) {
    auto maps = n.dp->maps();
    auto s = maps.policy->replace(id, entries);
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_TRUE(datapath::bumpPolicyRevision(*maps.runtime_config).ok());
  }

  // The pods' programs, then the tunnel device and bpf_overlay: what the agent does at start.
  void attach(Node& n, std::vector<const testing::Pod*> pods) {
    auto s = runInNetns(n.topo->nodeNetns(), [&]() -> Status {
      for (const auto* p : pods) CILIUM_RETURN_IF_ERROR(n.dp->attachEndpoint(p->host_ifindex));
      CILIUM_ASSIGN_OR_RETURN(n.vxlan_ifindex,
                              datapath::ensureVxlanDevice(datapath::kDefaultTunnelPort));
      return n.dp->attachOverlay(n.vxlan_ifindex);
    });
    ASSERT_TRUE(s.ok()) << s.error().toString();
  }

  bool ping(const testing::Pod& from, const std::string& to, int deadline_s = 5, int size = 56) {
    auto r = a_.topo->exec(from.netns,
                           {"ping", "-c", "1", "-w", std::to_string(deadline_s), "-n", "-q", "-M",
                            "do", "-s", std::to_string(size), to},
                           10s);
    return r.ok() && r->exit_code == 0;
  }

  // A TCP connection from namespace `from` to the server pod on port 8080: `bytes` to the server,
  // then "re:" and as many back (large writes: segments at the pod MTU and GSO through the
  // encapsulation both ways; the server's replies pass only through conntrack).
  void exchangeWithServer(const std::string& from, size_t bytes) {
    auto lfd = testing::listenTcp(server_.netns, server_.ip, 8080);
    ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
    auto c = testing::connectTcp(from, server_.ip, 8080);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    auto s = testing::acceptTcp(lfd->get());
    ASSERT_TRUE(s.ok()) << s.error().toString();
    std::string msg(bytes, 'x');
    ASSERT_TRUE(testing::sendAll(c->get(), msg).ok());
    auto got = testing::recvExactly(s->get(), msg.size());
    ASSERT_TRUE(got.ok()) << got.error().toString();
    ASSERT_TRUE(testing::sendAll(s->get(), "re:" + msg).ok());
    auto back = testing::recvExactly(c->get(), msg.size() + 3);
    ASSERT_TRUE(back.ok()) << back.error().toString();
    EXPECT_EQ(back->size(), msg.size() + 3);
  }

  // Polls `n`'s ring until an event satisfying `pred` arrives.
  template <typename Pred>
  ::testing::AssertionResult waitForEvent(Node& n, Pred pred,
                                          std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t checked = 0;
    while (true) {
      for (; checked < n.events.size(); checked++)
        if (pred(n.events[checked])) return ::testing::AssertionSuccess();
      if (std::chrono::steady_clock::now() >= deadline) break;
      auto polled = n.reader->poll(50ms);
      if (!polled.ok()) return ::testing::AssertionFailure() << polled.error().toString();
    }
    std::string seen;
    for (const auto& ev : n.events) seen += "\n  " + datapath::formatEvent(ev);
    return ::testing::AssertionFailure() << "no matching event; saw:" << seen;
  }

  uint64_t metric(Node& n, uint8_t reason, uint8_t dir) {
    auto all = n.dp->readMetrics();
    EXPECT_TRUE(all.ok());
    uint64_t sum = 0;
    if (all.ok())
      for (const auto& e : *all)
        if (e.reason == reason && e.dir == dir) sum += e.packets;
    return sum;
  }

  Node a_, b_;
  testing::Pod client_, other_, server_;
};

TEST_F(OverlayNetnsTest, PingCrossesNodesBothWaysOfTheConnection) {
  EXPECT_TRUE(ping(client_, server_.ip)) << "client -> server across the overlay";
  // The largest payload the pod MTU allows, with DF: the encapsulated packet fits the underlay.
  EXPECT_TRUE(ping(client_, server_.ip, 5, 1450 - 28)) << "full-MTU ping";
  // The request left node A encapsulated and entered node B through bpf_overlay.
  EXPECT_TRUE(waitForEvent(b_, [&](const cilium_event& ev) {
    return ev.type == EVENT_POLICY_VERDICT && ev.verdict == 0 && ev.src_identity == kClientId &&
           ev.dst_identity == kServerId && ev.tuple.proto == 1 && ev.dir == METRIC_INGRESS;
  }));
  EXPECT_GT(metric(b_, REASON_FORWARDED, METRIC_INGRESS), 0u);
}

TEST_F(OverlayNetnsTest, TcpCrossesNodesAndRepliesPassThroughConntrack) {
  // The server's egress policy denies everything, so its data passes only as replies.
  exchangeWithServer(client_.netns, 200000);
  EXPECT_EQ(metric(b_, DROP_POLICY, METRIC_EGRESS), 0u);
}

TEST_F(OverlayNetnsTest, AnUnderlaySmallerThanConfiguredFragmentsTheOuterPacketsNotTheFlow) {
  // The pods' MTU leaves room for a 1500-byte underlay, but the path is 1400: the encapsulated
  // packets leave without DF on the outer header, so the kernel fragments them and nothing is
  // black-holed (only slower). Both directions, a full-size DF ping and a bulk TCP transfer.
  for (const auto& n : {netnsName(a_.topo->nodeNetns()), netnsName(b_.topo->nodeNetns())}) {
    auto r = runChecked({"ip", "-n", n, "link", "set", "ul0", "mtu", "1400"});
    ASSERT_TRUE(r.ok()) << r.error().toString();
  }
  EXPECT_TRUE(ping(client_, server_.ip, 5, 1450 - 28)) << "full pod-MTU ping over a 1400 underlay";
  exchangeWithServer(client_.netns, 300000);
}

TEST_F(OverlayNetnsTest, IdentityInTheVniDecidesTheDestinationsPolicy) {
  auto lfd = testing::listenTcp(server_.netns, server_.ip, 8080);
  ASSERT_TRUE(lfd.ok()) << lfd.error().toString();
  // The client's identity is admitted.
  auto c = testing::connectTcp(client_.netns, server_.ip, 8080);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  auto s = testing::acceptTcp(lfd->get());
  ASSERT_TRUE(s.ok()) << s.error().toString();

  // Same node, same path, same tunnel endpoint: only the identity in the VNI differs.
  uint64_t before = metric(b_, DROP_POLICY, METRIC_INGRESS);
  auto denied = testing::connectTcp(other_.netns, server_.ip, 8080, 1500ms);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_FALSE(ping(other_, server_.ip, 1));
  EXPECT_TRUE(waitForEvent(b_, [&](const cilium_event& ev) {
    return ev.type == EVENT_DROP && ev.subtype == DROP_POLICY && ev.src_identity == kOtherId &&
           ev.dst_identity == kServerId && ev.tuple.saddr.ip4 == be(other_.ip) &&
           ev.tuple.proto == 6 && ev.file == DROP_FILE_BPF_OVERLAY && ev.dir == METRIC_INGRESS;
  }));
  EXPECT_GT(metric(b_, DROP_POLICY, METRIC_INGRESS), before);
  // Node A let it out: its egress policy allows everything.
  EXPECT_EQ(metric(a_, DROP_POLICY, METRIC_EGRESS), 0u);

  // Admitting the other identity too lets it in.
  setPolicy(b_, 1, {allow(kClientId, POLICY_INGRESS), allow(kOtherId, POLICY_INGRESS)});
  auto now_allowed = testing::connectTcp(other_.netns, server_.ip, 8080);
  EXPECT_TRUE(now_allowed.ok()) << now_allowed.error().toString();
}

TEST_F(OverlayNetnsTest, NodeTrafficToRemotePodsCrossesTheTunnelAsRemoteNode) {
  // Node A's own packets, as the agent sets it up in tunnel mode: cilium_host (NOARP) with
  // cil_from_host on its egress, the other node's pods routed through it from the router address.
  const std::string na = netnsName(a_.topo->nodeNetns()), router = a_.topo->routerIp();
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"ip", "-n", na, "link", "add", "cilium_host", "type", "veth", "peer", "name",
            "cilium_net"},
           {"ip", "-n", na, "link", "set", "cilium_host", "arp", "off"},
           {"ip", "-n", na, "link", "set", "cilium_net", "up"},
           {"ip", "-n", na, "link", "set", "cilium_host", "up"},
           {"ip", "-n", na, "addr", "add", router + "/32", "dev", "cilium_host"},
           {"ip", "-n", na, "route", "add", server_.ip + "/32", "dev", "cilium_host", "src",
            router, "mtu", "1450"}}) {
    auto r = runChecked(argv);
    ASSERT_TRUE(r.ok()) << r.error().toString();
  }
  auto s = runInNetns(a_.topo->nodeNetns(), [&]() -> Status {
    CILIUM_ASSIGN_OR_RETURN(auto host, datapath::netlink::linkByName("cilium_host"));
    return a_.dp->attachHostEgress(host.ifindex);
  });
  ASSERT_TRUE(s.ok()) << s.error().toString();
  // Node B knows node A's router address as remote-node behind A, as the cluster feed writes it.
  setRemote(b_.dp->maps(), router, IDENTITY_REMOTE_NODE, kUnderlayA);
  auto ping_from_node = [&](int deadline_s) {
    auto r = a_.topo->exec(a_.topo->nodeNetns(),
                           {"ping", "-c", "1", "-w", std::to_string(deadline_s), "-n", "-q",
                            server_.ip},
                           10s);
    return r.ok() && r->exit_code == 0;
  };

  // The server admits the host only: another node's host is remote-node here, never host.
  setPolicy(b_, 1, {allow(IDENTITY_HOST, POLICY_INGRESS)});
  EXPECT_FALSE(ping_from_node(1));
  EXPECT_TRUE(waitForEvent(b_, [&](const cilium_event& ev) {
    return ev.type == EVENT_DROP && ev.subtype == DROP_POLICY &&
           ev.src_identity == IDENTITY_REMOTE_NODE && ev.tuple.saddr.ip4 == be(router) &&
           ev.file == DROP_FILE_BPF_OVERLAY;
  }));

  // Admitting remote-node lets ICMP and TCP through, replies back into node A's stack.
  setPolicy(b_, 1, {allow(IDENTITY_REMOTE_NODE, POLICY_INGRESS)});
  EXPECT_TRUE(ping_from_node(5));
  exchangeWithServer(a_.topo->nodeNetns(), 100000);
}

TEST_F(OverlayNetnsTest, WithoutTunnelModeNothingIsEncapsulated) {
  ASSERT_TRUE(ping(client_, server_.ip));
  // Native routing with no route to the other node's pods: packets go to node A's stack, which
  // has nowhere to send them.
  auto s = runInNetns(a_.topo->nodeNetns(), [&] { return a_.dp->detachOverlay(); });
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_FALSE(ping(client_, server_.ip, 1));
  s = runInNetns(a_.topo->nodeNetns(), [&] { return a_.dp->attachOverlay(a_.vxlan_ifindex); });
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_TRUE(ping(client_, server_.ip));
}

TEST_F(OverlayNetnsTest, VxlanDeviceIsCollectMdOnTheTunnelPort) {
  auto link = runInNetnsValue<datapath::netlink::Link>(
      a_.topo->nodeNetns(), [] { return datapath::netlink::linkByName(datapath::kVxlanDevice); });
  ASSERT_TRUE(link.ok()) << link.error().toString();
  EXPECT_EQ(link->kind, "vxlan");
  EXPECT_TRUE(link->vxlan_external);
  EXPECT_EQ(link->vxlan_port, datapath::kDefaultTunnelPort);
  EXPECT_TRUE(link->up);
  // Ensuring again keeps the device (and the attachment on it).
  auto again = runInNetnsValue<int>(a_.topo->nodeNetns(), [] {
    return datapath::ensureVxlanDevice(datapath::kDefaultTunnelPort);
  });
  ASSERT_TRUE(again.ok()) << again.error().toString();
  EXPECT_EQ(*again, a_.vxlan_ifindex);
  EXPECT_TRUE(ping(client_, server_.ip));
}

}  // namespace
}  // namespace cilium
