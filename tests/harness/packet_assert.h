// gtest assertions about packets built and parsed with tests/harness/packet.h. Apart from
// packet.h so that code outside gtest (benchmarks, demos) does not see its `testing` namespace.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace cilium::testing {

// Whether `frame` (outer and quoted IPv4 headers without options) is an ICMP error from `saddr`
// to `daddr` with valid outer IP, ICMP and quoted IP checksums, quoting (RFC 792: the IPv4
// header and the first 8 bytes after it) {qsaddr:qsport -> qdaddr:qdport}; a failure says what
// differs. An IPv6 frame is checked as an ICMPv6 error (type below 128) with a valid checksum,
// quoting an IPv6 header without extension headers; addresses in their canonical text form.
::testing::AssertionResult isIcmpError(const std::vector<uint8_t>& frame, std::string_view saddr,
                                       std::string_view daddr, std::string_view qsaddr,
                                       uint16_t qsport, std::string_view qdaddr, uint16_t qdport);

}  // namespace cilium::testing
