// IPAM: address arithmetic, round-robin reuse, owners, exhaustion, persistence and restore.
#include "agent/ipam/ipam.h"

#include <sys/stat.h>

#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "tests/harness/temp_dir.h"

namespace cilium::ipam {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }
IpPrefix cidr(const char* s) { return *IpPrefix::parse(s); }

TEST(InetTest, ParsesAndFormatsAddressesAndPrefixes) {
  EXPECT_EQ(ip("10.200.0.1").toString(), "10.200.0.1");
  EXPECT_EQ(ip("fd00::1").toString(), "fd00::1");
  EXPECT_EQ(ip("10.200.0.1").v4HostOrder(), 0x0ac80001u);
  EXPECT_FALSE(IpAddr::parse("10.200.0").ok());
  EXPECT_FALSE(IpAddr::parse("fd00::g").ok());
  EXPECT_EQ(cidr("10.200.0.0/24").toString(), "10.200.0.0/24");
  auto bad = IpPrefix::parse("10.0.0.0/33");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "prefix length 33 is not 0..32");
  auto host_bits = IpPrefix::parse("10.0.0.5/24");
  ASSERT_FALSE(host_bits.ok());
  EXPECT_NE(host_bits.error().message().find("did you mean 10.0.0.0/24"), std::string::npos);
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/2x").ok());
  EXPECT_TRUE(cidr("10.200.0.0/24").contains(ip("10.200.0.255")));
  EXPECT_FALSE(cidr("10.200.0.0/24").contains(ip("10.200.1.0")));
  EXPECT_FALSE(cidr("10.200.0.0/24").contains(ip("::1")));
  EXPECT_EQ(ip("10.0.0.255").plus(1).toString(), "10.0.1.0");
  EXPECT_EQ(ip("fd00::ffff").plus(1).toString(), "fd00::1:0");
  EXPECT_EQ(*ip("10.0.1.2").offsetFrom(ip("10.0.0.0")), 258u);
  EXPECT_FALSE(ip("10.0.0.0").offsetFrom(ip("10.0.0.1")).has_value());
}

TEST(PoolTest, ReservesNetworkRouterAndBroadcast) {
  auto pool = Pool::create(cidr("10.200.0.0/24"));
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(pool->router().toString(), "10.200.0.1");
  EXPECT_EQ(pool->capacity(), 253u);
  EXPECT_EQ(pool->allocateNext("a")->toString(), "10.200.0.2");

  for (const char* reserved : {"10.200.0.0", "10.200.0.1", "10.200.0.255"}) {
    auto st = pool->allocate(ip(reserved), "x");
    ASSERT_FALSE(st.ok()) << reserved;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  }
  auto router = pool->allocate(ip("10.200.0.1"), "x");
  EXPECT_EQ(router.error().message(),
            "10.200.0.1 is the router address of 10.200.0.0/24, reserved for the node");
  auto outside = pool->allocate(ip("10.201.0.5"), "x");
  EXPECT_EQ(outside.error().message(), "10.201.0.5 is not in 10.200.0.0/24");
}

TEST(PoolTest, RejectsCidrsWithoutRoomForEndpoints) {
  EXPECT_FALSE(Pool::create(cidr("10.0.0.0/31")).ok());
  EXPECT_FALSE(Pool::create(cidr("10.0.0.0/32")).ok());
  EXPECT_FALSE(Pool::create(cidr("fd00::/127")).ok());
  EXPECT_FALSE(Pool::create(cidr("fd00::/48")).ok());
  auto tiny = Pool::create(cidr("10.0.0.0/30"));
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->capacity(), 1u);
  EXPECT_EQ(tiny->allocateNext("a")->toString(), "10.0.0.2");
}

TEST(PoolTest, ExhaustionNamesTheCidrAndTheCount) {
  auto pool = Pool::create(cidr("10.200.0.0/24"));
  std::set<std::string> seen;
  for (int i = 0; i < 253; i++) {
    auto a = pool->allocateNext("o");
    ASSERT_TRUE(a.ok()) << i;
    EXPECT_TRUE(seen.insert(a->toString()).second) << "duplicate " << a->toString();
  }
  EXPECT_FALSE(seen.count("10.200.0.1"));
  EXPECT_FALSE(seen.count("10.200.0.255"));
  auto full = pool->allocateNext("o");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(full.error().message(), "no free address in 10.200.0.0/24: 253 of 253 in use");
}

TEST(PoolTest, DoesNotImmediatelyReuseAReleasedAddress) {
  auto pool = Pool::create(cidr("10.200.0.0/29"));  // endpoints .2 .. .6
  auto a = *pool->allocateNext("a");
  auto b = *pool->allocateNext("b");
  ASSERT_TRUE(pool->release(a).ok());
  EXPECT_EQ(pool->allocateNext("c")->toString(), "10.200.0.4");
  EXPECT_EQ(pool->allocateNext("d")->toString(), "10.200.0.5");
  EXPECT_EQ(pool->allocateNext("e")->toString(), "10.200.0.6");
  // Wrapped around: the released .2 comes back only now.
  EXPECT_EQ(pool->allocateNext("f")->toString(), "10.200.0.2");
  EXPECT_EQ(b.toString(), "10.200.0.3");
}

TEST(PoolTest, ReleaseErrors) {
  auto pool = Pool::create(cidr("10.200.0.0/24"));
  auto a = *pool->allocateNext("a");
  ASSERT_TRUE(pool->release(a).ok());
  auto again = pool->release(a);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(again.error().message(), "10.200.0.2 is not allocated");
  auto unknown = pool->release(ip("10.200.0.77"));
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(pool->release(ip("192.168.0.1")).error().code(), ErrorCode::kInvalidArgument);
}

TEST(PoolTest, SpecificAllocationAndOwners) {
  auto pool = Pool::create(cidr("10.200.0.0/24"));
  ASSERT_TRUE(pool->allocate(ip("10.200.0.50"), "default/xwing").ok());
  EXPECT_TRUE(pool->allocate(ip("10.200.0.50"), "default/xwing").ok());  // idempotent
  auto taken = pool->allocate(ip("10.200.0.50"), "default/tiefighter");
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(taken.error().message(), "10.200.0.50 is already allocated to default/xwing");
  ASSERT_TRUE(pool->allocateNext("default/xwing").ok());
  ASSERT_TRUE(pool->allocateNext("other").ok());
  auto released = pool->releaseOwner("default/xwing");
  EXPECT_EQ(released.size(), 2u);
  EXPECT_EQ(pool->used(), 1u);
  EXPECT_TRUE(pool->releaseOwner("default/xwing").empty());
}

TEST(PoolTest, Ipv6) {
  auto pool = Pool::create(cidr("fd00:10:200::/120"));
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(pool->router().toString(), "fd00:10:200::1");
  EXPECT_EQ(pool->capacity(), 254u);  // no broadcast in IPv6
  EXPECT_EQ(pool->allocateNext("a")->toString(), "fd00:10:200::2");
  EXPECT_TRUE(pool->allocate(ip("fd00:10:200::ff"), "b").ok());
  auto big = Pool::create(cidr("fd00::/64"));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->capacity(), ~uint64_t{0} - 1);
  EXPECT_TRUE(big->allocate(ip("fd00::ffff:ffff:ffff:ffff"), "last").ok());
  EXPECT_EQ(big->allocateNext("x")->toString(), "fd00::2");
}

Config v4Config(const testing::TempDir& dir) {
  Config c;
  c.ipv4 = cidr("10.200.0.0/24");
  c.state_file = dir.file("ipam.json");
  return c;
}

TEST(IpamTest, PersistsEveryChangeAndRestores) {
  testing::TempDir dir;
  {
    auto ipam = Ipam::open(v4Config(dir));
    ASSERT_TRUE(ipam.ok()) << ipam.error().toString();
    auto lease = (*ipam)->allocateNext(IpFamily::kV4, "default/xwing");
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(lease->ip.toString(), "10.200.0.2");
    EXPECT_EQ(lease->gateway.toString(), "10.200.0.1");
    EXPECT_EQ(lease->cidr.toString(), "10.200.0.0/24");
    ASSERT_TRUE((*ipam)->allocateNext(IpFamily::kV4, "default/tiefighter").ok());
    ASSERT_TRUE((*ipam)->allocate(ip("10.200.0.100"), "c1").ok());
    ASSERT_TRUE((*ipam)->release(ip("10.200.0.3")).ok());
    struct stat st {};
    ASSERT_EQ(::stat(dir.file("ipam.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  auto ipam = Ipam::open(v4Config(dir));
  ASSERT_TRUE(ipam.ok());
  auto status = (*ipam)->status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].allocations, (std::vector<Allocation>{{ip("10.200.0.2"), "default/xwing"},
                                                            {ip("10.200.0.100"), "c1"}}));
  // The cursor survived: allocation resumes after the last address handed out by
  // allocateNext (.3), so the released .3 is not reused at once.
  EXPECT_EQ((*ipam)->allocateNext(IpFamily::kV4, "n")->ip.toString(), "10.200.0.4");
}

TEST(IpamTest, RestoreDisabledStartsEmpty) {
  testing::TempDir dir;
  {
    auto ipam = Ipam::open(v4Config(dir));
    ASSERT_TRUE((*ipam)->allocateNext(IpFamily::kV4, "a").ok());
  }
  auto cfg = v4Config(dir);
  cfg.restore = false;
  auto ipam = Ipam::open(cfg);
  ASSERT_TRUE(ipam.ok());
  EXPECT_TRUE((*ipam)->status()[0].allocations.empty());
}

TEST(IpamTest, ChangedCidrKeepsWhatFits) {
  testing::TempDir dir;
  {
    auto cfg = v4Config(dir);
    cfg.ipv4 = cidr("10.200.0.0/16");
    auto ipam = Ipam::open(cfg);
    ASSERT_TRUE((*ipam)->allocate(ip("10.200.0.9"), "in").ok());
    ASSERT_TRUE((*ipam)->allocate(ip("10.200.5.9"), "out").ok());
  }
  auto ipam = Ipam::open(v4Config(dir));
  ASSERT_TRUE(ipam.ok());
  EXPECT_EQ((*ipam)->status()[0].allocations, (std::vector<Allocation>{{ip("10.200.0.9"), "in"}}));
}

TEST(IpamTest, CorruptStateIsAnErrorAndIsLeftInPlace) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("ipam.json"), "{\"version\": 1, \"pools\": [").ok());
  auto ipam = Ipam::open(v4Config(dir));
  ASSERT_FALSE(ipam.ok());
  EXPECT_EQ(ipam.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(ipam.error().message().find("ipam.json is unreadable"), std::string::npos);
  EXPECT_EQ(*readFile(dir.file("ipam.json")), "{\"version\": 1, \"pools\": [");

  ASSERT_TRUE(writeFileAtomic(dir.file("ipam.json"), R"({"version": 7, "pools": {}})").ok());
  EXPECT_FALSE(Ipam::open(v4Config(dir)).ok());
  ASSERT_TRUE(writeFileAtomic(dir.file("ipam.json"),
                              R"({"version": 1, "pools": {"ipv4": {"cidr": "10.200.0.0/24",
                                  "allocations": {"not-an-ip": "x"}}}})")
                  .ok());
  EXPECT_FALSE(Ipam::open(v4Config(dir)).ok());
}

TEST(IpamTest, FailedPersistUndoesTheChange) {
  testing::TempDir dir;
  auto cfg = v4Config(dir);
  cfg.state_file = dir.file("sub/ipam.json");
  ASSERT_TRUE(makeDirs(dir.file("sub")).ok());
  auto ipam = Ipam::open(cfg);
  ASSERT_TRUE(ipam.ok());
  // The state directory disappears under the agent: the write fails, even for root.
  std::filesystem::remove_all(dir.file("sub"));
  auto lease = (*ipam)->allocateNext(IpFamily::kV4, "a");
  ASSERT_FALSE(lease.ok());
  EXPECT_NE(lease.error().message().find("persist IPAM state"), std::string::npos);
  EXPECT_TRUE((*ipam)->status()[0].allocations.empty());
  ASSERT_TRUE(makeDirs(dir.file("sub")).ok());
  EXPECT_EQ((*ipam)->allocateNext(IpFamily::kV4, "a")->ip.toString(), "10.200.0.2");
}

TEST(IpamTest, FamiliesAndOwners) {
  testing::TempDir dir;
  auto cfg = v4Config(dir);
  auto ipam = *Ipam::open(cfg);
  auto v6 = ipam->allocateNext(IpFamily::kV6, "a");
  ASSERT_FALSE(v6.ok());
  EXPECT_EQ(v6.error().code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(v6.error().message(), "ipv6 allocation is disabled");

  cfg.ipv6 = cidr("fd00::/120");
  cfg.state_file = dir.file("dual.json");
  auto dual = *Ipam::open(cfg);
  ASSERT_TRUE(dual->allocateNext(IpFamily::kV4, "pod").ok());
  ASSERT_TRUE(dual->allocateNext(IpFamily::kV6, "pod").ok());
  auto released = dual->releaseOwner("pod");
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->size(), 2u);
  EXPECT_EQ(dual->releaseOwner("pod").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(dual->releaseOwner("").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(dual->allocateNext(IpFamily::kV4, std::string("a\nb")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(dual->allocateNext(IpFamily::kV4, std::string(300, 'x')).error().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cilium::ipam
