// Endpoint manager costs, control plane only (fake maps and devices; the kernel side of a
// regeneration is the atomic policy-map swap measured in docs/benchmarks.md separately):
//   1. regeneration p50/p99 with 100 endpoints when a policy change affects all of them;
//   2. restore() of 1,000 endpoints from the state directory (the endpoint part of start to
//      ready);
//   3. process RSS with 1,000 endpoints and 1,000 identities.
// Prints numbers; never passes or fails.
#include <arpa/inet.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "agent/common/log.h"
#include "agent/datapath/fake_maps.h"
#include "agent/endpoint/manager.h"
#include "tests/harness/temp_dir.h"

namespace cilium::endpoint {
namespace {

using Clock = std::chrono::steady_clock;

class NullDevices final : public Devices {
 public:
  Status attach(int) override { return okStatus(); }
  Status detach(int) override { return okStatus(); }
  Status addRoute(const IpAddr&, int) override { return okStatus(); }
  Status removeRoute(const IpAddr&, int) override { return okStatus(); }
  Status deleteLink(int) override { return okStatus(); }
  bool linkExists(int, const std::string&) override { return true; }
  std::vector<int> attachedLinks() override { return {}; }
  Status checkPodDevice(int, const std::string&) override { return okStatus(); }
};

struct Stack {
  datapath::FakeMaps* maps;
  NullDevices devices;
  std::unique_ptr<identity::Allocator> ids;
  std::unique_ptr<policy::Engine> engine;
  std::unique_ptr<ipcache::IpCache> ipcache;
  std::unique_ptr<Manager> mgr;

  Stack(datapath::FakeMaps& m, const std::string& dir) : maps(&m) {
    ids = std::move(*identity::Allocator::open(dir + "/ids"));
    engine = std::make_unique<policy::Engine>(*ids);
    ipcache = std::make_unique<ipcache::IpCache>(&m.ipcache, &m.runtime_config);
    Manager::Deps deps{ids.get(), engine.get(), ipcache.get(), m.view(), &devices};
    mgr = std::move(*Manager::create(deps, ManagerOptions{dir + "/state"}));
  }
  ~Stack() {
    mgr.reset();
    engine.reset();
    ipcache.reset();
    ids.reset();
  }
};

Spec spec(int i, int apps) {
  Spec s;
  s.container_id = "c" + std::to_string(i);
  s.pod_namespace = "ns-" + std::to_string(i % 10);
  s.pod_name = "pod-" + std::to_string(i);
  s.interface_name = "lxc" + std::to_string(i);
  s.ifindex = 1000 + i;
  s.mac = "02:00:00:00:00:01";
  s.host_mac = "02:00:00:00:00:02";
  s.ipv4 = IpAddr::fromHostOrder(0x0a000000u + 10 + static_cast<uint32_t>(i));
  s.labels = labels::Labels{{labels::Source::kK8s, "app", "app-" + std::to_string(i % apps)},
                            {labels::Source::kK8s, "tier", i % 3 == 0 ? "front" : "back"}};
  return s;
}

// Rules in every namespace: app-i accepts app-(i+1) on a port, plus a tier-wide rule.
std::string policyText(int apps, int port_base) {
  std::string out;
  for (int ns = 0; ns < 10; ns++) {
    for (int a = 0; a < apps; a++) {
      out += fmt::format(
          "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: r{}, "
          "namespace: ns-{}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: app-{}}}}}\n"
          "  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: app-{}}}}}]\n"
          "    toPorts: [{{ports: [{{port: \"{}\", protocol: TCP}}]}}]\n"
          "  - fromEndpoints: [{{matchLabels: {{tier: front}}}}]\n",
          a, ns, a, (a + 1) % apps, port_base + a);
    }
  }
  return out;
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

long rssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

void regeneration() {
  testing::TempDir dir;
  datapath::FakeMaps maps;
  Stack s(maps, dir.path());
  constexpr int kEndpoints = 100;
  for (int i = 0; i < kEndpoints; i++) (void)s.mgr->add(spec(i, 20));
  std::vector<std::chrono::nanoseconds> samples;
  s.mgr->setRegenerationListener([&](const RegenerationStat& st) {
    if (st.full && st.reason.rfind("policy", 0) == 0) samples.push_back(st.duration);
  });
  auto t0 = Clock::now();
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; round++) {
    auto r = s.engine->import(policyText(20, 1000 + round * 50));
    if (!r.ok()) {
      std::fprintf(stderr, "import: %s\n", r.error().message().c_str());
      return;
    }
    s.mgr->policyChanged(r->revision, r->affected_endpoints);
    s.mgr->waitForRevision(r->revision, std::chrono::seconds(60));
  }
  auto wall = Clock::now() - t0;
  s.mgr->setRegenerationListener(nullptr);
  std::sort(samples.begin(), samples.end());
  if (samples.empty()) return;
  auto pct = [&](int p) { return samples[(samples.size() - 1) * p / 100]; };
  std::printf(
      "regeneration, %d endpoints, %zu rules, %d policy changes: %zu regenerations, p50 %.3f ms, "
      "p99 %.3f ms, max %.3f ms; all endpoints at the new revision within %.1f ms per change\n",
      kEndpoints, s.engine->ruleCount(), kRounds, samples.size(), ms(pct(50)), ms(pct(99)),
      ms(samples.back()), ms(std::chrono::duration_cast<std::chrono::nanoseconds>(wall)) / kRounds);
}

void restoreAndRss() {
  testing::TempDir dir;
  datapath::FakeMaps maps;
  long rss0 = rssKiB();
  constexpr int kEndpoints = 1000;
  {
    Stack s(maps, dir.path());
    auto t0 = Clock::now();
    // 1,000 apps: one identity per endpoint.
    for (int i = 0; i < kEndpoints; i++) (void)s.mgr->add(spec(i, kEndpoints));
    auto took = Clock::now() - t0;
    std::printf("create %d endpoints: %.1f ms (%.3f ms each)\n", kEndpoints,
                ms(std::chrono::duration_cast<std::chrono::nanoseconds>(took)),
                ms(std::chrono::duration_cast<std::chrono::nanoseconds>(took)) / kEndpoints);
    std::printf(
        "RSS with %zu endpoints and %zu identities: %ld KiB (%ld KiB above the empty stack)\n",
        s.mgr->size(), s.ids->list().size(), rssKiB(), rssKiB() - rss0);
  }
  Stack s(maps, dir.path());
  (void)s.engine->import(policyText(20, 1000));
  auto t0 = Clock::now();
  auto r = s.mgr->restore();
  auto took = Clock::now() - t0;
  if (!r.ok()) {
    std::fprintf(stderr, "restore: %s\n", r.error().message().c_str());
    return;
  }
  std::printf("restore %zu endpoints (with %zu rules): %.1f ms\n", r->restored,
              s.engine->ruleCount(),
              ms(std::chrono::duration_cast<std::chrono::nanoseconds>(took)));
}

}  // namespace
}  // namespace cilium::endpoint

int main() {
  cilium::setLogLevel("warn");
  cilium::endpoint::regeneration();
  cilium::endpoint::restoreAndRss();
  return 0;
}
