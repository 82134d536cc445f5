#include "agent/datapath/conntrack.h"

#include <type_traits>

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::datapath {
namespace {

// The same tuple shape in both families: the GC's rule must not depend on the key type.
template <class Key>
Key key(uint16_t sport);

template <>
ct_key4 key<ct_key4>(uint16_t sport) {
  ct_key4 k{};
  k.saddr = 0x0b00c80a;
  k.daddr = 0x0c00c80a;
  k.sport = sport;
  k.dport = 80;
  k.nexthdr = 6;
  return k;
}

template <>
ct_key6 key<ct_key6>(uint16_t sport) {
  ct_key6 k{};
  k.saddr.ip6[0] = 0xfd;  // fd00::11 -> fd00::12
  k.saddr.ip6[15] = 0x11;
  k.daddr.ip6[0] = 0xfd;
  k.daddr.ip6[15] = 0x12;
  k.sport = sport;
  k.dport = 80;
  k.nexthdr = 6;
  return k;
}

template <class Key>
class ConntrackGcTest : public ::testing::Test {
 protected:
  // The TCP map of Key's family.
  auto& tcp() {
    if constexpr (std::is_same_v<Key, ct_key4>)
      return maps_.ct_tcp;
    else
      return maps_.ct6_tcp;
  }
  FakeMaps maps_;
};

using KeyTypes = ::testing::Types<ct_key4, ct_key6>;
TYPED_TEST_SUITE(ConntrackGcTest, KeyTypes);

TYPED_TEST(ConntrackGcTest, DeletesExpiredEntriesOnly) {
  auto& map = this->tcp();
  for (uint16_t i = 0; i < 10; i++) {
    ct_entry e{};
    e.lifetime = 100 + i;  // alive through second 100 + i
    ASSERT_TRUE(map.update(key<TypeParam>(i), e).ok());
  }
  auto r = gcConntrack(map, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scanned, 10u);
  EXPECT_EQ(r->deleted, 0u) << "an entry is alive through its lifetime second";
  r = gcConntrack(map, 105);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deleted, 5u);
  EXPECT_EQ(*map.count(), 5u);
  EXPECT_FALSE(*map.lookup(key<TypeParam>(4)));
  EXPECT_TRUE(*map.lookup(key<TypeParam>(5)));
  r = gcConntrack(map, 1000);
  EXPECT_EQ(r->deleted, 5u);
  EXPECT_EQ(*map.count(), 0u);
}

TEST(ConntrackGcTest, ClockIsMonotonicSeconds) {
  uint32_t a = monotonicSeconds();
  uint32_t b = monotonicSeconds();
  EXPECT_LE(a, b);
  EXPECT_GT(a, 0u);
}

}  // namespace
}  // namespace cilium::datapath
