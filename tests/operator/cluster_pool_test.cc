// The cluster-pool allocator: distinct node CIDRs in order, exhaustion, overlap and foreign
// CIDRs refused, allocations read back after a restart kept, bad pool configurations refused.
#include "operator/ipam/cluster_pool.h"

#include <set>

#include <gtest/gtest.h>

namespace cilium::op {
namespace {

IpPrefix cidr(std::string_view s) { return *IpPrefix::parse(s); }

ClusterPool pool(std::vector<std::string_view> cidrs, int mask) {
  std::vector<IpPrefix> p;
  for (auto c : cidrs) p.push_back(cidr(c));
  auto r = ClusterPool::create(p, mask);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return std::move(*r);
}

TEST(ClusterPoolTest, DefaultsGiveDistinctSlash24s) {
  ClusterPool p = pool({"10.0.0.0/8"}, 24);
  EXPECT_EQ(p.capacity(), 65536u);
  std::set<IpPrefix> seen;
  for (int i = 0; i < 300; i++) {
    auto c = p.allocate("node" + std::to_string(i));
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->len(), 24);
    EXPECT_TRUE(cidr("10.0.0.0/8").contains(*c));
    EXPECT_TRUE(seen.insert(*c).second) << c->toString() << " handed out twice";
  }
  EXPECT_EQ(p.allocate("node0")->toString(), "10.0.0.0/24") << "a node keeps its CIDR";
  EXPECT_EQ(p.allocate("node299")->toString(), "10.1.43.0/24");
  EXPECT_EQ(p.used(), 300u);
}

TEST(ClusterPoolTest, ExhaustionIsAnErrorAndReleaseMakesRoom) {
  ClusterPool p = pool({"10.10.0.0/23"}, 24);
  ASSERT_TRUE(p.allocate("a").ok());
  ASSERT_TRUE(p.allocate("b").ok());
  auto c = p.allocate("c");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(c.error().message().find("exhausted"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find("10.10.0.0/23"), std::string::npos);
  auto held = p.cidrOf("a");
  EXPECT_TRUE(p.release("a"));
  EXPECT_FALSE(p.release("a"));
  auto again = p.allocate("c");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *held);
}

TEST(ClusterPoolTest, ReleasedCidrIsReusedLast) {
  ClusterPool p = pool({"10.10.0.0/22"}, 24);
  auto a = *p.allocate("a");
  ASSERT_TRUE(p.allocate("b").ok());
  p.release("a");
  // Round-robin: the two never-used CIDRs go first.
  EXPECT_NE(*p.allocate("c"), a);
  EXPECT_NE(*p.allocate("d"), a);
  EXPECT_EQ(*p.allocate("e"), a);
}

TEST(ClusterPoolTest, RestoredAllocationsAreNeverHandedOutAgain) {
  // An operator that restarts reads every CiliumNode's CIDR back first.
  ClusterPool first = pool({"10.20.0.0/16"}, 24);
  std::map<std::string, IpPrefix> written;
  for (std::string n : {"a", "b", "c", "d"}) written[n] = *first.allocate(n);
  ClusterPool second = pool({"10.20.0.0/16"}, 24);
  for (const auto& [n, c] : written) ASSERT_TRUE(second.occupy(n, c).ok());
  EXPECT_TRUE(second.occupy("a", written["a"]).ok()) << "idempotent";
  std::set<IpPrefix> taken;
  for (const auto& [n, c] : written) taken.insert(c);
  for (int i = 0; i < 100; i++) {
    auto c = second.allocate("new" + std::to_string(i));
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(taken.count(*c)) << c->toString() << " was restored as held";
    taken.insert(*c);
  }
  for (const auto& [n, c] : written) EXPECT_EQ(second.allocate(n).value(), c);
}

TEST(ClusterPoolTest, OverlapAndForeignCidrsAreRefused) {
  ClusterPool p = pool({"10.30.0.0/16"}, 24);
  ASSERT_TRUE(p.occupy("a", cidr("10.30.5.0/24")).ok());
  auto st = p.occupy("b", cidr("10.30.5.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(st.error().message().find("node a"), std::string::npos) << st.error().message();
  st = p.occupy("c", cidr("10.31.0.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << "outside the pool";
  st = p.occupy("c", cidr("10.30.6.0/25"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << "not of the mask size";
  st = p.occupy("a", cidr("10.30.7.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kFailedPrecondition) << "a holds another already";
  EXPECT_EQ(p.holderOf(cidr("10.30.5.0/24")), "a");
  EXPECT_EQ(p.used(), 1u);
}

TEST(ClusterPoolTest, SeveralPoolsInOrder) {
  ClusterPool p = pool({"10.40.0.0/24", "10.50.0.0/23"}, 24);
  EXPECT_EQ(p.capacity(), 3u);
  EXPECT_EQ(p.allocate("a")->toString(), "10.40.0.0/24");
  EXPECT_EQ(p.allocate("b")->toString(), "10.50.0.0/24");
  EXPECT_EQ(p.allocate("c")->toString(), "10.50.1.0/24");
  EXPECT_FALSE(p.allocate("d").ok());
}

TEST(ClusterPoolTest, BadConfigurationsAreRefused) {
  EXPECT_FALSE(ClusterPool::create({}, 24).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/16")}, 8).ok()) << "mask shorter than pool";
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/16")}, 33).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/8"), cidr("10.1.0.0/16")}, 24).ok())
      << "overlapping pools";
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/8"), cidr("fd00::/104")}, 24).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("fd00::/64")}, 120).ok()) << "more than 2^32 blocks";
  EXPECT_TRUE(ClusterPool::create({cidr("fd00::/104")}, 120).ok());
}

}  // namespace
}  // namespace cilium::op
