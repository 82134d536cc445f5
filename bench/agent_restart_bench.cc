// The real agent with N endpoints (N identities) in a node namespace, for each N given:
//   - PUT of each endpoint through the API (total and per-PUT latency), the agent's RSS;
//   - a policy change reaching every endpoint, from PUT /v1/policy to every endpoint reporting
//     the new revision: first one that switches ingress enforcement on (default allow -> one
//     peer), then one that changes the peer;
//   - `kill -9` -> spawn -> ready (/healthz Ok) with all N restored from state (their veths exist;
//     no pod namespaces, so no traffic), and the agent's own restore time from its log.
// CILIUM_BENCH_AGENT=<path> runs another cilium-agent binary (e.g. one built from an older
// commit) for side-by-side numbers; CILIUM_BENCH_WRAP="strace -f -c -o /tmp/x" wraps the
// restarted agent. Needs root. Prints numbers; never passes or fails.
//
//   agent_restart_bench [N ...]        (default: 1000)
#include <arpa/inet.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/netlink.h"
#include "api/client/client.h"
#include "bench/bench_net.h"
#include "tests/harness/netns.h"

namespace {

using namespace cilium;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

long rssKiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

bool waitReady(const std::string& sock, Process* agent) {
  auto deadline = Clock::now() + 600s;
  while (Clock::now() < deadline) {
    if (!agent->running()) return false;
    auto s = api::Client(api::ClientOptions{sock, 1s}).healthz();
    if (s.ok() && s->cilium && s->cilium->state == api::StatusState::kOk) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

// Endpoints whose realized policy is at `revision` or later.
size_t atRevision(api::Client& client, int64_t revision) {
  auto eps = client.listEndpoints();
  if (!eps.ok()) return 0;
  size_t n = 0;
  for (const auto& e : *eps)
    n += e.status && e.status->policy && e.status->policy->realized &&
         e.status->policy->realized->policy_revision >= revision;
  return n;
}

std::string serverPolicy(const std::string& from) {
  return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
         "metadata: {name: bench, namespace: default}\n"
         "spec:\n  endpointSelector: {}\n"
         "  ingress:\n  - fromEndpoints: [{matchLabels: {app: " +
         from + "}}]\n";
}

// PUT /v1/policy, then until every one of `n` endpoints reports the new revision (the API call
// itself waits for that, but at most 10 s).
double policyChange(api::Client& client, const std::string& text, int n) {
  auto t0 = Clock::now();
  auto res = client.putPolicy(text);
  if (!res.ok()) {
    std::fprintf(stderr, "PUT policy: %s\n", res.error().toString().c_str());
    return -1;
  }
  while (atRevision(client, res->revision) < static_cast<size_t>(n)) {
    if (msSince(t0) > 600'000) return -1;
    std::this_thread::sleep_for(10ms);
  }
  return msSince(t0);
}

// Deletes the endpoint veths one request at a time before the namespace goes. Removing a device
// that carries tcx programs waits for RCU grace periods under the rtnl lock; a namespace teardown
// does it for every device in one go, which with thousands of endpoints holds rtnl (and blocks
// every other network configuration on the machine) for minutes.
struct DeviceCleanup {
  testing::Topology* topo;
  std::vector<std::pair<int, std::string>>* devs;
  std::string pods_ns;  // deleted last, once it holds no device
  ~DeviceCleanup() {
    (void)runInNetns(topo->nodeNetns(), [&]() -> Status {
      for (const auto& [ifindex, name] : *devs) (void)datapath::netlink::deleteLink(ifindex);
      return okStatus();
    });
    (void)cilium::run({"ip", "netns", "del", pods_ns});
  }
};

// Reports a failure with the end of the agent's log.
int failed(const std::string& dir, const std::string& agent, const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::ifstream log(dir + "/" + agent + ".err");
  std::vector<std::string> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(line);
  for (size_t i = lines.size() > 20 ? lines.size() - 20 : 0; i < lines.size(); i++)
    std::fprintf(stderr, "  %s: %s\n", agent.c_str(), lines[i].c_str());
  return 1;
}

std::string agentBinary() {
  const char* other = std::getenv("CILIUM_BENCH_AGENT");
  return other ? other : CILIUM_AGENT_BINARY;
}

int run(int n) {
  std::printf("== %d endpoints, agent %s\n", n, agentBinary().c_str());
  auto topo = testing::Topology::create();
  if (!topo.ok()) return std::fprintf(stderr, "%s\n", topo.error().toString().c_str()), 1;
  auto pin = (*topo)->pinDir();
  std::string dir = (*topo)->tmpDir();
  std::string sock = dir + "/run/cilium.sock";
  std::vector<std::pair<int, std::string>> devs;  // ifindex, name
  // The pods' ends of the veths live in one namespace of their own: the agent takes only a
  // veth whose peer is in another namespace as a pod's device.
  std::string pods_ns = (*topo)->prefix() + "-pods";
  DeviceCleanup cleanup{topo->get(), &devs, pods_ns};
  auto t0 = Clock::now();
  auto made_ns = cilium::run({"ip", "netns", "add", pods_ns});
  if (!made_ns.ok() || made_ns->exit_code != 0)
    return std::fprintf(stderr, "ip netns add %s failed\n", pods_ns.c_str()), 1;
  auto pods_fd = openNetns("/run/netns/" + pods_ns);
  if (!pods_fd.ok()) return std::fprintf(stderr, "%s\n", pods_fd.error().toString().c_str()), 1;
  Status made = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    namespace nl = datapath::netlink;
    // The node's uplink comes first, with its address, as eth0 does on a real node. Without
    // one, each endpoint route makes the kernel look for a source address across every device
    // created before (inet_select_addr): 2,000 here, a quadratic cost no node has.
    CILIUM_RETURN_IF_ERROR(nl::createVeth("uplink0", "uplink1"));
    CILIUM_ASSIGN_OR_RETURN(auto up, nl::linkByName("uplink0"));
    CILIUM_RETURN_IF_ERROR(nl::addAddress4(up.ifindex, htonl(0xc0000201), 24));  // 192.0.2.1
    CILIUM_RETURN_IF_ERROR(nl::setLinkUp(up.ifindex));
    for (int i = 0; i < n; i++) {
      std::string name = "lxb" + std::to_string(i), peer = "lxp" + std::to_string(i);
      CILIUM_RETURN_IF_ERROR(nl::createVeth(name, peer, pods_fd->get()));
      CILIUM_ASSIGN_OR_RETURN(auto l, nl::linkByName(name));
      CILIUM_RETURN_IF_ERROR(nl::setLinkUp(l.ifindex));
      devs.emplace_back(l.ifindex, name);
    }
    return okStatus();
  });
  if (!made.ok()) return std::fprintf(stderr, "%s\n", made.error().toString().c_str()), 1;
  std::printf("created %d veth pairs over rtnetlink: %.0f ms\n", n, msSince(t0));

  std::vector<std::string> args = {agentBinary(),
                                   "--state-dir=" + dir + "/run",
                                   "--socket-path=" + sock,
                                   "--bpf-pin-dir=" + *pin + "/agent",
                                   "--ipv4-range=10.200.0.0/16",
                                   "--node-name=node-1"};
  auto first = (*topo)->spawnIn((*topo)->nodeNetns(), args, "agent1");
  if (!first.ok() || !waitReady(sock, *first)) return failed(dir, "agent1", "agent1 failed");

  api::Client client(api::ClientOptions{sock, 600s});
  std::vector<double> put_ms;
  t0 = Clock::now();
  for (int i = 0; i < n; i++) {
    api::EndpointChangeRequest req;
    req.container_id = "ctr" + std::to_string(i);
    req.interface_name = devs[i].second;
    req.interface_index = devs[i].first;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 =
        "10.200." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250);
    req.k8s_namespace = "default";
    req.k8s_pod_name = "pod" + std::to_string(i);
    req.labels = {"k8s:app=app" + std::to_string(i)};  // one identity per endpoint
    auto t1 = Clock::now();
    auto st = client.putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id), req);
    if (!st.ok()) return failed(dir, "agent1", fmt::format("PUT {}: {}", i, st.error().toString()));
    put_ms.push_back(msSince(t1));
  }
  double total_ms = msSince(t0);
  std::sort(put_ms.begin(), put_ms.end());
  std::printf("PUT %d endpoints (new identity each): %.0f ms; per PUT p50 %.1f ms, p90 %.1f ms\n",
              n, total_ms, put_ms[put_ms.size() / 2], put_ms[put_ms.size() * 9 / 10]);
  auto ids = client.listIdentities();
  std::printf("agent RSS with %d endpoints and %zu identities: %ld KiB\n", n,
              ids.ok() ? ids->size() : 0, rssKiB((*first)->pid()));

  double enforce_ms = policyChange(client, serverPolicy("app0"), n);
  double peers_ms = policyChange(client, serverPolicy("app1"), n);
  std::printf("policy change reaching all %d endpoints: enforce %.0f ms, change peer %.0f ms\n", n,
              enforce_ms, peers_ms);

  (*first)->signal(SIGKILL);
  (void)(*first)->wait(10s);
  t0 = Clock::now();
  std::vector<std::string> args2;
  if (const char* wrap = std::getenv("CILIUM_BENCH_WRAP")) {
    std::istringstream words(wrap);
    for (std::string w; words >> w;) args2.push_back(w);
  }
  args2.insert(args2.end(), args.begin(), args.end());
  auto second = (*topo)->spawnIn((*topo)->nodeNetns(), args2, "agent2");
  if (!second.ok() || !waitReady(sock, *second)) return failed(dir, "agent2", "agent2 failed");
  double ready_ms = msSince(t0);
  auto eps = client.listEndpoints();
  size_t ready = 0;
  if (eps.ok())
    for (const auto& e : *eps) ready += e.status && e.status->state == api::EndpointState::kReady;
  std::printf("kill -9, then spawn to ready with %d endpoints to restore: %.0f ms (%zu ready)\n", n,
              ready_ms, ready);
  std::printf("agent RSS after the restore: %ld KiB\n", rssKiB((*second)->pid()));
  if (std::ifstream log(dir + "/agent2.err"); log) {
    std::string line;
    while (std::getline(log, line))
      if (line.find("control plane started") != std::string::npos)
        std::printf("  %s\n", line.substr(line.find("control plane")).c_str());
  }
  (*second)->signal(SIGTERM);
  (void)(*second)->wait(30s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!cilium::bench::startPrivilegedBench("agent_restart_bench")) return 1;
  std::vector<int> counts;
  for (int i = 1; i < argc; i++) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts.push_back(1000);
  int rc = 0;
  for (int n : counts) rc |= run(n);
  return rc;
}
