// The agent <-> proxy protocol on the agent's Unix socket (docs/l7.md): frames of a 4-byte
// big-endian length and a JSON message, at most kMaxFrame bytes.
//
//   proxy -> agent  {"type":"hello","pid":N,"restarts":N,"version":"...","policyVersion":N}
//                   {"type":"ack","version":N}             the snapshot N is in force
//                   0x01 <AccessRecord>...                 access records, compact (below)
//   agent -> proxy  {"type":"policy", ...PolicySnapshot (l7_policy.h)}
//
// Access records are two per HTTP request, so they travel in a compact binary form rather than
// JSON (encoding them as JSON cost the proxy as much CPU as its HTTP parsing): a frame whose body
// starts with kRecordsTag (never the first byte of a JSON object) holds records back to back,
// each little-endian fixed fields then length-prefixed strings, then the DNS part when its flag
// is set (encodeRecord()).
//
// The proxy connects (and reconnects after an agent restart); the agent never waits for it to
// forward traffic: without an acknowledged snapshot the proxy keeps the last one it had.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"

namespace cilium::proxy {

inline constexpr size_t kMaxFrame = 64u << 20;
inline constexpr char kRecordsTag = '\x01';

std::string encodeFrame(const nlohmann::json& msg);

// Accumulates received bytes and yields whole messages.
class FrameReader {
 public:
  void feed(const char* data, size_t len) { buf_.append(data, len); }
  // The next frame's body, nullopt when incomplete; an oversized frame is an error (fatal for
  // the connection).
  Result<std::optional<std::string>> nextBody();
  // The next frame as a JSON object; an error also when it is not one.
  Result<std::optional<nlohmann::json>> next();

 private:
  std::string buf_;
};

// One L7 event, as the proxy reports it (Hubble's accesslog.LogRecord in spirit; agent/hubble
// turns it into a flow).
struct AccessRecord {
  enum class Type : uint8_t { kRequest, kResponse };
  enum class Verdict : uint8_t { kForwarded, kDenied, kError };
  Type type = Type::kRequest;
  Verdict verdict = Verdict::kForwarded;
  bool ingress = true;  // the redirect's direction (ingress: the proxy answers for the server)
  int64_t time_ns = 0;  // wall clock
  uint16_t endpoint_id = 0;
  std::string src_ip, dst_ip;  // the original connection's ends
  uint16_t src_port = 0, dst_port = 0;
  uint32_t src_identity = 0, dst_identity = 0;
  uint16_t proxy_port = 0;
  // HTTP
  std::string method, url, protocol;  // protocol: "HTTP/1.1", "HTTP/2"
  uint32_t code = 0;                  // response status (responses, denials: 403)
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t latency_ns = 0;   // responses: since the request
  bool parse_error = false;  // a request the proxy could not parse (answered 400)
  uint8_t l4_protocol = 6;   // IPPROTO_TCP; DNS records also IPPROTO_UDP (17)
  // DNS (the agent's DNS proxy, agent/fqdn; Cilium's LogRecordDNS): set on DNS records, whose
  // HTTP fields stay empty.
  struct Dns {
    std::string query;  // as Cilium logs it: the fully qualified name ("example.com.")
    std::vector<std::string> ips, cnames, qtypes, rrtypes;
    uint32_t ttl = 0;  // the lowest TTL of the answer's addresses
    uint8_t rcode = 0;
    std::string observation_source = "proxy";
  };
  std::optional<Dns> dns;
};

// Appends one record in the compact form to `out` (a frame body that starts with kRecordsTag).
void encodeRecord(const AccessRecord& r, std::string& out);
// A whole frame (length, kRecordsTag, the records).
template <typename Records>
std::string encodeRecordsFrame(const Records& records) {
  std::string out(5, '\0');
  out[4] = kRecordsTag;
  for (const auto& r : records) encodeRecord(r, out);
  uint32_t n = static_cast<uint32_t>(out.size() - 4);
  for (int i = 0; i < 4; i++) out[i] = static_cast<char>(n >> (24 - 8 * i));
  return out;
}
// The records of a frame body that starts with kRecordsTag; a truncated or malformed body is an
// error (none of its records are taken).
Result<std::vector<AccessRecord>> decodeRecords(std::string_view body);

}  // namespace cilium::proxy
