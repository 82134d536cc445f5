// kvstore mode on a real etcd (started by the benchmark on loopback): how long a pod created on
// node A takes to be known on node B (its identity and its ipcache entry), and the identity
// allocation and garbage-collection rates with 4 agents racing for the same labels.
//
//   kvstore_bench [--pods N] [--sets N] [--rounds N]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/log.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/kvstore/cluster.h"
#include "agent/kvstore/identities.h"
#include "agent/node/node.h"
#include "bench/bench_identity.h"
#include "tests/harness/etcd_server.h"

using namespace cilium;
using namespace cilium::bench;
using namespace std::chrono_literals;

namespace {

struct Stack {
  std::unique_ptr<kvstore::Client> client;
  std::unique_ptr<kvstore::Session> session;
  std::unique_ptr<kvstore::Identities> identities;
  std::unique_ptr<identity::Allocator> allocator;
  ipcache::IpCache ipcache{nullptr, nullptr};
  std::unique_ptr<kvstore::EndpointSync> endpoints;

  Stack(const testing::EtcdServer& etcd, const std::string& name, IpAddr host) {
    client = std::move(*kvstore::Client::create(etcd.config()));
    session = std::make_unique<kvstore::Session>(*client, kvstore::SessionOptions{60s, true});
    session->start();
    identities = std::make_unique<kvstore::Identities>(*client, *session, name);
    if (!identities->start(10s).ok()) std::abort();
    auto local = identity::LocalBackend::open("", identity::kMinLocal, identity::kMaxLocal, "x");
    allocator = std::move(*identity::Allocator::create(identities->backend(), std::move(*local)));
    identities->attach(*allocator);
    endpoints = std::make_unique<kvstore::EndpointSync>(*client, *session, ipcache, host);
    if (!endpoints->start(10s).ok()) std::abort();
  }
  ~Stack() {
    endpoints->stop();
    identities->detach();
    identities->stop();
    session->stop();
  }
};

// CPU time (user + system) of this process and of `pid`, in seconds.
double cpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; i++) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}
double selfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

size_t countKeys(kvstore::Client& c, const std::string& prefix) {
  auto r = c.getPrefix(prefix);
  return r.ok() ? r->kvs.size() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 200, sets = 2000, rounds = 2, threads = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--pods")) pods = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--sets")) sets = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::max(1, std::atoi(argv[i + 1]));
  }
  setLogLevel("warn");
  testing::EtcdServer etcd;
  if (auto st = etcd.start(); !st.ok()) {
    std::fprintf(stderr, "etcd: %s\n", st.error().message().c_str());
    return 1;
  }
  auto admin = std::move(*kvstore::Client::create(etcd.config()));
  std::printf("etcd %s on 127.0.0.1:%u (data dir on %s)\n",
              admin->serverVersion().valueOr(std::string("?")).c_str(), etcd.port(),
              etcd.dir().c_str());

  // 1. Pod on A -> known on B: A allocates the pod's identity (new labels) and publishes its
  //    address; B has it when both its allocator knows the identity and its ipcache maps the
  //    address to it. Timed from the start of A's allocation to B's last observer call.
  {
    Stack a(etcd, "node-a", *IpAddr::parse("172.30.0.1"));
    Stack b(etcd, "node-b", *IpAddr::parse("172.30.0.2"));
    std::vector<kvstore::IpPair> published;
    auto lat = measurePodToNode(
        pods, *b.allocator, b.ipcache, [&](int i, IpAddr ip) -> Result<identity::NumericIdentity> {
          CILIUM_ASSIGN_OR_RETURN(auto id,
                                  a.allocator->allocate(podLabels("pod" + std::to_string(i))));
          published.push_back({ip, id.id, *IpAddr::parse("172.30.0.1"), "bench", "p"});
          a.endpoints->publish(published);
          return id.id;
        });
    if (!lat.ok()) {
      std::fprintf(stderr, "pod on A -> B: %s\n", lat.error().toString().c_str());
      return 1;
    }
    printPodToNode(*lat, 200);
  }
  if (auto r = admin->removePrefix("cilium/"); !r.ok()) return 1;

  // 2. Allocation and GC under churn: 4 agents allocate the same `sets` label sets at once (each
  //    in its own order), then all release them and the collector deletes them.
  std::printf("\nidentity allocation and GC, 4 racing agents, %d label sets per round\n", sets);
  std::printf("  %-6s %8s %14s %14s %25s %12s %12s\n", "round", "threads", "alloc ids/s",
              "alloc calls/s", "CPU ms/new id etcd+agents", "gc ids/s", "distinct ids");
  // Each agent allocates from one thread, then from `threads` (pods starting at once: the CNI
  // ADDs of a node arrive concurrently).
  const int variants = threads > 1 ? 2 : 1;
  for (int run = 0; run < variants * rounds; run++) {
    const int per_agent = run % variants == 0 ? 1 : threads;
    std::vector<std::unique_ptr<Stack>> stacks;
    for (int s = 0; s < 4; s++)
      stacks.push_back(std::make_unique<Stack>(etcd, "agent" + std::to_string(s),
                                               IpAddr::fromHostOrder(0xac1e0001 + s)));
    std::vector<identity::Allocator*> allocators;
    for (auto& st : stacks) allocators.push_back(st->allocator.get());
    double self0 = selfCpuSeconds(), etcd0 = cpuSeconds(etcd.pid());
    auto race = raceAllocations(allocators, sets, per_agent, run);
    // The CPU the allocations cost, etcd's and the 4 agents' (this process): what bounds the
    // rate on a machine whose cores are shared.
    double self_s = selfCpuSeconds() - self0, etcd_s = cpuSeconds(etcd.pid()) - etcd0;
    if (!race.ok()) {
      std::fprintf(stderr, "allocation race: %s\n", race.error().toString().c_str());
      return 1;
    }
    const auto& distinct = race->distinct;
    const double alloc_s = race->seconds;
    // Release everywhere; the value keys go with the releases (the sessions delete them).
    for (auto& st : stacks)
      for (auto id : distinct) (void)st->allocator->release(id);
    auto deadline = Clock::now() + 60s;
    while (countKeys(*admin, "cilium/state/identities/v1/value/") != 0) {
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "value keys not deleted\n");
        return 1;
      }
      std::this_thread::sleep_for(10ms);
    }
    auto g0 = Clock::now();
    auto gc = kvstore::collectGarbage(*admin);
    double gc_s = std::chrono::duration<double>(Clock::now() - g0).count();
    if (!gc.ok() || gc->deleted != distinct.size()) {
      std::fprintf(stderr, "gc: %s\n",
                   gc.ok() ? "not everything deleted" : gc.error().message().c_str());
      return 1;
    }
    std::printf("  %-6d %8d %14.0f %14.0f %13.3f+%-11.3f %12.0f %12zu\n", run / variants + 1,
                per_agent, distinct.size() / alloc_s, 4.0 * sets / alloc_s,
                etcd_s * 1000 / distinct.size(), self_s * 1000 / distinct.size(),
                gc->deleted / gc_s, distinct.size());
    stacks.clear();
    (void)admin->removePrefix("cilium/");
  }
  std::printf(
      "  (targets >= 1,000/s each; alloc ids/s counts distinct identities, alloc calls/s every "
      "agent's allocations)\n");
  return 0;
}
