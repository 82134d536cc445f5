// cilium-demo-counters: the smallest end-to-end demo. Builds a node namespace with three pods,
// loads the embedded bpf_lxc programs, programs endpoints and an identity-based policy from C++,
// attaches the programs through tcx, and shows real TCP passing where the policy allows it and
// dropped (with Cilium's drop reason, in the events and the counters) where it does not; then
// shows both as Hubble flows through the `hubble` CLI over the Observer gRPC API.
// Exits 0 only if both happened.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/monitor.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

using namespace cilium;

namespace {

int fail(const char* step, const Error& e) {
  std::fprintf(stderr, "\n  FAILED at %s: %s\n", step, e.toString().c_str());
  return 1;
}

datapath::PolicyEntry allow(uint32_t identity, uint8_t dir, uint8_t proto = 0, uint16_t port = 0) {
  datapath::PolicyEntry e;
  e.key = datapath::policyKey(identity, dir, proto, port, proto ? 16 : 0);
  return e;
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

  std::printf("[1/6] Creating a node network namespace with three pods\n");
  auto topo = testing::Topology::create();
  if (!topo.ok()) return fail("node", topo.error());
  auto client = (*topo)->addPod("client", "10.200.0.11");
  if (!client.ok()) return fail("pod client", client.error());
  auto server = (*topo)->addPod("server", "10.200.0.12");
  if (!server.ok()) return fail("pod server", server.error());
  auto other = (*topo)->addPod("other", "10.200.0.13");
  if (!other.ok()) return fail("pod other", other.error());

  std::printf("[2/6] Loading bpf_lxc (CO-RE), programming endpoints and policy, attaching (tcx)\n");
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) return fail("pin dir", pin.error());
  auto dp = datapath::Datapath::load({*pin});
  if (!dp.ok()) return fail("load", dp.error());
  auto maps = (*dp)->maps();
  struct {
    testing::Pod* pod;
    uint16_t id;
    uint32_t identity;
  } eps[] = {{&*client, 1, 1001}, {&*server, 2, 1002}, {&*other, 3, 1003}};
  for (auto& e : eps) {
    if (auto s = testing::programEndpoint(maps, *e.pod, e.id, e.identity); !s.ok())
      return fail("program endpoint", s.error());
  }
  if (auto s = testing::programNode(maps, (*topo)->routerIp()); !s.ok())
    return fail("program node", s.error());
  // Egress unrestricted for everyone; the server admits identity 1001 (client) on TCP 8080 only.
  for (auto& e : eps) {
    std::vector<datapath::PolicyEntry> p{allow(0, POLICY_EGRESS)};
    if (e.id == 2)
      p.push_back(allow(1001, POLICY_INGRESS, 6, 8080));
    else
      p.push_back(allow(0, POLICY_INGRESS));
    if (auto s = maps.policy->replace(e.id, p); !s.ok()) return fail("policy", s.error());
  }
  (void)datapath::bumpPolicyRevision(*maps.runtime_config);
  // Hubble: every record also goes to the flow pipeline, served on a Unix socket.
  hubble::StaticResolver pods;
  for (auto& e : eps)
    pods.addEndpoint({e.id, e.identity, e.pod->name, "default", {"k8s:app=" + e.pod->name}},
                     {*IpAddr::parse(e.pod->ip)});
  hubble::FlowPipeline flows(hubble::PipelineOptions{"demo-node"}, &pods, &pods);
  if (auto st = flows.start(); !st.ok()) return fail("hubble pipeline", st.error());
  hubble::ServerOptions hubble_opts;
  hubble_opts.unix_socket = (*topo)->tmpDir() + "/hubble.sock";
  hubble::HubbleServer hubble_server(flows, hubble_opts);
  if (auto st = hubble_server.start(); !st.ok()) return fail("hubble server", st.error());
  std::vector<cilium_event> drops;
  auto reader = (*dp)->openEventReader([&](const cilium_event& ev) {
    if (ev.type == EVENT_DROP) drops.push_back(ev);
    flows.onEvent(ev);
  });
  if (!reader.ok()) return fail("event reader", reader.error());
  Status attached = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    for (auto& e : eps) CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(e.pod->host_ifindex));
    return okStatus();
  });
  if (!attached.ok()) return fail("attach", attached.error());
  std::printf(
      "      client 10.200.0.11 (identity 1001), server 10.200.0.12 (1002), other "
      "10.200.0.13 (1003)\n      policy: server admits identity 1001 on TCP 8080\n");

  const size_t kBytes = 10 << 20;
  std::printf("[3/6] client -> server:8080, %zu MiB over TCP: ", kBytes >> 20);
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
  std::printf("delivered\n");

  std::printf("[4/6] other -> server:8080 (identity 1003 is not allowed): ");
  auto denied = testing::connectTcp(other->netns, server->ip, 8080, std::chrono::seconds(2));
  bool blocked = !denied.ok() && denied.error().code() == ErrorCode::kDeadlineExceeded;
  std::printf("%s\n", blocked ? "blocked" : "NOT blocked");
  (void)(*reader)->consume();
  for (const auto& ev : drops) std::printf("      event: %s\n", datapath::formatEvent(ev).c_str());

  std::printf("[5/6] cilium_metrics, summed over CPUs:\n");
  auto metrics = (*dp)->readMetrics();
  if (!metrics.ok()) return fail("read metrics", metrics.error());
  std::printf("      %-28s %-10s %10s %14s\n", "REASON", "DIRECTION", "PACKETS", "BYTES");
  uint64_t forwarded_bytes = 0, policy_drops = 0;
  for (const auto& e : *metrics) {
    const char* dir = e.dir == METRIC_INGRESS ? "ingress" : e.dir == METRIC_EGRESS ? "egress" : "?";
    std::string reason =
        e.reason == REASON_FORWARDED ? "forwarded" : datapath::dropReasonName(e.reason);
    std::printf("      %-28s %-10s %10lu %14lu\n", reason.c_str(), dir, e.packets, e.bytes);
    if (e.reason == REASON_FORWARDED) forwarded_bytes += e.bytes;
    if (e.reason == DROP_POLICY) policy_drops += e.packets;
  }

  std::printf("[6/6] hubble observe --server unix://%s --last 12:\n",
              hubble_opts.unix_socket.c_str());
  (void)flows.flush(std::chrono::seconds(5));
  auto observed = run({CILIUM_HUBBLE_BINARY, "--server", "unix://" + hubble_opts.unix_socket,
                       "observe", "--last", "12"},
                      {}, std::chrono::seconds(30));
  if (!observed.ok()) return fail("hubble observe", observed.error());
  std::printf("%s%s", observed->out.c_str(), observed->err.c_str());
  bool flows_shown = observed->exit_code == 0 &&
                     observed->out.find("Policy denied DROPPED") != std::string::npos &&
                     observed->out.find("FORWARDED") != std::string::npos;
  hubble_server.stop();

  bool ok = forwarded_bytes > 2 * kBytes && blocked && policy_drops > 0 && flows_shown;
  std::printf(
      "\n%s: allowed traffic was delivered and counted, denied traffic was dropped as "
      "\"Policy denied\", and hubble showed both\n",
      ok ? "OK" : "FAILED");
  std::printf("Cleaning up namespaces, links and pins\n");
  return ok ? 0 : 1;
}
