// The family-agnostic IP address and prefix of the whole agent (endpoints, ipcache, IPAM, policy
// CIDRs, services, Hubble, REST models). Pure values: parsing and arithmetic, no syscalls.
// IPv4-only integers appear only at the ABI boundary (bpf/abi, the map wrappers), converted with
// fromNetworkOrder()/v4NetworkOrder().
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/common/error.h"

namespace cilium {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

std::string_view ipFamilyName(IpFamily f);  // "ipv4" / "ipv6"
// Parses "ipv4" / "ipv6" (the REST API's family names).
Result<IpFamily> parseIpFamily(std::string_view s);

// An IPv4 or IPv6 address. IPv4 uses the first 4 bytes of `bytes`, network order, the rest
// zero: the layout of `union v4v6_addr` in bpf/abi/common.h.
class IpAddr {
 public:
  IpAddr() = default;
  // IPv4 from a 32-bit number in host byte order (10.0.0.1 is 0x0a000001).
  static IpAddr fromHostOrder(uint32_t v4);
  // IPv4 from a 32-bit number in network byte order (as bpf/abi stores it).
  static IpAddr fromNetworkOrder(uint32_t v4);
  static IpAddr fromBytes(IpFamily family, const uint8_t* bytes);
  // Accepts dotted IPv4 or textual IPv6 (no zone, no prefix).
  static Result<IpAddr> parse(std::string_view text);

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::kV4; }
  // Address bits: 32 or 128.
  uint8_t bits() const { return isV4() ? 32 : 128; }
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // IPv4 only: the address in host byte order.
  uint32_t v4HostOrder() const;
  // IPv4 only: the address in network byte order (as bpf/abi stores it).
  uint32_t v4NetworkOrder() const;
  // Bit `i`, counted from the most significant.
  bool bit(uint8_t i) const { return (bytes_[i / 8] >> (7 - i % 8)) & 1; }
  // This address with every bit from `len` on cleared.
  IpAddr masked(uint8_t len) const;
  std::string toString() const;

  // Adds `n` to the address (wrapping within the family's width).
  IpAddr plus(uint64_t n) const;
  // this - base, when this >= base and the difference fits in 64 bits.
  std::optional<uint64_t> offsetFrom(const IpAddr& base) const;

  auto operator<=>(const IpAddr&) const = default;  // NOLINT(modernize-use-nullptr): tidy 14 bug

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};
};

// A prefix (CIDR). The address is normalized: host bits are zero.
class IpPrefix {
 public:
  IpPrefix() = default;
  // Clears host bits; a length beyond the family's width is clamped to it.
  IpPrefix(const IpAddr& addr, int len);
  // A full-length prefix for one address (/32 or /128).
  static IpPrefix host(const IpAddr& a) { return IpPrefix(a, a.bits()); }

  // Parses "a.b.c.d/n" or "x::/n", strictly: host bits set in the address are an error (a typo
  // guard for configuration: "10.0.0.5/24" most likely means something else than 10.0.0.0/24).
  static Result<IpPrefix> parse(std::string_view text);
  // Parses a CIDR as policies write them: host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8), and
  // with `allow_bare_ip` "10.0.0.1" means 10.0.0.1/32.
  static Result<IpPrefix> parseMasked(std::string_view text, bool allow_bare_ip = false);

  const IpAddr& addr() const { return addr_; }
  uint8_t len() const { return len_; }
  IpFamily family() const { return addr_.family(); }
  int hostBits() const { return addr_.bits() - len_; }
  bool contains(const IpAddr& a) const { return a.family() == family() && a.masked(len_) == addr_; }
  // Whether `other` lies entirely inside this prefix (equal prefixes contain each other).
  bool contains(const IpPrefix& other) const {
    return other.family() == family() && other.len_ >= len_ && other.addr_.masked(len_) == addr_;
  }
  std::string toString() const;

  auto operator<=>(const IpPrefix&) const = default;  // NOLINT(modernize-use-nullptr): tidy 14 bug

 private:
  IpAddr addr_;
  uint8_t len_ = 0;
};

}  // namespace cilium

template <>
struct std::hash<cilium::IpAddr> {
  size_t operator()(const cilium::IpAddr& a) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : a.bytes()) h = (h ^ b) * 1099511628211ull;
    h = (h ^ static_cast<uint8_t>(a.family())) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

template <>
struct std::hash<cilium::IpPrefix> {
  size_t operator()(const cilium::IpPrefix& p) const noexcept {
    uint64_t h = std::hash<cilium::IpAddr>()(p.addr());
    h = (h ^ p.len()) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};
