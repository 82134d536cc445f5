// IP address and prefix parsing and arithmetic.
#include "agent/common/inet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace cilium {

std::string_view ipFamilyName(IpFamily f) { return f == IpFamily::kV4 ? "ipv4" : "ipv6"; }

Result<IpFamily> parseIpFamily(std::string_view s) {
  if (s == "ipv4") return IpFamily::kV4;
  if (s == "ipv6") return IpFamily::kV6;
  return makeError(ErrorCode::kInvalidArgument, "family '{}' is not one of ipv4, ipv6", s);
}

IpAddr IpAddr::fromHostOrder(uint32_t host_order) {
  IpAddr a;
  a.family_ = IpFamily::kV4;
  a.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddr IpAddr::fromNetworkOrder(uint32_t network_order) {
  IpAddr a;
  a.family_ = IpFamily::kV4;
  std::memcpy(a.bytes_.data(), &network_order, 4);
  return a;
}

IpAddr IpAddr::fromBytes(IpFamily family, const uint8_t* bytes) {
  IpAddr a;
  a.family_ = family;
  std::memcpy(a.bytes_.data(), bytes, family == IpFamily::kV4 ? 4 : 16);
  return a;
}

Result<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) != 1)
      return makeError(ErrorCode::kInvalidArgument, "'{}' is not an IP address", text);
    a.family_ = IpFamily::kV4;
    std::memcpy(a.bytes_.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not an IP address", text);
  a.family_ = IpFamily::kV6;
  std::memcpy(a.bytes_.data(), &v6, 16);
  return a;
}

uint32_t IpAddr::v4HostOrder() const {
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

uint32_t IpAddr::v4NetworkOrder() const {
  uint32_t v;
  std::memcpy(&v, bytes_.data(), 4);
  return v;
}

IpAddr IpAddr::masked(uint8_t len) const {
  IpAddr a = *this;
  for (unsigned i = len; i < 128; i++)
    a.bytes_[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
  return a;
}

std::string IpAddr::toString() const {
  char buf[INET6_ADDRSTRLEN];
  if (isV4()) {
    inet_ntop(AF_INET, bytes_.data(), buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buf, sizeof(buf));
  }
  return buf;
}

IpAddr IpAddr::plus(uint64_t n) const {
  IpAddr out = *this;
  int last = isV4() ? 3 : 15;
  unsigned carry = 0;
  for (int i = last; i >= 0; i--) {
    unsigned sum = unsigned{out.bytes_[i]} + static_cast<unsigned>(n & 0xff) + carry;
    out.bytes_[i] = static_cast<uint8_t>(sum);
    carry = sum >> 8;
    n >>= 8;
  }
  return out;
}

std::optional<uint64_t> IpAddr::offsetFrom(const IpAddr& base) const {
  if (family_ != base.family_ || *this < base) return std::nullopt;
  int n = isV4() ? 4 : 16;
  // Subtract byte-wise, big-endian, then require the high part to be zero.
  std::array<uint8_t, 16> diff{};
  int borrow = 0;
  for (int i = n - 1; i >= 0; i--) {
    int d = int{bytes_[i]} - int{base.bytes_[i]} - borrow;
    borrow = d < 0 ? 1 : 0;
    diff[i] = static_cast<uint8_t>(d + (borrow ? 256 : 0));
  }
  for (int i = 0; i < n - 8; i++)
    if (diff[i] != 0) return std::nullopt;
  uint64_t v = 0;
  for (int i = std::max(0, n - 8); i < n; i++) v = (v << 8) | diff[i];
  return v;
}

IpPrefix::IpPrefix(const IpAddr& addr, int len) {
  int width = addr.bits();
  len_ = static_cast<uint8_t>(len < 0 ? 0 : len > width ? width : len);
  addr_ = addr.masked(len_);
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a CIDR (missing /length)", text);
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr.ok())
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a CIDR: '{}' is not an IP address",
                     text, text.substr(0, slash));
  std::string_view len_text = text.substr(slash + 1);
  int len = -1;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size())
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a CIDR: '{}' is not a prefix length",
                     text, len_text);
  int width = addr->bits();
  if (len < 0 || len > width)
    return makeError(ErrorCode::kInvalidArgument, "prefix length {} is not 0..{}", len, width);
  IpPrefix p(*addr, len);
  if (p.addr() != *addr)
    return makeError(ErrorCode::kInvalidArgument, "'{}' has host bits set (did you mean {}?)", text,
                     p.toString());
  return p;
}

Result<IpPrefix> IpPrefix::parseMasked(std::string_view text, bool allow_bare_ip) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (!allow_bare_ip)
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
    auto a = IpAddr::parse(text);
    if (!a.ok())
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not an IP address", text);
    return host(*a);
  }
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr.ok()) return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
  std::string_view len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3)
    return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
  unsigned len = 0;
  for (char c : len_text) {
    if (c < '0' || c > '9')
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len > addr->bits())
    return makeError(ErrorCode::kInvalidArgument, "\"{}\": prefix length {} exceeds {}", text, len,
                     addr->bits());
  return IpPrefix(*addr, static_cast<int>(len));
}

std::string IpPrefix::toString() const { return fmt::format("{}/{}", addr_.toString(), len_); }

}  // namespace cilium
