// cilium-demo-counters: the smallest end-to-end demo. Builds a node namespace with two pods, loads
// the embedded bpf_lxc programs, attaches them through tcx, sends real TCP between the pods and
// prints what the datapath counted. Exits 0 only if the counters saw the traffic.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

using namespace cilium;

namespace {

int fail(const char* step, const Error& e) {
  std::fprintf(stderr, "\n  FAILED at %s: %s\n", step, e.toString().c_str());
  return 1;
}

}  // namespace

int main() {
  setLogLevel("warn");
  bpf::routeLibbpfLogs();
  if (auto why = testing::privilegedUnavailableReason(); !why.empty()) {
    std::fprintf(stderr, "this demo needs root and bpf(): %s\n", why.c_str());
    return 1;
  }
  (void)testing::sweepStale(false);

  std::printf("[1/4] Creating a node network namespace with two pods\n");
  auto topo = testing::Topology::create();
  if (!topo.ok()) return fail("node", topo.error());
  auto client = (*topo)->addPod("client", "10.200.0.11");
  if (!client.ok()) return fail("pod client", client.error());
  auto server = (*topo)->addPod("server", "10.200.0.12");
  if (!server.ok()) return fail("pod server", server.error());
  std::printf("      client 10.200.0.11 via %s, server 10.200.0.12 via %s\n",
              client->host_ifname.c_str(), server->host_ifname.c_str());

  std::printf("[2/4] Loading the embedded bpf_lxc object (CO-RE) and attaching it with tcx\n");
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) return fail("pin dir", pin.error());
  auto dp = datapath::Datapath::load({*pin});
  if (!dp.ok()) return fail("load", dp.error());
  Status attached = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(client->host_ifindex));
    return (*dp)->attachEndpoint(server->host_ifindex);
  });
  if (!attached.ok()) return fail("attach", attached.error());
  std::printf("      maps pinned under %s\n", pin->c_str());

  const size_t kBytes = 10 << 20;
  std::printf("[3/4] Sending %zu MiB over TCP from client to server\n", kBytes >> 20);
  auto lfd = testing::listenTcp(server->netns, server->ip, 8080);
  if (!lfd.ok()) return fail("listen", lfd.error());
  auto c = testing::connectTcp(client->netns, server->ip, 8080);
  if (!c.ok()) return fail("connect", c.error());
  auto s = testing::acceptTcp(lfd->get());
  if (!s.ok()) return fail("accept", s.error());
  std::thread sender([&] { (void)testing::sendAll(c->get(), std::string(kBytes, 'x')); });
  auto got = testing::recvExactly(s->get(), kBytes, std::chrono::seconds(30));
  sender.join();
  if (!got.ok()) return fail("transfer", got.error());

  std::printf("[4/4] cilium_metrics, summed over CPUs:\n");
  auto metrics = (*dp)->readMetrics();
  if (!metrics.ok()) return fail("read metrics", metrics.error());
  std::printf("      %-10s %-10s %10s %14s\n", "REASON", "DIRECTION", "PACKETS", "BYTES");
  uint64_t egress_bytes = 0, ingress_bytes = 0;
  for (const auto& e : *metrics) {
    const char* dir = e.dir == METRIC_INGRESS ? "ingress" : e.dir == METRIC_EGRESS ? "egress" : "?";
    std::printf("      %-10s %-10s %10lu %14lu\n",
                e.reason == REASON_FORWARDED ? "forwarded" : "drop", dir, e.packets, e.bytes);
    if (e.dir == METRIC_EGRESS) egress_bytes += e.bytes;
    if (e.dir == METRIC_INGRESS) ingress_bytes += e.bytes;
  }
  bool ok = egress_bytes > kBytes && ingress_bytes > kBytes;
  std::printf("\n%s: the datapath counted %s of the %zu bytes sent in each direction\n",
              ok ? "OK" : "FAILED", ok ? "all" : "less than all", kBytes);
  std::printf("Cleaning up namespaces, links and pins\n");
  return ok ? 0 : 1;
}
