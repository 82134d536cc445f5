// The measurements crd_bench and kvstore_bench share, whatever backend their agents use: a pod
// created on node A until node B knows it, and several agents racing to allocate the same
// identities.
#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"

namespace cilium::bench {

using Clock = std::chrono::steady_clock;

// The labels of a benchmark pod: app=<app> in namespace "bench".
labels::Labels podLabels(const std::string& app);
double ms(Clock::duration d);
// The p-quantile (0..1) of `v`, nearest rank; `v` must not be empty.
double percentile(std::vector<double> v, double p);

// Pod on A -> known on B, `pods` times, one at a time: `create(i, ip)` allocates pod i's identity
// on node A and publishes the pod at `ip` (10.0.1.<10+i>, ...), returning the identity. Timed from
// the call until B (its allocator `b_allocator` and its ipcache `b_ipcache`) knows both the
// identity and the address's mapping. The latencies in ms; an error when `create` fails or B
// does not know a pod within 10 s.
Result<std::vector<double>> measurePodToNode(
    int pods, identity::Allocator& b_allocator, ipcache::IpCache& b_ipcache,
    const std::function<Result<identity::NumericIdentity>(int i, IpAddr ip)>& create);
// Prints measurePodToNode()'s result, with the target p99 in ms.
void printPodToNode(const std::vector<double>& lat, int target_p99_ms);

struct AllocationRace {
  std::set<identity::NumericIdentity> distinct;  // the identities the agents agreed on
  double seconds = 0;                            // from the first allocation to the last
};

// Every allocator (one agent each) allocates the same `sets` label sets (app=r<round>-<i>) at
// once, from `threads` threads each, every agent in its own order (real contention). An error when
// an allocation fails or the agents end up with different numbers for the same labels.
Result<AllocationRace> raceAllocations(const std::vector<identity::Allocator*>& allocators,
                                       int sets, int threads, int round);

}  // namespace cilium::bench
