// The REST map routes over fake maps: every pinned map listed, IPv6 endpoints and both
// families' conntrack entries dumped in the same text.
#include "agent/datapath/api.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::datapath {
namespace {

ct_entry entry(uint32_t lifetime) {
  ct_entry e{};
  e.lifetime = lifetime;
  e.tx_packets = 3;
  e.rx_packets = 2;
  return e;
}

class MapApiTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(registerMapRoutes(router_, maps_.view(), "/pins", {}).ok()); }
  // The cache entries of one map as "key | value" lines.
  std::vector<std::string> cache(const std::string& name) {
    auto r = router_.dispatch("GET", "/v1/map/" + name, {}, "");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    std::vector<std::string> out;
    for (const auto& e : r.body["cache"])
      out.push_back(e["key"].get<std::string>() + " | " + e["value"].get<std::string>());
    std::sort(out.begin(), out.end());
    return out;
  }
  FakeMaps maps_;
  api::Router router_;
};

TEST_F(MapApiTest, ListsTheIpv6ConntrackMapsBesideTheIpv4Ones) {
  auto r = router_.dispatch("GET", "/v1/map", {}, "");
  ASSERT_EQ(r.status, 200);
  std::vector<std::string> paths;
  for (const auto& m : r.body["maps"]) paths.push_back(m["path"].get<std::string>());
  for (const char* name :
       {"cilium_ct4_global", "cilium_ct_any4_global", "cilium_ct6_global", "cilium_ct_any6_global"})
    EXPECT_NE(std::find(paths.begin(), paths.end(), std::string("/pins/") + name), paths.end())
        << name;
  EXPECT_EQ(router_.dispatch("GET", "/v1/map/cilium_ct7_global", {}, "").status, 404);
}

TEST_F(MapApiTest, DumpsConntrackEntriesOfBothFamilies) {
  ct_key4 k4{};
  k4.saddr = htonl(0x0ac80011);  // 10.200.0.17
  k4.daddr = htonl(0x0ac80012);
  k4.sport = htons(40000);
  k4.dport = htons(80);
  k4.nexthdr = IPPROTO_TCP;
  k4.flags = CT_KEY_EGRESS;
  ASSERT_TRUE(maps_.ct_tcp.update(k4, entry(500)).ok());
  ct_key6 k6{};
  auto a = IpAddr::parse("fd00:200::11"), b = IpAddr::parse("fd00:200::12");
  ASSERT_TRUE(a.ok() && b.ok());
  std::memcpy(k6.saddr.ip6, a->bytes().data(), 16);
  std::memcpy(k6.daddr.ip6, b->bytes().data(), 16);
  k6.sport = htons(40000);
  k6.dport = htons(80);
  k6.nexthdr = IPPROTO_TCP;
  k6.flags = CT_KEY_INGRESS;
  ASSERT_TRUE(maps_.ct6_tcp.update(k6, entry(600)).ok());
  k6.nexthdr = IPPROTO_ICMPV6;
  k6.sport = htons(7);
  k6.dport = 0;
  k6.flags = CT_KEY_EGRESS;
  ASSERT_TRUE(maps_.ct6_any.update(k6, entry(700)).ok());

  EXPECT_EQ(cache("cilium_ct4_global"),
            std::vector<std::string>{
                "TCP OUT 10.200.0.17:40000 -> 10.200.0.18:80 | expires=500 rx_packets=2 "
                "rx_bytes=0 tx_packets=3 tx_bytes=0 flags=0x0 src_sec_id=0"});
  EXPECT_EQ(cache("cilium_ct6_global"),
            std::vector<std::string>{
                "TCP IN [fd00:200::11]:40000 -> [fd00:200::12]:80 | expires=600 rx_packets=2 "
                "rx_bytes=0 tx_packets=3 tx_bytes=0 flags=0x0 src_sec_id=0"});
  EXPECT_EQ(cache("cilium_ct_any6_global"),
            std::vector<std::string>{
                "ICMPv6 OUT [fd00:200::11]:7 -> [fd00:200::12]:0 | expires=700 rx_packets=2 "
                "rx_bytes=0 tx_packets=3 tx_bytes=0 flags=0x0 src_sec_id=0"});
  EXPECT_TRUE(cache("cilium_ct_any4_global").empty());
}

TEST_F(MapApiTest, EndpointKeysAndInfoShowIpv6) {
  auto v4 = IpAddr::parse("10.200.0.17"), v6 = IpAddr::parse("fd00:200::11");
  ASSERT_TRUE(v4.ok() && v6.ok());
  endpoint_info info{};
  info.lxc_id = 7;
  info.ifindex = 12;
  info.sec_id = 1001;
  info.ipv4 = v4->v4NetworkOrder();
  std::memcpy(info.ipv6, v6->bytes().data(), 16);
  ASSERT_TRUE(maps_.endpoints.update(endpointKey(*v4), info).ok());
  ASSERT_TRUE(maps_.endpoints.update(endpointKey(*v6), info).ok());
  const std::string text =
      "id=7 ifindex=12 identity=1001 flags=0x0 ipv4=10.200.0.17 ipv6=fd00:200::11";
  EXPECT_EQ(cache("cilium_lxc"),
            (std::vector<std::string>{"10.200.0.17 | " + text, "fd00:200::11 | " + text}));
  // An IPv6-only endpoint: no IPv4 part.
  info.ipv4 = 0;
  ASSERT_TRUE(maps_.endpoints.remove(endpointKey(*v4)).ok());
  ASSERT_TRUE(maps_.endpoints.update(endpointKey(*v6), info).ok());
  EXPECT_EQ(cache("cilium_lxc"),
            std::vector<std::string>{
                "fd00:200::11 | id=7 ifindex=12 identity=1001 flags=0x0 ipv6=fd00:200::11"});
}

}  // namespace
}  // namespace cilium::datapath
