// What one inner-map swap in a hash-of-maps costs on this machine, against an in-place entry
// update: the kernel waits for an RCU grace period after every update or delete of an outer
// map-in-map slot (so that userspace knows no program still uses the old inner map), and that
// wait is what a restart or a policy change pays per endpoint when it swaps policy maps.
// Also: N swaps issued from T threads at once (do concurrent waiters share grace periods?), one
// BPF_MAP_UPDATE_BATCH of N swaps, and KernelPolicyMaps::replace() with unchanged, slightly
// changed and swapped content. Needs root. Prints numbers; never passes or fails.
//
//   policy_map_swap_bench [N=200] [threads=1,2,4,8,16]
#include <bpf/bpf.h>
#include <sys/utsname.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/fd.h"
#include "agent/datapath/policy_maps.h"
#include "bench/bench_net.h"

namespace {

using namespace cilium;
using Clock = std::chrono::steady_clock;

double usSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Stats {
  double p50 = 0, p90 = 0, max = 0, mean = 0;
};

Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.p50 = v[(v.size() - 1) / 2];
  s.p90 = v[(v.size() - 1) * 9 / 10];
  s.max = v.back();
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

void printStats(const char* what, const Stats& s) {
  std::printf("  %-58s p50 %9.1f us  p90 %9.1f us  max %9.1f us  mean %9.1f us\n", what, s.p50,
              s.p90, s.max, s.mean);
}

std::string readFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!std::getline(f, line)) return "(absent)";
  return line;
}

constexpr uint32_t kInnerEntries = 16384;

Result<UniqueFd> makeOuter(uint32_t slots) {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd tmpl, datapath::KernelPolicyMaps::createInnerMap(0, 64));
  LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = static_cast<uint32_t>(tmpl.get()));
  int fd = ::bpf_map_create(BPF_MAP_TYPE_HASH_OF_MAPS, "bench_outer", sizeof(uint32_t),
                            sizeof(uint32_t), slots, &opts);
  if (fd < 0) return errnoError(errno, "create outer map");
  return UniqueFd(fd);
}

// `n` inner maps, each holding one entry (a policy map's shape; the content does not matter
// to the outer update).
Result<std::vector<UniqueFd>> makeInners(size_t n) {
  std::vector<UniqueFd> out;
  for (size_t i = 0; i < n; i++) {
    CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, datapath::KernelPolicyMaps::createInnerMap(
                                             static_cast<uint16_t>(i), kInnerEntries));
    auto e = datapath::normalizePolicyEntry(
        {datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), policy_entry{}});
    if (::bpf_map_update_elem(fd.get(), &e.key, &e.value, BPF_ANY) != 0)
      return errnoError(errno, "fill inner map");
    out.push_back(std::move(fd));
  }
  return out;
}

Status setSlot(int outer, uint32_t key, int inner) {
  if (::bpf_map_update_elem(outer, &key, &inner, BPF_ANY) != 0)
    return errnoError(errno, "update outer slot");
  return okStatus();
}

int run(size_t n, const std::vector<int>& thread_counts) {
  utsname u{};
  ::uname(&u);
  std::printf("kernel %s, %u CPUs online; /sys/kernel/rcu_expedited=%s rcu_normal=%s\n", u.release,
              std::thread::hardware_concurrency(),
              readFirstLine("/sys/kernel/rcu_expedited").c_str(),
              readFirstLine("/sys/kernel/rcu_normal").c_str());
  std::printf("N = %zu endpoints (outer slots); inner maps are LPM tries of %u entries\n\n", n,
              kInnerEntries);

  auto outer = makeOuter(static_cast<uint32_t>(n + 1));
  if (!outer.ok()) return std::fprintf(stderr, "%s\n", outer.error().toString().c_str()), 1;
  int ofd = outer->get();
  auto a = makeInners(n);
  auto b = makeInners(n);
  if (!a.ok() || !b.ok()) return std::fprintf(stderr, "cannot create inner maps\n"), 1;

  std::printf("one operation at a time (latency of the syscall):\n");
  {
    // In place: rewrite one entry of an inner map (what a patch does per changed entry).
    auto e = datapath::normalizePolicyEntry(
        {datapath::policyKey(1234, POLICY_INGRESS, 6, 80, 16), policy_entry{}});
    std::vector<double> up, del, look;
    for (size_t i = 0; i < n; i++) {
      int fd = (*a)[i].get();
      auto t0 = Clock::now();
      if (::bpf_map_update_elem(fd, &e.key, &e.value, BPF_ANY) != 0) return 1;
      up.push_back(usSince(t0));
      policy_entry v{};
      t0 = Clock::now();
      (void)::bpf_map_lookup_elem(fd, &e.key, &v);
      look.push_back(usSince(t0));
      t0 = Clock::now();
      if (::bpf_map_delete_elem(fd, &e.key) != 0) return 1;
      del.push_back(usSince(t0));
    }
    printStats("inner map: update one entry in place", stats(up));
    printStats("inner map: look up one entry", stats(look));
    printStats("inner map: delete one entry in place", stats(del));
  }
  std::vector<double> insert, replace, remove;
  for (size_t i = 0; i < n; i++) {
    auto t0 = Clock::now();
    if (!setSlot(ofd, static_cast<uint32_t>(i + 1), (*a)[i].get()).ok()) return 1;
    insert.push_back(usSince(t0));
  }
  for (size_t i = 0; i < n; i++) {
    auto t0 = Clock::now();
    if (!setSlot(ofd, static_cast<uint32_t>(i + 1), (*b)[i].get()).ok()) return 1;
    replace.push_back(usSince(t0));
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t key = static_cast<uint32_t>(i + 1);
    auto t0 = Clock::now();
    if (::bpf_map_delete_elem(ofd, &key) != 0) return 1;
    remove.push_back(usSince(t0));
  }
  printStats("outer map: insert an inner map into an empty slot", stats(insert));
  printStats("outer map: replace a slot's inner map (a policy swap)", stats(replace));
  printStats("outer map: delete a slot", stats(remove));
  double one_swap = stats(replace).p50;

  std::printf("\n%zu swaps issued together (wall time; per swap = wall / N):\n", n);
  for (size_t i = 0; i < n; i++)
    if (!setSlot(ofd, static_cast<uint32_t>(i + 1), (*a)[i].get()).ok()) return 1;
  bool use_b = true;
  for (int t : thread_counts) {
    std::barrier sync(t + 1);
    std::vector<std::thread> threads;
    auto& inners = use_b ? *b : *a;
    for (int k = 0; k < t; k++) {
      threads.emplace_back([&, k] {
        sync.arrive_and_wait();
        for (size_t i = static_cast<size_t>(k); i < n; i += static_cast<size_t>(t))
          (void)setSlot(ofd, static_cast<uint32_t>(i + 1), inners[i].get());
      });
    }
    sync.arrive_and_wait();
    auto t0 = Clock::now();
    for (auto& th : threads) th.join();
    double us = usSince(t0);
    std::printf("  %2d thread%s: %8.1f ms, %8.1f us per swap, %5.1fx the single-swap p50\n", t,
                t == 1 ? " " : "s", us / 1000, us / static_cast<double>(n),
                one_swap / (us / static_cast<double>(n)));
    use_b = !use_b;
  }
  {
    auto& inners = use_b ? *b : *a;
    std::vector<uint32_t> keys(n), fds(n);
    for (size_t i = 0; i < n; i++) {
      keys[i] = static_cast<uint32_t>(i + 1);
      fds[i] = static_cast<uint32_t>(inners[i].get());
    }
    uint32_t count = static_cast<uint32_t>(n);
    auto t0 = Clock::now();
    int rc = ::bpf_map_update_batch(ofd, keys.data(), fds.data(), &count, nullptr);
    double us = usSince(t0);
    if (rc != 0)
      std::printf("  BPF_MAP_UPDATE_BATCH of %zu swaps: failed after %u (%s)\n", n, count,
                  std::strerror(errno));
    else
      std::printf("  BPF_MAP_UPDATE_BATCH, one call: %8.1f ms, %8.1f us per swap, %5.1fx\n",
                  us / 1000, us / static_cast<double>(n), one_swap / (us / static_cast<double>(n)));
    count = static_cast<uint32_t>(n);
    t0 = Clock::now();
    rc = ::bpf_map_delete_batch(ofd, keys.data(), &count, nullptr);
    us = usSince(t0);
    if (rc != 0)
      std::printf("  BPF_MAP_DELETE_BATCH of %zu slots: failed after %u (%s)\n", n, count,
                  std::strerror(errno));
    else
      std::printf("  BPF_MAP_DELETE_BATCH, one call: %8.1f ms, %8.1f us per slot\n", us / 1000,
                  us / static_cast<double>(n));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!cilium::bench::startPrivilegedBench("policy_map_swap_bench")) return 1;
  size_t n = argc > 1 ? static_cast<size_t>(std::atoi(argv[1])) : 200;
  std::vector<int> threads = {1, 2, 4, 8, 16};
  if (argc > 2) {
    threads.clear();
    std::stringstream ss(argv[2]);
    for (std::string t; std::getline(ss, t, ',');) threads.push_back(std::atoi(t.c_str()));
  }
  return run(n, threads);
}
