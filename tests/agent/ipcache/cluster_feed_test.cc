// The cluster feed: other nodes' CiliumEndpoints, nodes, health endpoints and pod CIDRs in the
// ipcache with their tunnel endpoints; this node's left to kLocal; deletions, node address
// changes, malformed objects, and a broken watch that relists (against the fake apiserver).
#include "agent/ipcache/cluster_feed.h"

#include <gtest/gtest.h>

#include "agent/datapath/maps.h"
#include "agent/k8s/reflector.h"
#include "agent/k8s/source.h"
#include "agent/node/k8s_feed.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"

namespace cilium::ipcache {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;

IpPrefix pfx(const char* text) { return IpPrefix::parseMasked(text, true).value(); }
IpAddr ip(const char* text) { return IpAddr::parse(text).value(); }

k8s::CiliumNode ciliumNode(const std::string& name, const std::string& internal_ip,
                           const std::string& router_ip, const std::string& cidr,
                           const std::string& health = "") {
  k8s::CiliumNode n;
  n.meta.name = name;
  n.addresses = {{"InternalIP", internal_ip}, {"CiliumInternalIP", router_ip}};
  n.pod_cidrs = {cidr};
  n.health_ipv4 = health;
  return n;
}

k8s::CiliumEndpoint cep(const std::string& ns, const std::string& name, const std::string& ip,
                        int64_t identity, const std::string& node) {
  k8s::CiliumEndpoint c;
  c.meta.namespace_name = ns;
  c.meta.name = name;
  c.identity_id = identity;
  c.addressing = {{ip, ""}};
  c.node = node;
  return c;
}

// "identity via tunnel-endpoint", or "-" when absent, for the entry of exactly `prefix`.
std::string entry(const IpCache& cache, const char* prefix) {
  auto e = cache.get(pfx(prefix));
  if (!e) return "-";
  return fmt::format("{} via {}", e->info.identity,
                     e->info.tunnel_endpoint ? e->info.tunnel_endpoint->toString() : "none");
}

class ClusterFeedTest : public ::testing::Test {
 protected:
  void startFeed(bool tunnel = true) {
    auto nf = node::K8sFeed::start(nodes, stores);
    ASSERT_TRUE(nf.ok());
    node_feed = std::move(*nf);
    auto f = ClusterFeed::start(cache, nodes, stores, ClusterFeedOptions{"n1", tunnel});
    ASSERT_TRUE(f.ok()) << f.error().message();
    feed = std::move(*f);
  }
  k8s::Stores stores;
  node::Manager nodes;
  IpCache cache{nullptr, nullptr};
  std::unique_ptr<node::K8sFeed> node_feed;
  std::unique_ptr<ClusterFeed> feed;
};

TEST_F(ClusterFeedTest, RemoteEndpointsNodesHealthAndPodCidrs) {
  stores.cilium_nodes.replace(
      {ciliumNode("n1", "172.31.0.1", "10.1.1.1", "10.1.1.0/24", "10.1.1.2"),
       ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24", "10.1.2.2")});
  stores.cilium_endpoints.replace({
      cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"),  // on n2, by its IP (Cilium's way)
      cep("default", "b", "10.1.2.11", 1001, "n2"),          // by name
      cep("default", "mine", "10.1.1.10", 1002, "172.31.0.1"),
  });
  startFeed();
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "10.1.2.11"), "1001 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "10.1.1.10"), "-") << "this node's endpoints are the endpoint manager's";
  EXPECT_EQ(entry(cache, "172.31.0.2"), "6 via none") << "remote-node, reached directly";
  EXPECT_EQ(entry(cache, "10.1.2.1"), "6 via 172.31.0.2") << "its router IP through the tunnel";
  EXPECT_EQ(entry(cache, "10.1.2.2"), "4 via 172.31.0.2") << "health";
  EXPECT_EQ(entry(cache, "10.1.2.0/24"), "2 via 172.31.0.2") << "world through the tunnel";
  EXPECT_EQ(entry(cache, "172.31.0.1"), "1 via none") << "this node is host";
  EXPECT_EQ(entry(cache, "10.1.1.1"), "1 via none");
  EXPECT_EQ(entry(cache, "10.1.1.2"), "4 via none");
  EXPECT_EQ(entry(cache, "10.1.1.0/24"), "-") << "no tunnel to this node's own pods";
  // The datapath's view of an unknown pod of n2: the CIDR, through the tunnel.
  auto unknown = cache.lookup(ip("10.1.2.99"));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->info.tunnel_endpoint, ip("172.31.0.2"));
  for (const auto& e : cache.list()) {
    if (e.prefix != pfx("0.0.0.0/0")) {
      EXPECT_EQ(e.source, Source::kCustomResource) << e.prefix.toString();
    }
  }
  EXPECT_EQ(feed->entries(), 9u) << "3 of this node, 4 of n2, 2 endpoints";
}

// Dual stack: a node's IPv6 pod CIDR and its pods' IPv6 addresses tunnel to its IPv4 underlay
// address (IPv6 inner over an IPv4 VXLAN underlay), its IPv6 InternalIP is remote-node.
TEST_F(ClusterFeedTest, Ipv6PrefixesTunnelToTheIpv4Underlay) {
  k8s::CiliumNode n2 = ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24");
  n2.addresses.push_back({"InternalIP", "fd00:172:31::2"});
  n2.pod_cidrs.push_back("fd00:10:1:2::/112");
  stores.cilium_nodes.replace({n2});
  k8s::CiliumEndpoint a = cep("default", "a", "10.1.2.10", 1000, "172.31.0.2");
  a.addressing = {{"10.1.2.10", "fd00:10:1:2::a"}};
  stores.cilium_endpoints.replace({a});
  startFeed();
  EXPECT_EQ(entry(cache, "fd00:10:1:2::a/128"), "1000 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "fd00:10:1:2::/112"), "2 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "fd00:172:31::2/128"), "6 via none");
  // The kernel value says which family its tunnel endpoint is, whatever the key's.
  auto v = kernelValue(cache.get(pfx("fd00:10:1:2::/112"))->info);
  EXPECT_EQ(v.flags, IPCACHE_F_HAS_TUNNEL_EP);
  EXPECT_EQ(datapath::ipcacheTunnelEndpoint(v), ip("172.31.0.2"));
  v = kernelValue(Info{identity::kWorld, ip("fd00:172:31::2"), 0, 0});
  EXPECT_EQ(v.flags, IPCACHE_F_HAS_TUNNEL_EP | IPCACHE_F_TUNNEL_EP_IPV6);
  EXPECT_EQ(datapath::ipcacheTunnelEndpoint(v), ip("fd00:172:31::2"));
}

TEST_F(ClusterFeedTest, NativeRoutingHasNoPodCidrsAndNoTunnelToRouterIps) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")});
  stores.cilium_endpoints.replace({cep("default", "a", "10.1.2.10", 1000, "172.31.0.2")});
  startFeed(/*tunnel=*/false);
  EXPECT_EQ(entry(cache, "10.1.2.0/24"), "-");
  EXPECT_EQ(entry(cache, "10.1.2.1"), "6 via none");
  // The endpoint's node is still recorded (as Cilium does); the datapath ignores it natively.
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
}

TEST_F(ClusterFeedTest, DeletionsLeaveTheViewAndLocalWins) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24"),
                               ciliumNode("n3", "172.31.0.3", "10.1.3.1", "10.1.3.0/24")});
  stores.cilium_endpoints.replace({cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"),
                                   cep("default", "c", "10.1.3.10", 1003, "172.31.0.3")});
  startFeed();
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
  stores.cilium_endpoints.erase("default/a");
  EXPECT_EQ(entry(cache, "10.1.2.10"), "-");
  // A local endpoint takes an address the cluster still names: kLocal wins, and survives the
  // cluster's entry going away.
  stores.cilium_endpoints.upsert(cep("default", "stale", "10.1.3.20", 1004, "172.31.0.3"));
  ASSERT_TRUE(cache.upsert(pfx("10.1.3.20"), Info{1500, std::nullopt, 0, 0}, Source::kLocal).ok());
  EXPECT_EQ(entry(cache, "10.1.3.20"), "1500 via none");
  stores.cilium_endpoints.erase("default/stale");
  EXPECT_EQ(entry(cache, "10.1.3.20"), "1500 via none");
  // A node deleted takes its addresses and pod CIDR; its endpoint keeps its named address.
  stores.cilium_nodes.erase("n3");
  EXPECT_EQ(entry(cache, "172.31.0.3"), "-");
  EXPECT_EQ(entry(cache, "10.1.3.0/24"), "-");
  EXPECT_EQ(entry(cache, "10.1.3.1"), "-");
  EXPECT_EQ(entry(cache, "10.1.3.10"), "1003 via 172.31.0.3");
  stores.cilium_endpoints.erase("default/c");
  EXPECT_EQ(entry(cache, "10.1.3.10"), "-");
}

// Hubble names other nodes' pods by address: the CiliumEndpoint's namespace, name, identity
// and node, gone with the endpoint, moved when the endpoint's address changes.
TEST_F(ClusterFeedTest, PodByIpNamesRemotePods) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")});
  stores.cilium_endpoints.replace({cep("shop", "web-1", "10.1.2.10", 1000, "172.31.0.2")});
  startFeed();
  auto pod = feed->podByIp(ip("10.1.2.10"));
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->namespace_name, "shop");
  EXPECT_EQ(pod->name, "web-1");
  EXPECT_EQ(pod->identity, 1000u);
  EXPECT_EQ(pod->node, "n2");
  EXPECT_FALSE(feed->podByIp(ip("10.1.2.11")));
  stores.cilium_endpoints.upsert(cep("shop", "web-1", "10.1.2.12", 1000, "172.31.0.2"));
  EXPECT_FALSE(feed->podByIp(ip("10.1.2.10"))) << "the old address is forgotten";
  ASSERT_TRUE(feed->podByIp(ip("10.1.2.12")));
  stores.cilium_endpoints.erase("shop/web-1");
  EXPECT_FALSE(feed->podByIp(ip("10.1.2.12")));
}

TEST_F(ClusterFeedTest, NodeAddressChangeMovesItsEndpoints) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")});
  stores.cilium_endpoints.replace({cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"),
                                   cep("default", "b", "10.1.2.11", 1001, "n2")});
  startFeed();
  stores.cilium_nodes.upsert(ciliumNode("n2", "172.31.0.22", "10.1.2.1", "10.1.2.0/24"));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.22")
      << "the endpoint still names the old address; its node moved";
  EXPECT_EQ(entry(cache, "10.1.2.11"), "1001 via 172.31.0.22");
  EXPECT_EQ(entry(cache, "10.1.2.0/24"), "2 via 172.31.0.22");
  EXPECT_EQ(entry(cache, "10.1.2.1"), "6 via 172.31.0.22");
  EXPECT_EQ(entry(cache, "172.31.0.2"), "-");
  EXPECT_EQ(entry(cache, "172.31.0.22"), "6 via none");
  // Its agent rewrites the endpoint with the new address: nothing changes.
  stores.cilium_endpoints.upsert(cep("default", "a", "10.1.2.10", 1000, "172.31.0.22"));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.22");
}

TEST_F(ClusterFeedTest, EndpointsBeforeTheirNode) {
  startFeed();
  stores.cilium_endpoints.upsert(cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"));
  stores.cilium_endpoints.upsert(cep("default", "b", "10.1.2.11", 1001, "n2"));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2") << "the named address, as is";
  EXPECT_EQ(entry(cache, "10.1.2.11"), "-") << "a node name nobody knows yet: wait";
  stores.cilium_nodes.upsert(ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24"));
  EXPECT_EQ(entry(cache, "10.1.2.11"), "1001 via 172.31.0.2");
  // This node's own endpoint seen before this node is known: dropped once it is.
  stores.cilium_endpoints.upsert(cep("default", "mine", "10.1.1.10", 1002, "172.31.0.1"));
  EXPECT_EQ(entry(cache, "10.1.1.10"), "1002 via 172.31.0.1");
  stores.cilium_nodes.upsert(ciliumNode("n1", "172.31.0.1", "10.1.1.1", "10.1.1.0/24"));
  EXPECT_EQ(entry(cache, "10.1.1.10"), "-");
}

TEST_F(ClusterFeedTest, MalformedEndpointsAreLeftOut) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")});
  startFeed();
  stores.cilium_endpoints.upsert(cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
  // A good endpoint turned bad leaves the view (no stale identity for its address).
  stores.cilium_endpoints.upsert(cep("default", "a", "10.1.2.10", 0, "172.31.0.2"));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "-");
  stores.cilium_endpoints.upsert(cep("default", "b", "not-an-ip", 1001, "172.31.0.2"));
  stores.cilium_endpoints.upsert(cep("default", "c", "10.1.2.12", 1002, ""));
  stores.cilium_endpoints.upsert(cep("default", "d", "", 1003, "172.31.0.2"));
  stores.cilium_endpoints.upsert(cep("default", "e", "10.1.2.14", 0x1000001, "172.31.0.2"));
  stores.cilium_endpoints.upsert(cep("default", "f", "fd00::1", 1005, "172.31.0.2"));
  EXPECT_EQ(entry(cache, "10.1.2.12"), "-");
  EXPECT_EQ(entry(cache, "10.1.2.14"), "-");
  EXPECT_EQ(feed->entries(), 3u) << "n2's address, router IP and CIDR only";

  auto bad = remoteEndpointOf(cep("default", "b", "not-an-ip", 1001, "172.31.0.2"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "CiliumEndpoint default/b: address \"not-an-ip\" is not an IP address");
  auto no_node = remoteEndpointOf(cep("default", "c", "10.1.2.12", 1002, ""));
  ASSERT_FALSE(no_node.ok());
  EXPECT_EQ(no_node.error().message(),
            "CiliumEndpoint default/c: no node in status.networking.node");
}

TEST_F(ClusterFeedTest, StopsFollowingWhenDestroyedAndKeepsTheEntries) {
  stores.cilium_nodes.replace({ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")});
  startFeed();
  stores.cilium_endpoints.upsert(cep("default", "a", "10.1.2.10", 1000, "172.31.0.2"));
  feed.reset();
  stores.cilium_endpoints.erase("default/a");
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
}

// The store the feed follows is an informer's: a watch that breaks while an endpoint and a node
// go away, with the history compacted meanwhile, relists, and the relist's deletions reach the
// ipcache.
TEST(ClusterFeedApiTest, RelistAfterABrokenWatchLeavesNoStaleEntry) {
  cilium::testing::FakeApiServer server;
  ASSERT_TRUE(server.start().ok());
  k8s::ClientConfig cc;
  cc.server = server.url();
  cc.qps = 0;
  auto client = k8s::Client::create(cc);
  ASSERT_TRUE(client.ok());
  const auto ceps = k8s::Resource<k8s::CiliumEndpoint>::info();
  const auto cns = k8s::Resource<k8s::CiliumNode>::info();
  ASSERT_TRUE(
      server.create(cns, k8s::toJson(ciliumNode("n2", "172.31.0.2", "10.1.2.1", "10.1.2.0/24")))
          .ok());
  ASSERT_TRUE(
      server.create(cns, k8s::toJson(ciliumNode("n3", "172.31.0.3", "10.1.3.1", "10.1.3.0/24")))
          .ok());
  for (auto [name, addr, node] :
       {std::tuple{"a", "10.1.2.10", "172.31.0.2"}, std::tuple{"b", "10.1.2.11", "172.31.0.2"},
        std::tuple{"c", "10.1.3.10", "172.31.0.3"}})
    ASSERT_TRUE(server.create(ceps, k8s::toJson(cep("default", name, addr, 1000, node))).ok());

  k8s::ApiSourceOptions so;
  so.kinds = {"CiliumEndpoint", "CiliumNode", "Node"};
  so.reflector.backoff.initial = 20ms;
  so.reflector.backoff.max = 200ms;
  k8s::ApiSource source(**client, so);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(source.waitForSync(5s));
  node::Manager nodes;
  IpCache cache(nullptr, nullptr);
  auto nf = node::K8sFeed::start(nodes, source.stores());
  ASSERT_TRUE(nf.ok());
  auto feed = ClusterFeed::start(cache, nodes, source.stores(), ClusterFeedOptions{"n1", true});
  ASSERT_TRUE(feed.ok());
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2");
  EXPECT_EQ(entry(cache, "10.1.3.10"), "1000 via 172.31.0.3");
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 3; }));

  // Disconnected; meanwhile endpoint a and node n3 (with its endpoint c) go, b changes identity.
  server.failNext(1000, 503, "/apis/cilium.io/v2/");
  server.dropWatches();
  ASSERT_TRUE(server.remove(ceps, "default", "a").ok());
  ASSERT_TRUE(server.remove(ceps, "default", "c").ok());
  ASSERT_TRUE(server.remove(cns, "", "n3").ok());
  auto b = *server.get(ceps, "default", "b");
  b["status"]["identity"]["id"] = 1001;
  ASSERT_TRUE(server.update(ceps, b).ok());
  server.compact();
  ASSERT_TRUE(eventually([&] {
    return source.reflector("CiliumEndpoint")->stats().failures >= 1 &&
           source.reflector("CiliumNode")->stats().failures >= 1;
  }));
  EXPECT_EQ(entry(cache, "10.1.2.10"), "1000 via 172.31.0.2") << "not seen yet";
  server.clearFaults();
  ASSERT_TRUE(eventually([&] {
    return entry(cache, "10.1.2.10") == "-" && entry(cache, "10.1.3.10") == "-" &&
           entry(cache, "10.1.3.0/24") == "-" && entry(cache, "10.1.2.11") == "1001 via 172.31.0.2";
  })) << entry(cache, "10.1.2.10")
      << " " << entry(cache, "10.1.3.10") << " " << entry(cache, "10.1.3.0/24") << " "
      << entry(cache, "10.1.2.11");
  EXPECT_GE(source.reflector("CiliumEndpoint")->stats().lists, 2u) << "it was a relist";
  EXPECT_EQ(entry(cache, "172.31.0.3"), "-");
  EXPECT_EQ(entry(cache, "10.1.2.0/24"), "2 via 172.31.0.2");
  feed->reset();
  source.stop();
}

}  // namespace
}  // namespace cilium::ipcache
