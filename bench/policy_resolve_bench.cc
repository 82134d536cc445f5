// Policy resolution cost: one endpoint's full map state from 1,000 rules over 1,000 identities,
// and the incremental delta when an identity appears or an address moves. Prints numbers; never
// passes or fails.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/policy/policy.h"

namespace cilium::policy {
namespace {

using nlohmann::json;

constexpr int kIdentities = 1000;
constexpr int kRules = 1000;

labels::Labels podLabels(int i) {
  return labels::Labels{
      {labels::Source::kK8s, "app", "app-" + std::to_string(i % 100)},
      {labels::Source::kK8s, "io.kubernetes.pod.namespace", "ns-" + std::to_string(i % 10)},
      {labels::Source::kK8s, "tier", i % 3 == 0 ? "front" : "back"},
      {labels::Source::kK8s, "pod", std::to_string(i)}};
}

// Every identity's pods name ports p-0..p-9, each identity with its own numbers.
std::vector<NamedPort> podPorts(int i) {
  std::vector<NamedPort> out;
  for (int k = 0; k < 10; k++)
    out.push_back({"p-" + std::to_string(k), static_cast<uint16_t>(2000 + (i * 10 + k) % 5000),
                   Protocol::kTcp});
  return out;
}

// Identity i's pod address: 10.<i % 100>.<i / 100>.1, so each of the 100 /16 blocks holds the
// addresses of 10 identities.
IpPrefix podAddress(int i) {
  return *IpPrefix::parseMasked("10." + std::to_string(i % 100) + "." + std::to_string(i / 100) +
                          ".1/32");
}

struct World {
  std::unique_ptr<identity::Allocator> ids;
  std::unique_ptr<NamedPortTable> ports = std::make_unique<NamedPortTable>();
  std::unique_ptr<ipcache::IpCache> ipcache;
  std::vector<identity::NumericIdentity> pods;
  std::unique_ptr<Engine> engine;
  Subject subject;
};

enum Shape {
  // Each rule's peer selector selects 10 identities (an app label) on the rule's own port: about
  // 10,000 distinct map keys.
  kSelective = 0,
  // Every rule selects all 1,000 identities, on one of 10 ports: 1,000,000 keys before
  // deduplication, about 10,000 after. Many overlapping rules.
  kOverlapping = 1,
  // Every rule selects all 1,000 identities on its own port: 1,000,000 distinct keys, far beyond
  // the 16,384 entries a policy map holds (the engine would refuse it; measured for scaling).
  kHuge = 2,
  // As selective, but egress to a named port (one of 10 names): each selected identity gets the
  // number its own pods give the name (a lookup per identity and name).
  kEgressNamed = 3,
  // As selective, plus 100 NetworkPolicy-style ipBlocks (10.<n>.0.0/16, selecting pods by
  // address); every identity has one address in one of them.
  kIpBlocks = 4,
};

World build(Shape shape) {
  bool wide = shape == kOverlapping || shape == kHuge;
  World w;
  setLogLevel("warn");
  w.ids = std::move(*identity::Allocator::open(""));
  w.ipcache = std::make_unique<ipcache::IpCache>(nullptr, nullptr);
  for (int i = 0; i < kIdentities; i++) {
    auto id = w.ids->allocate(podLabels(i));
    w.pods.push_back(id->id);
    if (shape == kEgressNamed)
      w.ports->setPod("pod-" + std::to_string(i), podLabels(i), podPorts(i));
    if (shape == kIpBlocks)
      (void)w.ipcache->upsert(podAddress(i), ipcache::Info{id->id, std::nullopt, 0, 0},
                              ipcache::Source::kLocal);
  }
  EngineOptions opts;
  opts.max_entries = 4u << 20;
  w.engine = std::make_unique<Engine>(*w.ids, opts, nullptr, w.ports.get(), w.ipcache.get());
  json rules = json::array();
  for (int r = 0; r < kRules; r++) {
    json peer = wide ? json{{"matchExpressions", {{{"key", "pod"}, {"operator", "Exists"}}}}}
                     : json{{"matchLabels", {{"app", "app-" + std::to_string(r % 100)}}}};
    std::string port = shape == kEgressNamed
                           ? "p-" + std::to_string(r % 10)
                           : std::to_string(1000 + (shape == kOverlapping ? r % 10 : r));
    json rule = {
        {"endpointSelector", {{"matchLabels", {{"role", "server"}}}}},
        {"labels", {"rule=" + std::to_string(r)}},
        {shape == kEgressNamed ? "egress" : "ingress",
         {{{shape == kEgressNamed ? "toEndpoints" : "fromEndpoints", {peer}},
           {"toPorts", {{{"ports", {{{"port", port}, {"protocol", "TCP"}}}}}}}}}},
    };
    if (shape == kIpBlocks && r < 100)
      rule["ingress"].push_back(
          {{"fromCIDRSet",
            {{{"cidr", "10." + std::to_string(r) + ".0.0/16"}, {"selectsPods", true}}}}});
    // Some denies, on ranges, so the deny filter has work to do.
    int deny_port = shape == kOverlapping ? 1005 : 1000 + r;
    if (r % 10 == 0)
      rule["ingressDeny"] = {{{"fromEndpoints", {peer}},
                              {"toPorts",
                               {{{"ports",
                                  {{{"port", std::to_string(deny_port)},
                                    {"endPort", deny_port + 7},
                                    {"protocol", "TCP"}}}}}}}}};
    if (r % 25 == 0)
      rule["egress"] = {{{"toEntities", {"cluster"}},
                         {"toPorts", {{{"ports", {{{"port", "53"}, {"protocol", "UDP"}}}}}}}}};
    rules.push_back(rule);
  }
  auto r = w.engine->importRules(rules.dump());
  if (!r.ok()) std::abort();
  labels::Labels l{{labels::Source::kK8s, "role", "server"},
                   {labels::Source::kK8s, "app", "server"}};
  w.subject = {1, w.ids->allocate(l)->id, l, {}};
  return w;
}

void BM_Resolve(benchmark::State& state) {
  World w = build(static_cast<Shape>(state.range(0)));
  size_t entries = 0;
  for (auto _ : state) {
    auto p = w.engine->resolve(w.subject);
    if (!p.ok()) std::abort();
    entries = p->entries.size();
    benchmark::DoNotOptimize(p);
  }
  state.counters["rules"] = kRules;
  state.counters["identities"] = kIdentities;
  state.counters["map_entries"] = static_cast<double>(entries);
}
BENCHMARK(BM_Resolve)
    ->ArgName("shape")
    ->Arg(kSelective)
    ->Arg(kOverlapping)
    ->Arg(kHuge)
    ->Arg(kEgressNamed)
    ->Arg(kIpBlocks)
    ->Unit(benchmark::kMillisecond);

// attach(): resolve plus registering the per-identity state for deltas.
void BM_Attach(benchmark::State& state) {
  World w = build(static_cast<Shape>(state.range(0)));
  for (auto _ : state) {
    auto p = w.engine->attach(w.subject);
    if (!p.ok()) std::abort();
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_Attach)
    ->ArgName("shape")
    ->Arg(kSelective)
    ->Arg(kOverlapping)
    ->Unit(benchmark::kMillisecond);

// One identity appears and disappears; the attached endpoint's deltas are computed and consumed.
void BM_IdentityDelta(benchmark::State& state) {
  World w = build(static_cast<Shape>(state.range(0)));
  if (!w.engine->attach(w.subject).ok()) std::abort();
  labels::Labels l = podLabels(5);
  l.set({labels::Source::kK8s, "pod", "new"});
  size_t upserts = 0;
  for (auto _ : state) {
    auto id = w.ids->allocate(l);
    auto d = w.engine->consumeChanges(1);
    upserts = d->upserts.size();
    (void)w.ids->release(id->id);
    benchmark::DoNotOptimize(w.engine->consumeChanges(1));
  }
  state.counters["upserts"] = static_cast<double>(upserts);
}
BENCHMARK(BM_IdentityDelta)
    ->ArgName("shape")
    ->Arg(kSelective)
    ->Arg(kOverlapping)
    ->Arg(kEgressNamed)
    ->Unit(benchmark::kMicrosecond);

// A second pod of one identity appears outside its ipBlock (the identity is no longer selected)
// and goes again; the attached endpoint's deltas are computed and consumed.
void BM_AddressDelta(benchmark::State& state) {
  World w = build(kIpBlocks);
  if (!w.engine->attach(w.subject).ok()) std::abort();
  auto outside = *IpPrefix::parseMasked("192.168.0.1/32");
  ipcache::Info info{w.pods[5], std::nullopt, 0, 0};
  size_t deletes = 0;
  for (auto _ : state) {
    (void)w.ipcache->upsert(outside, info, ipcache::Source::kLocal);
    auto d = w.engine->consumeChanges(1);
    deletes = d->deletes.size();
    (void)w.ipcache->remove(outside, ipcache::Source::kLocal);
    benchmark::DoNotOptimize(w.engine->consumeChanges(1));
  }
  state.counters["deletes"] = static_cast<double>(deletes);
}
BENCHMARK(BM_AddressDelta)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cilium::policy

BENCHMARK_MAIN();
