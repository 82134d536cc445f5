// bpf tier: KernelMap against real kernel maps, including per-CPU values, batched iteration
// and layout checks.
#include <bpf/bpf.h>

#include <map>

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

// forEach reads in batches where the kernel can (hash, LRU, per-CPU, array: more entries than
// one batch holds; LPM trie), key by key where it cannot (device map), and stops when asked.
TEST(KernelMapTest, ForEachVisitsEveryEntryOnceInEveryMapType) {
  auto visitAll = [](auto& map) {
    std::map<uint32_t, uint64_t> seen;
    size_t visits = 0;
    auto st = map.forEach([&](const auto& k, const auto& v) {
      visits++;
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, PerCpu<uint64_t>>)
        seen[k] = v.values.at(0);
      else
        seen[k] = v;
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.error().toString();
    EXPECT_EQ(visits, seen.size()) << "an entry was visited twice";
    return seen;
  };
  constexpr uint32_t kN = 10000;
  for (auto type : {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY}) {
    // An LRU map evicts before it is full (per-CPU free lists): room to spare.
    uint32_t max = type == BPF_MAP_TYPE_LRU_HASH ? 4 * kN : kN;
    auto m = KernelMap<uint32_t, uint64_t>::fromFd(create(type, 4, 8, max));
    ASSERT_TRUE(m.ok()) << m.error().toString();
    for (uint32_t i = 0; i < kN; i++) ASSERT_TRUE((*m)->update(i, uint64_t{i} * 3).ok());
    auto seen = visitAll(**m);
    ASSERT_EQ(seen.size(), kN) << "type " << type;
    for (uint32_t i = 0; i < kN; i++) ASSERT_EQ(seen[i], uint64_t{i} * 3);
    size_t stopped = 0;
    ASSERT_TRUE(
        (*m)->forEach([&](const uint32_t&, const uint64_t&) { return ++stopped < 10; }).ok());
    EXPECT_EQ(stopped, 10u);
  }
  {
    auto m =
        KernelMap<uint32_t, PerCpu<uint64_t>>::fromFd(create(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, kN));
    ASSERT_TRUE(m.ok()) << m.error().toString();
    PerCpu<uint64_t> v;
    v.values.assign(possibleCpus(), 0);
    for (uint32_t i = 0; i < 5000; i++) {
      v.values[0] = i + 1;
      v.values.back() = 7;
      ASSERT_TRUE((*m)->update(i, v).ok());
    }
    auto seen = visitAll(**m);
    ASSERT_EQ(seen.size(), 5000u);
    EXPECT_EQ(seen[4999], 5000u);
    size_t last_cpu_sum = 0;
    ASSERT_TRUE((*m)->forEach([&](const uint32_t&, const PerCpu<uint64_t>& pv) {
                      last_cpu_sum += pv.values.back();
                      return true;
                    })
                    .ok());
    EXPECT_EQ(last_cpu_sum, 7u * 5000) << "every CPU's value decoded in place";
  }
  {
    struct LpmKey {
      uint32_t prefixlen;
      uint32_t addr;
    };
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    auto m = KernelMap<LpmKey, uint64_t>::fromFd(UniqueFd(
        ::bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "cilt_lpm", sizeof(LpmKey), 8, 1000, &opts)));
    ASSERT_TRUE(m.ok()) << m.error().toString();
    for (uint32_t i = 0; i < 300; i++) ASSERT_TRUE((*m)->update({32, i}, i).ok());
    size_t n = 0;
    ASSERT_TRUE((*m)->forEach([&](const LpmKey&, const uint64_t&) { return ++n > 0; }).ok());
    EXPECT_EQ(n, 300u);
  }
  {
    // A device map has no batch lookup: walked key by key. Its values are ifindexes (lo).
    auto m = KernelMap<uint32_t, uint32_t>::fromFd(create(BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 64));
    ASSERT_TRUE(m.ok()) << m.error().toString();
    for (uint32_t i = 0; i < 40; i++) ASSERT_TRUE((*m)->update(i, 1).ok());
    for (int pass = 0; pass < 2; pass++) {  // the second pass knows batches fail
      size_t n = 0;
      ASSERT_TRUE(
          (*m)->forEach([&](const uint32_t&, const uint32_t& v) { return ++n && v == 1; }).ok());
      EXPECT_EQ(n, 40u);
    }
  }
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

TEST(KernelMapTest, NamesLongerThanTheKernelKeepsComeFromThePinOrTheObject) {
  auto topo = testing::Topology::create();
  ASSERT_TRUE(topo.ok());
  auto dir = (*topo)->pinDir();
  ASSERT_TRUE(dir.ok()) << dir.error().toString();
  const std::string name = "cilium_ct_any4_global";  // 21 characters; the kernel keeps 15
  UniqueFd fd(::bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), 4, 4, 4, nullptr));
  ASSERT_GE(fd.get(), 0);
  std::string path = *dir + "/" + name;
  ASSERT_EQ(::bpf_obj_pin(fd.get(), path.c_str()), 0);
  auto bare = KernelMap<uint32_t, uint32_t>::fromBorrowedFd(fd.get());
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ((*bare)->name(), name.substr(0, 15)) << "what the kernel reports";
  auto named = KernelMap<uint32_t, uint32_t>::fromBorrowedFd(fd.get(), name);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ((*named)->name(), name);
  auto pinned = KernelMap<uint32_t, uint32_t>::fromPinned(path);
  ASSERT_TRUE(pinned.ok()) << pinned.error().toString();
  EXPECT_EQ((*pinned)->name(), name);
  // A name the kernel's does not start with is not the map's: the kernel's stays.
  auto other = KernelMap<uint32_t, uint32_t>::fromBorrowedFd(fd.get(), "cilium_lxc_something_else");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->name(), name.substr(0, 15));
}

}  // namespace
}  // namespace cilium::bpf
