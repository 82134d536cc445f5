// 100 nodes x 100 pods as one node sees them: the real cilium-agent in a node namespace, once in
// CRD mode (against the fake apiserver) and once in kvstore mode (against a real etcd), while
// simulated agents of the other nodes write their CiliumNodes, CiliumIdentities and
// CiliumEndpoints (CRD) or their node, identity and ip keys under their own leases (kvstore).
// Prints, side by side, the time from the first write until the agent's datapath view (its
// pinned cilium_ipcache BPF map) holds every one of the pods with the right identity, and the
// agent's memory. Needs root (node namespace, bpffs). Prints numbers; never passes or fails.
//
//   sudo cluster_scale_bench [nodes] [pods-per-node] [writer-threads]
#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"
#include "agent/kvstore/cluster.h"
#include "agent/kvstore/etcd.h"
#include "agent/kvstore/identities.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

namespace {

using namespace cilium;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

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

struct Shape {
  int nodes = 100;
  int pods = 100;  // per node
  int writers = 10;
};

// Simulated node n: underlay 172.20.<n>.1, pods 10.128.<n>.<1..pods>, all with identity
// 1000 + n (labels app=app-<n>).
std::string nodeIp(int n) { return fmt::format("172.20.{}.1", n); }
std::string podIp(int n, int p) { return fmt::format("10.128.{}.{}", n, p + 1); }
identity::NumericIdentity nodeIdentity(int n) { return 1000 + static_cast<uint32_t>(n); }
std::string sortedLabels(int n) {
  return fmt::format("k8s:app=app-{};k8s:io.kubernetes.pod.namespace=bench;", n);
}

// How many of the simulated pods the pinned cilium_ipcache holds as host entries with their
// node's identity (-1 when the map cannot be read).
long podsInIpcache(const std::string& pin_dir, const Shape& shape) {
  auto map =
      bpf::KernelMap<ipcache_key, remote_endpoint_info>::fromPinned(pin_dir + "/cilium_ipcache");
  if (!map.ok()) return -1;
  long found = 0;
  auto st = (*map)->forEach([&](const ipcache_key& k, const remote_endpoint_info& v) {
    if (k.family != 1 /* ENDPOINT_KEY_IPV4 */ || k.prefixlen != IPCACHE_PREFIX_BASE + 32)
      return true;
    uint32_t ip = ntohl(k.ip.ip4);
    if ((ip >> 16) != 0x0a80) return true;  // 10.128.0.0/16
    int n = static_cast<int>((ip >> 8) & 0xff);
    int p = static_cast<int>(ip & 0xff) - 1;
    if (n < shape.nodes && p >= 0 && p < shape.pods && v.sec_identity == nodeIdentity(n)) found++;
    return true;
  });
  return st.ok() ? found : -1;
}

struct Result1 {
  double write_s = 0;  // first write to last write acknowledged
  double view_s = 0;   // first write to every pod in the agent's ipcache map
  long rss_before = 0, rss_after = 0, hwm = 0;
  bool ok = false;
};

// Polls the agent's map until it holds every pod (the poll interval bounds the resolution).
bool waitForView(const std::string& pin_dir, const Shape& shape, Clock::time_point t0,
                 Result1& out) {
  const long want = static_cast<long>(shape.nodes) * shape.pods;
  long have = 0;
  while (Clock::now() - t0 < 300s) {
    have = podsInIpcache(pin_dir, shape);
    if (have == want) {
      out.view_s = seconds(Clock::now() - t0);
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "the agent's ipcache holds %ld of %ld pods after 300 s\n", have, want);
  return false;
}

// Runs `per_node(n)` for every simulated node on `shape.writers` threads; false if any failed.
bool writeNodes(const Shape& shape, const std::function<bool(int)>& per_node) {
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < shape.writers; w++)
    threads.emplace_back([&, w] {
      for (int n = w; n < shape.nodes && !failed; n += shape.writers)
        if (!per_node(n)) failed = true;
    });
  for (auto& t : threads) t.join();
  return !failed;
}

Result1 runCrd(const Shape& shape) {
  Result1 out;
  auto topo = cilium::testing::Topology::create();
  if (!topo.ok()) return out;
  auto node = cilium::testing::AgentNode::create(**topo, CILIUM_AGENT_BINARY);
  if (!node.ok()) return out;
  cilium::testing::FakeApiServer server;
  if (!runInNetns((*topo)->nodeNetns(), [&] { return server.start(); }).ok()) return out;
  auto agent = node->start("agent-crd",
                           {"--k8s-api-server=" + server.url(), "--identity-allocation-mode=crd"});
  if (!agent.ok() || !node->waitReady(*agent, 60s)) {
    std::fprintf(stderr, "agent (crd) not ready:\n%s\n", node->log("agent-crd").c_str());
    return out;
  }
  std::tie(out.rss_before, std::ignore) = memoryMiB((*agent)->pid());
  // Each simulated agent has its own API client (client-go's default 50 qps, burst 100).
  auto st = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    auto t0 = Clock::now();
    bool wrote = writeNodes(shape, [&](int n) {
      k8s::ClientConfig cc;
      cc.server = server.url();
      auto c = k8s::Client::create(cc);
      if (!c.ok()) return false;
      auto post = [&](const k8s::ResourceInfo& info, const std::string& ns, nlohmann::json obj) {
        auto r = (*c)->request("POST", info.collectionPath(ns), obj.dump());
        if (!r.ok() || !r->ok()) {
          std::fprintf(stderr, "POST %s: %s\n", info.collectionPath(ns).c_str(),
                       r.ok() ? r->body.c_str() : r.error().message().c_str());
          return false;
        }
        return true;
      };
      k8s::CiliumNode cn;
      cn.meta.name = fmt::format("sim-{}", n);
      cn.addresses = {{"InternalIP", nodeIp(n)}};
      cn.pod_cidrs = {fmt::format("10.128.{}.0/24", n)};
      if (!post(k8s::Resource<k8s::CiliumNode>::info(), "", k8s::toJson(cn))) return false;
      k8s::CiliumIdentity ci;
      ci.meta.name = std::to_string(nodeIdentity(n));
      ci.security_labels = {{"k8s:app", fmt::format("app-{}", n)},
                            {"k8s:io.kubernetes.pod.namespace", "bench"}};
      if (!post(k8s::Resource<k8s::CiliumIdentity>::info(), "", k8s::toJson(ci))) return false;
      for (int p = 0; p < shape.pods; p++) {
        k8s::CiliumEndpoint cep;
        cep.meta.name = fmt::format("pod-{}-{}", n, p);
        cep.meta.namespace_name = "bench";
        cep.endpoint_id = p + 1;
        cep.identity_id = nodeIdentity(n);
        cep.addressing = {{podIp(n, p), ""}};
        cep.node = nodeIp(n);
        cep.state = "ready";
        if (!post(k8s::Resource<k8s::CiliumEndpoint>::info(), "bench", k8s::toJson(cep)))
          return false;
      }
      return true;
    });
    out.write_s = seconds(Clock::now() - t0);
    if (!wrote) return Error(ErrorCode::kInternal, "writes failed");
    if (!waitForView(node->pinDir(), shape, t0, out))
      return Error(ErrorCode::kDeadlineExceeded, "view incomplete");
    return okStatus();
  });
  if (st.ok()) {
    std::tie(out.rss_after, out.hwm) = memoryMiB((*agent)->pid());
    out.ok = true;
  }
  (*agent)->stop();
  server.stop();
  return out;
}

Result1 runKvstore(const Shape& shape) {
  Result1 out;
  auto topo = cilium::testing::Topology::create();
  if (!topo.ok()) return out;
  auto node = cilium::testing::AgentNode::create(**topo, CILIUM_AGENT_BINARY);
  if (!node.ok()) return out;
  auto etcd = (*topo)->spawnIn(
      (*topo)->nodeNetns(),
      {"etcd", "--name", "bench", "--data-dir", node->dir() + "/etcd", "--listen-client-urls",
       "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
       "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls",
       "http://127.0.0.1:2380", "--initial-cluster", "bench=http://127.0.0.1:2380", "--log-level",
       "warn", "--logger", "zap"},
      "etcd");
  if (!etcd.ok()) {
    std::fprintf(stderr, "etcd: %s\n", etcd.error().message().c_str());
    return out;
  }
  std::ofstream(node->dir() + "/etcd.config") << "endpoints:\n- http://127.0.0.1:2379\n";
  kvstore::EtcdConfig cfg;
  cfg.endpoints = {"http://127.0.0.1:2379"};
  // Everything that talks to etcd runs inside the node namespace (gRPC's threads inherit it).
  auto st = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    CILIUM_ASSIGN_OR_RETURN(auto admin, kvstore::Client::create(cfg));
    auto deadline = Clock::now() + 20s;
    while (!admin->serverVersion().ok()) {
      if (Clock::now() > deadline) return Error(ErrorCode::kUnavailable, "etcd did not start");
      std::this_thread::sleep_for(100ms);
    }
    return okStatus();
  });
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.error().message().c_str());
    return out;
  }
  auto agent =
      node->start("agent-kvstore",
                  {"--kvstore=etcd", "--kvstore-opt=etcd.config=" + node->dir() + "/etcd.config",
                   "--identity-allocation-mode=kvstore"});
  if (!agent.ok() || !node->waitReady(*agent, 60s)) {
    std::fprintf(stderr, "agent (kvstore) not ready:\n%s\n", node->log("agent-kvstore").c_str());
    return out;
  }
  std::tie(out.rss_before, std::ignore) = memoryMiB((*agent)->pid());
  st = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    auto t0 = Clock::now();
    // Each simulated agent: its own etcd client and lease; its node key, the value key of its
    // pods' identity (and the master key), then one ip key per pod, all under the lease.
    bool wrote = writeNodes(shape, [&](int n) {
      auto c = kvstore::Client::create(cfg);
      if (!c.ok()) return false;
      auto lease = (*c)->grantLease(120s);
      if (!lease.ok()) return false;
      std::string name = fmt::format("sim-{}", n);
      std::string node_json = fmt::format(
          R"({{"Name":"{}","Cluster":"default","IPAddresses":[{{"Type":"InternalIP","IP":"{}"}}],"IPv4AllocCIDR":"10.128.{}.0/24","BootID":"x"}})",
          name, nodeIp(n), n);
      if (!(*c)->put(std::string(kvstore::kNodesPrefix) + "default/" + name, node_json, *lease)
               .ok())
        return false;
      std::string id = std::to_string(nodeIdentity(n));
      std::string prefix(kvstore::kIdentitiesPrefix);
      if (!(*c)->put(prefix + "id/" + id, sortedLabels(n)).ok()) return false;
      if (!(*c)->put(prefix + "value/" + sortedLabels(n) + "/" + name, id, *lease).ok())
        return false;
      for (int p = 0; p < shape.pods; p++) {
        kvstore::IpPair pair{*IpAddr::parse(podIp(n, p)), nodeIdentity(n),
                             *IpAddr::parse(nodeIp(n)), "bench", fmt::format("pod-{}-{}", n, p)};
        auto r = (*c)->put(std::string(kvstore::kIpPrefix) + podIp(n, p),
                           kvstore::ipPairToJson(pair), *lease);
        if (!r.ok()) {
          std::fprintf(stderr, "put: %s\n", r.error().message().c_str());
          return false;
        }
      }
      return true;
    });
    out.write_s = seconds(Clock::now() - t0);
    if (!wrote) return Error(ErrorCode::kInternal, "writes failed");
    if (!waitForView(node->pinDir(), shape, t0, out))
      return Error(ErrorCode::kDeadlineExceeded, "view incomplete");
    return okStatus();
  });
  if (st.ok()) {
    std::tie(out.rss_after, out.hwm) = memoryMiB((*agent)->pid());
    out.ok = true;
  } else {
    std::fprintf(stderr, "%s\n%s\n", st.error().message().c_str(),
                 node->log("agent-kvstore").c_str());
  }
  (*agent)->stop();
  (*etcd)->stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  if (argc > 1) shape.nodes = std::atoi(argv[1]);
  if (argc > 2) shape.pods = std::atoi(argv[2]);
  if (argc > 3) shape.writers = std::atoi(argv[3]);
  if (shape.nodes < 1 || shape.nodes > 256 || shape.pods < 1 || shape.pods > 254 ||
      shape.writers < 1) {
    std::fprintf(stderr,
                 "usage: cluster_scale_bench [nodes<=256] [pods-per-node<=254] [writers]\n");
    return 2;
  }
  setLogLevel("warning");
  if (geteuid() != 0) {
    std::fprintf(stderr, "cluster_scale_bench needs root (network namespaces, bpffs)\n");
    return 2;
  }
  Result1 crd = runCrd(shape);
  Result1 kv = runKvstore(shape);
  std::printf(
      "%d nodes x %d pods written by %d simulated agents on %d threads; one real "
      "cilium-agent's view (its cilium_ipcache map, polled every 50 ms)\n",
      shape.nodes, shape.pods, shape.nodes, shape.writers);
  std::printf("  %-44s %14s %14s\n", "", "CRD", "kvstore");
  auto col = [](const Result1& r, double v) {
    return r.ok ? fmt::format("{:.2f}", v) : std::string("failed");
  };
  std::printf("  %-44s %14s %14s\n", "writes done after (s)", col(crd, crd.write_s).c_str(),
              col(kv, kv.write_s).c_str());
  std::printf("  %-44s %14s %14s\n", "all pods in the agent's ipcache after (s)",
              col(crd, crd.view_s).c_str(), col(kv, kv.view_s).c_str());
  auto lag = [](const Result1& r) {
    return r.ok ? fmt::format("{:.0f}", (r.view_s - r.write_s) * 1000) : std::string("failed");
  };
  std::printf("  %-44s %14s %14s\n", "  of which after the last write (ms)", lag(crd).c_str(),
              lag(kv).c_str());
  std::printf("  %-44s %14ld %14ld\n", "agent RSS before the writes (MiB)", crd.rss_before,
              kv.rss_before);
  std::printf("  %-44s %14ld %14ld\n", "agent RSS with the whole view (MiB)", crd.rss_after,
              kv.rss_after);
  std::printf("  %-44s %14ld %14ld\n", "agent peak RSS (MiB)   (target <= 100)", crd.hwm, kv.hwm);
  return crd.ok && kv.ok ? 0 : 1;
}
