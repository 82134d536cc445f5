// What one conntrack GC pass of the agent costs, IPv4 and IPv6 maps side by side: N entries in a
// kernel LRU hash shaped like cilium_ct4_global (16-byte key) and one like cilium_ct6_global
// (40-byte key), half of them expired, then datapath::gcConntrack (batched scan, re-read and
// delete of each expired entry) timed on each. Needs root (creates BPF maps, pins nothing).
// Prints numbers; never passes or fails.
//
//   conntrack_gc_bench [counts=10000,100000,400000] [runs=3]
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "agent/datapath/conntrack.h"

namespace {

using namespace cilium;
using Clock = std::chrono::steady_clock;

template <class Key>
Result<std::unique_ptr<bpf::KernelMap<Key, ct_entry>>> makeMap(const char* name, uint32_t size) {
  int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, name, sizeof(Key), sizeof(ct_entry), size,
                          nullptr);
  if (fd < 0) return errnoError(errno, std::string("create ") + name);
  return bpf::KernelMap<Key, ct_entry>::fromFd(UniqueFd(fd), name);
}

// Entry i: a distinct tuple of the family; odd ones expired at `now`.
void fillKey(ct_key4& k, uint32_t i) {
  k = {};
  k.saddr = htonl(0x0ac80000 | (i >> 16));
  k.daddr = htonl(0x0ac90000 | (i & 0xffff));
  k.sport = htons(static_cast<uint16_t>(40000 + (i & 0xff)));
  k.dport = htons(80);
  k.nexthdr = 6;
}
void fillKey(ct_key6& k, uint32_t i) {
  k = {};
  k.saddr.ip6[0] = 0xfd;
  k.saddr.ip6[13] = static_cast<uint8_t>(i >> 16);
  k.daddr.ip6[0] = 0xfd;
  k.daddr.ip6[1] = 1;
  k.daddr.ip6[14] = static_cast<uint8_t>(i >> 8);
  k.daddr.ip6[15] = static_cast<uint8_t>(i);
  k.sport = htons(static_cast<uint16_t>(40000 + (i & 0xff)));
  k.dport = htons(80);
  k.nexthdr = 6;
}

// One pass over a freshly filled map: milliseconds, and what it scanned and deleted.
template <class Key>
Result<std::pair<double, datapath::CtGcStats>> onePass(const char* name, uint32_t n) {
  CILIUM_ASSIGN_OR_RETURN(auto map, makeMap<Key>(name, n * 2));
  const uint32_t now = 1000;
  for (uint32_t i = 0; i < n; i++) {
    Key k;
    fillKey(k, i);
    ct_entry e{};
    e.lifetime = (i % 2) != 0 ? now - 1 : now + 60;
    CILIUM_RETURN_IF_ERROR(map->update(k, e));
  }
  auto t0 = Clock::now();
  CILIUM_ASSIGN_OR_RETURN(auto st, datapath::gcConntrack(*map, now));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return std::make_pair(ms, st);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint32_t> counts = {10000, 100000, 400000};
  if (argc > 1) {
    counts.clear();
    std::stringstream in(argv[1]);
    for (std::string c; std::getline(in, c, ',');) counts.push_back(std::stoul(c));
  }
  int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  std::printf("conntrack GC pass, half the entries expired, median of %d runs (each run a fresh "
              "map)\n",
              runs);
  std::printf("%10s  %14s %10s  %14s %10s  %8s\n", "entries", "IPv4 ms", "ns/entry", "IPv6 ms",
              "ns/entry", "v6/v4");
  for (uint32_t n : counts) {
    std::vector<double> v4, v6;
    for (int r = 0; r < runs; r++) {
      auto a = onePass<ct_key4>("bench_ct4", n);
      auto b = onePass<ct_key6>("bench_ct6", n);
      if (!a.ok() || !b.ok()) {
        std::fprintf(stderr, "%s\n", (!a.ok() ? a.error() : b.error()).toString().c_str());
        return 1;
      }
      // The LRU may have evicted a few entries while filling: say so rather than hide it.
      if (a->second.deleted != n / 2 || b->second.deleted != n / 2)
        std::printf("  note: deleted %zu (IPv4) / %zu (IPv6) of %u expired\n", a->second.deleted,
                    b->second.deleted, n / 2);
      v4.push_back(a->first);
      v6.push_back(b->first);
    }
    double m4 = median(v4), m6 = median(v6);
    std::printf("%10u  %14.1f %10.0f  %14.1f %10.0f  %8.2f\n", n, m4, m4 * 1e6 / n, m6,
                m6 * 1e6 / n, m6 / m4);
  }
  return 0;
}
