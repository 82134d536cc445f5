// The cluster-pool allocator, for IPv4 and IPv6 pools alike: distinct node CIDRs in order,
// exhaustion, overlap and foreign CIDRs refused, allocations read back after a restart kept, bad
// pool configurations refused.
#include "operator/ipam/cluster_pool.h"

#include <algorithm>
#include <array>
#include <set>

#include <gtest/gtest.h>

#include "tests/harness/family.h"

namespace cilium::op {
namespace {

IpPrefix cidr(std::string_view s) { return *IpPrefix::parse(s); }

// The tests run for both families: an IPv4 CIDR written in a test stands for itself, or for its
// IPv6 twin, the same bits in the low 32 of fd00::/96 (a.b.c.d/n -> fd00::a.b.c.d/(96+n)). Every
// containment, overlap, count and order is the same in both.
class ClusterPoolTest : public ::testing::TestWithParam<testing::Family> {
 protected:
  bool v6() const { return GetParam() == testing::Family::kV6; }
  IpPrefix pfx(std::string_view v4) const {
    IpPrefix p = cidr(v4);
    if (!v6()) return p;
    std::array<uint8_t, 16> b{0xfd, 0x00};
    std::copy_n(p.addr().bytes().begin(), 4, b.begin() + 12);
    return IpPrefix(IpAddr::fromBytes(IpFamily::kV6, b.data()), p.len() + 96);
  }
  std::string text(std::string_view v4) const { return pfx(v4).toString(); }
  int mask(int v4_mask) const { return v6() ? v4_mask + 96 : v4_mask; }
  ClusterPool pool(std::vector<std::string_view> cidrs, int v4_mask) const {
    std::vector<IpPrefix> p;
    for (auto x : cidrs) p.push_back(pfx(x));
    auto r = ClusterPool::create(p, mask(v4_mask));
    EXPECT_TRUE(r.ok()) << r.error().message();
    return std::move(*r);
  }
};

TEST_P(ClusterPoolTest, DefaultsGiveDistinctSlash24s) {
  ClusterPool p = pool({"10.0.0.0/8"}, 24);
  EXPECT_EQ(p.capacity(), 65536u);
  std::set<IpPrefix> seen;
  for (int i = 0; i < 300; i++) {
    auto c = p.allocate("node" + std::to_string(i));
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->len(), mask(24));
    EXPECT_TRUE(pfx("10.0.0.0/8").contains(*c));
    EXPECT_TRUE(seen.insert(*c).second) << c->toString() << " handed out twice";
  }
  EXPECT_EQ(p.allocate("node0")->toString(), text("10.0.0.0/24")) << "a node keeps its CIDR";
  EXPECT_EQ(p.allocate("node299")->toString(), text("10.1.43.0/24"));
  EXPECT_EQ(p.used(), 300u);
}

TEST_P(ClusterPoolTest, ExhaustionIsAnErrorAndReleaseMakesRoom) {
  ClusterPool p = pool({"10.10.0.0/23"}, 24);
  ASSERT_TRUE(p.allocate("a").ok());
  ASSERT_TRUE(p.allocate("b").ok());
  auto c = p.allocate("c");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(c.error().message().find("exhausted"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find(text("10.10.0.0/23")), std::string::npos);
  auto held = p.cidrOf("a");
  EXPECT_TRUE(p.release("a"));
  EXPECT_FALSE(p.release("a"));
  auto again = p.allocate("c");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *held);
}

TEST_P(ClusterPoolTest, ReleasedCidrIsReusedLast) {
  ClusterPool p = pool({"10.10.0.0/22"}, 24);
  auto a = *p.allocate("a");
  ASSERT_TRUE(p.allocate("b").ok());
  p.release("a");
  // Round-robin: the two never-used CIDRs go first.
  EXPECT_NE(*p.allocate("c"), a);
  EXPECT_NE(*p.allocate("d"), a);
  EXPECT_EQ(*p.allocate("e"), a);
}

TEST_P(ClusterPoolTest, RestoredAllocationsAreNeverHandedOutAgain) {
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

TEST_P(ClusterPoolTest, OverlapAndForeignCidrsAreRefused) {
  ClusterPool p = pool({"10.30.0.0/16"}, 24);
  ASSERT_TRUE(p.occupy("a", pfx("10.30.5.0/24")).ok());
  auto st = p.occupy("b", pfx("10.30.5.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(st.error().message().find("node a"), std::string::npos) << st.error().message();
  st = p.occupy("c", pfx("10.31.0.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << "outside the pool";
  st = p.occupy("c", pfx("10.30.6.0/25"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << "not of the mask size";
  st = p.occupy("a", pfx("10.30.7.0/24"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kFailedPrecondition) << "a holds another already";
  EXPECT_EQ(p.holderOf(pfx("10.30.5.0/24")), "a");
  EXPECT_EQ(p.used(), 1u);
}

TEST_P(ClusterPoolTest, SeveralPoolsInOrder) {
  ClusterPool p = pool({"10.40.0.0/24", "10.50.0.0/23"}, 24);
  EXPECT_EQ(p.capacity(), 3u);
  EXPECT_EQ(p.allocate("a")->toString(), text("10.40.0.0/24"));
  EXPECT_EQ(p.allocate("b")->toString(), text("10.50.0.0/24"));
  EXPECT_EQ(p.allocate("c")->toString(), text("10.50.1.0/24"));
  EXPECT_FALSE(p.allocate("d").ok());
}

TEST(ClusterPoolConfigTest, BadConfigurationsAreRefused) {
  EXPECT_FALSE(ClusterPool::create({}, 24).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/16")}, 8).ok()) << "mask shorter than pool";
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/16")}, 33).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/8"), cidr("10.1.0.0/16")}, 24).ok())
      << "overlapping pools";
  EXPECT_FALSE(ClusterPool::create({cidr("10.0.0.0/8"), cidr("fd00::/104")}, 24).ok());
  EXPECT_FALSE(ClusterPool::create({cidr("fd00::/64")}, 120).ok()) << "more than 2^32 blocks";
  EXPECT_TRUE(ClusterPool::create({cidr("fd00::/104")}, 120).ok());
}

CILIUM_INSTANTIATE_FAMILIES(ClusterPoolTest);

}  // namespace
}  // namespace cilium::op
