// CRD mode against the fake apiserver (started by the benchmark on loopback), the peer of
// kvstore_bench: how long a pod created on node A takes to be known on node B (its identity and
// its ipcache entry), and the identity allocation rate with 4 agents racing for the same labels,
// then the operator's identity GC rate. Each agent is the agent's own CRD code path in-process:
// informers (ApiSource), CrdIdentityBackend + allocator + RemoteIdentities, the CiliumEndpoint
// publisher, node::K8sFeed and ipcache::ClusterFeed.
//
//   crd_bench [--pods N] [--sets N] [--rounds N] [--threads N] [--qps Q (0: no client limit)]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/log.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/cluster_feed.h"
#include "agent/ipcache/ipcache.h"
#include "agent/k8s/crd_identity.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/source.h"
#include "agent/node/k8s_feed.h"
#include "agent/node/node.h"
#include "bench/bench_identity.h"
#include "operator/identity_gc.h"
#include "tests/fakes/fake_apiserver.h"

using namespace cilium;
using namespace cilium::bench;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kKinds = {"Node", "CiliumNode", "CiliumEndpoint", "CiliumIdentity"};

struct Stack {
  std::unique_ptr<k8s::Client> client;
  std::unique_ptr<k8s::ApiSource> source;
  std::unique_ptr<identity::Allocator> allocator;
  std::unique_ptr<k8s::RemoteIdentities> remote;
  node::Manager nodes;
  ipcache::IpCache ipcache{nullptr, nullptr};
  std::unique_ptr<node::K8sFeed> node_feed;
  std::unique_ptr<ipcache::ClusterFeed> feed;
  std::unique_ptr<k8s::CiliumEndpointPublisher> publisher;

  Stack(const std::string& url, const std::string& name, double qps) {
    k8s::ClientConfig cc;
    cc.server = url;
    cc.qps = qps;  // the agent's client rate limit: 50 requests/s, burst 100, by default
    client = std::move(*k8s::Client::create(cc));
    k8s::ApiSourceOptions so;
    so.kinds = kKinds;
    source = std::make_unique<k8s::ApiSource>(*client, so);
    if (!source->start().ok() || !source->waitForSync(10s)) std::abort();
    auto local = identity::LocalBackend::open("", identity::kMinLocal, identity::kMaxLocal, "x");
    allocator = std::move(*identity::Allocator::create(
        std::make_unique<k8s::CrdIdentityBackend>(*client, source->stores().cilium_identities),
        std::move(*local)));
    remote =
        std::make_unique<k8s::RemoteIdentities>(source->stores().cilium_identities, *allocator);
    node_feed = std::move(*node::K8sFeed::start(nodes, source->stores()));
    ipcache::ClusterFeedOptions fo;
    fo.node_name = name;
    feed = std::move(*ipcache::ClusterFeed::start(ipcache, nodes, source->stores(), fo));
    publisher = std::make_unique<k8s::CiliumEndpointPublisher>(*client);
  }
  ~Stack() {
    feed.reset();
    node_feed.reset();
    remote.reset();
    source->stop();
  }
};

}  // namespace

int main(int argc, char** argv) {
  int pods = 200, sets = 2000, rounds = 2, threads = 1;
  double qps = k8s::ClientConfig{}.qps;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--pods")) pods = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--sets")) sets = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::max(1, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--qps")) qps = std::atof(argv[i + 1]);
  }
  setLogLevel("warn");
  testing::FakeApiServer server;
  if (auto st = server.start(); !st.ok()) {
    std::fprintf(stderr, "apiserver: %s\n", st.error().message().c_str());
    return 1;
  }
  std::printf(
      "fake apiserver on %s; each agent's client: %s\n", server.url().c_str(),
      qps > 0 ? fmt::format("{:.0f} requests/s, burst {}", qps, k8s::ClientConfig{}.burst).c_str()
              : "no rate limit");

  // 1. Pod on A -> known on B: A allocates the pod's identity (new labels: a CiliumIdentity is
  //    created) and publishes its CiliumEndpoint; B has it when both its allocator knows the
  //    identity (from its CiliumIdentity informer) and its ipcache maps the address to it (from
  //    its CiliumEndpoint informer). Timed from the start of A's allocation to B's last observer
  //    call.
  {
    // Node A's CiliumNode, so B resolves A's endpoints to a node (tunnel endpoint).
    k8s::CiliumNode cn;
    cn.meta.name = "node-a";
    cn.addresses = {{"InternalIP", "172.30.0.1"}};
    cn.pod_cidrs = {"10.0.0.0/16"};
    if (!server.create(k8s::Resource<k8s::CiliumNode>::info(), k8s::toJson(cn)).ok()) return 1;
    Stack a(server.url(), "node-a", qps);
    Stack b(server.url(), "node-b", qps);
    auto lat = measurePodToNode(
        pods, *b.allocator, b.ipcache, [&](int i, IpAddr ip) -> Result<identity::NumericIdentity> {
          CILIUM_ASSIGN_OR_RETURN(auto id,
                                  a.allocator->allocate(podLabels("pod" + std::to_string(i))));
          k8s::EndpointState ep;
          ep.pod_namespace = "bench";
          ep.pod_name = "pod" + std::to_string(i);
          ep.endpoint_id = static_cast<uint16_t>(i + 1);
          ep.identity = id.id;
          ep.ipv4 = ip.toString();
          ep.node_ip = "172.30.0.1";
          CILIUM_RETURN_IF_ERROR(a.publisher->publish(ep));
          return id.id;
        });
    if (!lat.ok()) {
      std::fprintf(stderr, "pod on A -> B: %s\n", lat.error().toString().c_str());
      return 1;
    }
    printPodToNode(*lat, 1000);
  }

  // 2. Allocation under churn: 4 agents allocate the same `sets` label sets at once (each in its
  //    own order); then the operator's collector deletes them (no CiliumEndpoint refers to them;
  //    heartbeat timeout 0) in one pass.
  std::printf("\nidentity allocation (4 racing agents) and operator GC, %d label sets per round\n",
              sets);
  std::printf("  %-6s %8s %14s %14s %12s %12s\n", "round", "threads", "alloc ids/s",
              "alloc calls/s", "gc ids/s", "distinct ids");
  // Each agent allocates from one thread, then (with --threads N > 1) from N. Default 1 here: with
  // N agents' threads creating at once, the fake apiserver (cpp-httplib 0.11 as Debian builds it:
  // listen backlog 5; our client opens a connection per request) overflows its accept queue and
  // the dropped connection attempts wait for SYN retransmits or fail.
  const int variants = threads > 1 ? 2 : 1;
  for (int run = 0; run < variants * rounds; run++) {
    const int per_agent = run % variants == 0 ? 1 : threads;
    std::vector<std::unique_ptr<Stack>> stacks;
    for (int s = 0; s < 4; s++)
      stacks.push_back(std::make_unique<Stack>(server.url(), "agent" + std::to_string(s), qps));
    std::vector<identity::Allocator*> allocators;
    for (auto& st : stacks) allocators.push_back(st->allocator.get());
    auto race = raceAllocations(allocators, sets, per_agent, run);
    if (!race.ok()) {
      std::fprintf(stderr, "allocation race: %s\n", race.error().toString().c_str());
      return 1;
    }
    const auto& distinct = race->distinct;
    const double alloc_s = race->seconds;
    stacks.clear();
    // The operator's collector, with its own informers (as cilium-operator runs it).
    k8s::ClientConfig cc;
    cc.server = server.url();
    cc.qps = qps;
    auto client = std::move(*k8s::Client::create(cc));
    k8s::ApiSourceOptions so;
    so.kinds = {"CiliumEndpoint", "CiliumIdentity"};
    k8s::ApiSource source(*client, so);
    if (!source.start().ok() || !source.waitForSync(30s)) return 1;
    // A fake clock: the first pass marks them unused, the second (one timeout later) deletes.
    auto fake_now = Clock::now();
    op::IdentityGcOptions go;
    go.heartbeat_timeout = 60s;
    go.now = [&] { return fake_now; };
    op::IdentityGc gc(*client, source.stores().cilium_identities, source.stores().cilium_endpoints,
                      go);
    (void)gc.runOnce();
    fake_now += go.heartbeat_timeout;
    auto g0 = Clock::now();
    auto pass = gc.runOnce();
    double gc_s = std::chrono::duration<double>(Clock::now() - g0).count();
    source.stop();
    if (pass.deleted != distinct.size()) {
      std::fprintf(stderr, "gc deleted %zu of %zu (failed %zu)\n", pass.deleted, distinct.size(),
                   pass.failed);
      return 1;
    }
    std::printf("  %-6d %8d %14.0f %14.0f %12.0f %12zu\n", run / variants + 1, per_agent,
                distinct.size() / alloc_s, 4.0 * sets / alloc_s, pass.deleted / gc_s,
                distinct.size());
  }
  std::printf(
      "  (targets >= 1,000/s each; alloc ids/s counts distinct identities, alloc calls/s every "
      "agent's allocations)\n");
  server.stop();
  return 0;
}
