// The real cilium-agent against the (fake) apiserver, as on a node of a large cluster: the time
// from starting the agent to /healthz Ok with 10,000 pods, 2,000 Services with EndpointSlices and
// 1,000 CiliumNetworkPolicies already in the cluster — which covers the informers' initial list,
// the datapath load, every policy imported and every Service programmed into the LB maps
// (the agent reports ready only after both) — then the policy changes it absorbs per second
// and its memory. Needs root (node namespace, bpffs). Prints numbers; never passes or fails.
//   sudo agent_k8s_sync_bench [pods] [services] [policies] [updates]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "bench/k8s_objects.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

namespace {

using namespace cilium;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// VmRSS and VmHWM of a process, in MiB.
std::pair<long, long> memoryMiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long rss = -1, hwm = -1;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6)) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stol(line.substr(6)) / 1024;
  }
  return {rss, hwm};
}

}  // namespace

int main(int argc, char** argv) {
  int pods = argc > 1 ? std::atoi(argv[1]) : 10000;
  int services = argc > 2 ? std::atoi(argv[2]) : 2000;
  int policies = argc > 3 ? std::atoi(argv[3]) : 1000;
  int updates = argc > 4 ? std::atoi(argv[4]) : 1000;
  setLogLevel("warning");
  if (geteuid() != 0) {
    std::fprintf(stderr, "agent_k8s_sync_bench needs root (network namespaces, bpffs)\n");
    return 2;
  }
  auto topo = cilium::testing::Topology::create();
  if (!topo.ok()) {
    std::fprintf(stderr, "%s\n", topo.error().toString().c_str());
    return 1;
  }
  auto node = cilium::testing::AgentNode::create(**topo, CILIUM_AGENT_BINARY);
  if (!node.ok()) return 1;

  cilium::testing::FakeApiServer server;
  if (!runInNetns((*topo)->nodeNetns(), [&] { return server.start(); }).ok()) return 1;
  for (int i = 0; i < pods; i++)
    (void)server.create(k8s::Resource<k8s::Pod>::info(), bench::pod(i));
  for (int i = 0; i < services; i++) {
    (void)server.create(k8s::Resource<k8s::Service>::info(), bench::service(i));
    (void)server.create(k8s::Resource<k8s::EndpointSlice>::info(), bench::endpointSlice(i, pods));
  }
  for (int i = 0; i < policies; i++)
    (void)server.create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), bench::cnp(i));

  auto t0 = Clock::now();
  auto agent = node->start("agent", {"--k8s-api-server=" + server.url()});
  if (!agent.ok() || !node->waitReady(*agent, std::chrono::seconds(300))) {
    std::fprintf(stderr, "the agent did not become ready:\n%s\n", node->log("agent").c_str());
    return 1;
  }
  auto t_ready = Clock::now();
  auto api = node->client(std::chrono::seconds(30));
  auto pol = api.getPolicy();
  auto svcs = api.listServices();
  auto [rss, hwm] = memoryMiB((*agent)->pid());
  std::printf("agent start to ready with %d pods, %d services (+ EndpointSlices), %d CNPs\n", pods,
              services, policies);
  std::printf("  ready after          %.3f s\n", seconds(t_ready - t0));
  std::printf("  at ready             policy revision %lld, %zu LB frontends\n",
              pol.ok() ? static_cast<long long>(pol->revision) : -1LL,
              svcs.ok() ? svcs->size() : size_t{0});
  std::printf("  agent memory         RSS %ld MiB, peak %ld MiB\n", rss, hwm);

  // Steady state: every CNP changed once, as fast as the fake takes the writes; the rate at
  // which the agent imports them (policy revision as the counter).
  int64_t base = pol.ok() ? pol->revision : 0;
  auto w0 = Clock::now();
  for (int i = 0; i < updates; i++) {
    auto want = bench::cnp(i % policies);
    auto obj = server.get(k8s::Resource<k8s::CiliumNetworkPolicy>::info(),
                          want["metadata"]["namespace"], want["metadata"]["name"]);
    if (!obj) continue;
    (*obj)["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] = std::to_string(9000 + i % 100);
    (void)server.update(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), *obj);
  }
  auto w1 = Clock::now();
  int64_t revision = base;
  while (revision < base + updates && Clock::now() - w1 < std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // between REST polls
    if (auto p = api.getPolicy(); p.ok()) revision = p->revision;
  }
  auto w2 = Clock::now();
  std::printf(
      "steady state: %d CNP updates written in %.3f s, imported by the agent in %.3f s: %.0f "
      "policy changes/s (%lld imported)\n",
      updates, seconds(w1 - w0), seconds(w2 - w0),
      static_cast<double>(revision - base) / seconds(w2 - w0),
      static_cast<long long>(revision - base));
  auto [rss2, hwm2] = memoryMiB((*agent)->pid());
  std::printf("  agent memory         RSS %ld MiB, peak %ld MiB\n", rss2, hwm2);
  (*agent)->stop();
  server.stop();
  return 0;
}
