// The FQDN cache and the name manager: TTLs floored at tofqdns-min-ttl, the per-name address cap,
// expiry; learned addresses get fqdn identities that the toFQDNs selectors select (and the
// endpoint's map gets their allows), and lose them again at expiry or when no selector wants them.
#include "agent/fqdn/name_manager.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/fqdn/dns_proxy.h"
#include "agent/policy/fqdn_pattern.h"
#include "tests/agent/policy/policy_test_util.h"

namespace cilium::fqdn {
namespace {

using namespace std::chrono_literals;
using policy::testing::describe;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

DnsResponse answer(const std::string& name, std::vector<std::pair<const char*, uint32_t>> addrs,
                   std::vector<std::string> cnames = {}) {
  DnsResponse r;
  r.name = name;
  r.qtype = kTypeA;
  r.cnames = std::move(cnames);
  for (auto [a, ttl] : addrs) r.addresses.push_back({ip(a), ttl});
  return r;
}

TEST(FqdnPatternTest, MatchNameAndPatternSemantics) {
  using policy::fqdnMatches;
  using policy::normalizeFqdnMatch;
  EXPECT_EQ(*normalizeFqdnMatch("Allowed.Example.Test.", false), "allowed.example.test");
  EXPECT_TRUE(fqdnMatches("allowed.example.test", "allowed.example.test"));
  EXPECT_FALSE(fqdnMatches("allowed.example.test", "xallowed.example.test"));
  EXPECT_TRUE(fqdnMatches("*.example.test", "other.example.test"));
  EXPECT_FALSE(fqdnMatches("*.example.test", "a.b.example.test")) << "* stays inside one label";
  EXPECT_FALSE(fqdnMatches("*.example.test", "example.test"));
  EXPECT_TRUE(fqdnMatches("api-*.example.test", "api-v1.example.test"));
  EXPECT_TRUE(fqdnMatches("api-*.example.test", "api-.example.test"));
  EXPECT_FALSE(fqdnMatches("api-*.example.test", "web.example.test"));
  EXPECT_TRUE(fqdnMatches("*", "blocked.other"));
  EXPECT_TRUE(fqdnMatches("*", "a.b.c"));
  EXPECT_TRUE(fqdnMatches("a*b*c.test", "axxbyyc.test"));
  EXPECT_FALSE(fqdnMatches("a*b*c.test", "axxbyy.test"));
  for (const char* bad : {"", "a..b", "a b.test", "a/b", ".", "*.example.test"}) {
    EXPECT_FALSE(normalizeFqdnMatch(bad, false).ok()) << "matchName " << bad;
  }
  for (const char* bad : {"", "a..b", "ex ample.*", "[a-z].test", "a.test$"})
    EXPECT_FALSE(normalizeFqdnMatch(bad, true).ok()) << "matchPattern " << bad;
  EXPECT_FALSE(normalizeFqdnMatch(std::string(300, 'a'), false).ok());
  EXPECT_TRUE(normalizeFqdnMatch("*", true).ok());
  EXPECT_TRUE(normalizeFqdnMatch("*.Example.test.", true).ok());
}

TEST(DnsCacheTest, TtlFlooredCappedAndExpired) {
  DnsCache c({/*min_ttl=*/10, /*max_ips_per_host=*/2, /*grace=*/0s});
  auto t0 = Clock::time_point(std::chrono::seconds(1'000'000));
  auto added = c.update(1, "a.test", {{ip("192.0.2.1"), 3}}, t0);
  EXPECT_EQ(added.size(), 1u);
  auto e = c.list(std::nullopt, "");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].ttl, 10u) << "floored at min-ttl";
  EXPECT_EQ(e[0].expires, t0 + 10s);
  // Two more addresses at a later time: the cap keeps the two looked up last.
  c.update(1, "a.test", {{ip("192.0.2.2"), 60}, {ip("192.0.2.3"), 60}}, t0 + 1s);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.namesOf(ip("192.0.2.1")).empty());
  EXPECT_EQ(c.namesOf(ip("192.0.2.2")), std::set<std::string>{"a.test"});
  EXPECT_TRUE(c.expire(t0 + 60s).empty());
  auto gone = c.expire(t0 + 62s);
  EXPECT_EQ(gone.size(), 2u);
  EXPECT_EQ(c.size(), 0u);
}

TEST(DnsCacheTest, NamesOfAnAddressPerEndpoint) {
  DnsCache c({0, 50, 0s});
  auto t0 = Clock::time_point(std::chrono::seconds(1'000'000));
  c.update(1, "b.test", {{ip("192.0.2.7"), 60}}, t0);
  c.update(1, "a.test", {{ip("192.0.2.7"), 60}}, t0);
  c.update(2, "c.test", {{ip("192.0.2.7"), 60}, {ip("192.0.2.8"), 60}}, t0);
  EXPECT_EQ(c.namesOf(1, ip("192.0.2.7")), (std::vector<std::string>{"a.test", "b.test"}));
  EXPECT_EQ(c.namesOf(2, ip("192.0.2.7")), std::vector<std::string>{"c.test"});
  EXPECT_TRUE(c.namesOf(1, ip("192.0.2.8")).empty()) << "endpoint 2's lookup, not 1's";
  EXPECT_TRUE(c.namesOf(3, ip("192.0.2.7")).empty());
  c.expire(t0 + 61s);
  EXPECT_TRUE(c.namesOf(1, ip("192.0.2.7")).empty());
}

TEST(DnsCacheTest, StateRoundTrip) {
  DnsCache c({0, 50, 0s});
  auto t0 = Clock::time_point(std::chrono::seconds(2'000'000));
  c.update(3, "a.test", {{ip("192.0.2.1"), 30}}, t0);
  c.update(4, "b.test", {{ip("192.0.2.2"), 60}, {ip("192.0.2.3"), 60}}, t0);
  DnsCache back({0, 50, 0s});
  ASSERT_TRUE(back.restore(c.toJson(std::nullopt, "")).ok());
  auto a = c.list(std::nullopt, ""), b = back.list(std::nullopt, "");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].ip, b[i].ip);
    EXPECT_EQ(a[i].expires, b[i].expires);
    EXPECT_EQ(a[i].endpoint_id, b[i].endpoint_id);
  }
  EXPECT_FALSE(back.restore(nlohmann::json::parse(R"([{"fqdn": 1}])")).ok());
}

constexpr const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: dns}}]
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchPattern: "*.example.test"}]
  - toFQDNs: [{matchName: allowed.example.test}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
)";

class NameManagerTest : public policy::testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    policy::EngineOptions o;
    o.l7 = policy::L7Mode::kRedirect;
    o.proxy_ports = {11001, 11002, 11003};
    restart(o);
    ipcache_ = std::make_unique<ipcache::IpCache>(nullptr, nullptr);
    client_ = subject(policy::testing::pod({{"app", "client"}}), 1);
    import(kPolicy);
    ASSERT_TRUE(engine_->attach(client_).ok());
  }
  std::unique_ptr<NameManager> manager(uint32_t min_ttl = 0) {
    auto m =
        std::make_unique<NameManager>(*ids_, *ipcache_, CacheOptions{min_ttl, 50, 0s}, nullptr);
    EXPECT_TRUE(m->setSelectors(engine_->fqdnSelectors()).ok());
    return m;
  }
  std::set<std::string> upserts() {
    auto d = engine_->consumeChanges(1);
    EXPECT_TRUE(d.ok());
    return describe(d->upserts);
  }
  std::unique_ptr<ipcache::IpCache> ipcache_;
  policy::Subject client_;
  Clock::time_point t0_ = Clock::time_point(std::chrono::seconds(3'000'000));
};

TEST_F(NameManagerTest, LearnedAddressesBecomeSelectedUntilTheyExpire) {
  EXPECT_EQ(engine_->fqdnSelectors(), std::vector<std::string>{"allowed.example.test"});
  auto m = manager();
  (void)engine_->consumeChanges(1);
  ASSERT_TRUE(m->learn(1, answer("allowed.example.test", {{"192.0.2.80", 5}}), t0_).ok());
  auto id = m->identityOf(ip("192.0.2.80"));
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(identity::isLocal(*id));
  auto ident = ids_->lookup(*id);
  ASSERT_TRUE(ident.has_value());
  EXPECT_TRUE(ident->labels.has(labels::Source::kFqdn, "allowed.example.test"));
  EXPECT_TRUE(ident->labels.has(labels::Source::kCidr, "192.0.2.80/32"));
  EXPECT_TRUE(ident->labels.has(labels::Source::kReserved, "world"));
  auto entry = ipcache_->lookup(ip("192.0.2.80"));
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->info.identity, *id);
  EXPECT_EQ(entry->source, ipcache::Source::kFqdn);
  EXPECT_TRUE(upserts().count(fmt::format("out {} TCP/80 allow", *id)));

  // A name no toFQDNs selector matches: its address stays world.
  ASSERT_TRUE(m->learn(1, answer("other.example.test", {{"192.0.2.81", 5}}), t0_).ok());
  EXPECT_FALSE(m->identityOf(ip("192.0.2.81")).has_value());
  EXPECT_FALSE(ipcache_->lookup(ip("192.0.2.81")).has_value());

  EXPECT_EQ(m->gc(t0_ + 4s), 0u);
  EXPECT_TRUE(m->identityOf(ip("192.0.2.80")).has_value());
  EXPECT_EQ(m->gc(t0_ + 6s), 2u);
  EXPECT_FALSE(m->identityOf(ip("192.0.2.80")).has_value());
  EXPECT_FALSE(ipcache_->lookup(ip("192.0.2.80")).has_value());
  EXPECT_FALSE(ids_->lookup(*id).has_value()) << "the identity is released";
  auto d = engine_->consumeChanges(1);
  ASSERT_TRUE(d.ok());
  bool deleted = false;
  for (const auto& k : d->deletes) deleted |= k.sec_label == *id;
  EXPECT_TRUE(deleted) << "the allow for the expired address is removed";
  EXPECT_EQ(m->stats().gc_deletions, 2u);
}

// AAAA answers: the IPv6 address gets an fqdn identity with its /128 and an ipcache /128 entry,
// and the endpoint's allow, as an A answer's address does.
TEST_F(NameManagerTest, AaaaAddressesGetIdentitiesAndIpcacheEntries) {
  auto m = manager();
  (void)engine_->consumeChanges(1);
  DnsResponse r = answer("allowed.example.test", {{"2001:db8::80", 5}});
  r.qtype = kTypeAaaa;
  ASSERT_TRUE(m->learn(1, r, t0_).ok());
  auto id = m->identityOf(ip("2001:db8::80"));
  ASSERT_TRUE(id.has_value());
  auto ident = ids_->lookup(*id);
  ASSERT_TRUE(ident.has_value());
  EXPECT_TRUE(ident->labels.has(labels::Source::kFqdn, "allowed.example.test"));
  EXPECT_TRUE(ident->labels.has(labels::Source::kCidr, "2001:db8::80/128"))
      << ident->labels.toString();
  auto entry = ipcache_->lookup(ip("2001:db8::80"));
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->info.identity, *id);
  EXPECT_EQ(entry->source, ipcache::Source::kFqdn);
  EXPECT_FALSE(ipcache_->lookup(ip("2001:db8::81")).has_value()) << "a /128, not a wider prefix";
  EXPECT_TRUE(upserts().count(fmt::format("out {} TCP/80 allow", *id)));
  EXPECT_EQ(m->gc(t0_ + 6s), 1u);
  EXPECT_FALSE(ipcache_->lookup(ip("2001:db8::80")).has_value());
}

TEST_F(NameManagerTest, CnameTargetsAndLaterPoliciesRelabel) {
  auto m = manager();
  // allowed.example.test is a CNAME of edge.cdn.test: the address is selected through it.
  ASSERT_TRUE(
      m->learn(1, answer("allowed.example.test", {{"192.0.2.90", 60}}, {"edge.cdn.test"}), t0_)
          .ok());
  auto first = m->identityOf(ip("192.0.2.90"));
  ASSERT_TRUE(first.has_value());
  // A second policy selecting the CNAME target by pattern: the address gets both labels, a new
  // identity, and the old one is released.
  import(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchPattern: "*.cdn.test"}]
)");
  ASSERT_TRUE(m->setSelectors(engine_->fqdnSelectors()).ok());
  auto second = m->identityOf(ip("192.0.2.90"));
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(*first, *second);
  auto ident = ids_->lookup(*second);
  ASSERT_TRUE(ident.has_value());
  EXPECT_TRUE(ident->labels.has(labels::Source::kFqdn, "*.cdn.test"));
  EXPECT_TRUE(ident->labels.has(labels::Source::kFqdn, "allowed.example.test"));
  EXPECT_FALSE(ids_->lookup(*first).has_value());
  EXPECT_EQ(ipcache_->lookup(ip("192.0.2.90"))->info.identity, *second);
  // DELETE /fqdn/cache for the name: gone, and so is the identity.
  EXPECT_EQ(m->clear(std::nullopt, "*.example.test"), 1u);
  EXPECT_EQ(m->clear(std::nullopt, "*.cdn.test"), 1u);
  EXPECT_FALSE(m->identityOf(ip("192.0.2.90")).has_value());
  EXPECT_EQ(m->cacheJson(std::nullopt, "").size(), 0u);
}

TEST_F(NameManagerTest, MinTtlKeepsAddressesLonger) {
  auto m = manager(/*min_ttl=*/30);
  ASSERT_TRUE(m->learn(1, answer("allowed.example.test", {{"192.0.2.80", 1}}), t0_).ok());
  EXPECT_EQ(m->gc(t0_ + 10s), 0u);
  EXPECT_TRUE(m->identityOf(ip("192.0.2.80")).has_value());
  EXPECT_EQ(m->gc(t0_ + 31s), 1u);
  EXPECT_FALSE(m->identityOf(ip("192.0.2.80")).has_value());
}

TEST_F(NameManagerTest, DnsPolicyChecksNamesPerServerAndPort) {
  auto p = engine_->resolve(client_);
  ASSERT_TRUE(p.ok());
  ASSERT_FALSE(p->l7.empty());
  DnsPolicy dp;
  dp.l7PoliciesChanged({{1, client_.identity, ip("10.0.0.5"), p->l7}});
  EXPECT_EQ(dp.endpoints(), 1u);
  auto dns_id = allocate(policy::testing::pod({{"app", "dns"}}));
  (void)engine_->consumeChanges(1);
  p = engine_->resolve(client_);
  dp.l7PoliciesChanged({{1, client_.identity, ip("10.0.0.5"), p->l7}});
  auto v = dp.check(ip("10.0.0.5"), IPPROTO_UDP, 53, dns_id, "allowed.example.test");
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.endpoint_id, 1);
  EXPECT_TRUE(dp.check(ip("10.0.0.5"), IPPROTO_TCP, 53, dns_id, "other.example.test").allowed);
  EXPECT_FALSE(dp.check(ip("10.0.0.5"), IPPROTO_UDP, 53, dns_id, "blocked.other").allowed);
  EXPECT_FALSE(
      dp.check(ip("10.0.0.5"), IPPROTO_UDP, 53, identity::kWorld, "allowed.example.test").allowed)
      << "a server the rule does not name";
  EXPECT_FALSE(dp.check(ip("10.0.0.6"), IPPROTO_UDP, 53, dns_id, "allowed.example.test").known);
  // A dual-stack endpoint: its IPv6 queries are judged by the same rules.
  dp.l7PoliciesChanged({{1, client_.identity, ip("10.0.0.5"), p->l7, ip("fd00::5")}});
  EXPECT_EQ(dp.endpoints(), 1u);
  v = dp.check(ip("fd00::5"), IPPROTO_UDP, 53, dns_id, "allowed.example.test");
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.endpoint_id, 1);
  EXPECT_FALSE(dp.check(ip("fd00::5"), IPPROTO_UDP, 53, dns_id, "blocked.other").allowed);
  EXPECT_TRUE(dp.check(ip("10.0.0.5"), IPPROTO_UDP, 53, dns_id, "allowed.example.test").allowed);
  dp.endpointRemoved(1);
  EXPECT_FALSE(dp.check(ip("10.0.0.5"), IPPROTO_UDP, 53, dns_id, "allowed.example.test").allowed);
  EXPECT_FALSE(dp.check(ip("fd00::5"), IPPROTO_UDP, 53, dns_id, "allowed.example.test").known)
      << "both addresses go with the endpoint";
}

}  // namespace
}  // namespace cilium::fqdn

namespace cilium::fqdn {
namespace {

// The DNS proxy's records as Hubble's L7 flow source: a refused query is a denied request, an
// allowed query a forwarded request, its answer a response carrying what the pod got (the
// lowest TTL, fully qualified names), an upstream failure an error with SERVFAIL.
TEST(DnsRecordTest, RecordsBecomeAccessRecords) {
  DnsRecord q;
  q.endpoint_id = 7;
  q.source = *IpAddr::parse("10.200.0.5");
  q.source_port = 40000;
  q.source_identity = 1234;
  q.server = *IpAddr::parse("192.0.2.53");
  q.server_identity = 2;
  q.proto = 17;
  q.proxy_port = 10003;
  q.name = "blocked.other";
  q.qtype = kTypeA;
  auto a = toAccessRecord(q);
  EXPECT_EQ(a.type, proxy::AccessRecord::Type::kRequest);
  EXPECT_EQ(a.verdict, proxy::AccessRecord::Verdict::kDenied);
  EXPECT_FALSE(a.ingress);
  EXPECT_EQ(a.src_ip, "10.200.0.5");
  EXPECT_EQ(a.dst_ip, "192.0.2.53");
  EXPECT_EQ(a.dst_port, 53);
  EXPECT_EQ(a.l4_protocol, 17);
  EXPECT_EQ(a.proxy_port, 10003);
  ASSERT_TRUE(a.dns);
  EXPECT_EQ(a.dns->query, "blocked.other.");
  EXPECT_EQ(a.dns->qtypes, std::vector<std::string>{"A"});
  EXPECT_TRUE(a.dns->ips.empty());

  q.allowed = true;
  q.name = "allowed.example.test";
  EXPECT_EQ(toAccessRecord(q).verdict, proxy::AccessRecord::Verdict::kForwarded);
  auto r = q;
  r.kind = DnsRecord::Kind::kAnswer;
  r.latency = std::chrono::microseconds(1500);
  DnsResponse resp = answer("allowed.example.test", {{"192.0.2.80", 30}, {"192.0.2.81", 10}},
                            {"www.example.test"});
  resp.rrtypes = {kTypeCname, kTypeA, kTypeA};
  r.response = resp;
  a = toAccessRecord(r);
  EXPECT_EQ(a.type, proxy::AccessRecord::Type::kResponse);
  EXPECT_EQ(a.verdict, proxy::AccessRecord::Verdict::kForwarded);
  EXPECT_EQ(a.latency_ns, 1'500'000u);
  EXPECT_EQ(a.dns->ips, (std::vector<std::string>{"192.0.2.80", "192.0.2.81"}));
  EXPECT_EQ(a.dns->ttl, 10u);
  EXPECT_EQ(a.dns->cnames, std::vector<std::string>{"www.example.test."});
  EXPECT_EQ(a.dns->rrtypes, (std::vector<std::string>{"CNAME", "A", "A"}));
  EXPECT_EQ(a.dns->rcode, 0);

  r.upstream_failed = true;
  r.response->rcode = kRcodeServFail;
  r.response->addresses.clear();
  a = toAccessRecord(r);
  EXPECT_EQ(a.verdict, proxy::AccessRecord::Verdict::kError);
  EXPECT_EQ(a.dns->rcode, kRcodeServFail);
}

}  // namespace
}  // namespace cilium::fqdn
