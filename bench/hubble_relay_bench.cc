// hubble_relay_bench: flows/s through hubble-relay from three in-process Hubble servers (TCP on
// loopback), next to the same flows read from one node directly. Prints numbers; never fails.
//
//   ./build/bench/hubble_relay_bench [--flows N]   (N flows per node, default 50000)
//
// 1. direct: GetFlows (every flow in the ring) from one node, flows/s.
// 2. relay: GetFlows (every flow of the three nodes, merged in time order), flows/s.
// 3. relay --last N*3/10: the cluster-wide tail, flows/s of what the nodes send.
// 4. follow: three producers feed their nodes as fast as the pipelines take it; flows/s the
//    following client receives through the relay, and how many it received of those fed.
// 5. latency: producers feed paced flows (1,000/s per node for 2 s); a following client takes
//    each flow's latency (arrival minus the flow's time, i.e. from the datapath record's
//    timestamp through decoder, ring, gRPC and, via the relay, its merge): one node directly,
//    the relay with three nodes feeding, the relay with one node feeding and two quiet ones.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/relay/relay.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "tests/agent/hubble/event_builder.h"

using namespace cilium;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

struct Node {
  hubble::StaticResolver res;
  std::unique_ptr<hubble::FlowPipeline> pipeline;
  std::unique_ptr<hubble::HubbleServer> server;
};

double readAll(const std::string& target, const observer::GetFlowsRequest& req, uint64_t* n) {
  auto stub =
      observer::Observer::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto start = Clock::now();
  auto reader = stub->GetFlows(&ctx, req);
  observer::GetFlowsResponse r;
  *n = 0;
  while (reader->Read(&r)) *n += r.has_flow() ? 1 : 0;
  reader->Finish();
  return *n / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t per_node = 50000;
  for (int i = 1; i + 1 < argc; ++i)
    if (!strcmp(argv[i], "--flows")) per_node = strtoull(argv[++i], nullptr, 10);
  cilium::setLogLevel("warn");
  Node nodes[3];
  hubble::relay::PoolOptions po;
  po.tls.enabled = false;
  for (int i = 0; i < 3; ++i) {
    hubble::PipelineOptions opts;
    opts.node_name = "node-" + std::to_string(i + 1);
    opts.ring_capacity = per_node * 2;
    opts.queue_size = 1 << 16;
    nodes[i].pipeline = std::make_unique<hubble::FlowPipeline>(opts, &nodes[i].res, &nodes[i].res);
    if (!nodes[i].pipeline->start().ok()) return 1;
    hubble::ServerOptions so;
    so.tcp_address = "127.0.0.1:0";
    nodes[i].server = std::make_unique<hubble::HubbleServer>(*nodes[i].pipeline, so);
    if (!nodes[i].server->start().ok()) return 1;
    po.static_peers.push_back(
        {opts.node_name, "127.0.0.1:" + std::to_string(nodes[i].server->tcpPort()), ""});
  }
  const uint64_t base = monotonicNs() - 3600'000'000'000ULL;
  for (uint64_t j = 0; j < per_node; ++j)
    for (int i = 0; i < 3; ++i) {
      hubble::testing::EventSpec s;
      s.sport = static_cast<uint16_t>(10000 + j % 50000);
      s.ktime_ns = base + (3 * j + static_cast<uint64_t>(i)) * 1000;
      nodes[i].pipeline->onEvent(hubble::testing::makeEvent(s));
      if (j % 8192 == 8191) nodes[i].pipeline->flush(10s);
    }
  for (auto& n : nodes) n.pipeline->flush(10s);

  auto pool = hubble::relay::PeerPool::create(po);
  if (!pool.ok()) return 1;
  (*pool)->start();
  hubble::relay::RelayOptions ro;
  ro.listen_address = "127.0.0.1:0";
  hubble::relay::RelayServer relay(**pool, ro);
  if (!relay.start().ok()) return 1;
  const std::string relay_target = "127.0.0.1:" + std::to_string(relay.port());
  for (int tries = 0; tries < 500; ++tries) {
    size_t up = 0;
    for (const auto& n : (*pool)->nodes()) up += n.connected;
    if (up == 3) break;
    std::this_thread::sleep_for(10ms);
  }

  std::printf("%-40s %12s %14s\n", "read", "flows", "flows/s");
  uint64_t n = 0;
  observer::GetFlowsRequest all;
  double direct = readAll("127.0.0.1:" + std::to_string(nodes[0].server->tcpPort()), all, &n);
  std::printf("%-40s %12lu %14.0f\n", "one node directly (all)", n, direct);
  double merged = readAll(relay_target, all, &n);
  std::printf("%-40s %12lu %14.0f\n", "relay, three nodes merged (all)", n, merged);
  observer::GetFlowsRequest last;
  last.set_number(per_node * 3 / 10);
  double tail = readAll(relay_target, last, &n);
  std::printf("%-40s %12lu %14.0f\n", "relay --last (30% of the cluster)", n, tail);

  // Following while producers feed the nodes: through one node directly (only it fed), then
  // through the relay (all three fed).
  auto followRate = [&](const std::string& target, int feeding, const char* label) {
    auto stub = observer::Observer::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    observer::GetFlowsRequest follow;
    follow.set_follow(true);
    auto reader = stub->GetFlows(&ctx, follow);
    std::atomic<uint64_t> received{0};
    std::atomic<int64_t> last_ns{0};
    std::thread consumer([&] {
      observer::GetFlowsResponse r;
      while (reader->Read(&r)) {
        received += r.has_flow() ? 1 : 0;
        last_ns = Clock::now().time_since_epoch().count();
      }
    });
    std::this_thread::sleep_for(500ms);  // the streams to the nodes are open
    auto start = Clock::now();
    std::vector<std::thread> producers;
    for (int i = 0; i < feeding; ++i)
      producers.emplace_back([&, i] {
        for (uint64_t j = 0; j < per_node; ++j) {
          hubble::testing::EventSpec s;
          s.ktime_ns = monotonicNs();
          nodes[i].pipeline->onEvent(hubble::testing::makeEvent(s));
          if (j % 4096 == 4095) nodes[i].pipeline->flush(10s);
        }
        nodes[i].pipeline->flush(10s);
      });
    for (auto& t : producers) t.join();
    double feed_secs = std::chrono::duration<double>(Clock::now() - start).count();
    const uint64_t want = per_node * static_cast<uint64_t>(feeding);
    for (int waited = 0; received < want && waited < 1200; ++waited)
      std::this_thread::sleep_for(100ms);  // at most 2 minutes
    double secs =
        std::chrono::duration<double>(Clock::time_point(Clock::duration(last_ns.load())) - start)
            .count();
    std::printf("%-40s %12lu %14.0f   (fed %lu in %.1f s)\n", label, received.load(),
                received / secs, want, feed_secs);
    ctx.TryCancel();
    consumer.join();
  };
  followRate("127.0.0.1:" + std::to_string(nodes[0].server->tcpPort()), 1,
             "follow one node directly, it feeding");
  followRate(relay_target, 3, "follow relay, three nodes feeding");

  // Latency of a following client: paced flows, each measured from its own time to arrival.
  auto followLatency = [&](const std::string& target, int feeding, const char* label) {
    constexpr int kRate = 1000, kSeconds = 2;
    auto stub = observer::Observer::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    observer::GetFlowsRequest follow;
    follow.set_follow(true);
    auto reader = stub->GetFlows(&ctx, follow);
    std::vector<double> ms;
    std::atomic<uint64_t> received{0};
    std::thread consumer([&] {
      observer::GetFlowsResponse r;
      while (reader->Read(&r)) {
        if (!r.has_flow()) continue;
        auto now = std::chrono::system_clock::now().time_since_epoch();
        const auto& t = r.flow().time();
        double flow_ns = static_cast<double>(t.seconds()) * 1e9 + t.nanos();
        ms.push_back((std::chrono::duration<double, std::nano>(now).count() - flow_ns) / 1e6);
        ++received;
      }
    });
    std::this_thread::sleep_for(500ms);  // the streams to the nodes are open
    std::vector<std::thread> producers;
    for (int i = 0; i < feeding; ++i)
      producers.emplace_back([&, i] {
        auto next = Clock::now();
        for (int j = 0; j < kRate * kSeconds; ++j) {
          std::this_thread::sleep_until(next);
          next += std::chrono::microseconds(1000000 / kRate);
          hubble::testing::EventSpec s;
          s.ktime_ns = monotonicNs();
          nodes[i].pipeline->onEvent(hubble::testing::makeEvent(s));
        }
      });
    for (auto& t : producers) t.join();
    const uint64_t want = static_cast<uint64_t>(kRate) * kSeconds * feeding;
    for (int waited = 0; received < want && waited < 100; ++waited)
      std::this_thread::sleep_for(100ms);  // at most 10 s
    ctx.TryCancel();
    consumer.join();
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) {
      return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
    };
    std::printf("%-40s %12zu   p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", label,
                ms.size(), pct(0.5), pct(0.9), pct(0.99), ms.empty() ? 0.0 : ms.back());
  };
  std::printf("\n%-40s %12s   %s\n", "latency (1,000 flows/s per feeding node)", "flows",
              "flow time -> arrival at the following client");
  followLatency("127.0.0.1:" + std::to_string(nodes[0].server->tcpPort()), 1, "one node directly");
  followLatency(relay_target, 3, "relay, three nodes feeding");
  followLatency(relay_target, 1, "relay, one feeding, two quiet");
  relay.stop();
  (*pool)->stop();
  return 0;
}
