// auto-direct-node-routes against a fake routing table: a route per other node's pod CIDR via its
// address when that address is on a connected subnet (others skipped), following joins, CIDR and
// address changes and deletions; an earlier run's routes stay until the view is synced, then the
// unwanted ones go; a failed install is retried at the node's next change.
#include "agent/node/direct_routes.h"

#include <set>

#include <gtest/gtest.h>

namespace cilium::node {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }
IpPrefix cidr(const char* s) { return *IpPrefix::parse(s); }

// The kernel table: routes by (cidr, via, ifindex); 172.30.0.0/24 is on device 2.
class FakeTable final : public RouteTable {
 public:
  Result<std::vector<DirectRoute>> installed() override {
    return std::vector<DirectRoute>(routes.begin(), routes.end());
  }
  Status replace(const DirectRoute& r) override {
    if (fail_next) {
      fail_next = false;
      return Error(ErrorCode::kInternal, "netlink: no");
    }
    std::erase_if(routes, [&](const DirectRoute& x) { return x.cidr == r.cidr; });
    routes.insert(r);
    return okStatus();
  }
  Status remove(const DirectRoute& r) override {
    routes.erase(r);
    return okStatus();
  }
  std::optional<int> connectedDevice(const IpAddr& a) override {
    if (cidr("172.30.0.0/24").contains(a) || cidr("fd00:172:30::/64").contains(a)) return 2;
    return std::nullopt;
  }
  std::set<DirectRoute> routes;
  bool fail_next = false;
};

Node node(const std::string& name, const char* addr, std::vector<const char*> cidrs) {
  Node n;
  n.name = name;
  if (addr != nullptr) n.addresses.push_back({AddressType::kInternalIp, ip(addr)});
  for (auto* c : cidrs) n.pod_cidrs.push_back(cidr(c));
  return n;
}

DirectRoute route(const char* c, const char* via) { return {cidr(c), ip(via), 2}; }

TEST(DirectRoutesTest, FollowsNodesOnTheSharedSubnet) {
  Manager nodes;
  FakeTable table;
  nodes.updateFromCiliumNode("node-1", node("node-1", "172.30.0.1", {"10.200.0.0/16"}));
  nodes.updateFromCiliumNode("node-2", node("node-2", "172.30.0.2", {"10.201.0.0/16"}));
  // Behind a router: no route (the network has to know the way).
  nodes.updateFromCiliumNode("far", node("far", "192.168.9.9", {"10.209.0.0/16"}));
  auto routes = DirectRoutes::start(nodes, table, "node-1");
  EXPECT_EQ(table.routes, (std::set{route("10.201.0.0/16", "172.30.0.2")}))
      << "this node's own CIDR and the far node's are not routed";

  // A node joins, then gets a second CIDR.
  nodes.updateFromCiliumNode("node-3", node("node-3", "172.30.0.3", {"10.202.0.0/16"}));
  nodes.updateFromCiliumNode("node-3",
                             node("node-3", "172.30.0.3", {"10.202.0.0/16", "10.212.0.0/16"}));
  EXPECT_EQ(table.routes,
            (std::set{route("10.201.0.0/16", "172.30.0.2"), route("10.202.0.0/16", "172.30.0.3"),
                      route("10.212.0.0/16", "172.30.0.3")}));
  // Its address changes; then its CIDRs shrink.
  nodes.updateFromCiliumNode("node-3", node("node-3", "172.30.0.33", {"10.202.0.0/16"}));
  EXPECT_EQ(table.routes, (std::set{route("10.201.0.0/16", "172.30.0.2"),
                                    route("10.202.0.0/16", "172.30.0.33")}));
  // A node leaves: its route goes.
  nodes.updateFromCiliumNode("node-2", std::nullopt);
  EXPECT_EQ(table.routes, (std::set{route("10.202.0.0/16", "172.30.0.33")}));
  EXPECT_EQ(routes->routes().size(), 1u);
  // Moves away from the shared subnet: no route.
  nodes.updateFromCiliumNode("node-3", node("node-3", "192.168.0.3", {"10.202.0.0/16"}));
  EXPECT_TRUE(table.routes.empty());
}

TEST(DirectRoutesTest, EarlierRunsRoutesGoOnlyOnceSynced) {
  Manager nodes;
  FakeTable table;
  // The last run's: node-2 still there (its CIDR changed since), node-9 gone.
  table.routes = {route("10.201.0.0/16", "172.30.0.2"), route("10.209.0.0/16", "172.30.0.9")};
  nodes.updateFromCiliumNode("node-2", node("node-2", "172.30.0.2", {"10.221.0.0/16"}));
  auto routes = DirectRoutes::start(nodes, table, "node-1");
  EXPECT_EQ(table.routes.size(), 3u) << "nothing of the last run removed before the sync";
  routes->synced();
  EXPECT_EQ(table.routes, (std::set{route("10.221.0.0/16", "172.30.0.2")}));
}

TEST(DirectRoutesTest, RemoveAllClearsAnEarlierRunsRoutes) {
  FakeTable table;
  table.routes = {route("10.201.0.0/16", "172.30.0.2"), route("10.209.0.0/16", "172.30.0.9")};
  EXPECT_EQ(DirectRoutes::removeAll(table), 2u);
  EXPECT_TRUE(table.routes.empty());
}

TEST(DirectRoutesTest, FailedInstallIsRetriedAtTheNextChange) {
  Manager nodes;
  FakeTable table;
  auto routes = DirectRoutes::start(nodes, table, "node-1");
  table.fail_next = true;
  nodes.updateFromCiliumNode("node-2", node("node-2", "172.30.0.2", {"10.201.0.0/16"}));
  EXPECT_TRUE(table.routes.empty());
  nodes.updateFromNode("node-2", node("node-2", "172.30.0.2", {}));
  EXPECT_EQ(table.routes, (std::set{route("10.201.0.0/16", "172.30.0.2")}));
  // Stopping leaves the routes (the datapath keeps forwarding across a restart).
  routes.reset();
  EXPECT_EQ(table.routes.size(), 1u);
}

TEST(DirectRoutesTest, TunnelModeRoutesEveryOtherNodeIntoTheHostDevice) {
  Manager nodes;
  FakeTable table;
  nodes.updateFromCiliumNode("node-1", node("node-1", "172.30.0.1", {"10.200.0.0/24"}));
  nodes.updateFromCiliumNode("node-2", node("node-2", "172.30.0.2", {"10.200.1.0/24"}));
  // Behind a router too: the tunnel reaches it wherever it is.
  nodes.updateFromCiliumNode("far", node("far", "192.168.9.9", {"10.200.9.0/24"}));
  // An earlier run's route to a node gone since, read back without its MTU as the kernel's is.
  table.routes.insert({cidr("10.200.7.0/24"), IpAddr{}, 5, ip("10.200.0.1")});
  auto r = DirectRoutes::start(nodes, table, "node-1", TunnelRoutes{5, ip("10.200.0.1"), 1450});
  auto tunnel = [](const char* c) {
    return DirectRoute{cidr(c), IpAddr{}, 5, ip("10.200.0.1"), 1450};
  };
  EXPECT_EQ(table.routes.count(tunnel("10.200.1.0/24")), 1u);
  EXPECT_EQ(table.routes.count(tunnel("10.200.9.0/24")), 1u);
  r->synced();
  EXPECT_EQ(table.routes.size(), 2u) << "the stale route went, the wanted ones stayed";
  nodes.updateFromCiliumNode("far", std::nullopt);
  EXPECT_EQ(table.routes.count(tunnel("10.200.9.0/24")), 0u);
  EXPECT_EQ(table.routes.size(), 1u);
}

// Dual stack: each family's pod CIDR via the node's address of that family; a node without an
// IPv6 address (or off the IPv6 subnet) keeps its IPv4 route. Tunnel routes of a family need
// that family's router address.
TEST(DirectRoutesTest, Ipv6PodCidrsGoViaTheNodesIpv6Address) {
  Manager nodes;
  FakeTable table;
  Node n2 = node("node-2", "172.30.0.2", {"10.201.0.0/16", "fd00:10:200::1:0/112"});
  n2.addresses.push_back({AddressType::kInternalIp, ip("fd00:172:30::2")});
  nodes.updateFromCiliumNode("node-2", n2);
  nodes.updateFromCiliumNode(
      "node-3", node("node-3", "172.30.0.3", {"10.202.0.0/16", "fd00:10:200::2:0/112"}));
  auto routes = DirectRoutes::start(nodes, table, "node-1");
  EXPECT_EQ(table.routes, (std::set{route("10.201.0.0/16", "172.30.0.2"),
                                    route("fd00:10:200::1:0/112", "fd00:172:30::2"),
                                    route("10.202.0.0/16", "172.30.0.3")}))
      << "node-3 has no IPv6 address: no IPv6 route, its IPv4 one all the same";
  // node-3 publishes an IPv6 address behind a router, then one on the shared subnet.
  Node n3 = node("node-3", "172.30.0.3", {"10.202.0.0/16", "fd00:10:200::2:0/112"});
  n3.addresses.push_back({AddressType::kInternalIp, ip("2001:db8::3")});
  nodes.updateFromCiliumNode("node-3", n3);
  EXPECT_EQ(table.routes.size(), 3u);
  n3.addresses.back().ip = ip("fd00:172:30::3");
  nodes.updateFromCiliumNode("node-3", n3);
  EXPECT_EQ(table.routes.count(route("fd00:10:200::2:0/112", "fd00:172:30::3")), 1u);
  nodes.updateFromCiliumNode("node-2", std::nullopt);
  EXPECT_EQ(table.routes, (std::set{route("10.202.0.0/16", "172.30.0.3"),
                                    route("fd00:10:200::2:0/112", "fd00:172:30::3")}));
  routes->synced();
  EXPECT_EQ(table.routes.size(), 2u);

  // Tunnel mode on an IPv4-only node (no IPv6 router address): only the IPv4 CIDRs go into
  // cilium_host.
  FakeTable tunnel_table;
  auto t =
      DirectRoutes::start(nodes, tunnel_table, "node-1", TunnelRoutes{5, ip("10.200.0.1"), 1450});
  EXPECT_EQ(tunnel_table.routes,
            (std::set{DirectRoute{cidr("10.202.0.0/16"), IpAddr{}, 5, ip("10.200.0.1"), 1450}}));
  // On a dual-stack node both families do, each from its router address.
  FakeTable dual_table;
  auto d = DirectRoutes::start(nodes, dual_table, "node-1",
                               TunnelRoutes{5, ip("10.200.0.1"), 1450, ip("fd00:10:200::1")});
  EXPECT_EQ(dual_table.routes,
            (std::set{DirectRoute{cidr("10.202.0.0/16"), IpAddr{}, 5, ip("10.200.0.1"), 1450},
                      DirectRoute{cidr("fd00:10:200::2:0/112"), IpAddr{}, 5,
                                  ip("fd00:10:200::1"), 1450}}));
}

}  // namespace
}  // namespace cilium::node
