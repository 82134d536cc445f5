// cilium-cni as the runtime runs it, against a real agent in a node namespace: ADD-to-ready
// latency over N pods (each ADD returns once the endpoint's policy is enforced), then churn
// cycles of ADD+DEL on one sandbox, counting what is left behind (endpoints, addresses, veths,
// endpoint state files). Prints numbers; never fails on time.
//
//   sudo ./build/bench/cni_bench [pods=100] [churn=500] [plugin=the cilium-cni built with it]
//
// A plugin path runs another cilium-cni build against the same agent (A/B comparisons).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

using namespace cilium;
using Clock = std::chrono::steady_clock;

namespace {

struct Bench {
  cilium::testing::Topology& topo;
  cilium::testing::AgentNode& node;
  std::string conf_path;
  std::string plugin;
  std::vector<std::string> sandboxes;
  double last_cpu_ms = 0;  // user + system CPU of the last plugin run

  Result<double> cni(const std::string& command, const std::string& cid, const std::string& netns) {
    SpawnOptions opts;
    opts.netns = topo.nodeNetns();
    opts.extra_env = {
        "CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid,
        "CNI_NETNS=" + netns,     "CNI_IFNAME=eth0",
        "CNI_PATH=/opt/cni/bin",  "CNI_ARGS=K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + cid};
    // The plugin is exec'd directly with the config on stdin, as containerd (go-cni) runs it.
    opts.stdin_path = conf_path;
    rusage before{}, after{};
    ::getrusage(RUSAGE_CHILDREN, &before);
    auto start = Clock::now();
    CILIUM_ASSIGN_OR_RETURN(RunOutput out, run({plugin}, opts, std::chrono::seconds(60)));
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    // The plugin is the only child reaped during run(): its CPU time, whatever the load.
    ::getrusage(RUSAGE_CHILDREN, &after);
    auto cpu = [](const rusage& r) {
      return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 +
             (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
    };
    last_cpu_ms = cpu(after) - cpu(before);
    if (out.exit_code != 0) {
      return makeError(ErrorCode::kInternal, "{} {}: exit {}: {}", command, cid, out.exit_code,
                       out.out);
    }
    return ms;
  }

  Result<std::string> sandbox(int i) {
    std::string name = topo.prefix() + "-sb" + std::to_string(i);
    CILIUM_ASSIGN_OR_RETURN(auto out, runChecked({"ip", "netns", "add", name}));
    (void)out;
    sandboxes.push_back(name);
    return "/run/netns/" + name;
  }

  ~Bench() {
    for (const auto& ns : sandboxes) (void)run({"ip", "netns", "del", ns});
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

size_t countVeths(cilium::testing::Topology& topo) {
  auto r = topo.exec(topo.nodeNetns(), {"ip", "-o", "link", "show", "type", "veth"});
  if (!r.ok()) return 0;
  return static_cast<size_t>(std::count(r->out.begin(), r->out.end(), '\n'));
}

size_t countFiles(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return 0;
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file()) n++;
  }
  return n;
}

int runBench(int pods, int churn, const std::string& plugin) {
  auto topo = cilium::testing::Topology::create();
  if (!topo.ok()) {
    std::fprintf(stderr, "topology: %s\n", topo.error().toString().c_str());
    return 1;
  }
  auto node = cilium::testing::AgentNode::create(**topo, CILIUM_AGENT_BINARY);
  if (!node.ok()) return 1;
  auto agent = node->start("agent");
  if (!agent.ok() || !node->waitReady(*agent)) {
    std::fprintf(stderr, "agent not ready:\n%s\n", node->log("agent").c_str());
    return 1;
  }
  Bench b{**topo, *node, node->dir() + "/conf.json", plugin, {}};
  std::ofstream(b.conf_path) << nlohmann::json{
      {"cniVersion", "1.0.0"},
      {"name", "cilium"},
      {"type", "cilium-cni"},
      {"socket-path", node->socket()},
      {"log-file",
       node->dir() + "/cni.log"}}.dump();
  const size_t veths_before = countVeths(**topo);

  std::vector<double> add_ms, del_ms, add_cpu_ms;
  std::vector<std::string> netns;
  for (int i = 0; i < pods; i++) {
    auto ns = b.sandbox(i);
    if (!ns.ok()) return 1;
    netns.push_back(*ns);
    auto ms = b.cni("ADD", "pod" + std::to_string(i), *ns);
    if (!ms.ok()) {
      std::fprintf(stderr, "%s\n", ms.error().toString().c_str());
      return 1;
    }
    add_ms.push_back(*ms);
    add_cpu_ms.push_back(b.last_cpu_ms);
  }
  for (int i = 0; i < pods; i++) {
    auto ms = b.cni("DEL", "pod" + std::to_string(i), netns[static_cast<size_t>(i)]);
    if (!ms.ok()) return 1;
    del_ms.push_back(*ms);
  }
  std::printf("%s against a real agent, %d pods (wall time of the whole plugin process)\n",
              plugin.c_str(), pods);
  std::printf("  ADD to ready endpoint: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
              percentile(add_ms, 0.5), percentile(add_ms, 0.99), percentile(add_ms, 1.0));
  std::printf("  DEL:                   p50 %.1f ms  p99 %.1f ms\n", percentile(del_ms, 0.5),
              percentile(del_ms, 0.99));
  std::printf("  plugin CPU per ADD:    p50 %.1f ms  p99 %.1f ms (user + system)\n",
              percentile(add_cpu_ms, 0.5), percentile(add_cpu_ms, 0.99));

  auto churn_ns = b.sandbox(pods);
  if (!churn_ns.ok()) return 1;
  auto start = Clock::now();
  for (int i = 0; i < churn; i++) {
    std::string cid = "churn" + std::to_string(i);
    if (auto r = b.cni("ADD", cid, *churn_ns); !r.ok()) {
      std::fprintf(stderr, "cycle %d: %s\n", i, r.error().toString().c_str());
      return 1;
    }
    if (auto r = b.cni("DEL", cid, *churn_ns); !r.ok()) {
      std::fprintf(stderr, "cycle %d: %s\n", i, r.error().toString().c_str());
      return 1;
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  auto client = node->client();
  auto eps = client.listEndpoints();
  auto health = client.healthz();
  size_t addresses = health.ok() && health->ipam ? health->ipam->allocations.size() : 0;
  std::printf("churn: %d ADD+DEL cycles in %.1f s (%.1f ms per cycle); left behind:\n", churn, secs,
              secs * 1000 / churn);
  std::printf(
      "  endpoints %zu, addresses %zu, veths %zu, "
      "endpoint state files %zu\n",
      eps.ok() ? eps->size() : size_t{999}, addresses, countVeths(**topo) - veths_before,
      countFiles(node->stateDir() + "/state/endpoints"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int pods = argc > 1 ? std::atoi(argv[1]) : 100;
  int churn = argc > 2 ? std::atoi(argv[2]) : 500;
  if (pods <= 0 || churn <= 0) {
    std::fprintf(stderr, "usage: cni_bench [pods>0] [churn>0] [plugin]\n");
    return 2;
  }
  return runBench(pods, churn, argc > 3 ? argv[3] : CILIUM_CNI_BINARY);
}
