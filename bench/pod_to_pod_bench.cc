// pod_to_pod_bench: two pods on one node, side by side without and with the datapath: TCP
// request/response rate (1-byte request, 1-byte response, as netperf TCP_RR) and single-stream
// throughput (iperf3), several alternating runs each. Prints numbers; never fails on time.
//
//   sudo ./build/bench/pod_to_pod_bench [--seconds N] [--runs R]
//
// "bare": the same namespaces and veths with no programs; the node's stack routes between the
// pods. "datapath": bpf_lxc attached, endpoints and an allow policy programmed, events drained.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <numeric>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "pod_to_pod_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

// Single-stream TCP throughput with iperf3 against a server already started, in Gbit/s
// (receiver side). Retries while the server is still coming up.
Result<double> iperf(testing::Topology& topo, const testing::Pod& client,
                     const testing::Pod& server, int seconds) {
  Result<RunOutput> out = makeError(ErrorCode::kInternal, "not run");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    out = topo.exec(client.netns,
                    {"iperf3", "-c", server.ip, "-p", "5201", "-t", std::to_string(seconds), "-J"},
                    std::chrono::seconds(seconds + 30));
    if (out.ok() && out->exit_code == 0) break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  if (!out.ok()) return out.error();
  if (out->exit_code != 0)
    return makeError(ErrorCode::kInternal, "iperf3 failed: {}", out->out.substr(0, 300));
  try {
    auto j = nlohmann::json::parse(out->out);
    return j.at("end").at("sum_received").at("bits_per_second").get<double>() / 1e9;
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInternal, "parse iperf3 output: {}", e.what());
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A positive integer argument, or exit with usage.
int number(const char* arg) {
  char* end = nullptr;
  long v = std::strtol(arg, &end, 10);
  if (end == arg || *end != '\0' || v < 1 || v > 3600) {
    std::fprintf(stderr, "pod_to_pod_bench: '%s' is not a number in 1..3600\n", arg);
    std::exit(2);
  }
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5, runs = 3;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = number(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = number(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds N] [--runs R]\n", argv[0]);
      return 2;
    }
  }
  setLogLevel("warn");
  bpf::routeLibbpfLogs();
  if (auto why = testing::privilegedUnavailableReason(); !why.empty()) {
    std::fprintf(stderr, "pod_to_pod_bench needs root and bpf(): %s\n", why.c_str());
    return 1;
  }
  (void)testing::sweepStale(false);

  auto topo = testing::Topology::create();
  if (!topo.ok()) die("topology", topo.error());
  auto client = (*topo)->addPod("client", "10.200.0.11");
  if (!client.ok()) die("pod", client.error());
  auto server = (*topo)->addPod("server", "10.200.0.12");
  if (!server.ok()) die("pod", server.error());
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) die("pin dir", pin.error());
  auto dp = datapath::Datapath::load({*pin});
  if (!dp.ok()) die("load", dp.error());
  auto maps = (*dp)->maps();
  for (auto [pod, id, identity] : {std::tuple{&*client, 1, 1001}, std::tuple{&*server, 2, 1002}}) {
    if (auto s = testing::programEndpoint(maps, *pod, static_cast<uint16_t>(id), identity); !s.ok())
      die("endpoint", s.error());
  }
  if (auto s = testing::programNode(maps, (*topo)->routerIp()); !s.ok()) die("node", s.error());
  auto rule = [](uint32_t id, uint8_t dir) {
    return datapath::PolicyEntry{datapath::policyKey(id, dir, 6, 0, 0), {}};
  };
  if (auto s = maps.policy->replace(1, std::vector{rule(1002, POLICY_EGRESS)}); !s.ok())
    die("policy", s.error());
  if (auto s = maps.policy->replace(2, std::vector{rule(1001, POLICY_INGRESS)}); !s.ok())
    die("policy", s.error());
  auto reader = (*dp)->openEventReader([](const cilium_event&) {});
  if (!reader.ok()) die("events", reader.error());

  auto setMode = [&](bool attached) {
    Status s = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
      for (const auto* p : {&*client, &*server}) {
        if (attached)
          CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(p->host_ifindex));
        else
          CILIUM_RETURN_IF_ERROR((*dp)->detachEndpoint(p->host_ifindex));
      }
      return okStatus();
    });
    if (!s.ok()) die("attach/detach", s.error());
  };

  auto srv = (*topo)->spawnIn(server->netns, {"iperf3", "-s", "-B", server->ip, "-p", "5201"},
                              "iperf3-server");
  if (!srv.ok()) die("iperf3 server", srv.error());

  std::vector<double> rr[2], gbps[2];
  uint16_t port = 9000;
  std::atomic<bool> stop{false};
  std::thread drain([&] {
    while (!stop) (void)(*reader)->poll(100ms);
  });
  for (int r = 0; r < runs; r++) {
    // Alternate which mode goes first, so drift on the machine spreads over both.
    for (int k = 0; k < 2; k++) {
      int mode = (r + k) % 2;  // 0 bare, 1 datapath
      setMode(mode == 1);
      auto t = testing::tcpRequestResponseRate(client->netns, server->netns, server->ip, port++,
                                               std::chrono::seconds(seconds));
      if (!t.ok()) die("tcp_rr", t.error());
      auto g = iperf(**topo, *client, *server, seconds);
      if (!g.ok()) die("iperf3", g.error());
      rr[mode].push_back(*t);
      gbps[mode].push_back(*g);
      std::printf("run %d %-9s TCP_RR %9.0f trans/s   iperf3 %6.2f Gbit/s\n", r + 1,
                  mode ? "datapath" : "bare", *t, *g);
      std::fflush(stdout);
    }
  }
  stop = true;
  drain.join();
  setMode(false);

  std::printf("\npod to pod on one node, %d runs of %d s each, median:\n\n", runs, seconds);
  std::printf("%-28s %14s %14s %8s\n", "", "bare veth", "datapath", "ratio");
  std::printf("%-28s %14.0f %14.0f %7.1f%%\n", "TCP_RR (transactions/s)", median(rr[0]),
              median(rr[1]), 100.0 * median(rr[1]) / median(rr[0]));
  std::printf("%-28s %14.2f %14.2f %7.1f%%\n", "iperf3 single stream (Gbit/s)", median(gbps[0]),
              median(gbps[1]), 100.0 * median(gbps[1]) / median(gbps[0]));
  auto counters = (*dp)->eventCounters();
  if (counters.ok())
    std::printf("\nevents emitted %lu, lost %lu\n", counters->emitted, counters->lost);
  return 0;
}
