// Maglev tables: evenness, minimal disruption when a backend goes, determinism, and the
// Manager writing them atomically next to the slots.
#include "agent/service/maglev.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>

#include <gtest/gtest.h>

#include "agent/bpf/fake_map.h"
#include "agent/service/service.h"

namespace cilium::service {
namespace {

std::vector<std::string> names(int n, int first = 0) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; i++)
    out.push_back(fmt::format("10.0.{}.{}:8080/6", i / 250, i % 250 + 1));
  return out;
}

TEST(MaglevTest, EveryBackendGetsItsShareWithinOneEntry) {
  for (int n : {1, 2, 3, 10, 100}) {
    for (uint32_t m : {251u, 16381u}) {
      auto t = maglevTable(names(n), m);
      ASSERT_EQ(t.size(), m);
      std::vector<uint32_t> count(n, 0);
      for (uint32_t b : t) {
        ASSERT_LT(b, static_cast<uint32_t>(n));
        count[b]++;
      }
      auto [lo, hi] = std::minmax_element(count.begin(), count.end());
      EXPECT_LE(*hi - *lo, 1u) << n << " backends, size " << m;
      EXPECT_EQ(*lo, m / n) << n << " backends, size " << m;
    }
  }
}

TEST(MaglevTest, RemovingOneBackendMovesFewOtherEntries) {
  const uint32_t m = 16381;
  for (int n : {5, 20, 100}) {
    auto before_names = names(n);
    auto before = maglevTable(before_names, m);
    int gone = n / 2;
    auto after_names = before_names;
    after_names.erase(after_names.begin() + gone);
    auto after = maglevTable(after_names, m);
    size_t kept = 0, moved = 0;
    for (uint32_t i = 0; i < m; i++) {
      if (before[i] == static_cast<uint32_t>(gone)) continue;  // had to move
      kept++;
      if (before_names[before[i]] != after_names[after[i]]) moved++;
    }
    double frac = static_cast<double>(moved) / static_cast<double>(kept);
    std::printf("maglev m=%u n=%d: %.2f%% of the surviving backends' entries moved\n", m, n,
                frac * 100);
    // Modulo hashing would move about (n-1)/n of them; Maglev's paper reports a few percent.
    EXPECT_LT(frac, 0.10) << n << " backends";
  }
}

TEST(MaglevTest, SameNamesSameTableRegardlessOfWhoComputesIt) {
  EXPECT_EQ(maglevTable(names(7), 1021), maglevTable(names(7), 1021));
  EXPECT_NE(maglevTable(names(7), 1021), maglevTable(names(7, 1), 1021));
  EXPECT_TRUE(maglevTable({}, 1021).empty());
}

TEST(MaglevTest, TableSizesArePrimesAndOthersAreRefused) {
  for (uint32_t m : maglevTableSizes()) {
    for (uint32_t d = 2; d * d <= m; d++) ASSERT_NE(m % d, 0u) << m;
    EXPECT_TRUE(validateMaglevTableSize(m).ok());
  }
  EXPECT_FALSE(validateMaglevTableSize(16384).ok());
}

// A Manager on fake maps with Maglev tables of 251 entries.
struct MaglevManagerTest : ::testing::Test {
  bpf::FakeMap<lb4_key, lb4_service> services{"s", 1 << 16};
  bpf::FakeMap<lb4_slot_key, uint32_t> slots{"sl", 1 << 16};
  bpf::FakeMap<uint32_t, lb4_backend> backends{"b", 1 << 16};
  bpf::FakeMap<uint32_t, lb4_reverse_nat> revnat{"r", 1 << 16};
  bpf::FakeMap<lb4_maglev_key, lb4_maglev_chunk> maglev{"m", 1 << 16};
  ManagerConfig cfg = [] {
    ManagerConfig c;
    c.algorithm = LbAlgorithm::kMaglev;
    c.maglev_table_size = 251;
    return c;
  }();
};

TEST_F(MaglevManagerTest, ManagerWritesTablesPerGenerationAndDeletesTheOldOnes) {
  Manager mgr({&services, &slots, &backends, &revnat, &maglev}, cfg);
  Service s;
  s.name = {"default", "web"};
  s.cluster_ip = *IpAddr::parse("10.96.0.10");
  ServicePort p;
  p.name = "http";
  p.port = 80;
  for (int i = 1; i <= 3; i++)
    p.backends.push_back({*IpAddr::parse(fmt::format("10.0.1.{}", i)), 8080});
  s.ports.push_back(p);
  ASSERT_TRUE(mgr.upsertService(s).ok());

  lb4_key k = frontendKey({*IpAddr::parse("10.96.0.10"), 80, Protocol::kTcp});
  auto fe = **services.lookup(k);
  EXPECT_TRUE(fe.flags2 & SVC_F2_MAGLEV);
  EXPECT_EQ(fe.maglev_size, 251);
  EXPECT_EQ(*maglev.count(), 4u) << "251 entries in chunks of 64";
  // The datapath's pick: entry hash % size of the current generation, naming a backend.
  std::map<uint32_t, int> share;
  for (uint32_t i = 0; i < 251; i++) {
    auto chunk = maglev.lookup({fe.rev_nat_index, fe.gen, static_cast<uint16_t>(i / 64)});
    ASSERT_TRUE(chunk->has_value());
    uint32_t id = (*chunk)->backend_ids[i % 64];
    ASSERT_TRUE(backends.lookup(id)->has_value());
    share[id]++;
  }
  EXPECT_EQ(share.size(), 3u);

  s.ports[0].backends.pop_back();
  ASSERT_TRUE(mgr.upsertService(s).ok());
  auto fe2 = **services.lookup(k);
  EXPECT_NE(fe2.gen, fe.gen);
  EXPECT_EQ(*maglev.count(), 4u) << "the old generation's table is gone";
  EXPECT_FALSE(maglev.lookup({fe.rev_nat_index, fe.gen, 0})->has_value());

  ASSERT_TRUE(mgr.deleteService(s.name).ok());
  EXPECT_EQ(*maglev.count(), 0u);
}

// A sync of many Maglev frontends is written in chunks (tables end a chunk too): every table is
// complete, under its frontend's generation, and names existing backends.
TEST_F(MaglevManagerTest, LargeSyncWritesEveryTableInChunks) {
  cfg.write_chunk = 8;  // a hand-off every 8 frontends or 32 table chunks
  Manager mgr({&services, &slots, &backends, &revnat, &maglev}, cfg);
  std::vector<Service> svcs;
  for (int i = 0; i < 100; i++) {
    Service s;
    s.name = {"default", "web" + std::to_string(i)};
    s.cluster_ip = IpAddr::fromHostOrder(0x0a600000u + i + 1);
    ServicePort p;
    p.name = "http";
    p.port = 80;
    for (int b = 1; b <= 1 + i % 3; b++)
      p.backends.push_back({*IpAddr::parse(fmt::format("10.0.1.{}", b)), 8080});
    s.ports.push_back(p);
    svcs.push_back(s);
  }
  ASSERT_TRUE(mgr.upsertServices(svcs).ok());
  EXPECT_EQ(*services.count(), 100u);
  EXPECT_EQ(*maglev.count(), 400u);
  ASSERT_TRUE(services
                  .forEach([&](const lb4_key&, const lb4_service& fe) {
                    for (uint16_t c = 0; c < 4; c++) {
                      auto chunk = maglev.lookup({fe.rev_nat_index, fe.gen, c});
                      EXPECT_TRUE(chunk->has_value());
                      if (!chunk->has_value()) continue;
                      for (uint32_t j = 0; j < 64 && c * 64u + j < 251; j++)
                        EXPECT_TRUE(backends.lookup((*chunk)->backend_ids[j])->has_value());
                    }
                    return true;
                  })
                  .ok());
}

TEST(MaglevTest, TupleHashMatchesTheDatapathFormula) {
  // Spot values of murmur3's fmix64 over (saddr << 32 | sport << 16 | proto), low 32 bits.
  EXPECT_EQ(lbTupleHash(0, 0, 0), 0u);
  EXPECT_NE(lbTupleHash(0xc0000201, 40000, 6), lbTupleHash(0xc0000201, 40001, 6));
}

}  // namespace
}  // namespace cilium::service
