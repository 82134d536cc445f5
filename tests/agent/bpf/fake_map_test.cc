#include "agent/bpf/fake_map.h"

#include <gtest/gtest.h>

#include "agent/bpf/abi.h"

namespace cilium::bpf {
namespace {

TEST(FakeMapTest, BehavesLikeAKernelHashMap) {
  FakeMap<uint32_t, uint64_t> m("test", 2);
  EXPECT_FALSE(m.lookup(1)->has_value());
  ASSERT_TRUE(m.update(1, 10).ok());
  EXPECT_EQ(**m.lookup(1), 10u);

  EXPECT_EQ(m.update(1, 11, UpdateFlag::kNoExist).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(m.update(2, 20, UpdateFlag::kExist).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(m.update(2, 20).ok());
  EXPECT_EQ(m.update(3, 30).error().code(), ErrorCode::kResourceExhausted);
  // Replacing an existing key in a full map is allowed.
  EXPECT_TRUE(m.update(2, 21).ok());

  EXPECT_TRUE(*m.remove(1));
  EXPECT_FALSE(*m.remove(1));
  EXPECT_EQ(*m.count(), 1u);
}

TEST(FakeMapTest, StructKeysCompareByBytes) {
  FakeMap<metrics_key, metrics_value> m("cilium_metrics", 16);
  metrics_key a{};
  a.reason = 133;
  a.dir = METRIC_INGRESS;
  metrics_key b = a;
  b.dir = METRIC_EGRESS;
  ASSERT_TRUE(m.update(a, {1, 100}).ok());
  ASSERT_TRUE(m.update(b, {2, 200}).ok());
  EXPECT_EQ((*m.lookup(a))->bytes, 100u);
  EXPECT_EQ((*m.lookup(b))->count, 2u);

  std::vector<std::array<uint64_t, 2>> seen;
  ASSERT_TRUE(m.forEach([&](const metrics_key&, const metrics_value& v) {
                 seen.push_back({v.count, v.bytes});
                 return true;
               }).ok());
  EXPECT_EQ(seen.size(), 2u);
}

TEST(FakeMapTest, BatchUpdateRejectsMismatchedSpans) {
  FakeMap<uint32_t, uint32_t> m("t", 8);
  std::vector<uint32_t> keys{1, 2, 3};
  std::vector<uint32_t> values{1, 2};
  EXPECT_EQ(m.updateBatch(keys, values).error().code(), ErrorCode::kInvalidArgument);
  values.push_back(3);
  EXPECT_TRUE(m.updateBatch(keys, values).ok());
  EXPECT_EQ(*m.count(), 3u);
}

}  // namespace
}  // namespace cilium::bpf
