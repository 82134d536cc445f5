// Unit tests of the proxy's request decisions (agent/proxy/l7_policy.h) and its HTTP/1.1 framing
// (agent/proxy/http1.h): what a request must match to be allowed, and what the parser refuses.
#include "agent/proxy/l7_policy.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/proxy/http1.h"

namespace cilium::proxy {
namespace {

constexpr uint32_t kClient = 1001, kOther = 1003;

PolicySnapshot snapshot(std::vector<HttpRule> http, std::vector<uint32_t> peers = {kClient}) {
  PolicySnapshot s;
  s.version = 7;
  s.http_ingress_port = 10000;
  EndpointPolicy ep;
  ep.id = 2;
  ep.identity = 1002;
  ep.ipv4 = "10.0.0.2";
  ep.ipv6 = "fd00::2";
  PortRule r;
  r.dir = Direction::kIngress;
  r.proto = 6;
  r.port = 80;
  r.bits = 16;
  r.identities = std::move(peers);
  r.http = std::move(http);
  ep.rules.push_back(r);
  s.endpoints.push_back(ep);
  return s;
}

struct Req {
  std::string method, path, host;
  std::vector<std::pair<std::string, std::string>> headers;
};

Decision decide(const CompiledPolicy& p, const Req& r, uint32_t peer = kClient, uint16_t port = 80,
                const char* endpoint = "10.0.0.2") {
  auto ep = p.endpointByAddress(*IpAddr::parse(endpoint));
  EXPECT_TRUE(ep.has_value());
  if (!ep) return {};
  RequestView v{r.method, r.path, r.host, {}};
  for (const auto& [k, val] : r.headers) v.headers.emplace_back(k, val);
  return p.decide(*ep, Direction::kIngress, 6, port, peer, v);
}

TEST(L7PolicyTest, MethodAndPathMatchWholeValues) {
  auto p = CompiledPolicy::compile(
      snapshot({{"POST", "/v1/request-landing", "", {}, {}}, {"GET", "/public/.*", "", {}, {}}}));
  ASSERT_TRUE(p.ok()) << p.error().toString();
  EXPECT_TRUE(decide(**p, {"POST", "/v1/request-landing"}).allowed);
  EXPECT_TRUE(decide(**p, {"GET", "/public/map"}).allowed);
  EXPECT_FALSE(decide(**p, {"PUT", "/v1/exhaust-port"}).allowed);
  EXPECT_FALSE(decide(**p, {"GET", "/v1/request-landing"}).allowed) << "method counts";
  EXPECT_FALSE(decide(**p, {"POST", "/v1/request-landing/x"}).allowed) << "whole path";
  EXPECT_FALSE(decide(**p, {"POST", "x/v1/request-landing"}).allowed) << "whole path";
  EXPECT_FALSE(decide(**p, {"POSTX", "/v1/request-landing"}).allowed) << "whole method";
  // Other peers, other ports: nothing the rule covers, denied (fail closed).
  EXPECT_FALSE(decide(**p, {"POST", "/v1/request-landing"}, kOther).allowed);
  EXPECT_FALSE(decide(**p, {"POST", "/v1/request-landing"}, kClient, 81).allowed);
  // An endpoint the policy does not know: no decision to make.
  EXPECT_FALSE((*p)->endpointByAddress(*IpAddr::parse("10.0.0.3")).has_value());
  EXPECT_FALSE((*p)->endpointByAddress(*IpAddr::parse("fd00::3")).has_value());
}

// A dual-stack endpoint is found by either address, with the same rules.
TEST(L7PolicyTest, DualStackEndpointsAreFoundByEitherAddress) {
  auto p = CompiledPolicy::compile(snapshot({{"GET", "/public/.*", "", {}, {}}}));
  ASSERT_TRUE(p.ok()) << p.error().toString();
  auto v4 = (*p)->endpointByAddress(*IpAddr::parse("10.0.0.2"));
  auto v6 = (*p)->endpointByAddress(*IpAddr::parse("fd00::2"));
  ASSERT_TRUE(v4.has_value() && v6.has_value());
  EXPECT_EQ(v4->id, v6->id);
  EXPECT_EQ(v4->index, v6->index);
  EXPECT_TRUE(decide(**p, {"GET", "/public/map"}, kClient, 80, "fd00::2").allowed);
  EXPECT_FALSE(decide(**p, {"PUT", "/public/map"}, kClient, 80, "fd00::2").allowed);
  EXPECT_FALSE(decide(**p, {"GET", "/public/map"}, kOther, 80, "fd00::2").allowed);
  // The address round-trips through the wire form; a malformed one refuses the snapshot.
  auto j = toJson(snapshot({}));
  EXPECT_EQ(j["endpoints"][0]["ipv6"], "fd00::2");
  auto back = snapshotFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().toString();
  EXPECT_EQ(back->endpoints[0].ipv6, "fd00::2");
  j["endpoints"][0]["ipv6"] = "10.0.0.2";
  EXPECT_FALSE(snapshotFromJson(j).ok()) << "an IPv4 address in ipv6";
  j["endpoints"][0]["ipv6"] = "fd00::zz";
  EXPECT_FALSE(snapshotFromJson(j).ok());
}

TEST(L7PolicyTest, HostHeadersAndHeaderMatches) {
  HttpRule rule{"GET", "/", "deathstar(\\.local)?", {"X-Token", "X-Ship: empire"}, {}};
  auto p = CompiledPolicy::compile(snapshot({rule}));
  ASSERT_TRUE(p.ok()) << p.error().toString();
  Req ok{"GET", "/", "deathstar.local", {{"x-token", "1"}, {"X-Ship", "empire"}}};
  EXPECT_TRUE(decide(**p, ok).allowed) << "header names are case-insensitive";
  Req bad_host = ok;
  bad_host.host = "alderaan";
  EXPECT_FALSE(decide(**p, bad_host).allowed);
  Req no_token = ok;
  no_token.headers = {{"X-Ship", "empire"}};
  EXPECT_FALSE(decide(**p, no_token).allowed);
  Req wrong_value = ok;
  wrong_value.headers = {{"X-Token", "1"}, {"X-Ship", "rebel"}};
  EXPECT_FALSE(decide(**p, wrong_value).allowed);

  // headerMatches: a mismatch fails the rule unless it has an action, which the proxy applies.
  HttpRule m{"GET",
             "/",
             "",
             {},
             {{"X-Must", "yes", HeaderMatch::Mismatch::kNone},
              {"X-Set", "v", HeaderMatch::Mismatch::kReplace}}};
  auto q = CompiledPolicy::compile(snapshot({m}));
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(decide(**q, {"GET", "/", "", {{"X-Must", "no"}}}).allowed);
  auto d = decide(**q, {"GET", "/", "", {{"X-Must", "yes"}, {"X-Set", "old"}}});
  ASSERT_TRUE(d.allowed);
  ASSERT_EQ(d.actions.size(), 1u);
  EXPECT_EQ(d.actions[0].kind, HeaderAction::Kind::kReplace);
  EXPECT_EQ(d.actions[0].value, "v");
}

TEST(L7PolicyTest, BrokenSnapshotsAreRefusedWhole) {
  EXPECT_FALSE(CompiledPolicy::compile(snapshot({{"GET", "/(", "", {}, {}}})).ok());
  auto j = toJson(snapshot({{"GET", "/a", "", {"X-A: b"}, {}}}));
  auto back = snapshotFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().toString();
  EXPECT_EQ(*back, snapshot({{"GET", "/a", "", {"X-A: b"}, {}}}));
  j["endpoints"][0]["rules"][0]["port"] = "eighty";
  EXPECT_FALSE(snapshotFromJson(j).ok());
}

struct Collect : Http1Parser::Handler {
  std::vector<Http1Head> heads;
  std::string body;
  int ends = 0;
  void onHead(Http1Head& h) override { heads.push_back(h); }
  void onBody(const char* d, size_t n) override { body.append(d, n); }
  void onMessageEnd() override { ends++; }
};

TEST(Http1Test, PipelinedRequestsAreCutAtTheirBoundaries) {
  Collect c;
  Http1Parser p(Http1Parser::Kind::kRequest, c);
  std::string in =
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  // Byte by byte: the framing never depends on how the bytes arrive.
  for (char ch : in) ASSERT_EQ(p.feed(&ch, 1), 1u) << p.error();
  ASSERT_EQ(c.heads.size(), 2u);
  EXPECT_EQ(c.heads[0].method, "POST");
  EXPECT_EQ(c.heads[0].content_length, 3u);
  EXPECT_EQ(c.heads[1].url, "/b");
  EXPECT_EQ(c.body, "abc");
  EXPECT_EQ(c.ends, 2);
  EXPECT_EQ(c.heads[0].raw, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
}

TEST(Http1Test, SmugglingAndMalformedHeadsAreRefused) {
  for (std::string bad : {
           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
           "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
           "GET / HTTP/1.1\nHost: x\n\n",
           "NOT A REQUEST\r\n\r\n",
       }) {
    Collect c;
    Http1Parser p(Http1Parser::Kind::kRequest, c);
    p.feed(bad.data(), bad.size());
    EXPECT_TRUE(p.failed()) << bad;
    EXPECT_TRUE(c.heads.empty()) << "a refused head is never decided on: " << bad;
  }
  Collect c;
  Http1Parser p(Http1Parser::Kind::kRequest, c, Http1Limits{1024, 10, 256});
  std::string huge = "GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n";
  p.feed(huge.data(), huge.size());
  EXPECT_TRUE(p.failed());
  EXPECT_NE(p.errorStatus(), 400u) << "a too long URL or head has its own status (414/431)";
}

}  // namespace
}  // namespace cilium::proxy
