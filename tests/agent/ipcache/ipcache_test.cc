#include "agent/ipcache/ipcache.h"

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::ipcache {
namespace {

IpPrefix pfx(const char* s) { return *IpPrefix::parseMasked(s); }
IpAddr ip(const char* s) { return *IpAddr::parse(s); }
Info id(identity::NumericIdentity n) { return Info{n}; }

class IpCacheTest : public ::testing::Test {
 protected:
  uint64_t revision() { return maps_.runtime_config.lookup(RUNTIME_POLICY_REV)->value_or(0); }
  // What the datapath would see for the prefix: the kernel entry's identity, or 0 if absent.
  uint32_t kernelIdentity(const char* prefix) {
    auto v = maps_.ipcache.lookup(kernelKey(pfx(prefix)));
    return v.ok() && v->has_value() ? (*v)->sec_identity : 0;
  }

  datapath::FakeMaps maps_;
  IpCache cache_{&maps_.ipcache, &maps_.runtime_config};
};

TEST_F(IpCacheTest, UpsertWritesKernelAndBumpsRevision) {
  ASSERT_TRUE(cache_.upsert(pfx("10.0.1.5/32"), id(256), Source::kLocal).ok());
  EXPECT_EQ(kernelIdentity("10.0.1.5/32"), 256u);
  EXPECT_EQ(revision(), 1u);
  auto key = kernelKey(pfx("10.0.1.5/32"));
  EXPECT_EQ(key.prefixlen, 32u + 32);
  EXPECT_EQ(key.family, ENDPOINT_KEY_IPV4);
  // The same again changes nothing: no write, no revision bump.
  auto writes = maps_.ipcache.updates();
  ASSERT_TRUE(cache_.upsert(pfx("10.0.1.5/32"), id(256), Source::kLocal).ok());
  EXPECT_EQ(maps_.ipcache.updates(), writes);
  EXPECT_EQ(revision(), 1u);
  // A new identity for the address changes verdicts: bump.
  ASSERT_TRUE(cache_.upsert(pfx("10.0.1.5/32"), id(300), Source::kLocal).ok());
  EXPECT_EQ(kernelIdentity("10.0.1.5/32"), 300u);
  EXPECT_EQ(revision(), 2u);
  EXPECT_FALSE(cache_.upsert(pfx("10.0.1.6/32"), id(0), Source::kLocal).ok());
}

TEST_F(IpCacheTest, HigherSourceWinsAndLowerTakesOverOnRemoval) {
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.0/24"), id(16777217), Source::kGenerated).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.0/24"), id(identity::kHost), Source::kLocal).ok());
  EXPECT_EQ(kernelIdentity("10.0.0.0/24"), identity::kHost);
  EXPECT_EQ(cache_.get(pfx("10.0.0.0/24"))->source, Source::kLocal);
  // A lower source changing its mind does not touch the kernel.
  auto writes = maps_.ipcache.updates();
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.0/24"), id(16777218), Source::kGenerated).ok());
  EXPECT_EQ(maps_.ipcache.updates(), writes);
  EXPECT_EQ(kernelIdentity("10.0.0.0/24"), identity::kHost);
  uint64_t rev = revision();
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.0/24"), Source::kLocal).ok());
  EXPECT_EQ(kernelIdentity("10.0.0.0/24"), 16777218u);
  EXPECT_EQ(revision(), rev + 1);
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.0/24"), Source::kGenerated).ok());
  EXPECT_EQ(kernelIdentity("10.0.0.0/24"), 0u);
  EXPECT_EQ(revision(), rev + 2);
  EXPECT_FALSE(cache_.get(pfx("10.0.0.0/24")).has_value());
  // Removing what is not there is fine and changes nothing.
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.0/24"), Source::kGenerated).ok());
  EXPECT_EQ(revision(), rev + 2);
}

TEST_F(IpCacheTest, TunnelEndpointChangeWritesWithoutBump) {
  Info a{256, ip("172.30.0.2")};
  ASSERT_TRUE(cache_.upsert(pfx("10.201.2.10/32"), a, Source::kKubernetes).ok());
  auto v = *maps_.ipcache.lookup(kernelKey(pfx("10.201.2.10/32")));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->flags & IPCACHE_F_HAS_TUNNEL_EP, IPCACHE_F_HAS_TUNNEL_EP);
  EXPECT_EQ(v->tunnel_endpoint.ip4, ip("172.30.0.2").v4NetworkOrder());
  uint64_t rev = revision();
  Info b{256, ip("172.30.0.3")};
  ASSERT_TRUE(cache_.upsert(pfx("10.201.2.10/32"), b, Source::kKubernetes).ok());
  EXPECT_EQ((*maps_.ipcache.lookup(kernelKey(pfx("10.201.2.10/32"))))->tunnel_endpoint.ip4,
            ip("172.30.0.3").v4NetworkOrder());
  EXPECT_EQ(revision(), rev);
}

TEST_F(IpCacheTest, LookupIsLongestPrefixMatch) {
  ASSERT_TRUE(cache_.upsert(pfx("0.0.0.0/0"), id(16777217), Source::kGenerated).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.0/8"), id(16777218), Source::kGenerated).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.1.5/32"), id(256), Source::kLocal).ok());
  EXPECT_EQ(cache_.lookup(ip("10.0.1.5"))->info.identity, 256u);
  EXPECT_EQ(cache_.lookup(ip("10.0.1.6"))->info.identity, 16777218u);
  EXPECT_EQ(cache_.lookup(ip("10.0.1.6"))->prefix, pfx("10.0.0.0/8"));
  EXPECT_EQ(cache_.lookup(ip("8.8.8.8"))->info.identity, 16777217u);
  EXPECT_FALSE(cache_.lookup(ip("f00d::1")).has_value());
  auto all = cache_.list();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].prefix, pfx("0.0.0.0/0"));
  EXPECT_EQ(all[1].prefix, pfx("10.0.0.0/8"));
  EXPECT_EQ(all[2].prefix, pfx("10.0.1.5/32"));
}

TEST_F(IpCacheTest, Ipv6Keys) {
  ASSERT_TRUE(cache_.upsert(pfx("f00d::/64"), id(256), Source::kKubernetes).ok());
  auto key = kernelKey(pfx("f00d::/64"));
  EXPECT_EQ(key.family, ENDPOINT_KEY_IPV6);
  EXPECT_EQ(key.prefixlen, 32u + 64);
  EXPECT_EQ(key.ip.ip6[0], 0xf0);
  EXPECT_EQ(prefixOfKey(key), pfx("f00d::/64"));
  EXPECT_EQ(cache_.lookup(ip("f00d::1"))->info.identity, 256u);
}

TEST_F(IpCacheTest, KernelErrorLeavesStateUnchanged) {
  bpf::FakeMap<ipcache_key, remote_endpoint_info> tiny("cilium_ipcache", 1);
  IpCache cache(&tiny, &maps_.runtime_config);
  ASSERT_TRUE(cache.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  auto full = cache.upsert(pfx("10.0.0.2/32"), id(257), Source::kLocal);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(full.error().message().find("10.0.0.2/32"), std::string::npos);
  EXPECT_FALSE(cache.get(pfx("10.0.0.2/32")).has_value());
  EXPECT_EQ(cache.list().size(), 1u);
}

TEST_F(IpCacheTest, RestoreThenResync) {
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.2/32"), id(257), Source::kLocal).ok());
  // A restarted agent: the kernel map survived, the userspace state did not.
  IpCache restarted(&maps_.ipcache, &maps_.runtime_config);
  ASSERT_TRUE(restarted.restoreFromKernel().ok());
  EXPECT_EQ(restarted.list().size(), 2u);
  EXPECT_EQ(restarted.get(pfx("10.0.0.1/32"))->source, Source::kRestored);
  // The real source re-announces one address; the other endpoint is gone.
  ASSERT_TRUE(restarted.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  ASSERT_TRUE(restarted.removeAll(Source::kRestored).ok());
  EXPECT_EQ(kernelIdentity("10.0.0.1/32"), 256u);
  EXPECT_EQ(kernelIdentity("10.0.0.2/32"), 0u);
}

TEST_F(IpCacheTest, SyncToKernelReconciles) {
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  // Someone else's stale entry, and a drifted one.
  ASSERT_TRUE(maps_.ipcache.update(kernelKey(pfx("10.9.9.9/32")), kernelValue(id(999))).ok());
  ASSERT_TRUE(maps_.ipcache.update(kernelKey(pfx("10.0.0.1/32")), kernelValue(id(5))).ok());
  uint64_t rev = revision();
  ASSERT_TRUE(cache_.syncToKernel().ok());
  EXPECT_EQ(kernelIdentity("10.9.9.9/32"), 0u);
  EXPECT_EQ(kernelIdentity("10.0.0.1/32"), 256u);
  EXPECT_EQ(revision(), rev + 1);
  ASSERT_TRUE(cache_.syncToKernel().ok());
  EXPECT_EQ(revision(), rev + 1) << "nothing to change: no bump";
}

// Observers (the policy engine) hear which identity each prefix has: a snapshot, then every
// change of a winning identity, in order; a kernel error or a change that keeps the identity
// tells them nothing.
TEST_F(IpCacheTest, ObserversHearWinningIdentityChanges) {
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  std::vector<Change> heard;
  auto sub = cache_.subscribe(
      [&](const std::vector<Change>& c) { heard.insert(heard.end(), c.begin(), c.end()); });
  EXPECT_EQ(heard, (std::vector<Change>{{pfx("10.0.0.1/32"), 0, 256}}));
  heard.clear();
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.2/32"), id(16777217), Source::kGenerated).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.2/32"), id(257), Source::kLocal).ok());
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.2/32"), id(16777218), Source::kGenerated).ok());  // hidden
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.2/32"), Info{257, ip("172.30.0.2")}, Source::kLocal).ok());
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.2/32"), Source::kLocal).ok());
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.2/32"), Source::kGenerated).ok());
  ASSERT_TRUE(cache_.remove(pfx("10.0.0.9/32"), Source::kLocal).ok());  // absent
  EXPECT_EQ(heard, (std::vector<Change>{{pfx("10.0.0.2/32"), 0, 16777217},
                                        {pfx("10.0.0.2/32"), 16777217, 257},
                                        {pfx("10.0.0.2/32"), 257, 16777218},
                                        {pfx("10.0.0.2/32"), 16777218, 0}}));
  heard.clear();
  bpf::FakeMap<ipcache_key, remote_endpoint_info> tiny("cilium_ipcache", 0);
  IpCache failing(&tiny, nullptr);
  std::vector<Change> none;
  auto fsub = failing.subscribe(
      [&](const std::vector<Change>& c) { none.insert(none.end(), c.begin(), c.end()); });
  EXPECT_FALSE(failing.upsert(pfx("10.0.0.3/32"), id(258), Source::kLocal).ok());
  EXPECT_TRUE(none.empty());
  failing.unsubscribe(fsub);
  cache_.unsubscribe(sub);
  ASSERT_TRUE(cache_.upsert(pfx("10.0.0.4/32"), id(259), Source::kLocal).ok());
  EXPECT_TRUE(heard.empty()) << "unsubscribed";
  // A restarted agent's restored entries are told like any other.
  IpCache restarted(&maps_.ipcache, &maps_.runtime_config);
  std::vector<Change> restored;
  auto rsub = restarted.subscribe(
      [&](const std::vector<Change>& c) { restored.insert(restored.end(), c.begin(), c.end()); });
  ASSERT_TRUE(restarted.restoreFromKernel().ok());
  EXPECT_EQ(restored,
            (std::vector<Change>{{pfx("10.0.0.1/32"), 0, 256}, {pfx("10.0.0.4/32"), 0, 259}}));
  restarted.unsubscribe(rsub);
}

TEST(IpCacheUserspaceTest, FormatsLikeCiliumDbg) {
  EXPECT_EQ(formatEntry({pfx("10.0.1.5/32"), id(256), Source::kLocal}),
            "10.0.1.5/32          identity=256 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>");
  EXPECT_EQ(
      formatEntry({pfx("10.201.2.0/24"), Info{300, ip("172.30.0.2")}, Source::kKubernetes}),
      "10.201.2.0/24        identity=300 encryptkey=0 tunnelendpoint=172.30.0.2 flags=hastunnel");
}

TEST(IpCacheUserspaceTest, WorksWithoutMaps) {
  IpCache cache(nullptr, nullptr);
  ASSERT_TRUE(cache.upsert(pfx("10.0.0.1/32"), id(256), Source::kLocal).ok());
  EXPECT_EQ(cache.lookup(ip("10.0.0.1"))->info.identity, 256u);
  ASSERT_TRUE(cache.syncToKernel().ok());
}

}  // namespace
}  // namespace cilium::ipcache
