// metrics_bench: what the Prometheus registry costs where the agent uses it. Prints numbers;
// never fails on time; needs no root.
//
//   ./build/bench/metrics_bench [--rounds N]
//
// 1. hubble per-flow: the flow pipeline (decode -> ring -> observers) with and without the
//    hubble_* metrics registered, in alternating rounds; the difference is what the metrics
//    observer costs per flow (its label lookups and counter updates).
// 2. registry operations on one thread: a child looked up by label values then incremented (what
//    a caller pays that does not keep the child), a kept child incremented, a kept histogram
//    child observed.
// 3. scrape: the exposition text of a registry with the agent's shapes of families (counters, a
//    gauge, a histogram, and a collector emitting samples at scrape time, as the datapath
//    collectors do), at about the size of the agent's endpoint and 100 times that.
//
// Times are CPU time (the process's for the pipeline, where the producer sleeps in flush(); the
// thread's for the rest), not wall time: on a shared, loaded machine the wall clock mostly
// measures waiting for a core.
//
// Written against the registry's stable surface (counter/gauge/histogram, with(), inc(),
// observe(), addCollector(), expose()) so that the same file builds against an older registry
// for before/after runs.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/common/log.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/metrics/registry.h"
#include "tests/agent/hubble/event_builder.h"

using namespace cilium;
using namespace std::chrono_literals;

namespace {

// Nanoseconds of CPU time on `clock` (CLOCK_PROCESS_CPUTIME_ID or CLOCK_THREAD_CPUTIME_ID).
double cpuNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The mix hubble_bench uses (traces to endpoints, policy verdicts, drops, UDP), with destination
// ports spread over 100 values so that the port family sees more than one series.
std::vector<cilium_event> sampleEvents() {
  std::vector<cilium_event> out;
  for (int i = 0; i < 1000; ++i) {
    hubble::testing::EventSpec s;
    s.src = "10.200." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    s.dst = "10.200.3." + std::to_string(i % 200 + 1);
    s.sport = static_cast<uint16_t>(30000 + i);
    s.dport = static_cast<uint16_t>(8000 + i % 100);
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

// ns per flow to push `total` events through `p` in batches that never overflow its queue.
double pipelineRound(hubble::FlowPipeline& p, const std::vector<cilium_event>& evs, int total) {
  constexpr int kBatch = 2048;  // half the queue
  double start = cpuNs(CLOCK_PROCESS_CPUTIME_ID);
  for (int n = 0; n < total;) {
    for (int k = 0; k < kBatch; ++k, ++n) p.onEvent(evs[n % evs.size()]);
    if (!p.flush(10s)) std::abort();
  }
  return (cpuNs(CLOCK_PROCESS_CPUTIME_ID) - start) / total;
}

void benchHubblePerFlow(const std::vector<cilium_event>& evs, hubble::StaticResolver& res,
                        int rounds) {
  hubble::PipelineOptions o;
  o.queue_size = 4096;
  hubble::FlowPipeline without(o, &res, &res);
  hubble::FlowPipeline with(o, &res, &res);
  metrics::Registry reg;
  if (!hubble::registerHubbleMetrics(reg, with).ok()) std::abort();
  if (!without.start().ok() || !with.start().ok()) std::abort();
  constexpr int kFlows = 200000;
  // Warm up: children created, caches filled, as in an agent that has been running a while.
  pipelineRound(without, evs, kFlows / 4);
  pipelineRound(with, evs, kFlows / 4);
  std::vector<double> a, b, d;
  for (int r = 0; r < rounds; ++r) {
    double x = pipelineRound(without, evs, kFlows);
    double y = pipelineRound(with, evs, kFlows);
    a.push_back(x);
    b.push_back(y);
    d.push_back(y - x);
  }
  if (without.stats().queue_lost + with.stats().queue_lost != 0) std::abort();
  std::printf("hubble pipeline, no metrics        %8.0f ns/flow CPU (median of %d rounds of %d)\n",
              median(a), rounds, kFlows);
  std::printf("hubble pipeline, hubble_* metrics  %8.0f ns/flow\n", median(b));
  std::printf(
      "  metrics observer per flow        %8.0f ns/flow (median of the per-round "
      "differences; min %.0f, max %.0f)\n",
      median(d), *std::min_element(d.begin(), d.end()), *std::max_element(d.begin(), d.end()));
}

template <typename F>
double nsPerOp(int ops, F&& f) {
  double start = cpuNs(CLOCK_THREAD_CPUTIME_ID);
  for (int i = 0; i < ops; ++i) f(i);
  return (cpuNs(CLOCK_THREAD_CPUTIME_ID) - start) / ops;
}

void benchOperations(int rounds) {
  metrics::Registry reg;
  auto* fam = *reg.counter("bench_flows_total", "x", {"type", "subtype", "verdict"});
  auto* hist = *reg.histogram("bench_seconds", "x", {"scope"});
  const std::vector<std::string> types = {"Trace", "Drop", "PolicyVerdict"};
  const std::vector<std::string> subtypes = {"to-endpoint", "to-stack", ""};
  const std::vector<std::string> verdicts = {"FORWARDED", "DROPPED"};
  auto&& kept = fam->with({"Trace", "to-endpoint", "FORWARDED"});
  auto&& kept_hist = hist->with({"total"});
  constexpr int kOps = 1000000;
  std::vector<double> lookup, held, observe;
  for (int r = 0; r < rounds; ++r) {
    lookup.push_back(nsPerOp(kOps, [&](int i) {
      fam->with({types[i % 3], subtypes[i % 3], verdicts[i & 1]}).inc();
    }));
    held.push_back(nsPerOp(kOps, [&](int) { kept.inc(); }));
    observe.push_back(nsPerOp(kOps, [&](int i) { kept_hist.observe((i % 1000) * 1e-4); }));
  }
  std::printf("with({3 labels}).inc()             %8.1f ns/op CPU (median of %d rounds of %d)\n",
              median(lookup), rounds, kOps);
  std::printf("kept child inc()                   %8.1f ns/op\n", median(held));
  std::printf("kept histogram child observe()     %8.1f ns/op\n", median(observe));
}

// A registry shaped like the agent's and Hubble's endpoints, `scale` times bigger: scale 100 is
// 8.8k lines (thousands of ports in hubble_port_distribution_total), scale 1 about 100 lines.
void benchScrape(int scale, int rounds) {
  metrics::Registry reg;
  // hubble_port_distribution_total-like: 2 protocols x 25 ports per scale.
  auto* ports = *reg.counter("bench_port_distribution_total", "x", {"protocol", "port"});
  for (int p = 0; p < 25 * scale; ++p) {
    ports->with({"TCP", std::to_string(p + 1)}).inc(p);
    ports->with({"UDP", std::to_string(p + 1)}).inc(p);
  }
  auto* flows = *reg.counter("bench_flows_processed_total", "x", {"type", "subtype", "verdict"});
  for (int i = 0; i < 3 * scale; ++i)
    flows->with({"Trace", "point-" + std::to_string(i), "FORWARDED"}).inc(i * 1.5);
  auto* gauges = *reg.gauge("bench_ratio", "x", {"map_name"});
  for (int i = 0; i < scale; ++i) gauges->with({"cilium_map_" + std::to_string(i)}).set(i / 100.0);
  // Histogram series of 11 buckets.
  auto* hist = *reg.histogram("bench_duration_seconds", "x", {"scope"});
  for (int i = 0; i < scale; ++i)
    for (int k = 0; k < 20; ++k) hist->with({"scope-" + std::to_string(i)}).observe(k * 0.37);
  // A collector emitting samples at scrape time (cilium_drop_count_total-like).
  if (!reg.addCollector({"bench_drop_count_total",
                         "x",
                         metrics::MetricType::kCounter,
                         {"reason", "direction"}},
                        [scale](metrics::SampleSink& sink) {
                          for (int i = 0; i < 10 * scale; ++i) {
                            sink.add({"reason " + std::to_string(i), "INGRESS"}, i * 3);
                            sink.add({"reason " + std::to_string(i), "EGRESS"}, i * 7);
                          }
                        })
           .ok())
    std::abort();
  size_t bytes = 0, lines = 0;
  std::vector<double> us;
  for (int r = 0; r < rounds; ++r) {
    double start = cpuNs(CLOCK_THREAD_CPUTIME_ID);
    auto text = reg.expose();
    us.push_back((cpuNs(CLOCK_THREAD_CPUTIME_ID) - start) / 1e3);
    bytes = text.size();
    lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  std::printf("scrape, %5zu lines, %6zu bytes   %8.0f us CPU (median of %d; min %.0f)\n", lines,
              bytes, median(us), rounds, *std::min_element(us.begin(), us.end()));
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--rounds N]\n", argv[0]);
      return 2;
    }
  }
  setLogLevel("warn");
  auto evs = sampleEvents();
  hubble::StaticResolver res;
  fillResolver(res);
  benchHubblePerFlow(evs, res, rounds);
  benchOperations(rounds);
  benchScrape(1, rounds * 10);
  benchScrape(100, rounds);
  return 0;
}
