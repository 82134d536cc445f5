// The ip-masq-agent configuration file: what it accepts, what it refuses (naming the field), and
// the non-masquerade set it gives, defaults included.
#include "agent/service/ip_masq_agent.h"

#include <gtest/gtest.h>

namespace cilium::service {
namespace {

std::vector<std::string> v4(const IpMasqAgentConfig& c) {
  std::vector<std::string> out;
  for (const auto& p : ipMasqAgentNonMasqueradeV4(c)) out.push_back(p.toString());
  return out;
}

std::vector<std::string> v6(const IpMasqAgentConfig& c) {
  std::vector<std::string> out;
  for (const auto& p : ipMasqAgentNonMasqueradeV6(c)) out.push_back(p.toString());
  return out;
}

TEST(IpMasqAgentTest, Ipv6HasNoDefaultsButLinkLocal) {
  auto c = parseIpMasqAgentConfig("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(v6(*c), (std::vector<std::string>{"fe80::/10"}));
  c = parseIpMasqAgentConfig("nonMasqueradeCIDRs: [fd00:10::/48]\nmasqLinkLocalIPv6: true\n");
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_TRUE(c->masq_link_local6);
  EXPECT_EQ(v6(*c), (std::vector<std::string>{"fd00:10::/48"}));
  EXPECT_EQ(v4(*c).size(), 1u) << "an IPv6-only list is no IPv4 list: only 169.254.0.0/16";
}

TEST(IpMasqAgentTest, YamlAndJsonAsIpMasqAgentWritesThem) {
  auto c = parseIpMasqAgentConfig(
      "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.0.2.0/24\n  - fd00::/8\nmasqLinkLocal: true\n"
      "resyncInterval: 60s\n");
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_TRUE(c->masq_link_local);
  EXPECT_EQ(c->non_masquerade_cidrs.size(), 3u);
  EXPECT_EQ(v4(*c), (std::vector<std::string>{"10.0.0.0/8", "192.0.2.0/24"}))
      << "IPv6 goes to the IPv6 set; link-local is masqueraded";
  EXPECT_EQ(v6(*c), (std::vector<std::string>{"fd00::/8", "fe80::/10"}))
      << "masqLinkLocal is IPv4's; IPv6 link-local has masqLinkLocalIPv6";

  c = parseIpMasqAgentConfig(R"({"nonMasqueradeCIDRs": ["172.16.0.0/12"]})");
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_EQ(v4(*c), (std::vector<std::string>{"172.16.0.0/12", "169.254.0.0/16"}));
}

TEST(IpMasqAgentTest, EmptyMeansTheDefaultPrivateRanges) {
  for (const char* text : {"", "\n", "nonMasqueradeCIDRs: []\n", "nonMasqueradeCIDRs:\n"}) {
    auto c = parseIpMasqAgentConfig(text);
    ASSERT_TRUE(c.ok()) << text << ": " << c.error().toString();
    auto got = v4(*c);
    EXPECT_EQ(got.size(), 12u) << text;
    EXPECT_EQ(got.front(), "10.0.0.0/8");
    EXPECT_EQ(got.back(), "169.254.0.0/16");
  }
}

TEST(IpMasqAgentTest, MistakesAreRefusedNamingTheField) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"nonMasqueradeCidrs: [10.0.0.0/8]\n", "unknown field 'nonMasqueradeCidrs'"},
      {"nonMasqueradeCIDRs: 10.0.0.0/8\n", "nonMasqueradeCIDRs is not a list"},
      {"nonMasqueradeCIDRs: [10.0.0.1/8]\n", "host bits set"},
      {"nonMasqueradeCIDRs: [banana]\n", "nonMasqueradeCIDRs:"},
      {"nonMasqueradeCIDRs: [[10.0.0.0/8]]\n", "an item is not a string"},
      {"masqLinkLocal: yes please\n", "masqLinkLocal is not a boolean"},
      {"masqLinkLocalIPv6: 1\n", "masqLinkLocalIPv6 is not a boolean"},
      {"- 10.0.0.0/8\n", "not a mapping"},
      {"a: 1\n---\nb: 2\n", "more than one document"},
      {"nonMasqueradeCIDRs: [10.0.0.0/8\n", "ip-masq-agent config:"},
  };
  for (const auto& c : cases) {
    auto r = parseIpMasqAgentConfig(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << c.text << " -> " << r.error().message();
  }
}

}  // namespace
}  // namespace cilium::service
