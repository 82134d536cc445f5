// Pod-to-node propagation and racing identity allocation, for crd_bench and kvstore_bench.
#include "bench/bench_identity.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace cilium::bench {

using namespace std::chrono_literals;

labels::Labels podLabels(const std::string& app) {
  return *labels::Labels::parse({"k8s:app=" + app, "k8s:io.kubernetes.pod.namespace=bench"});
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

Result<std::vector<double>> measurePodToNode(
    int pods, identity::Allocator& b_allocator, ipcache::IpCache& b_ipcache,
    const std::function<Result<identity::NumericIdentity>(int i, IpAddr ip)>& create) {
  // When B first saw each identity and each address mapped, from its observers.
  std::mutex mu;
  std::condition_variable cv;
  std::map<identity::NumericIdentity, Clock::time_point> id_seen;
  std::map<IpPrefix, Clock::time_point> ip_seen;
  auto sub1 = b_allocator.subscribe([&](const std::vector<identity::IdentityChange>& ch) {
    auto now = Clock::now();
    std::lock_guard l(mu);
    for (const auto& c : ch)
      if (c.kind == identity::IdentityChange::Kind::kAdded) id_seen.emplace(c.identity.id, now);
    cv.notify_all();
  });
  auto sub2 = b_ipcache.subscribe([&](const std::vector<ipcache::Change>& ch) {
    auto now = Clock::now();
    std::lock_guard l(mu);
    for (const auto& c : ch)
      if (c.after != identity::kUnknown) ip_seen.emplace(c.prefix, now);
    cv.notify_all();
  });
  auto measure = [&]() -> Result<std::vector<double>> {
    std::vector<double> lat;
    for (int i = 0; i < pods; i++) {
      IpAddr ip = IpAddr::fromHostOrder(0x0a000100 + static_cast<uint32_t>(i) + 10);
      auto t0 = Clock::now();
      CILIUM_ASSIGN_OR_RETURN(identity::NumericIdentity id, create(i, ip));
      std::unique_lock l(mu);
      if (!cv.wait_for(l, 10s,
                       [&] { return id_seen.count(id) && ip_seen.count(IpPrefix::host(ip)); }))
        return Error(ErrorCode::kDeadlineExceeded,
                     "pod " + std::to_string(i) + " not seen on B within 10 s");
      lat.push_back(ms(std::max(id_seen[id], ip_seen[IpPrefix::host(ip)]) - t0));
    }
    return lat;
  };
  auto lat = measure();
  b_ipcache.unsubscribe(sub2);
  b_allocator.unsubscribe(sub1);
  return lat;
}

void printPodToNode(const std::vector<double>& lat, int target_p99_ms) {
  std::printf("\npod on A -> identity and ipcache entry on B (%zu pods, one at a time)\n",
              lat.size());
  std::printf("  p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms   (target p99 <= %d ms)\n",
              percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99),
              percentile(lat, 1.0), target_p99_ms);
}

Result<AllocationRace> raceAllocations(const std::vector<identity::Allocator*>& allocators,
                                       int sets, int threads, int round) {
  const size_t agents = allocators.size();
  std::vector<std::vector<identity::NumericIdentity>> got(
      agents, std::vector<identity::NumericIdentity>(sets));
  std::mutex mu;
  std::optional<Error> failure;  // the first
  auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (size_t s = 0; s < agents; s++)
    for (int w = 0; w < threads; w++)
      workers.emplace_back([&, s, w] {
        for (int k = w; k < sets; k += threads) {
          int i = (k + static_cast<int>(s) * sets / static_cast<int>(agents)) % sets;
          auto id = allocators[s]->allocate(
              podLabels("r" + std::to_string(round) + "-" + std::to_string(i)));
          if (!id.ok()) {
            std::lock_guard l(mu);
            if (!failure) failure = id.error();
            return;
          }
          got[s][i] = id->id;
        }
      });
  for (auto& t : workers) t.join();
  AllocationRace race;
  race.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failure) return *failure;
  for (size_t s = 1; s < agents; s++)
    if (got[s] != got[0]) return Error(ErrorCode::kInternal, "agents disagree on identity numbers");
  race.distinct.insert(got[0].begin(), got[0].end());
  return race;
}

}  // namespace cilium::bench
