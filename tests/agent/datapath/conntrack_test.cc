#include "agent/datapath/conntrack.h"

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::datapath {
namespace {

ct_key4 key(uint16_t sport) {
  ct_key4 k{};
  k.saddr = 0x0b00c80a;
  k.daddr = 0x0c00c80a;
  k.sport = sport;
  k.dport = 80;
  k.nexthdr = 6;
  return k;
}

TEST(ConntrackGcTest, DeletesExpiredEntriesOnly) {
  FakeMaps maps;
  for (uint16_t i = 0; i < 10; i++) {
    ct_entry e{};
    e.lifetime = 100 + i;  // alive through second 100 + i
    ASSERT_TRUE(maps.ct_tcp.update(key(i), e).ok());
  }
  auto r = gcConntrack(maps.ct_tcp, 100);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scanned, 10u);
  EXPECT_EQ(r->deleted, 0u) << "an entry is alive through its lifetime second";
  r = gcConntrack(maps.ct_tcp, 105);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deleted, 5u);
  EXPECT_EQ(*maps.ct_tcp.count(), 5u);
  EXPECT_FALSE(*maps.ct_tcp.lookup(key(4)));
  EXPECT_TRUE(*maps.ct_tcp.lookup(key(5)));
  r = gcConntrack(maps.ct_tcp, 1000);
  EXPECT_EQ(r->deleted, 5u);
  EXPECT_EQ(*maps.ct_tcp.count(), 0u);
}

TEST(ConntrackGcTest, ClockIsMonotonicSeconds) {
  uint32_t a = monotonicSeconds();
  uint32_t b = monotonicSeconds();
  EXPECT_LE(a, b);
  EXPECT_GT(a, 0u);
}

}  // namespace
}  // namespace cilium::datapath
