// bpf tier: KernelMap against real kernel maps, including per-CPU values and layout checks.
#include <bpf/bpf.h>

#include <gtest/gtest.h>

#include "agent/bpf/fs.h"
#include "agent/bpf/map.h"
#include "tests/harness/netns.h"

namespace cilium::bpf {
namespace {

struct Key {
  uint32_t a;
  uint16_t b;
  uint16_t pad;
};

UniqueFd create(bpf_map_type type, uint32_t key, uint32_t value, uint32_t max) {
  return UniqueFd(::bpf_map_create(type, "cilt_test", key, value, max, nullptr));
}

TEST(KernelMapTest, HashMapOperations) {
  auto m = KernelMap<Key, uint64_t>::fromFd(create(BPF_MAP_TYPE_HASH, sizeof(Key), 8, 2));
  ASSERT_TRUE(m.ok()) << m.error().toString();
  auto& map = **m;
  EXPECT_EQ(map.maxEntries(), 2u);
  Key k1{1, 2, 0}, k2{3, 4, 0}, k3{5, 6, 0};
  EXPECT_FALSE(map.lookup(k1)->has_value());
  ASSERT_TRUE(map.update(k1, 100).ok());
  ASSERT_TRUE(map.update(k2, 200).ok());
  EXPECT_EQ(**map.lookup(k1), 100u);
  EXPECT_EQ(map.update(k3, 300).error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(map.update(k1, 1, UpdateFlag::kNoExist).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(*map.count(), 2u);
  EXPECT_TRUE(*map.remove(k1));
  EXPECT_FALSE(*map.remove(k1));
  EXPECT_EQ(*map.count(), 1u);
}

TEST(KernelMapTest, PerCpuValuesRoundTrip) {
  auto m = KernelMap<uint32_t, PerCpu<uint64_t>>::fromFd(create(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4));
  ASSERT_TRUE(m.ok()) << m.error().toString();
  PerCpu<uint64_t> v;
  v.values.assign(possibleCpus(), 0);
  for (size_t i = 0; i < v.values.size(); i++) v.values[i] = 10 * (i + 1);
  ASSERT_TRUE((*m)->update(7, v).ok());
  auto back = (*m)->lookup(7);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->values, v.values);
  EXPECT_EQ((*back)->sum([](uint64_t& acc, uint64_t x) { acc += x; }),
            10 * possibleCpus() * (possibleCpus() + 1) / 2);
}

TEST(KernelMapTest, LayoutMismatchIsRefused) {
  auto m = KernelMap<Key, uint32_t>::fromFd(create(BPF_MAP_TYPE_HASH, sizeof(Key), 8, 2));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(KernelMapTest, PinnedMapsReopen) {
  auto topo = testing::Topology::create();
  ASSERT_TRUE(topo.ok());
  auto dir = (*topo)->pinDir();
  ASSERT_TRUE(dir.ok()) << dir.error().toString();
  UniqueFd fd = create(BPF_MAP_TYPE_ARRAY, 4, 4, 4);
  std::string path = *dir + "/arr";
  ASSERT_EQ(::bpf_obj_pin(fd.get(), path.c_str()), 0);
  {
    auto m = KernelMap<uint32_t, uint32_t>::fromFd(std::move(fd));
    ASSERT_TRUE((*m)->update(1, 42).ok());
  }
  auto again = KernelMap<uint32_t, uint32_t>::fromPinned(path);
  ASSERT_TRUE(again.ok()) << again.error().toString();
  EXPECT_EQ(**(*again)->lookup(1), 42u);
  auto missing = KernelMap<uint32_t, uint32_t>::fromPinned(*dir + "/missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace cilium::bpf
