#include "agent/datapath/maps.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::datapath {
namespace {

TEST(MapsTest, PortRangeBlocksCoverExactlyTheRange) {
  for (auto [first, last] : std::vector<std::pair<uint16_t, uint16_t>>{
           {80, 80}, {8080, 8090}, {0, 65535}, {1, 65535}, {1000, 2000}, {32768, 65535}}) {
    auto blocks = portRangeBlocks(first, last);
    uint32_t next = first;
    for (auto [start, bits] : blocks) {
      EXPECT_EQ(start, next) << first << "-" << last;
      uint32_t size = uint32_t{1} << (16 - bits);
      EXPECT_EQ(start % size, 0u) << "block not aligned";
      next = start + size;
    }
    EXPECT_EQ(next, uint32_t{last} + 1) << first << "-" << last;
  }
  EXPECT_EQ(portRangeBlocks(80, 80).size(), 1u);
  EXPECT_EQ(portRangeBlocks(0, 65535).size(), 1u);
  EXPECT_EQ(portRangeBlocks(0, 65535)[0].second, 0);
  EXPECT_EQ(portRangeBlocks(8080, 8090).size(), 3u);  // 8080-8087, 8088-8089, 8090
  EXPECT_TRUE(portRangeBlocks(10, 9).empty());
}

TEST(MapsTest, PolicyKeysEncodeWildcardsAsPrefixes) {
  auto any = policyKey(0, POLICY_INGRESS, 0, 0, 0);
  EXPECT_EQ(any.prefixlen, uint32_t{POLICY_PREFIX_ANY_PROTO});
  auto tcp_any_port = policyKey(256, POLICY_EGRESS, 6, 0, 0);
  EXPECT_EQ(tcp_any_port.prefixlen, uint32_t{POLICY_PREFIX_ANY_PORT});
  EXPECT_EQ(tcp_any_port.egress, POLICY_EGRESS);
  auto exact = policyKey(256, POLICY_INGRESS, 6, 80, 16);
  EXPECT_EQ(exact.prefixlen, uint32_t{POLICY_PREFIX_FULL});
  EXPECT_EQ(ntohs(exact.dport), 80);
  auto range = policyKey(256, POLICY_INGRESS, 6, 8083, 13);  // 8080-8087
  EXPECT_EQ(ntohs(range.dport), 8080);
}

TEST(MapsTest, IpcacheKeysClearHostBits) {
  auto k = ipcacheKeyV4(*parseIpv4("10.1.2.3"), 16);
  EXPECT_EQ(formatIpv4(k.ip.ip4), "10.1.0.0");
  EXPECT_EQ(k.prefixlen, 32u + 16);
  EXPECT_EQ(ipcacheKeyV4(*parseIpv4("10.1.2.3"), 0).ip.ip4, 0u);
  EXPECT_FALSE(parseIpv4("10.1.2").ok());
}

TEST(MapsTest, PolicyRevisionIncrements) {
  FakeMaps maps;
  ASSERT_TRUE(bumpPolicyRevision(maps.runtime_config).ok());
  ASSERT_TRUE(bumpPolicyRevision(maps.runtime_config).ok());
  EXPECT_EQ(**maps.runtime_config.lookup(RUNTIME_POLICY_REV), 2u);
}

TEST(MapsTest, FakePolicyMapsReplaceIsWhole) {
  FakePolicyMaps pm(4);
  std::vector<PolicyEntry> a(2), b(1);
  a[0].key = policyKey(1, 0, 6, 80, 16);
  a[1].key = policyKey(2, 0, 6, 80, 16);
  b[0].key = policyKey(3, 0, 0, 0, 0);
  ASSERT_TRUE(pm.replace(7, a).ok());
  ASSERT_TRUE(pm.replace(7, b).ok());
  EXPECT_EQ(pm.dump(7)->size(), 1u);
  EXPECT_EQ(pm.dump(8).error().code(), ErrorCode::kNotFound);
  std::vector<PolicyEntry> big(5);
  for (int i = 0; i < 5; i++) big[i].key = policyKey(10 + i, 0, 0, 0, 0);
  EXPECT_EQ(pm.replace(7, big).error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(pm.dump(7)->size(), 1u) << "a failed replace leaves the old policy in force";
}

TEST(MapsTest, PolicyEntriesAreValidatedAsTheDatapathReadsThem) {
  auto ok = [](policy_key k, uint8_t flags = 0, uint16_t proxy = 0) {
    PolicyEntry e{k, {}};
    e.value.flags = flags;
    e.value.proxy_port = proxy;
    return validatePolicyEntry(e).ok();
  };
  EXPECT_TRUE(ok(policyKey(0, POLICY_INGRESS, 0, 0, 0)));
  EXPECT_TRUE(ok(policyKey(256, POLICY_EGRESS, 6, 80, 16)));
  EXPECT_TRUE(ok(policyKey(256, POLICY_EGRESS, 6, 8080, 13)));
  EXPECT_TRUE(ok(policyKey(256, POLICY_EGRESS, 17, 0, 0), POLICY_F_DENY));
  policy_key k = policyKey(256, POLICY_EGRESS, 6, 80, 16);
  k.prefixlen = 32;
  EXPECT_FALSE(ok(k)) << "identity-only prefixes would span both directions";
  k.prefixlen = 65;
  EXPECT_FALSE(ok(k));
  k = policyKey(256, 2, 6, 80, 16);
  EXPECT_FALSE(ok(k)) << "direction";
  k = policyKey(256, POLICY_EGRESS, 0, 0, 0);
  k.protocol = 6;
  EXPECT_FALSE(ok(k)) << "protocol beyond an any-protocol prefix";
  k = policyKey(256, POLICY_EGRESS, 6, 0, 0);
  k.protocol = 0;
  EXPECT_FALSE(ok(k)) << "a protocol prefix needs a protocol";
  k = policyKey(256, POLICY_EGRESS, 6, 8080, 13);
  k.dport = htons(8081);
  EXPECT_FALSE(ok(k)) << "port bits beyond the prefix";
  EXPECT_FALSE(ok(policyKey(256, POLICY_EGRESS, 6, 80, 16), 0x80)) << "unknown flag";
  EXPECT_FALSE(ok(policyKey(256, POLICY_EGRESS, 6, 80, 16), POLICY_F_DENY, htons(15000)));
  EXPECT_TRUE(ok(policyKey(256, POLICY_EGRESS, 6, 80, 16), 0, htons(15000)));
  EXPECT_TRUE(ok(policyKey(0, POLICY_INGRESS, 0, 0, 0), POLICY_F_UNENFORCED));
  EXPECT_FALSE(ok(policyKey(0, POLICY_INGRESS, 0, 0, 0), POLICY_F_DENY | POLICY_F_UNENFORCED))
      << "a deny is always enforced";
}

TEST(MapsTest, FakePolicyMapsValidateAndNormalizeLikeTheKernel) {
  FakePolicyMaps pm;
  PolicyEntry e{policyKey(256, POLICY_EGRESS, 6, 80, 16), {}};
  ASSERT_TRUE(pm.replace(3, std::vector{e}).ok());
  EXPECT_EQ((*pm.dump(3))[0].value.prefix_len, POLICY_PREFIX_FULL);
  PolicyEntry bad = e;
  bad.key.prefixlen = 20;
  EXPECT_EQ(pm.replace(3, std::vector{e, bad}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pm.update(3, std::vector{bad}, {}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pm.dump(3)->size(), 1u);
}

}  // namespace
}  // namespace cilium::datapath
