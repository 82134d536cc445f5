// Time from a pod created on node A to traffic from it admitted by identity on node B: two real
// agents (CRD identities, tunnel mode) in node namespaces on an underlay bridge, the fake
// apiserver and the real operator. Node B's server pod admits `app=client` by a
// CiliumNetworkPolicy; for each of N new client pods on A the clock starts when its Pod object is
// created, then its endpoint is created through A's API (as cilium-cni does) and the pod
// connects to B's server (and, side by side, to a server on A under the same policy) every 10 ms
// until the SYN is answered. The cross-node time includes the identity allocation (a
// CiliumIdentity), A's CiliumEndpoint reaching B and B's ipcache and policy map. Prints numbers;
// never fails on time.
//
//   sudo ./build/bench/pod_to_allowed_bench [pods=30]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "api/client/client.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace ct = cilium::testing;

namespace {

constexpr uint16_t kPort = 8080;
constexpr const char* kApiServerIp = "172.31.242.254";
std::string underlayIp(int i) { return "172.31.242." + std::to_string(i + 1); }
std::string nsName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

bool run(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  if (!r.ok()) std::fprintf(stderr, "%s\n", r.error().toString().c_str());
  return r.ok();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Node {
  std::unique_ptr<ct::Topology> topo;
  std::optional<ct::AgentNode> agent;
  std::string name;
};

struct Cluster {
  Node nodes[2];
  ct::FakeApiServer server;
  std::string underlay;

  ~Cluster() {
    server.stop();
    for (auto& n : nodes) n.topo.reset();  // stops the agents, removes the namespaces
    if (!underlay.empty()) (void)runChecked({"ip", "netns", "delete", underlay});
  }

  bool start() {
    for (int i = 0; i < 2; i++) {
      auto topo = ct::Topology::create(200 + i);
      if (!topo.ok()) return false;
      nodes[i].topo = std::move(*topo);
      auto a = ct::AgentNode::create(*nodes[i].topo, CILIUM_AGENT_BINARY);
      if (!a.ok()) return false;
      nodes[i].agent.emplace(std::move(*a));
      nodes[i].name = "node-" + std::to_string(i + 1);
    }
    underlay = nodes[0].topo->prefix() + "-ul";
    if (!run({"ip", "netns", "add", underlay}) ||
        !run({"ip", "-n", underlay, "link", "add", "br0", "type", "bridge"}) ||
        !run({"ip", "-n", underlay, "addr", "add", std::string(kApiServerIp) + "/24", "dev",
              "br0"}) ||
        !run({"ip", "-n", underlay, "link", "set", "br0", "up"}) ||
        !run({"ip", "-n", underlay, "link", "set", "lo", "up"}))
      return false;
    for (int i = 0; i < 2; i++) {
      std::string ns = nsName(nodes[i].topo->nodeNetns()), port = "ul" + std::to_string(i);
      if (!run({"ip", "-n", ns, "link", "add", "ul0", "type", "veth", "peer", "name", port, "netns",
                underlay}) ||
          !run({"ip", "-n", ns, "addr", "add", underlayIp(i) + "/24", "dev", "ul0"}) ||
          !run({"ip", "-n", ns, "link", "set", "ul0", "up"}) ||
          !run({"ip", "-n", underlay, "link", "set", port, "master", "br0"}) ||
          !run({"ip", "-n", underlay, "link", "set", port, "up"}))
        return false;
    }
    if (!runInNetns("/run/netns/" + underlay, [&] { return server.start(kApiServerIp, 0); }).ok())
      return false;
    (void)server.create(
        k8s::Resource<k8s::Namespace>::info(),
        {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}});
    auto op = nodes[0].topo->spawnIn(
        "/run/netns/" + underlay,
        {CILIUM_OPERATOR_BINARY, "--k8s-api-server=" + server.url(),
         "--cluster-pool-ipv4-cidr=10.200.0.0/14", "--cluster-pool-ipv4-mask-size=16",
         "--leader-election-retry-period=100ms"},
        "operator");
    if (!op.ok()) return false;
    for (int i = 0; i < 2; i++) {
      auto& n = nodes[i];
      (void)server.create(
          k8s::Resource<k8s::Node>::info(),
          {{"apiVersion", "v1"},
           {"kind", "Node"},
           {"metadata", {{"name", n.name}}},
           {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", underlayIp(i)}}}}}}});
      auto cgroup = n.topo->cgroupDir();
      if (!cgroup.ok()) return false;
      auto argv = n.agent->args({"--ipv4-range=auto", "--k8s-api-server=" + server.url(),
                                 "--k8s-sync-timeout=60", "--identity-allocation-mode=crd",
                                 "--cgroup-root=" + *cgroup});
      for (auto& a : argv)
        if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + n.name;
      auto p = n.topo->spawnIn(n.topo->nodeNetns(), argv, "agent");
      if (!p.ok() || !n.agent->waitReady(*p, 60s)) {
        std::fprintf(stderr, "agent %s not ready:\n%s\n", n.name.c_str(),
                     n.agent->log("agent").c_str());
        return false;
      }
    }
    return true;
  }

  // A pod on node i with label app=<app>: its Pod object, namespace, veth and endpoint.
  Result<ct::Pod> addPod(int i, const std::string& name, const std::string& app, int host,
                         const std::string& run = "") {
    auto& n = nodes[i];
    std::string ip = fmt::format("10.{}.{}.{}", 200 + i, host / 250, host % 250 + 2);
    json labels = {{"app", app}};
    if (!run.empty()) labels["run"] = run;
    auto created =
        server.create(k8s::Resource<k8s::Pod>::info(),
                      {{"apiVersion", "v1"},
                       {"kind", "Pod"},
                       {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", labels}}},
                       {"spec", {{"nodeName", n.name}}},
                       {"status", {{"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}});
    if (!created.ok()) return std::move(created).error();
    CILIUM_ASSIGN_OR_RETURN(auto pod, n.topo->addPod(name, ip));
    auto mtu = runChecked({"ip", "-n", nsName(pod.netns), "link", "set", "eth0", "mtu", "1450"});
    if (!mtu.ok()) return std::move(mtu).error();
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + name;
    req.container_interface_name = "eth0";
    req.interface_name = pod.host_ifname;
    req.interface_index = pod.host_ifindex;
    req.mac = pod.mac;
    req.host_mac = pod.host_mac;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = pod.ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = name;
    req.netns = pod.netns;
    CILIUM_RETURN_IF_ERROR(n.agent->client().putEndpoint(
        *api::parseEndpointRef("container-id:" + req.container_id), req));
    return pod;
  }
};

}  // namespace

int main(int argc, char** argv) {
  int pods = argc > 1 ? std::atoi(argv[1]) : 30;
  if (pods <= 0 || pods > 1000) {
    std::fprintf(stderr, "usage: pod_to_allowed_bench [pods 1..1000]\n");
    return 2;
  }
  if (auto st = ct::sweepStale(false); !st.ok())
    std::fprintf(stderr, "sweep: %s\n", st.error().toString().c_str());
  Cluster c;
  if (!c.start()) return 1;
  auto policy = c.server.create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), json::parse(R"({
      "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
      "metadata": {"name": "servers", "namespace": "default"},
      "spec": {"endpointSelector": {"matchLabels": {"app": "server"}},
               "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]}})"));
  if (!policy.ok()) return 1;
  auto local = c.addPod(0, "server-a", "server", 1);
  auto remote = c.addPod(1, "server-b", "server", 1);
  if (!local.ok() || !remote.ok()) {
    std::fprintf(stderr, "server pods: %s\n",
                 (!local.ok() ? local.error() : remote.error()).toString().c_str());
    return 1;
  }
  auto la = ct::listenTcp(local->netns, local->ip, kPort);
  auto lb = ct::listenTcp(remote->netns, remote->ip, kPort);
  if (!la.ok() || !lb.ok()) return 1;

  // The policy is in force: a pod it does not admit gets no answer from node B's server.
  auto other = c.addPod(0, "other", "other", 5);
  if (!other.ok() || ct::connectTcp(other->netns, remote->ip, kPort, 1s).ok()) {
    std::fprintf(stderr, "the policy does not deny app=other: nothing to measure\n");
    return 1;
  }
  // Each pod either shares the labels (and so the identity) of the pods before it, or has
  // labels of its own: a new identity node B learns from its CiliumIdentity before its policy
  // admits it.
  struct Series {
    std::vector<double> endpoint_ms, same_ms, cross_ms;
    int timeouts = 0;
  } shared, fresh;
  for (int k = 0; k < 2 * pods; k++) {
    const bool new_identity = k % 2 == 1;
    Series& out = new_identity ? fresh : shared;
    auto t0 = Clock::now();
    auto pod = c.addPod(0, fmt::format("client-{}", k), "client", 10 + k,
                        new_identity ? fmt::format("r{}", k) : "");
    if (!pod.ok()) {
      std::fprintf(stderr, "pod %d: %s\n", k, pod.error().toString().c_str());
      return 1;
    }
    out.endpoint_ms.push_back(msSince(t0));
    double same = -1, cross = -1;
    while ((same < 0 || cross < 0) && msSince(t0) < 30000) {
      if (same < 0 && ct::connectTcp(pod->netns, local->ip, kPort, 10ms).ok()) same = msSince(t0);
      if (cross < 0 && ct::connectTcp(pod->netns, remote->ip, kPort, 10ms).ok())
        cross = msSince(t0);
    }
    // Drain the accept queues so they never fill.
    while (ct::acceptTcp(la->get(), 0ms).ok()) {
    }
    while (ct::acceptTcp(lb->get(), 0ms).ok()) {
    }
    if (same < 0 || cross < 0) {
      out.timeouts++;
      continue;
    }
    out.same_ms.push_back(same);
    out.cross_ms.push_back(cross);
  }
  std::printf(
      "pod created on node A -> its traffic admitted by identity (CRD identities, tunnel mode, "
      "%d pods per row, probe every 10 ms; ms from the Pod object's creation)\n",
      pods);
  std::printf("  %-44s %-22s %-22s %s\n", "", "endpoint created", "admitted on node A",
              "admitted on node B");
  for (auto [name, s] : {std::pair{"identity already known (same labels)", &shared},
                         std::pair{"new identity (labels of its own)", &fresh}}) {
    std::printf("  %-44s p50 %6.1f p99 %6.1f  p50 %6.1f p99 %6.1f  p50 %6.1f p99 %6.1f\n", name,
                percentile(s->endpoint_ms, 0.5), percentile(s->endpoint_ms, 0.99),
                percentile(s->same_ms, 0.5), percentile(s->same_ms, 0.99),
                percentile(s->cross_ms, 0.5), percentile(s->cross_ms, 0.99));
    if (s->timeouts) std::printf("    %d pods not admitted within 30 s\n", s->timeouts);
  }
  std::printf(
      "kvstore mode: not measured here (bench/kvstore_bench.cc times a pod known on B "
      "through etcd)\n");
  return 0;
}
