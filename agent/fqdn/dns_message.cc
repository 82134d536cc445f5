// DNS message parsing on glibc's libresolv (no hand-written label decompression).
#include "agent/fqdn/dns_message.h"

#include <arpa/nameser.h>
#include <resolv.h>

#include <set>

#include "agent/policy/fqdn_pattern.h"

namespace cilium::fqdn {

namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxChain = 16;  // CNAME hops followed (Cilium's DNS proxy follows every hop
                                  // the answer carries; a longer chain is cut, not an error)

Error malformed(std::string_view what) {
  return Error(ErrorCode::kInvalidArgument, fmt::format("malformed DNS message: {}", what));
}

Result<ns_msg> init(std::span<const uint8_t> msg) {
  if (msg.size() < kHeaderSize) return malformed("shorter than a header");
  if (msg.size() > 65535) return malformed("longer than 65535 bytes");
  ns_msg h;
  if (ns_initparse(msg.data(), static_cast<int>(msg.size()), &h) < 0)
    return malformed("sections do not fit the message");
  return h;
}

Result<ns_rr> record(ns_msg& h, ns_sect sect, int i) {
  ns_rr rr;
  if (ns_parserr(&h, sect, i, &rr) < 0) return malformed("bad record");
  return rr;
}

// The uncompressed name at `at` inside the message.
Result<std::string> nameAt(const ns_msg& h, const uint8_t* at) {
  char buf[NS_MAXDNAME];
  if (ns_name_uncompress(ns_msg_base(h), ns_msg_end(h), at, buf, sizeof(buf)) < 0)
    return malformed("bad name");
  return policy::normalizeDnsName(buf);
}

}  // namespace

Result<DnsQuery> parseQuery(std::span<const uint8_t> msg) {
  CILIUM_ASSIGN_OR_RETURN(ns_msg h, init(msg));
  if (ns_msg_getflag(h, ns_f_qr)) return malformed("not a query");
  if (ns_msg_count(h, ns_s_qd) != 1) return malformed("not exactly one question");
  CILIUM_ASSIGN_OR_RETURN(ns_rr rr, record(h, ns_s_qd, 0));
  DnsQuery q;
  q.id = ns_msg_id(h);
  q.name = policy::normalizeDnsName(ns_rr_name(rr));
  q.qtype = ns_rr_type(rr);
  q.qclass = ns_rr_class(rr);
  return q;
}

Result<DnsResponse> parseResponse(std::span<const uint8_t> msg) {
  CILIUM_ASSIGN_OR_RETURN(ns_msg h, init(msg));
  if (!ns_msg_getflag(h, ns_f_qr)) return malformed("not a response");
  if (ns_msg_count(h, ns_s_qd) != 1) return malformed("not exactly one question");
  CILIUM_ASSIGN_OR_RETURN(ns_rr q, record(h, ns_s_qd, 0));
  DnsResponse r;
  r.id = ns_msg_id(h);
  r.rcode = static_cast<uint8_t>(ns_msg_getflag(h, ns_f_rcode));
  r.name = policy::normalizeDnsName(ns_rr_name(q));
  r.qtype = ns_rr_type(q);

  struct Rec {
    std::string owner;
    uint16_t type;
    uint32_t ttl;
    std::string target;  // CNAME
    IpAddr ip;
  };
  std::vector<Rec> recs;
  int n = ns_msg_count(h, ns_s_an);
  for (int i = 0; i < n; i++) {
    CILIUM_ASSIGN_OR_RETURN(ns_rr rr, record(h, ns_s_an, i));
    if (ns_rr_class(rr) != ns_c_in) continue;
    r.rrtypes.push_back(static_cast<uint16_t>(ns_rr_type(rr)));
    Rec rec{policy::normalizeDnsName(ns_rr_name(rr)), static_cast<uint16_t>(ns_rr_type(rr)),
            ns_rr_ttl(rr), {}, {}};
    if (rec.type == kTypeA) {
      if (ns_rr_rdlen(rr) != 4) return malformed("A record of the wrong size");
      rec.ip = IpAddr::fromBytes(IpFamily::kV4, ns_rr_rdata(rr));
    } else if (rec.type == kTypeAaaa) {
      if (ns_rr_rdlen(rr) != 16) return malformed("AAAA record of the wrong size");
      rec.ip = IpAddr::fromBytes(IpFamily::kV6, ns_rr_rdata(rr));
    } else if (rec.type == kTypeCname) {
      CILIUM_ASSIGN_OR_RETURN(rec.target, nameAt(h, ns_rr_rdata(rr)));
    } else {
      continue;
    }
    recs.push_back(std::move(rec));
  }
  // The chain: from the question's name through CNAMEs, each name once (a loop ends it).
  std::set<std::string> chain{r.name};
  std::string cur = r.name;
  for (size_t hop = 0; hop < kMaxChain; hop++) {
    const Rec* next = nullptr;
    for (const auto& rec : recs)
      if (rec.type == kTypeCname && rec.owner == cur) next = &rec;
    if (next == nullptr || !chain.insert(next->target).second) break;
    r.cnames.push_back(next->target);
    cur = next->target;
  }
  for (const auto& rec : recs)
    if ((rec.type == kTypeA || rec.type == kTypeAaaa) && chain.count(rec.owner))
      r.addresses.push_back({rec.ip, rec.ttl});
  return r;
}

Result<std::vector<uint8_t>> buildErrorResponse(std::span<const uint8_t> query, uint8_t rcode) {
  CILIUM_ASSIGN_OR_RETURN(ns_msg h, init(query));
  if (ns_msg_count(h, ns_s_qd) != 1) return malformed("not exactly one question");
  const uint8_t* qd = query.data() + kHeaderSize;
  // The question's name is written out uncompressed: a compression pointer in it may point past
  // the question, into sections the answer does not carry.
  uint8_t name[NS_MAXCDNAME];
  int used = ns_name_unpack(ns_msg_base(h), ns_msg_end(h), qd, name, sizeof(name));
  if (used < 0 || ns_msg_end(h) - (qd + used) < 4) return malformed("bad question");
  size_t name_len = 0;
  while (name[name_len] != 0) name_len += name[name_len] + 1u;  // labels, as unpacked
  name_len++;
  std::vector<uint8_t> out(query.begin(), query.begin() + kHeaderSize);
  out.insert(out.end(), name, name + name_len);
  out.insert(out.end(), qd + used, qd + used + 4);  // QTYPE, QCLASS
  // Flags: QR 1, opcode and RD as asked, RA 1, AD/CD 0, rcode.
  out[2] = static_cast<uint8_t>(0x80 | (query[2] & 0x79));
  out[3] = static_cast<uint8_t>(0x80 | (rcode & 0x0f));
  for (size_t i = 6; i < kHeaderSize; i++) out[i] = 0;  // AN, NS, AR counts
  return out;
}

std::string typeName(uint16_t qtype) {
  switch (qtype) {
    case kTypeA: return "A";
    case kTypeAaaa: return "AAAA";
    case kTypeCname: return "CNAME";
    case 2: return "NS";
    case 6: return "SOA";
    case 12: return "PTR";
    case 15: return "MX";
    case 16: return "TXT";
    case 33: return "SRV";
    default: return std::to_string(qtype);
  }
}

std::string rcodeName(uint8_t rcode) {
  switch (rcode) {
    case kRcodeNoError: return "NOERROR";
    case kRcodeFormErr: return "FORMERR";
    case kRcodeServFail: return "SERVFAIL";
    case kRcodeNxDomain: return "NXDOMAIN";
    case 4: return "NOTIMP";
    case kRcodeRefused: return "REFUSED";
    default: return std::to_string(rcode);
  }
}

}  // namespace cilium::fqdn
