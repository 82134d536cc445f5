// REST API costs: decoding a CNI request body, routing without sockets, and full round trips
// over the agent's Unix socket (an in-process Daemon without bpffs), including IPAM with its
// fsync'd state file. Prints numbers; never passes or fails on time.
#include <stdlib.h>

#include <filesystem>

#include <benchmark/benchmark.h>

#include "agent/common/log.h"
#include "agent/daemon/daemon.h"
#include "api/client/client.h"

namespace cilium {
namespace {

constexpr char kCniBody[] =
    R"({"container-id":"3f5c0e9a8b7c4d2e1f0a","container-interface-name":"eth0",)"
    R"("labels":["k8s:app=xwing","k8s:io.kubernetes.pod.namespace=default"],)"
    R"("interface-name":"lxc1234567890ab","interface-index":17,"state":"waiting-for-identity",)"
    R"("mac":"0a:58:0a:c8:00:02","host-mac":"3e:1f:00:aa:bb:cc",)"
    R"("addressing":{"ipv4":"10.200.0.2"},"k8s-pod-name":"xwing","k8s-namespace":"default",)"
    R"("sync-build-endpoint":true,"netns":"/var/run/netns/cni-1"})";

void BM_DecodeEndpointChangeRequest(benchmark::State& state) {
  for (auto _ : state) {
    auto r = api::decodeText<api::EndpointChangeRequest>(kCniBody);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_DecodeEndpointChangeRequest);

void BM_RouterDispatch(benchmark::State& state) {
  api::Router router;
  (void)router.add(
      api::Method::kPut, "/v1/endpoint/{id}", [](const api::Request& r) -> Result<api::Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ecr,
                                r.decodeBody<api::EndpointChangeRequest>("EndpointChangeRequest"));
        return api::Response::empty(201);
      });
  for (int i = 0; i < 20; i++)
    (void)router.add(
        api::Method::kGet, "/v1/other" + std::to_string(i) + "/{x}",
        [](const api::Request&) -> Result<api::Response> { return api::Response::empty(); });
  for (auto _ : state) {
    auto res = router.dispatch("PUT", "/v1/endpoint/container-id:3f5c0e9a8b7c", {}, kCniBody);
    benchmark::DoNotOptimize(res);
  }
}
BENCHMARK(BM_RouterDispatch);

// One agent for the socket benchmarks.
struct Agent {
  std::string dir;
  std::unique_ptr<daemon::Daemon> d;
  Agent() {
    char tmpl[] = "/tmp/cilbench-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto cfg = daemon::loadConfig({"--state-dir=" + dir, "--socket-path=" + dir + "/cilium.sock",
                                   "--ipv4-range=10.0.0.0/16", "--node-name=bench"},
                                  daemon::Environment::system());
    daemon::DaemonOptions o;
    o.manage_bpffs = false;
    d = std::make_unique<daemon::Daemon>(cfg->config, o);
    if (!d->start().ok()) std::abort();
  }
  ~Agent() {
    d->stop();
    std::filesystem::remove_all(dir);
  }
  api::Client client() {
    return api::Client(api::ClientOptions{dir + "/cilium.sock", std::chrono::seconds(5)});
  }
};

Agent& agent() {
  static Agent a;
  return a;
}

void BM_HealthzRoundTrip(benchmark::State& state) {
  auto c = agent().client();
  for (auto _ : state) {
    auto s = c.healthz();
    if (!s.ok()) state.SkipWithError(s.error().message().c_str());
  }
}
BENCHMARK(BM_HealthzRoundTrip)->UseRealTime();

void BM_IpamAllocateReleaseRoundTrip(benchmark::State& state) {
  auto c = agent().client();
  for (auto _ : state) {
    auto a = c.ipamAllocate(IpFamily::kV4, "bench/pod");
    if (!a.ok() || !c.ipamRelease(a->address.ipv4).ok()) state.SkipWithError("ipam failed");
  }
}
BENCHMARK(BM_IpamAllocateReleaseRoundTrip)->UseRealTime();

}  // namespace
}  // namespace cilium

int main(int argc, char** argv) {
  cilium::setLogLevel("warn");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
