// The Manager's memory resource: small blocks are reused by size, large ones really freed, and
// containers on it keep their contents across growth into huge-page mappings.
#include "agent/service/huge_page_arena.h"

#include <cstring>
#include <memory_resource>
#include <unordered_map>

#include <gtest/gtest.h>

namespace cilium::service {
namespace {

TEST(HugePageArenaTest, FreedSmallBlockIsReusedForTheSameSize) {
  HugePageArena a;
  void* p = a.allocate(144, 8);
  std::memset(p, 0xab, 144);
  a.deallocate(p, 144, 8);
  EXPECT_EQ(a.allocate(140, 8), p);  // same 16-byte class
  EXPECT_NE(a.allocate(144, 8), p);
}

TEST(HugePageArenaTest, SmallBlocksStartSmallThenGrowInHugePages) {
  HugePageArena a;
  (void)a.allocate(64, 8);
  EXPECT_EQ(a.mappedBytes(), 256u << 10);
  for (int i = 0; i < 20000; i++) (void)a.allocate(128, 16);  // 2.5 MB
  EXPECT_GE(a.mappedBytes(), (256u << 10) + HugePageArena::kHugePage);
  EXPECT_EQ((a.mappedBytes() - (256u << 10)) % HugePageArena::kHugePage, 0u);
}

TEST(HugePageArenaTest, LargeBlocksAreAlignedWritableAndFreed) {
  HugePageArena a;
  size_t before = a.mappedBytes();
  for (int i = 0; i < 64; i++) {  // 64 x 1 MiB: leaks would show as 128 MiB of mappings
    auto* p = static_cast<char*>(a.allocate(1u << 20, 8));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % HugePageArena::kHugePage, 0u);
    std::memset(p, i, 1u << 20);
    a.deallocate(p, 1u << 20, 8);
  }
  EXPECT_EQ(a.mappedBytes(), before);  // not carved from the small-block mappings
  void* mid = a.allocate(4096, 8);     // between the two: new/delete
  std::memset(mid, 1, 4096);
  a.deallocate(mid, 4096, 8);
}

TEST(HugePageArenaTest, ContainerKeepsItsContentsWhileGrowingAndShrinking) {
  HugePageArena a;
  std::pmr::unordered_map<uint32_t, std::pmr::vector<uint32_t>> m(&a);
  for (uint32_t i = 0; i < 200000; i++) m[i].assign({i, i + 1});
  for (uint32_t i = 0; i < 200000; i += 2) m.erase(i);
  for (uint32_t i = 200000; i < 300000; i++) m[i].assign({i, i + 1});
  ASSERT_EQ(m.size(), 200000u);
  for (const auto& [k, v] : m) {
    ASSERT_EQ(k % 2 == 1 || k >= 200000, true);
    ASSERT_EQ(v, (std::pmr::vector<uint32_t>{k, k + 1}));
  }
}

}  // namespace
}  // namespace cilium::service
