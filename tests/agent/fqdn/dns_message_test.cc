// DNS messages: the question of a query, the addresses of an answer along its CNAME chain, the
// proxy's own error answers, and malformed messages refused with an error.
#include "agent/fqdn/dns_message.h"

#include <gtest/gtest.h>

#include "dns_builder.h"

namespace cilium::fqdn {
namespace {

using testing::DnsBuilder;

TEST(DnsMessageTest, QueryQuestionIsNormalised) {
  auto msg = DnsBuilder(0x1234, false).question("Allowed.Example.TEST.", kTypeA).bytes();
  auto q = parseQuery(msg);
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(q->id, 0x1234);
  EXPECT_EQ(q->name, "allowed.example.test");
  EXPECT_EQ(q->qtype, kTypeA);
}

TEST(DnsMessageTest, AnswerFollowsTheCnameChain) {
  auto msg = DnsBuilder(7, true)
                 .question("www.example.test", kTypeA)
                 .cname("www.example.test", "cdn.example.test", 300)
                 .cname("cdn.example.test", "edge.example.test", 300)
                 .a("edge.example.test", "192.0.2.80", 30)
                 .a("edge.example.test", "192.0.2.81", 40)
                 .a("unrelated.test", "198.51.100.1", 30)
                 .bytes();
  auto r = parseResponse(msg);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->name, "www.example.test");
  EXPECT_EQ(r->cnames, (std::vector<std::string>{"cdn.example.test", "edge.example.test"}));
  ASSERT_EQ(r->addresses.size(), 2u) << "a record of a name off the chain is not taken";
  EXPECT_EQ(r->addresses[0].ip.toString(), "192.0.2.80");
  EXPECT_EQ(r->addresses[0].ttl, 30u);
  EXPECT_EQ(r->addresses[1].ttl, 40u);
  // Every record of the answer section by type (Hubble's rrtypes), the unrelated one too.
  EXPECT_EQ(r->rrtypes, (std::vector<uint16_t>{kTypeCname, kTypeCname, kTypeA, kTypeA, kTypeA}));
}

TEST(DnsMessageTest, CnameLoopEndsTheChain) {
  auto msg = DnsBuilder(7, true)
                 .question("a.test", kTypeA)
                 .cname("a.test", "b.test", 60)
                 .cname("b.test", "a.test", 60)
                 .a("b.test", "192.0.2.1", 60)
                 .bytes();
  auto r = parseResponse(msg);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cnames, std::vector<std::string>{"b.test"});
  ASSERT_EQ(r->addresses.size(), 1u);
}

TEST(DnsMessageTest, RefusedAnswerKeepsIdAndQuestion) {
  auto q = DnsBuilder(0xbeef, false).question("blocked.other", kTypeA).bytes();
  auto out = buildErrorResponse(q, kRcodeRefused);
  ASSERT_TRUE(out.ok());
  auto r = parseResponse(*out);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->id, 0xbeef);
  EXPECT_EQ(r->rcode, kRcodeRefused);
  EXPECT_EQ(r->name, "blocked.other");
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_EQ(rcodeName(r->rcode), "REFUSED");
}

TEST(DnsMessageTest, MalformedMessagesAreErrors) {
  auto good = DnsBuilder(1, true).question("x.test", kTypeA).a("x.test", "192.0.2.1", 5).bytes();
  for (size_t n = 0; n < good.size(); n++) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    EXPECT_FALSE(parseResponse(cut).ok()) << "truncated at " << n;
  }
  // Counts far beyond the message.
  auto huge = good;
  huge[6] = huge[7] = 0xff;
  EXPECT_FALSE(parseResponse(huge).ok());
  // A name pointer that points at itself.
  std::vector<uint8_t> loop = {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
  EXPECT_FALSE(parseResponse(loop).ok());
  EXPECT_FALSE(parseQuery(loop).ok());
  // A query is not an answer and the other way round.
  EXPECT_FALSE(parseQuery(good).ok());
  EXPECT_FALSE(parseResponse(DnsBuilder(1, false).question("x.test", kTypeA).bytes()).ok());
  // An A record of the wrong size.
  auto bad_a =
      DnsBuilder(1, true).question("x.test", kTypeA).raw("x.test", kTypeA, {1, 2, 3}).bytes();
  EXPECT_FALSE(parseResponse(bad_a).ok());
}

}  // namespace
}  // namespace cilium::fqdn
