#include "tests/harness/packet.h"

#include <gtest/gtest.h>

#include "tests/harness/packet_assert.h"

namespace cilium::testing {
namespace {

TEST(PacketBuilderTest, TcpSynMatchesAnIndependentlyComputedPacket) {
  auto f = PacketBuilder()
               .ipv4("10.200.0.11", "10.200.0.12")
               .tcp(40000, 80, tcp::kSyn)
               .payload("hello")
               .build();
  ASSERT_EQ(f.size(), 14u + 20 + 20 + 5);
  // Checksums computed with Python's struct for the same headers.
  EXPECT_EQ(f[14 + 10], 0x52);
  EXPECT_EQ(f[14 + 11], 0xf1);
  EXPECT_EQ(f[14 + 20 + 16], 0xb5);
  EXPECT_EQ(f[14 + 20 + 17], 0xec);

  auto p = parsePacket(f);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->saddr, ipv4("10.200.0.11"));
  EXPECT_EQ(p->dport, 80);
  EXPECT_EQ(p->tcp_flags, tcp::kSyn);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
}

TEST(PacketBuilderTest, UdpAndIcmpChecksumsVerify) {
  auto u =
      parsePacket(PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").udp(53, 5353).payload(33).build());
  ASSERT_TRUE(u && u->l4_csum_ok && u->ip_csum_ok);
  EXPECT_EQ(u->proto, 17);
  auto i =
      parsePacket(PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").icmp(8, 0, 77, 1).payload(56).build());
  ASSERT_TRUE(i && i->l4_csum_ok);
  EXPECT_EQ(i->icmp_type, 8);
  EXPECT_EQ(i->sport, 77);
}

TEST(PacketBuilderTest, IcmpErrorQuotesTheInnerHeader) {
  auto inner = PacketBuilder().ipv4("10.0.0.2", "10.0.0.1").udp(1000, 53).payload(100).buildL3();
  auto f = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmpError(3, 3, inner).build();
  EXPECT_EQ(f.size(), 14u + 20 + 8 + 28);
  auto p = parsePacket(f);
  ASSERT_TRUE(p && p->l4_csum_ok);
  EXPECT_EQ(p->icmp_code, 3);
  EXPECT_TRUE(isIcmpError(f, "10.0.0.1", "10.0.0.2", "10.0.0.2", 1000, "10.0.0.1", 53));
  EXPECT_FALSE(isIcmpError(f, "10.0.0.1", "10.0.0.2", "10.0.0.2", 1001, "10.0.0.1", 53));
  EXPECT_FALSE(isIcmpError(f, "10.0.0.9", "10.0.0.2", "10.0.0.2", 1000, "10.0.0.1", 53));
  f[14 + 20 + 8 + 12] ^= 1;  // the quoted source: its IP checksum no longer holds
  EXPECT_FALSE(isIcmpError(f, "10.0.0.1", "10.0.0.2", "10.0.0.3", 1000, "10.0.0.1", 53));
}

TEST(PacketBuilderTest, RejectsMalformedInput) {
  EXPECT_THROW(ipv4("300.1.1.1"), std::invalid_argument);
  EXPECT_FALSE(parsePacket(std::vector<uint8_t>(10, 0)).has_value());
  auto truncated = PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").udp(1, 2).build();
  truncated.resize(30);
  EXPECT_FALSE(parsePacket(truncated).has_value());
}

}  // namespace
}  // namespace cilium::testing
