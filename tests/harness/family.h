// The address family a family-parameterised test runs over, and the IPv6 twins of the harness's
// IPv4 addresses, so one test body covers both families.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace cilium::testing {

enum class Family { kV4, kV6 };

inline std::string familyName(const ::testing::TestParamInfo<Family>& info) {
  return info.param == Family::kV6 ? "IPv6" : "IPv4";
}

// fd00:<b>::<d> for 10.<b>.<c>.<d> (pods, the router, pod-CIDR neighbours), 2001:db8::<d> for any
// other a.b.c.d (the world).
inline std::string v6Twin(std::string_view v4) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  std::sscanf(std::string(v4).c_str(), "%u.%u.%u.%u", &a, &b, &c, &d);
  if (a == 10) return fmt::format("fd00:{}::{}", b, d);
  return fmt::format("2001:db8::{}", d);
}

}  // namespace cilium::testing

#define CILIUM_INSTANTIATE_FAMILIES(fixture)                                             \
  INSTANTIATE_TEST_SUITE_P(                                                              \
      Families, fixture,                                                                 \
      ::testing::Values(::cilium::testing::Family::kV4, ::cilium::testing::Family::kV6), \
      ::cilium::testing::familyName)
