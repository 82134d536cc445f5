// Family-agnostic IP addresses and prefixes for the control plane (IPAM, config, REST models).
// Pure values: parsing and arithmetic only, no syscalls.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/common/error.h"

namespace cilium {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

std::string_view ipFamilyName(IpFamily f);  // "ipv4" / "ipv6"
// Parses "ipv4" / "ipv6" (the REST API's family names).
Result<IpFamily> parseIpFamily(std::string_view s);

// An IPv4 or IPv6 address. IPv4 uses the first 4 bytes of `bytes`, network order; the rest zero.
class IpAddr {
 public:
  IpAddr() = default;
  static IpAddr v4(uint32_t host_order);
  static IpAddr fromBytes(IpFamily family, const uint8_t* bytes);
  // Accepts dotted IPv4 or textual IPv6 (no zone, no prefix).
  static Result<IpAddr> parse(std::string_view text);

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::kV4; }
  int bits() const { return isV4() ? 32 : 128; }
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // IPv4 only: the address in host byte order.
  uint32_t v4HostOrder() const;
  // IPv4 only: the address in network byte order (as bpf/abi stores it).
  uint32_t v4NetworkOrder() const;
  std::string toString() const;

  // Adds `n` to the address (wrapping within the family's width).
  IpAddr plus(uint64_t n) const;
  // this - base, when this >= base and the difference fits in 64 bits.
  std::optional<uint64_t> offsetFrom(const IpAddr& base) const;

  auto operator<=>(const IpAddr&) const = default;

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};
};

// A prefix (CIDR). The address is normalized: host bits are zero.
class IpPrefix {
 public:
  IpPrefix() = default;
  IpPrefix(IpAddr addr, int length);  // clears host bits; length is clamped to the family width
  // Parses "a.b.c.d/n" or "x::/n". Host bits set in the address are an error (a typo guard:
  // "10.0.0.5/24" most likely means something else than 10.0.0.0/24).
  static Result<IpPrefix> parse(std::string_view text);

  const IpAddr& addr() const { return addr_; }
  int length() const { return length_; }
  IpFamily family() const { return addr_.family(); }
  int hostBits() const { return addr_.bits() - length_; }
  bool contains(const IpAddr& ip) const;
  std::string toString() const;

  auto operator<=>(const IpPrefix&) const = default;

 private:
  IpAddr addr_;
  int length_ = 0;
};

}  // namespace cilium
