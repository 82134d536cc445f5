// DNS messages as the DNS proxy sees them: the question of a query, the addresses an answer
// gives for it (CNAME chains followed), and the error answers the proxy makes itself. Parsing is
// glibc's libresolv (ns_initparse / ns_parserr / ns_name_uncompress), which bounds every read by
// the message end and rejects compression loops; anything it refuses is an error, never a crash.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::fqdn {

inline constexpr uint8_t kRcodeNoError = 0;
inline constexpr uint8_t kRcodeFormErr = 1;
inline constexpr uint8_t kRcodeServFail = 2;
inline constexpr uint8_t kRcodeNxDomain = 3;
inline constexpr uint8_t kRcodeRefused = 5;
inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;

// The one question of a query (QR 0, QDCOUNT 1; anything else is kInvalidArgument).
struct DnsQuery {
  uint16_t id = 0;
  std::string name;  // normalised (policy::normalizeDnsName)
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};
Result<DnsQuery> parseQuery(std::span<const uint8_t> msg);

struct DnsAddress {
  IpAddr ip;
  uint32_t ttl = 0;
};

// An answer (QR 1) to one question: its rcode, the CNAME chain from the question's name and the
// A/AAAA records of the names on that chain.
struct DnsResponse {
  uint16_t id = 0;
  uint8_t rcode = 0;
  std::string name;  // the question's name, normalised
  uint16_t qtype = 0;
  std::vector<std::string> cnames;  // the chain's targets, in order
  std::vector<DnsAddress> addresses;
  std::vector<uint16_t> rrtypes;  // the type of each IN record of the answer section, in order
};
Result<DnsResponse> parseResponse(std::span<const uint8_t> msg);

// An answer with `rcode` to `query` (a message parseQuery() accepted): its header (id, opcode,
// RD kept; QR and RA set) and question, no records.
Result<std::vector<uint8_t>> buildErrorResponse(std::span<const uint8_t> query, uint8_t rcode);

// "A", "AAAA", "CNAME", else the number.
std::string typeName(uint16_t qtype);
// "NOERROR", "REFUSED", ..., else the number.
std::string rcodeName(uint8_t rcode);

}  // namespace cilium::fqdn
