#include "tests/harness/packet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "tests/harness/packet_assert.h"

namespace cilium::testing {
namespace {

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; i++) b[off + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

uint32_t sumWords(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += get16(p + i);
  if (n & 1) acc += static_cast<uint32_t>(p[n - 1]) << 8;
  return acc;
}
uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}
uint32_t pseudoHeader(uint32_t s, uint32_t d, uint8_t proto, size_t len) {
  return (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + proto + static_cast<uint32_t>(len);
}
uint32_t pseudoHeader6(const uint8_t* s, const uint8_t* d, uint8_t proto, size_t len) {
  return sumWords(d, 16, sumWords(s, 16)) + proto + static_cast<uint32_t>(len >> 16) +
         static_cast<uint32_t>(len & 0xffff);
}
std::array<uint8_t, 16> parse6(std::string_view text) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET6, std::string(text).c_str(), a.data()) != 1)
    throw std::invalid_argument("bad IPv6 address: " + std::string(text));
  return a;
}
std::string format6(const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a, buf, sizeof(buf));
  return buf;
}

}  // namespace

uint32_t ipv4(std::string_view dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(dotted).c_str(), &a) != 1)
    throw std::invalid_argument("bad IPv4 address: " + std::string(dotted));
  return ntohl(a.s_addr);
}

std::string ipv4String(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

Mac mac(std::string_view s) {
  Mac m{};
  unsigned v[6];
  if (std::sscanf(std::string(s).c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5]) != 6)
    throw std::invalid_argument("bad MAC: " + std::string(s));
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

PacketBuilder& PacketBuilder::eth(Mac src, Mac dst) {
  src_mac_ = src;
  dst_mac_ = dst;
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst, uint8_t ttl) {
  saddr_ = testing::ipv4(src);
  daddr_ = testing::ipv4(dst);
  ttl_ = ttl;
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst, uint8_t hop_limit) {
  v6_ = true;
  saddr6_ = parse6(src);
  daddr6_ = parse6(dst);
  ttl_ = hop_limit;
  return *this;
}

PacketBuilder& PacketBuilder::ip(std::string_view src, std::string_view dst, uint8_t ttl) {
  if (src.find(':') != std::string_view::npos) return ipv6(src, dst, ttl);
  return ipv4(src, dst, ttl);
}

PacketBuilder& PacketBuilder::echoRequest(uint16_t id, uint16_t seq) {
  return icmp(v6_ ? 128 : 8, 0, id, seq);
}

PacketBuilder& PacketBuilder::echoReply(uint16_t id, uint16_t seq) {
  return icmp(v6_ ? 129 : 0, 0, id, seq);
}

PacketBuilder& PacketBuilder::neighborSolicit(std::string_view target, Mac sll) {
  icmp(135, 0);
  auto t = parse6(target);
  payload_.assign(t.begin(), t.end());
  if (sll == Mac{}) return *this;
  payload_.push_back(1);  // source link-layer address option, 8 bytes
  payload_.push_back(1);
  payload_.insert(payload_.end(), sll.begin(), sll.end());
  return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq,
                                  uint32_t ack) {
  proto_ = 6;
  l4_.assign(20, 0);
  put16(l4_, 0, sport);
  put16(l4_, 2, dport);
  put32(l4_, 4, seq);
  put32(l4_, 8, ack);
  l4_[12] = 5 << 4;
  l4_[13] = flags;
  put16(l4_, 14, 65535);
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t sport, uint16_t dport) {
  proto_ = 17;
  l4_.assign(8, 0);
  put16(l4_, 0, sport);
  put16(l4_, 2, dport);
  return *this;
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
  proto_ = 1;
  l4_.assign(8, 0);
  l4_[0] = type;
  l4_[1] = code;
  put16(l4_, 4, id);
  put16(l4_, 6, seq);
  return *this;
}

PacketBuilder& PacketBuilder::icmpError(uint8_t type, uint8_t code,
                                        const std::vector<uint8_t>& inner) {
  proto_ = 1;
  l4_.assign(8, 0);
  l4_[0] = type;
  l4_[1] = code;
  // RFC 792: the quoted IP header plus at least 8 bytes of its payload; RFC 4443 (an IPv6
  // quote): as much as fits in the minimum MTU.
  size_t ihl = inner.empty() ? 0 : static_cast<size_t>(inner[0] & 0x0f) * 4;
  size_t quote = !inner.empty() && (inner[0] >> 4) == 6 ? std::min<size_t>(inner.size(), 1232)
                                                        : std::min(inner.size(), ihl + 8);
  payload_.assign(inner.begin(), inner.begin() + static_cast<long>(quote));
  return *this;
}

PacketBuilder& PacketBuilder::protocol(uint8_t proto) {
  proto_ = proto;
  l4_.clear();
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view bytes) {
  payload_.assign(bytes.begin(), bytes.end());
  return *this;
}

PacketBuilder& PacketBuilder::payload(size_t n, uint8_t fill) {
  payload_.assign(n, fill);
  return *this;
}

PacketBuilder& PacketBuilder::fragment(uint16_t frag_field) {
  frag_ = frag_field;
  return *this;
}

PacketBuilder& PacketBuilder::ipOptions(std::vector<uint8_t> bytes) {
  bytes.resize((bytes.size() + 3) / 4 * 4, 0);
  options_ = std::move(bytes);
  return *this;
}

std::vector<uint8_t> PacketBuilder::buildL3() const {
  if (v6_) {
    const uint8_t nh = proto_ == 1 ? 58 : proto_;
    const size_t l4len = l4_.size() + payload_.size();
    std::vector<uint8_t> p(40 + l4len);
    p[0] = 0x60;
    put16(p, 4, static_cast<uint16_t>(l4len));
    p[6] = nh;
    p[7] = ttl_;
    std::copy(saddr6_.begin(), saddr6_.end(), p.begin() + 8);
    std::copy(daddr6_.begin(), daddr6_.end(), p.begin() + 24);
    std::copy(l4_.begin(), l4_.end(), p.begin() + 40);
    std::copy(payload_.begin(), payload_.end(), p.begin() + 40 + static_cast<long>(l4_.size()));
    uint8_t* l4 = p.data() + 40;
    uint16_t c =
        fold(sumWords(l4, l4len, pseudoHeader6(saddr6_.data(), daddr6_.data(), nh, l4len)));
    if (nh == 17) {
      put16(p, 40 + 4, static_cast<uint16_t>(l4len));
      c = fold(sumWords(l4, l4len, pseudoHeader6(saddr6_.data(), daddr6_.data(), nh, l4len)));
      put16(p, 40 + 6, c == 0 ? 0xffff : c);
    } else if (nh == 6) {
      put16(p, 40 + 16, c);
    } else if (nh == 58) {
      put16(p, 40 + 2, c);
    }
    return p;
  }
  const size_t hl = 20 + options_.size();
  std::vector<uint8_t> p(hl + l4_.size() + payload_.size());
  p[0] = static_cast<uint8_t>(0x40 | hl / 4);
  put16(p, 2, static_cast<uint16_t>(p.size()));
  put16(p, 4, 0x1234);
  put16(p, 6, frag_);
  p[8] = ttl_;
  p[9] = proto_;
  put32(p, 12, saddr_);
  put32(p, 16, daddr_);
  std::copy(options_.begin(), options_.end(), p.begin() + 20);
  put16(p, 10, fold(sumWords(p.data(), hl)));
  const long l4off = static_cast<long>(hl);
  std::copy(l4_.begin(), l4_.end(), p.begin() + l4off);
  std::copy(payload_.begin(), payload_.end(), p.begin() + l4off + static_cast<long>(l4_.size()));
  size_t l4len = l4_.size() + payload_.size();
  uint8_t* l4 = p.data() + hl;
  if (proto_ == 17) {
    put16(p, hl + 4, static_cast<uint16_t>(l4len));
    uint16_t c = fold(sumWords(l4, l4len, pseudoHeader(saddr_, daddr_, 17, l4len)));
    put16(p, hl + 6, c == 0 ? 0xffff : c);
  } else if (proto_ == 6) {
    put16(p, hl + 16, fold(sumWords(l4, l4len, pseudoHeader(saddr_, daddr_, 6, l4len))));
  } else if (proto_ == 1) {
    put16(p, hl + 2, fold(sumWords(l4, l4len)));
  }
  return p;
}

std::vector<uint8_t> PacketBuilder::build() const {
  std::vector<uint8_t> l3 = buildL3();
  std::vector<uint8_t> f(14 + l3.size());
  std::memcpy(f.data(), dst_mac_.data(), 6);
  std::memcpy(f.data() + 6, src_mac_.data(), 6);
  put16(f, 12, v6_ ? 0x86dd : 0x0800);
  std::memcpy(f.data() + 14, l3.data(), l3.size());
  return f;
}

std::optional<ParsedPacket> parsePacket(const std::vector<uint8_t>& f) {
  ParsedPacket p;
  if (f.size() < 14) return std::nullopt;
  std::memcpy(p.dst_mac.data(), f.data(), 6);
  std::memcpy(p.src_mac.data(), f.data() + 6, 6);
  p.eth_proto = get16(f.data() + 12);
  if (p.eth_proto == 0x86dd) {
    if (f.size() < 54) return std::nullopt;
    const uint8_t* ip = f.data() + 14;
    size_t l4len = get16(ip + 4);
    if (54 + l4len > f.size()) return std::nullopt;
    p.proto = ip[6];
    p.ttl = ip[7];
    p.src6 = format6(ip + 8);
    p.dst6 = format6(ip + 24);
    p.ip_csum_ok = true;
    const uint8_t* l4 = ip + 40;
    p.l4.assign(l4, l4 + l4len);
    bool csum = fold(sumWords(l4, l4len, pseudoHeader6(ip + 8, ip + 24, p.proto, l4len))) == 0;
    if ((p.proto == 6 && l4len >= 20) || (p.proto == 17 && l4len >= 8)) {
      p.sport = get16(l4);
      p.dport = get16(l4 + 2);
      if (p.proto == 6) p.tcp_flags = l4[13];
      p.l4_csum_ok = csum;
    } else if (p.proto == 58 && l4len >= 8) {
      p.icmp_type = l4[0];
      p.icmp_code = l4[1];
      p.sport = get16(l4 + 4);
      p.l4_csum_ok = csum;
    }
    return p;
  }
  if (p.eth_proto != 0x0800) return p;
  if (f.size() < 34) return std::nullopt;
  const uint8_t* ip = f.data() + 14;
  size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
  size_t total = get16(ip + 2);
  if (ihl < 20 || 14 + total > f.size() || total < ihl) return std::nullopt;
  p.ttl = ip[8];
  p.proto = ip[9];
  p.saddr = get32(ip + 12);
  p.daddr = get32(ip + 16);
  p.ip_csum_ok = fold(sumWords(ip, ihl)) == 0;
  p.tot_len = static_cast<uint16_t>(total);
  p.ip_options.assign(ip + 20, ip + ihl);
  const uint8_t* l4 = ip + ihl;
  size_t l4len = total - ihl;
  if ((p.proto == 6 && l4len >= 20) || (p.proto == 17 && l4len >= 8)) {
    p.sport = get16(l4);
    p.dport = get16(l4 + 2);
    if (p.proto == 6) p.tcp_flags = l4[13];
    bool zero_udp = p.proto == 17 && get16(l4 + 6) == 0;
    p.l4_csum_ok =
        zero_udp || fold(sumWords(l4, l4len, pseudoHeader(p.saddr, p.daddr, p.proto, l4len))) == 0;
  } else if (p.proto == 1 && l4len >= 8) {
    p.icmp_type = l4[0];
    p.icmp_code = l4[1];
    p.sport = get16(l4 + 4);  // echo id
    p.l4_csum_ok = fold(sumWords(l4, l4len)) == 0;
  }
  return p;
}

namespace {

// What an ICMP error quotes, read from an Ethernet frame.
struct IcmpQuote {
  uint32_t saddr = 0, daddr = 0;  // host order
  uint16_t sport = 0, dport = 0;
  bool ip_csum_ok = false;
};

std::optional<IcmpQuote> icmpQuoteOf(const std::vector<uint8_t>& frame) {
  constexpr size_t kQuote = 14 + 20 + 8;
  if (frame.size() < kQuote + 24) return std::nullopt;
  const uint8_t* ip = frame.data() + kQuote;
  auto get16 = [](const uint8_t* b) { return static_cast<uint16_t>(b[0] << 8 | b[1]); };
  IcmpQuote q;
  q.saddr = static_cast<uint32_t>(get16(ip + 12)) << 16 | get16(ip + 14);
  q.daddr = static_cast<uint32_t>(get16(ip + 16)) << 16 | get16(ip + 18);
  q.sport = get16(ip + 20);
  q.dport = get16(ip + 22);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += get16(ip + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  q.ip_csum_ok = sum == 0xffff;
  return q;
}

}  // namespace

::testing::AssertionResult isIcmpError(const std::vector<uint8_t>& frame, std::string_view saddr,
                                       std::string_view daddr, std::string_view qsaddr,
                                       uint16_t qsport, std::string_view qdaddr, uint16_t qdport) {
  auto p = parsePacket(frame);
  if (p && p->eth_proto == 0x86dd) {
    // ICMPv6: the quote is the IPv6 header (40 bytes) and the ports after it, 8 bytes in.
    if (p->proto != 58 || p->l4.size() < 8 + 44 || p->icmp_type >= 128)
      return ::testing::AssertionFailure() << "not an ICMPv6 error";
    const uint8_t* q = p->l4.data() + 8;
    auto port = [&](size_t off) { return static_cast<uint16_t>(q[off] << 8 | q[off + 1]); };
    std::string got = fmt::format("{} -> {} quoting [{}]:{} -> [{}]:{}", p->src6, p->dst6,
                                  format6(q + 8), port(40), format6(q + 24), port(42));
    std::string want = fmt::format("{} -> {} quoting [{}]:{} -> [{}]:{}", saddr, daddr, qsaddr,
                                   qsport, qdaddr, qdport);
    if (got != want) return ::testing::AssertionFailure() << "got " << got << ", want " << want;
    if (!p->l4_csum_ok) return ::testing::AssertionFailure() << "bad ICMPv6 checksum";
    return ::testing::AssertionSuccess();
  }
  if (!p || p->proto != 1) return ::testing::AssertionFailure() << "not an ICMP packet";
  auto q = icmpQuoteOf(frame);
  if (!q) return ::testing::AssertionFailure() << "no quote";
  auto tuple = [](uint32_t s, uint16_t sp, uint32_t d, uint16_t dp) {
    auto dotted = [](uint32_t a) {
      return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
             std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
    };
    return dotted(s) + ":" + std::to_string(sp) + " -> " + dotted(d) + ":" + std::to_string(dp);
  };
  std::string got =
      tuple(p->saddr, 0, p->daddr, 0) + " quoting " + tuple(q->saddr, q->sport, q->daddr, q->dport);
  std::string want = tuple(ipv4(saddr), 0, ipv4(daddr), 0) + " quoting " +
                     tuple(ipv4(qsaddr), qsport, ipv4(qdaddr), qdport);
  if (got != want) return ::testing::AssertionFailure() << "got " << got << ", want " << want;
  if (!p->ip_csum_ok || !p->l4_csum_ok || !q->ip_csum_ok)
    return ::testing::AssertionFailure() << "bad checksum: outer IP " << p->ip_csum_ok << ", ICMP "
                                         << p->l4_csum_ok << ", quoted IP " << q->ip_csum_ok;
  return ::testing::AssertionSuccess();
}

std::string srcOf(const ParsedPacket& p) {
  return p.eth_proto == 0x86dd ? p.src6 : ipv4String(p.saddr);
}

std::string dstOf(const ParsedPacket& p) {
  return p.eth_proto == 0x86dd ? p.dst6 : ipv4String(p.daddr);
}

}  // namespace cilium::testing
