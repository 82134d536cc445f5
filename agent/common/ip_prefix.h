// Family-agnostic IP addresses and prefixes for the control plane (ipcache, CIDR identities,
// CIDR policy). Header-only; parsing goes through inet_pton, never through a regex.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "agent/common/error.h"

namespace cilium {
// agent/common/inet.h defines another cilium::IpAddr (and IpFamily) for the daemon and the API.
// The inline namespace gives these classes their own linker names, so the two never get mixed
// up at link time (their inline members would otherwise share symbols with different meanings,
// e.g. IpAddr::v4 takes host order there and network order here). Merging the two is pending.
inline namespace prefix {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

// An IPv4 or IPv6 address. IPv4 uses the first 4 bytes (network order), the rest stay zero, so
// the bytes are the layout of `union v4v6_addr` in bpf/abi/common.h.
class IpAddr {
 public:
  IpAddr() = default;

  static IpAddr v4(uint32_t network_order) {
    IpAddr a;
    a.family_ = IpFamily::kV4;
    std::memcpy(a.bytes_.data(), &network_order, 4);
    return a;
  }
  static IpAddr v6(const uint8_t (&bytes)[16]) {
    IpAddr a;
    a.family_ = IpFamily::kV6;
    std::memcpy(a.bytes_.data(), bytes, 16);
    return a;
  }

  // "10.0.0.1" or "f00d::1".
  static Result<IpAddr> parse(std::string_view text) {
    std::string s(text);
    IpAddr a;
    if (s.find(':') == std::string::npos) {
      in_addr v4{};
      if (inet_pton(AF_INET, s.c_str(), &v4) != 1)
        return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not an IP address", text);
      a.family_ = IpFamily::kV4;
      std::memcpy(a.bytes_.data(), &v4, 4);
      return a;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, s.c_str(), &v6) != 1)
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not an IP address", text);
    a.family_ = IpFamily::kV6;
    std::memcpy(a.bytes_.data(), &v6, 16);
    return a;
  }

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::kV4; }
  // Address bits: 32 or 128.
  uint8_t bits() const { return isV4() ? 32 : 128; }
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  uint32_t v4NetworkOrder() const {
    uint32_t v;
    std::memcpy(&v, bytes_.data(), 4);
    return v;
  }
  bool bit(uint8_t i) const { return (bytes_[i / 8] >> (7 - i % 8)) & 1; }

  // This address with every bit from `len` on cleared.
  IpAddr masked(uint8_t len) const {
    IpAddr a = *this;
    for (unsigned i = len; i < 128; i++)
      a.bytes_[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
    return a;
  }

  std::string toString() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(isV4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
    return buf;
  }

  auto operator<=>(const IpAddr&) const = default;  // NOLINT(modernize-use-nullptr): tidy 14 bug

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};
};

// An address prefix; host bits beyond `len` are always zero.
class IpPrefix {
 public:
  IpPrefix() = default;
  IpPrefix(const IpAddr& addr, uint8_t len)
      : addr_(addr.masked(len > addr.bits() ? addr.bits() : len)),
        len_(len > addr.bits() ? addr.bits() : len) {}

  // A full-length prefix for one address (/32 or /128).
  static IpPrefix host(const IpAddr& a) { return IpPrefix(a, a.bits()); }

  // "10.0.0.0/8", "f00d::/64". Host bits are cleared ("10.1.2.3/8" -> 10.0.0.0/8). With
  // `allow_bare_ip`, "10.0.0.1" means 10.0.0.1/32.
  static Result<IpPrefix> parse(std::string_view text, bool allow_bare_ip = false) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) {
      if (!allow_bare_ip)
        return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
      CILIUM_ASSIGN_OR_RETURN(IpAddr a, IpAddr::parse(text));
      return host(a);
    }
    auto addr = IpAddr::parse(text.substr(0, slash));
    if (!addr.ok())
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" is not a CIDR prefix", text);
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
      return makeError(ErrorCode::kInvalidArgument, "\"{}\": prefix length {} exceeds {}", text,
                       len, addr->bits());
    return IpPrefix(*addr, static_cast<uint8_t>(len));
  }

  const IpAddr& addr() const { return addr_; }
  uint8_t len() const { return len_; }
  IpFamily family() const { return addr_.family(); }

  bool contains(const IpAddr& a) const { return a.family() == family() && a.masked(len_) == addr_; }
  // Whether `other` lies entirely inside this prefix (equal prefixes contain each other).
  bool contains(const IpPrefix& other) const {
    return other.family() == family() && other.len_ >= len_ && other.addr_.masked(len_) == addr_;
  }

  std::string toString() const { return addr_.toString() + "/" + std::to_string(len_); }

  auto operator<=>(const IpPrefix&) const = default;  // NOLINT(modernize-use-nullptr): tidy 14 bug

 private:
  IpAddr addr_;
  uint8_t len_ = 0;
};

}  // namespace prefix
}  // namespace cilium

template <>
struct std::hash<cilium::IpPrefix> {
  size_t operator()(const cilium::IpPrefix& p) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : p.addr().bytes()) h = (h ^ b) * 1099511628211ull;
    h = (h ^ p.len()) * 1099511628211ull;
    h = (h ^ static_cast<uint8_t>(p.family())) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};
