// Initial sync from the (fake) apiserver: 10,000 pods, 2,000 services and 1,000
// CiliumNetworkPolicies listed (pages of 500) into the informer stores and the policies imported
// into the policy engine; then the steady-state rate of watch events absorbed; and the memory
// the stores take. Prints numbers; never passes or fails. The fake apiserver runs in this
// process (its memory is measured before the informers start and subtracted).
//   k8s_sync_bench [pods] [services] [policies] [events]
#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "agent/common/log.h"
#include "agent/identity/allocator.h"
#include "agent/k8s/source.h"
#include "agent/policy/decode.h"
#include "agent/policy/policy.h"
#include "bench/k8s_objects.h"
#include "tests/fakes/fake_apiserver.h"

namespace {

using namespace cilium;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU time of the whole process (user + system), to read numbers on a loaded machine.
double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long rssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

using bench::cnp;
using bench::pod;
using bench::service;

int main(int argc, char** argv) {
  int pods = argc > 1 ? std::atoi(argv[1]) : 10000;
  int services = argc > 2 ? std::atoi(argv[2]) : 2000;
  int policies = argc > 3 ? std::atoi(argv[3]) : 1000;
  int events = argc > 4 ? std::atoi(argv[4]) : 20000;
  setLogLevel("warning");

  testing::FakeApiServer server;
  if (!server.start().ok()) return 1;
  for (int i = 0; i < pods; i++) (void)server.create(k8s::Resource<k8s::Pod>::info(), pod(i));
  for (int i = 0; i < services; i++)
    (void)server.create(k8s::Resource<k8s::Service>::info(), service(i));
  for (int i = 0; i < policies; i++)
    (void)server.create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), cnp(i));
  long rss_before = rssKiB();

  k8s::ClientConfig cfg;
  cfg.server = server.url();
  auto client = k8s::Client::create(cfg);
  if (!client.ok()) return 1;
  auto ids = identity::Allocator::open("");
  policy::Engine engine(**ids);

  k8s::ApiSourceOptions opts;
  opts.kinds = {"Pod", "Service", "CiliumNetworkPolicy", "NetworkPolicy"};
  k8s::ApiSource source(**client, opts);
  // Policies go to the engine as the daemon will: decoded per object from the store's raw JSON.
  std::atomic<int> imported{0};
  source.stores().cilium_network_policies.addHandlers(
      {[&](const k8s::CiliumNetworkPolicy& p) {
         auto objs = policy::decodePolicyJson(p.raw);
         if (objs.ok() && engine.importObjects(std::move(*objs)).ok()) imported++;
       },
       nullptr, nullptr});
  auto t0 = Clock::now();
  double cpu0 = cpuSeconds();
  if (!source.start().ok()) return 1;
  if (!source.waitForSync(std::chrono::seconds(120))) {
    std::printf("sync did not finish in 120 s\n");
    return 1;
  }
  auto t_synced = Clock::now();
  while (imported < policies && Clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto t_imported = Clock::now();
  double cpu_sync = cpuSeconds() - cpu0;
  long rss_after = rssKiB();
  // What stays once freed pages go back to the system (per-thread malloc arenas keep the
  // transient list pages otherwise).
  malloc_trim(0);
  long rss_trimmed = rssKiB();
  auto* pr = source.reflector("Pod");
  std::printf("initial sync: %d pods, %d services, %d policies\n", pods, services, policies);
  std::printf("  stores synced        %.3f s (pod list pages: %llu)\n", seconds(t_synced - t0),
              static_cast<unsigned long long>(pr->stats().list_pages));
  std::printf("  policies in engine   %.3f s (%zu rules, revision %llu)\n",
              seconds(t_imported - t0), engine.ruleCount(),
              static_cast<unsigned long long>(engine.revision()));
  std::printf("  CPU (client, stores, engine and the in-process fake server): %.3f s\n", cpu_sync);
  std::printf(
      "  RSS: %ld MiB with the fake populated, %ld MiB after sync (+%ld MiB), %ld MiB "
      "after malloc_trim (+%ld MiB held by stores, engine and client)\n",
      rss_before / 1024, rss_after / 1024, (rss_after - rss_before) / 1024, rss_trimmed / 1024,
      (rss_trimmed - rss_before) / 1024);

  // Steady state: label updates of existing pods as fast as the fake takes them; the rate at
  // which the pod store's update handler sees them.
  std::atomic<int> seen{0};
  source.stores().pods.addHandlers(
      {nullptr, [&](const k8s::Pod&, const k8s::Pod&) { seen++; }, nullptr});
  auto w0 = Clock::now();
  double cpuw0 = cpuSeconds();
  for (int i = 0; i < events; i++) {
    json p = *server.get(k8s::Resource<k8s::Pod>::info(), fmt::format("ns-{}", i % pods % 50),
                         fmt::format("pod-{}", i % pods));
    p["metadata"]["labels"]["rev"] = std::to_string(i);
    (void)server.update(k8s::Resource<k8s::Pod>::info(), p);
  }
  auto w1 = Clock::now();
  while (seen < events && Clock::now() - w1 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  auto w2 = Clock::now();
  std::printf(
      "steady state: %d pod updates written in %.3f s, absorbed by the store in %.3f s: "
      "%.0f events/s (%d seen)\n",
      events, seconds(w1 - w0), seconds(w2 - w0), seen / seconds(w2 - w0), seen.load());
  std::printf("  CPU for writes + absorption: %.3f s\n", cpuSeconds() - cpuw0);
  std::printf("  RSS after the updates: %ld MiB\n", rssKiB() / 1024);
  source.stop();
  return 0;
}
