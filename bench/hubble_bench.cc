// hubble_bench: the flow pipeline without a kernel. Prints numbers; never fails on time.
//
//   ./build/bench/hubble_bench [--seconds N] [--rate R]...
//
// 1. decode: cilium_event -> flow::Flow on one core (Decoder::decode with a resolver holding 1000
//    endpoints), flows/s.
// 2. pipeline: onEvent() -> queue -> decode -> ring -> observers (Hubble metrics), as fast as one
//    producer can push, flows/s and records lost to the full queue.
// 3. paced: R events/s (default 5000, 20000, 50000, 100000) into the default pipeline (ring 4095)
//    with a gRPC client following every flow over a Unix socket; events lost in the queue, events
//    the follower missed (ring lapped it), flows it received, and the CPU the process used while
//    the events went in and were decoded (cores = CPU seconds / wall seconds: the pipeline thread,
//    the Hubble server, the producer standing in for the ring reader and the follower client
//    together, so an upper bound on what the agent spends). Run once without a follower too ("no
//    reader"): what the pipeline alone costs, losses counted at the queue.
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
  std::unique_ptr<grpc::ClientReader<observer::GetFlowsResponse>> reader;
  std::thread follower;
  if (follow) {
    reader = stub->GetFlows(&ctx, req);
    follower = std::thread([&] {
      observer::GetFlowsResponse r;
      while (reader->Read(&r)) {
        if (r.has_flow())
          ++got;
        else if (r.has_lost_events())
          missed += r.lost_events().num_events_lost();
      }
    });
  }
  std::this_thread::sleep_for(200ms);  // the stream is open before the first event
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
  // CPU over the sending and decoding only: a follower still catching up afterwards is not in it.
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cores = (cpuSeconds() - cpu0) / wall;
  auto deadline = Clock::now() + 10s;
  while (follow && got + missed < total && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  if (follow) {
    ctx.TryCancel();
    follower.join();
  }
  auto st = p.stats();
  const uint64_t lost = st.queue_lost + missed.load();
  if (follow)
    std::printf(
        "paced %7d events/s, %ds  sent %8lu  queue lost %6lu  follower got %8lu  missed %6lu  "
        "cpu %.2f cores  %s\n",
        rate, secs, total, st.queue_lost, got.load(), missed.load(), cores,
        lost == 0 ? "NO LOSS" : "LOSS");
  else
    std::printf(
        "paced %7d events/s, %ds  sent %8lu  queue lost %6lu  (no reader)%19s  cpu %.2f "
        "cores  %s\n",
        rate, secs, total, st.queue_lost, "", cores, st.queue_lost == 0 ? "NO LOSS" : "LOSS");
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
  for (int r : rates) benchPaced(evs, res, r, secs, /*follow=*/false);
  for (int r : rates) benchPaced(evs, res, r, secs, /*follow=*/true);
  return 0;
}
