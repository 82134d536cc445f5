// hubble_bench: the flow pipeline without a kernel. Prints numbers; never fails on time.
//
//   ./build/bench/hubble_bench [--seconds N] [--rate R]...
//
// 1. decode: cilium_event -> flow::Flow on one core (Decoder::decode with a resolver holding 1000
//    endpoints), flows/s.
// 2. pipeline: onEvent() -> queue -> decode -> ring -> observers (Hubble metrics), as fast as one
//    producer can push, flows/s and records lost to the full queue.
// 3. paced: R events/s (default 5000, 20000, 50000, 100000) into the default pipeline (ring 4095),
//    each rate twice side by side: without a reader, and with a gRPC client following every flow
//    over a Unix socket (`hubble observe --follow`). Per row: events offered per second, flows
//    delivered to the follower per second, events lost per stage (queue: onEvent found the queue
//    full; ring: the follower was lapped by the flow ring and missed them), and the CPU the
//    process used while the events went in and were decoded (cores = CPU seconds / wall seconds:
//    the pipeline thread, the Hubble server, the producer standing in for the ring reader and the
//    follower client together, so an upper bound on what the agent spends). The kernel ring's own
//    stage (cilium_event_stats.lost) is not in this bench: no kernel here.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/decoder.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "tests/agent/hubble/event_builder.h"

using namespace cilium;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<cilium_event> sampleEvents() {
  // A mix as bpf_lxc writes it: traces to endpoints, policy verdicts, drops, UDP.
  std::vector<cilium_event> out;
  for (int i = 0; i < 1000; ++i) {
    hubble::testing::EventSpec s;
    s.src = "10.200." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    s.dst = "10.200.3." + std::to_string(i % 200 + 1);
    s.sport = static_cast<uint16_t>(30000 + i);
    s.src_identity = 1000 + i % 50;
    s.dst_identity = 2000 + i % 50;
    switch (i % 4) {
      case 0: break;
      case 1:
        s.type = EVENT_POLICY_VERDICT;
        s.subtype = 0;
        s.match_type = 2;
        break;
      case 2: s = hubble::testing::policyDrop(); break;
      case 3:
        s.proto = 17;
        s.dport = 53;
        break;
    }
    out.push_back(hubble::testing::makeEvent(s));
  }
  return out;
}

void fillResolver(hubble::StaticResolver& r) {
  for (int i = 0; i < 1000; ++i) {
    std::string ip = "10.200." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    r.addEndpoint({static_cast<uint32_t>(i + 1),
                   static_cast<uint32_t>(1000 + i % 50),
                   "pod-" + std::to_string(i),
                   "ns-" + std::to_string(i % 10),
                   {"k8s:app=app" + std::to_string(i % 50), "k8s:io.kubernetes.pod.namespace=ns"}},
                  {*IpAddr::parse(ip)});
  }
}

void benchDecode(const std::vector<cilium_event>& evs, hubble::StaticResolver& res, int secs) {
  hubble::Decoder d(hubble::DecoderOptions{"bench", 1}, &res, &res);
  flow::Flow f;
  uint64_t n = 0;
  auto start = Clock::now(), end = start + std::chrono::seconds(secs);
  while (Clock::now() < end)
    for (int k = 0; k < 1000; ++k) (void)d.decode(evs[n++ % evs.size()], f);
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("decode (one core)            %12.0f flows/s   %6.0f ns/flow\n", n / s, 1e9 * s / n);
}

void benchPipeline(const std::vector<cilium_event>& evs, hubble::StaticResolver& res, int secs) {
  metrics::Registry reg;
  hubble::FlowPipeline p(hubble::PipelineOptions{}, &res, &res);
  (void)hubble::registerHubbleMetrics(reg, p);
  (void)p.start();
  uint64_t n = 0;
  auto start = Clock::now(), end = start + std::chrono::seconds(secs);
  while (Clock::now() < end) {
    for (int k = 0; k < 256; ++k) p.onEvent(evs[n++ % evs.size()]);
    std::this_thread::yield();
  }
  p.flush(10s);
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  auto st = p.stats();
  std::printf(
      "pipeline (push, 2 threads)   %12.0f flows/s   offered %.0f/s, queue lost %lu (%.1f%%)\n",
      st.seen_flows / s, n / s, st.queue_lost, 100.0 * st.queue_lost / n);
}

// Flows to this port only tell the follower's stream is open (benchPaced).
constexpr uint16_t kProbePort = 9;

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void benchPaced(const std::vector<cilium_event>& evs, hubble::StaticResolver& res, int rate,
                int secs, bool follow) {
  metrics::Registry reg;
  hubble::FlowPipeline p(hubble::PipelineOptions{}, &res, &res);
  (void)hubble::registerHubbleMetrics(reg, p);
  (void)p.start();
  std::string sock = "/tmp/hubble-bench-" + std::to_string(::getpid()) + ".sock";
  hubble::ServerOptions so;
  so.unix_socket = sock;
  hubble::HubbleServer server(p, so);
  if (!server.start().ok()) {
    std::printf("cannot start the server on %s\n", sock.c_str());
    return;
  }
  auto stub = observer::Observer::NewStub(
      grpc::CreateChannel("unix://" + sock, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  observer::GetFlowsRequest req;
  req.set_follow(true);
  std::atomic<uint64_t> got{0}, missed{0};
  std::atomic<bool> ready{!follow};
  std::unique_ptr<grpc::ClientReader<observer::GetFlowsResponse>> reader;
  std::thread follower;
  grpc::Status finished;
  if (follow) {
    reader = stub->GetFlows(&ctx, req);
    follower = std::thread([&] {
      observer::GetFlowsResponse r;
      while (reader->Read(&r)) {
        if (r.has_flow() && r.flow().l4().tcp().destination_port() == kProbePort)
          ready = true;  // the stream is open: probes are not counted
        else if (r.has_flow())
          ++got;
        else if (r.has_lost_events() && r.lost_events().source() == flow::HUBBLE_RING_BUFFER)
          missed += r.lost_events().num_events_lost();
      }
      finished = reader->Finish();
    });
  }
  // The follower's stream is open before the first counted event: probes go in until one
  // comes out.
  hubble::testing::EventSpec probe;
  probe.dport = kProbePort;
  for (auto until = Clock::now() + 10s; !ready && Clock::now() < until;) {
    p.onEvent(hubble::testing::makeEvent(probe));
    std::this_thread::sleep_for(20ms);
  }
  p.flush(10s);
  const uint64_t queue_lost0 = p.stats().queue_lost;
  uint64_t total = static_cast<uint64_t>(rate) * secs;
  const double cpu0 = cpuSeconds();
  auto start = Clock::now();
  // Bursts every millisecond, as the datapath's ring hands records over in batches.
  uint64_t sent = 0;
  while (sent < total) {
    auto due =
        static_cast<uint64_t>(std::chrono::duration<double>(Clock::now() - start).count() * rate);
    for (; sent < std::min(due, total); ++sent) p.onEvent(evs[sent % evs.size()]);
    std::this_thread::sleep_for(1ms);
  }
  p.flush(10s);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  auto deadline = Clock::now() + 10s;
  const uint64_t queue_lost = p.stats().queue_lost - queue_lost0;
  while (follow && got + missed + queue_lost < total && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  // Delivery rate over the time until the follower had everything (it may finish after the
  // last event went in).
  const double follow_wall = std::chrono::duration<double>(Clock::now() - start).count();
  // CPU until every event was decoded and, with a follower, delivered to it.
  const double cores = (cpuSeconds() - cpu0) / follow_wall;
  if (follow) {
    ctx.TryCancel();
    follower.join();
  }
  auto st = p.stats();
  st.queue_lost -= queue_lost0;
  // Every event is delivered or counted lost at one stage; the rest had not reached the follower
  // 10 s after the last one went in (BEHIND: late, not lost, if the stream did not fail).
  const uint64_t accounted = st.queue_lost + missed.load() + (follow ? got.load() : 0);
  const bool complete = !follow || accounted == total;
  const uint64_t lost = st.queue_lost + missed.load();
  if (follow && !finished.ok() && finished.error_code() != grpc::StatusCode::CANCELLED)
    std::printf("follower stream failed: %s\n", finished.error_message().c_str());
  std::printf(
      "%9d  %-8s  %10.0f  %10s  %9lu  %9s  %5.2f  %s\n", rate, follow ? "yes" : "no", total / wall,
      follow ? std::to_string(static_cast<uint64_t>(got.load() / follow_wall)).c_str() : "-",
      st.queue_lost, follow ? std::to_string(missed.load()).c_str() : "-", cores,
      !complete   ? "BEHIND"
      : lost == 0 ? "NO LOSS"
                  : "LOSS");
  server.stop();
}

}  // namespace

int main(int argc, char** argv) {
  int secs = 3;
  std::vector<int> rates;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc)
      secs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--rate" && i + 1 < argc)
      rates.push_back(std::max(1, std::atoi(argv[++i])));
    else {
      std::fprintf(stderr, "usage: %s [--seconds N] [--rate R]...\n", argv[0]);
      return 2;
    }
  }
  if (rates.empty()) rates = {5000, 20000, 50000, 100000};
  setLogLevel("warn");
  auto evs = sampleEvents();
  hubble::StaticResolver res;
  fillResolver(res);
  benchDecode(evs, res, secs);
  benchPipeline(evs, res, secs);
  std::printf(
      "\npaced, %ds per row (lost per stage: queue = onEvent's queue full, ring = the follower "
      "lapped by the flow ring)\n",
      secs);
  std::printf("%9s  %-8s  %10s  %10s  %9s  %9s  %5s\n", "events/s", "follower", "offered/s",
              "delivered", "queue", "ring", "cores");
  for (int r : rates) {
    benchPaced(evs, res, r, secs, /*follow=*/false);
    benchPaced(evs, res, r, secs, /*follow=*/true);
  }
  return 0;
}
