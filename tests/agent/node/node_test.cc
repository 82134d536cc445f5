// The node registry: a node's Node and CiliumNode merged (addresses, pod CIDRs with the
// CiliumNode's first), deletions once both are gone, observers in order; the feed from stores.
#include "agent/node/node.h"

#include <gtest/gtest.h>

#include "agent/k8s/source.h"
#include "agent/node/k8s_feed.h"

namespace cilium::node {
namespace {

k8s::Node kubeNode(const std::string& name, std::vector<std::string> ips,
                   std::vector<std::string> cidrs) {
  k8s::Node n;
  n.meta.name = name;
  n.internal_ips = std::move(ips);
  n.pod_cidrs = std::move(cidrs);
  return n;
}

k8s::CiliumNode ciliumNode(const std::string& name, std::vector<std::string> ips,
                           std::vector<std::string> cidrs) {
  k8s::CiliumNode n;
  n.meta.name = name;
  for (auto& ip : ips) n.addresses.push_back({"", std::move(ip)});
  n.pod_cidrs = std::move(cidrs);
  return n;
}

TEST(NodeManagerTest, NodeAndCiliumNodeMerge) {
  Manager m;
  std::vector<std::string> heard;
  m.subscribe([&](const Node& n, bool deleted) {
    heard.push_back((deleted ? "-" : "+") + n.name + " " +
                    (n.pod_cidrs.empty() ? "-" : n.pod_cidrs[0].toString()));
  });
  m.updateFromNode("n1", fromK8s(kubeNode("n1", {"172.30.0.1"}, {"10.0.1.0/24"})));
  auto n = m.get("n1");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->primaryAddress()->toString(), "172.30.0.1");
  m.updateFromCiliumNode("n1", fromK8s(ciliumNode("n1", {"10.0.1.1"}, {"10.200.1.0/24"})));
  n = m.get("n1");
  EXPECT_EQ(n->primaryAddress()->toString(), "172.30.0.1")
      << "the InternalIP, not the router's CiliumInternalIP";
  EXPECT_EQ(n->pod_cidrs.at(0).toString(), "10.200.1.0/24") << "the CiliumNode's CIDRs win";
  EXPECT_EQ(n->addresses.size(), 2u);
  m.updateFromNode("n1", std::nullopt);
  EXPECT_TRUE(m.get("n1").has_value()) << "the CiliumNode still says it exists";
  m.updateFromCiliumNode("n1", std::nullopt);
  EXPECT_FALSE(m.get("n1").has_value());
  EXPECT_EQ(heard, (std::vector<std::string>{"+n1 10.0.1.0/24", "+n1 10.200.1.0/24",
                                             "+n1 10.200.1.0/24", "-n1 10.200.1.0/24"}));
}

TEST(NodeManagerTest, FeedFromStoresLeavesOutWhatDoesNotParse) {
  k8s::Stores stores;
  stores.nodes.replace({kubeNode("a", {"172.30.0.1", "not-an-ip"}, {"10.0.0.5/24"})});
  stores.cilium_nodes.replace({ciliumNode("b", {"172.30.0.2"}, {"10.200.2.0/24"})});
  Manager m;
  auto feed = K8sFeed::start(m, stores);
  ASSERT_TRUE(feed.ok());
  auto a = m.get("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->addresses.size(), 1u);
  EXPECT_TRUE(a->pod_cidrs.empty()) << "10.0.0.5/24 has host bits set";
  ASSERT_TRUE(m.get("b"));
  stores.cilium_nodes.replace({});
  EXPECT_FALSE(m.get("b"));
  stores.nodes.upsert(kubeNode("c", {"fd00::3"}, {}));
  auto c = m.get("c");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->primaryAddress(IpFamily::kV4));
  EXPECT_EQ(c->primaryAddress(IpFamily::kV6)->toString(), "fd00::3");
}

}  // namespace
}  // namespace cilium::node
