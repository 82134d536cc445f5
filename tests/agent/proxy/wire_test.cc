// Unit tests of the agent <-> proxy wire format: access records in their compact form survive a
// round trip through frames, and a damaged records frame is refused whole, never half read.
#include "agent/proxy/wire.h"

#include <gtest/gtest.h>

namespace cilium::proxy {
namespace {

AccessRecord sample() {
  AccessRecord r;
  r.type = AccessRecord::Type::kResponse;
  r.verdict = AccessRecord::Verdict::kDenied;
  r.ingress = false;
  r.parse_error = true;
  r.time_ns = 1765000000123456789;
  r.endpoint_id = 4321;
  r.src_ip = "10.0.0.1";
  r.dst_ip = "10.0.0.2";
  r.src_port = 40000;
  r.dst_port = 80;
  r.src_identity = 70000;
  r.dst_identity = 16777217;
  r.proxy_port = 10001;
  r.method = "PUT";
  r.url = "http://deathstar/v1/exhaust-port";
  r.protocol = "HTTP/1.1";
  r.code = 403;
  r.headers = {{"x-a", "1"}, {"x-b", std::string("\0\xff", 2)}};
  r.latency_ns = 123456;
  return r;
}

// A DNS proxy record (agent/fqdn): UDP, and the DNS part instead of HTTP fields.
AccessRecord dnsSample() {
  AccessRecord r;
  r.l4_protocol = 17;
  r.dns = AccessRecord::Dns{"a.test.", {"10.0.0.1"}, {"b.test."}, {"A"}, {"CNAME", "A"}, 7, 3,
                            "proxy"};
  return r;
}

void expectSame(const AccessRecord& a, const AccessRecord& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.verdict, b.verdict);
  EXPECT_EQ(a.ingress, b.ingress);
  EXPECT_EQ(a.parse_error, b.parse_error);
  EXPECT_EQ(a.time_ns, b.time_ns);
  EXPECT_EQ(a.endpoint_id, b.endpoint_id);
  EXPECT_EQ(a.src_ip, b.src_ip);
  EXPECT_EQ(a.dst_ip, b.dst_ip);
  EXPECT_EQ(a.src_port, b.src_port);
  EXPECT_EQ(a.dst_port, b.dst_port);
  EXPECT_EQ(a.src_identity, b.src_identity);
  EXPECT_EQ(a.dst_identity, b.dst_identity);
  EXPECT_EQ(a.proxy_port, b.proxy_port);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.url, b.url);
  EXPECT_EQ(a.protocol, b.protocol);
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.headers, b.headers);
  EXPECT_EQ(a.latency_ns, b.latency_ns);
  EXPECT_EQ(a.l4_protocol, b.l4_protocol);
  ASSERT_EQ(a.dns.has_value(), b.dns.has_value());
  if (a.dns) {
    EXPECT_EQ(a.dns->query, b.dns->query);
    EXPECT_EQ(a.dns->ips, b.dns->ips);
    EXPECT_EQ(a.dns->cnames, b.dns->cnames);
    EXPECT_EQ(a.dns->qtypes, b.dns->qtypes);
    EXPECT_EQ(a.dns->rrtypes, b.dns->rrtypes);
    EXPECT_EQ(a.dns->ttl, b.dns->ttl);
    EXPECT_EQ(a.dns->rcode, b.dns->rcode);
    EXPECT_EQ(a.dns->observation_source, b.dns->observation_source);
  }
}

TEST(ProxyWireTest, RecordsRoundTripThroughFramesBesideJsonMessages) {
  AccessRecord plain;
  plain.method = "GET";
  std::vector<AccessRecord> records = {sample(), plain, dnsSample()};
  std::string bytes = encodeFrame({{"type", "ack"}, {"version", 7}}) + encodeRecordsFrame(records);
  FrameReader reader;
  // Fed a byte at a time: frames come out whole or not at all.
  std::vector<std::string> bodies;
  for (char c : bytes) {
    reader.feed(&c, 1);
    auto body = reader.nextBody();
    ASSERT_TRUE(body.ok());
    if (body->has_value()) bodies.push_back(**body);
  }
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(bodies[0])["version"], 7);
  ASSERT_EQ(bodies[1][0], kRecordsTag);
  auto got = decodeRecords(bodies[1]);
  ASSERT_TRUE(got.ok()) << got.error().toString();
  ASSERT_EQ(got->size(), records.size());
  for (size_t i = 0; i < records.size(); i++) expectSame((*got)[i], records[i]);
}

TEST(ProxyWireTest, DamagedRecordsAreRefusedWhole) {
  // One record with every part (a truncation at a record boundary would be a valid frame).
  AccessRecord all = sample();
  all.dns = dnsSample().dns;
  std::vector<AccessRecord> records = {all};
  std::string frame = encodeRecordsFrame(records);
  std::string body = frame.substr(4);
  // Every truncation of the body (past the tag) is an error, never a partial record.
  for (size_t n = 2; n < body.size(); n++)
    EXPECT_FALSE(decodeRecords(std::string_view(body).substr(0, n)).ok()) << n;
  EXPECT_FALSE(decodeRecords("").ok());
  EXPECT_FALSE(decodeRecords("{}").ok());
  // A type or verdict out of range.
  std::string bad = body;
  bad[1] = 9;
  EXPECT_FALSE(decodeRecords(bad).ok());
  // A string length far past the end.
  bad = body;
  // tag, type/verdict/flags, l4 protocol, time, endpoint and 2 ports, 2 identities, proxy port,
  // code, latency: then the source address length (4 bytes, little-endian)
  size_t src_ip_len = 1 + 3 + 1 + 8 + 2 * 3 + 4 * 2 + 2 + 4 + 8;
  bad[src_ip_len + 3] = '\x7f';
  EXPECT_FALSE(decodeRecords(bad).ok());
  // Just the tag: no records.
  auto none = decodeRecords(std::string(1, kRecordsTag));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace cilium::proxy
