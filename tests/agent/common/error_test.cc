#include "agent/common/error.h"

#include <gtest/gtest.h>

namespace cilium {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) return makeError(ErrorCode::kInvalidArgument, "value {} is not positive", v);
  return v;
}

Result<int> doubled(int v) {
  CILIUM_ASSIGN_OR_RETURN(int x, parsePositive(v));
  return 2 * x;
}

Status check(int v) {
  CILIUM_RETURN_IF_ERROR(parsePositive(v));
  return okStatus();
}

TEST(ErrorTest, ResultCarriesValueOrError) {
  auto ok = doubled(21);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 42);

  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "value -1 is not positive");
  EXPECT_EQ(bad.error().toString(), "invalid argument: value -1 is not positive");
}

TEST(ErrorTest, StatusPropagates) {
  EXPECT_TRUE(check(1).ok());
  Status s = check(0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().withContext("import").message(), "import: value 0 is not positive");
}

TEST(ErrorTest, ErrnoMapsToCodes) {
  EXPECT_EQ(errnoError(ENOENT, "open x").code(), ErrorCode::kNotFound);
  EXPECT_EQ(errnoError(-EPERM, "bpf").code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(errnoError(E2BIG, "update").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(errnoError(ECONNREFUSED, "connect").code(), ErrorCode::kUnavailable);
  EXPECT_NE(errnoError(ENOENT, "open x").message().find("No such file"), std::string::npos);
}

TEST(ErrorTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

}  // namespace
}  // namespace cilium
