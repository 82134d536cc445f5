// hubble_pod_to_pod_bench: pod-to-pod TCP request/response rate (1-byte request and response, as
// netperf TCP_RR) with Hubble off and on, alternating runs. Prints numbers; never fails on time.
//
//   sudo ./build/bench/hubble_pod_to_pod_bench [--seconds N] [--runs R] [--aggregation none|medium]
//
// Both modes run bpf_lxc with the same policy and drain the event ring. "off": records are read
// and discarded. "on": records go through the flow pipeline (decode, ring, Hubble metrics) and a
// gRPC client follows every flow over the Observer's Unix socket. With --aggregation none the
// datapath emits a trace for every packet at every observation point (the worst case); medium
// is the default (new connections, new TCP flags, periodic reports).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "hubble_pod_to_pod_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5, runs = 3;
  auto aggregation = datapath::MonitorAggregation::kMedium;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--aggregation" && i + 1 < argc) {
      std::string v = argv[++i];
      aggregation =
          v == "none" ? datapath::MonitorAggregation::kNone : datapath::MonitorAggregation::kMedium;
    } else {
      std::fprintf(stderr, "usage: %s [--seconds N] [--runs R] [--aggregation none|medium]\n",
                   argv[0]);
      return 2;
    }
  }
  setLogLevel("warn");
  bpf::routeLibbpfLogs();
  if (auto why = testing::privilegedUnavailableReason(); !why.empty()) {
    std::fprintf(stderr, "hubble_pod_to_pod_bench needs root and bpf(): %s\n", why.c_str());
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
  datapath::Config cfg{*pin};
  cfg.monitor_aggregation = aggregation;
  auto dp = datapath::Datapath::load(cfg);
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
  Status att = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    for (const auto* p : {&*client, &*server})
      CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(p->host_ifindex));
    return okStatus();
  });
  if (!att.ok()) die("attach", att.error());

  hubble::StaticResolver res;
  res.addEndpoint({1, 1001, "client", "default", {"k8s:app=client"}}, {*IpAddr::parse(client->ip)});
  res.addEndpoint({2, 1002, "server", "default", {"k8s:app=server"}}, {*IpAddr::parse(server->ip)});
  metrics::Registry reg;
  hubble::PipelineOptions po;
  po.node_name = "bench";
  po.datapath_lost = [&] {
    auto c = (*dp)->eventCounters();
    return c.ok() ? c->lost : 0;
  };
  hubble::FlowPipeline pipeline(po, &res, &res);
  (void)hubble::registerHubbleMetrics(reg, pipeline);
  if (auto s = pipeline.start(); !s.ok()) die("pipeline", s.error());
  hubble::ServerOptions so;
  so.unix_socket = (*topo)->tmpDir() + "/hubble.sock";
  hubble::HubbleServer hubble_server(pipeline, so);
  if (auto s = hubble_server.start(); !s.ok()) die("hubble server", s.error());

  std::atomic<bool> hubble_on{false}, stop{false};
  std::atomic<uint64_t> records{0};
  auto reader = (*dp)->openEventReader([&](const cilium_event& ev) {
    records.fetch_add(1, std::memory_order_relaxed);
    if (hubble_on.load(std::memory_order_relaxed)) pipeline.onEvent(ev);
  });
  if (!reader.ok()) die("events", reader.error());
  std::thread drain([&] {
    while (!stop) (void)(*reader)->poll(100ms);
  });

  std::vector<double> rr[2];
  std::vector<uint64_t> recs[2];
  uint16_t port = 9000;
  for (int r = 0; r < runs; r++) {
    for (int k = 0; k < 2; k++) {
      int mode = (r + k) % 2;  // 0 off, 1 on
      hubble_on = mode == 1;
      std::unique_ptr<grpc::ClientContext> ctx;
      std::thread follower;
      std::atomic<uint64_t> followed{0};
      if (mode == 1) {
        ctx = std::make_unique<grpc::ClientContext>();
        follower = std::thread([&, c = ctx.get()] {
          auto stub = observer::Observer::NewStub(
              grpc::CreateChannel("unix://" + so.unix_socket, grpc::InsecureChannelCredentials()));
          observer::GetFlowsRequest req;
          req.set_follow(true);
          auto rd = stub->GetFlows(c, req);
          observer::GetFlowsResponse resp;
          while (rd->Read(&resp)) ++followed;
        });
      }
      uint64_t before = records.load();
      auto t = testing::tcpRequestResponseRate(client->netns, server->netns, server->ip, port++,
                                               std::chrono::seconds(seconds));
      if (!t.ok()) die("tcp_rr", t.error());
      uint64_t evs = records.load() - before;
      if (ctx) {
        ctx->TryCancel();
        follower.join();
      }
      rr[mode].push_back(*t);
      recs[mode].push_back(evs);
      std::printf("run %d hubble %-3s TCP_RR %9.0f trans/s  events %9lu  followed flows %9lu\n",
                  r + 1, mode ? "on" : "off", *t, evs, followed.load());
      std::fflush(stdout);
    }
  }
  stop = true;
  drain.join();
  auto st = pipeline.stats();
  std::printf("\nTCP_RR pod to pod, aggregation %s, %d runs of %d s, median:\n",
              aggregation == datapath::MonitorAggregation::kNone ? "none" : "medium", runs,
              seconds);
  std::printf("  hubble off %10.0f trans/s\n  hubble on  %10.0f trans/s  (%+.1f%%)\n",
              median(rr[0]), median(rr[1]), 100.0 * (median(rr[1]) / median(rr[0]) - 1));
  std::printf("  flows decoded %lu, queue lost %lu, datapath lost %lu\n", st.seen_flows,
              st.queue_lost, st.datapath_lost);
  hubble_server.stop();
  Status det = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
    for (const auto* p : {&*client, &*server})
      CILIUM_RETURN_IF_ERROR((*dp)->detachEndpoint(p->host_ifindex));
    return okStatus();
  });
  (void)det;
  return 0;
}
