// REST API costs: decoding a CNI request body, routing without sockets, and full round trips
// over the agent's Unix socket (an in-process Daemon without bpffs), including IPAM with its
// fsync'd state file. `--abuse` instead measures the API under abuse against an agent in a child
// process: /healthz latency with idle and slow-loris connections open, and the agent's RSS
// across oversized and refused bodies. Prints numbers; never passes or fails on time.
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <benchmark/benchmark.h>

#include "agent/common/fd.h"
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

// --- abuse -------------------------------------------------------------------------------------

UniqueFd connectUnix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
  return fd;
}

long rssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// One /healthz on a new connection: milliseconds, or -1 when it failed or took over 30 s.
double healthzMs(const std::string& sock) {
  api::Client c(api::ClientOptions{sock, std::chrono::seconds(30)});
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.healthz();
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r.ok() ? ms : -1;
}

std::string fmtMs(double ms) { return ms < 0 ? "no answer" : fmt::format("{:.1f} ms", ms); }

// Keeps `n` slow-loris connections open: each sends one byte of a request head every 100 ms, and
// one the agent closes is replaced at once.
class SlowLoris {
 public:
  SlowLoris(std::string sock, int n) : sock_(std::move(sock)), fds_(n) {
    thread_ = std::thread([this] {
      static constexpr char kHead[] = "GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
      std::vector<size_t> pos(fds_.size());
      while (!stop_) {
        for (size_t i = 0; i < fds_.size(); i++) {
          if (!fds_[i]) {
            fds_[i] = connectUnix(sock_);
            pos[i] = 0;
          }
          char c = pos[i] < sizeof(kHead) - 1 ? kHead[pos[i]] : 'a';
          pos[i]++;
          if (::send(fds_[i].get(), &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) fds_[i].reset();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~SlowLoris() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::string sock_;
  std::vector<UniqueFd> fds_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// PATCH /v1/config with a `bytes`-long JSON body the agent refuses (unknown options): one long
// string value, or (`many`) as many short options as fit.
int refusedBody(const std::string& sock, size_t bytes, bool many = false) {
  std::string body = R"({"options":{"no-such-option":")";
  if (many) {
    for (int i = 0; body.size() + 32 < bytes; i++) body += fmt::format(R"(","o{}":"x)", i);
    body.append(bytes - body.size() - 4, 'a');
  } else {
    body.append(bytes - body.size() - 4, 'a');
  }
  body += R"("}})";
  api::Client c(api::ClientOptions{sock, std::chrono::seconds(30)});
  auto r = c.call("PATCH", "/v1/config", body);
  return r.ok() ? r->status : -1;
}

int runAbuse() {
  int ready[2], quit[2];
  if (::pipe(ready) != 0 || ::pipe(quit) != 0) return 1;
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(quit[1]);
    {
      Agent a;
      std::string sock = a.dir + "/cilium.sock";
      (void)!::write(ready[1], sock.data(), sock.size());
      ::close(ready[1]);
      char c;
      (void)!::read(quit[0], &c, 1);  // until the parent closes it
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(quit[0]);
  char buf[256];
  ssize_t n = ::read(ready[0], buf, sizeof buf);
  if (n <= 0) return 1;
  std::string sock(buf, static_cast<size_t>(n));

  fmt::print("agent pid {} socket {}\n\n", child, sock);
  fmt::print("{:<34} {:>12} {:>12} {:>12}\n", "/healthz on a new connection", "1st", "2nd", "3rd");
  fmt::print("{:<34} {:>12} {:>12} {:>12}\n", "nothing else open", fmtMs(healthzMs(sock)),
             fmtMs(healthzMs(sock)), fmtMs(healthzMs(sock)));
  for (int idle : {16, 32, 64}) {
    std::vector<double> ms;
    for (int round = 0; round < 3; round++) {
      std::vector<UniqueFd> conns;
      for (int i = 0; i < idle; i++) conns.push_back(connectUnix(sock));
      ms.push_back(healthzMs(sock));
    }
    fmt::print("{:<34} {:>12} {:>12} {:>12}\n",
               fmt::format("{} idle connections just opened", idle), fmtMs(ms[0]), fmtMs(ms[1]),
               fmtMs(ms[2]));
  }
  for (int slow : {16, 32}) {
    SlowLoris loris(sock, slow);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    fmt::print("{:<34} {:>12} {:>12} {:>12}\n", fmt::format("{} slow-loris connections", slow),
               fmtMs(healthzMs(sock)), fmtMs(healthzMs(sock)), fmtMs(healthzMs(sock)));
  }
  // Let what the abuse left time out before measuring memory.
  std::this_thread::sleep_for(std::chrono::seconds(12));

  constexpr size_t kBody = (size_t{157} << 20) / 10;  // 15.7 MiB: under the 16 MiB limit
  auto rss = [&](const std::string& what) {
    fmt::print("{:<52} {:>9} KiB\n", what, rssKiB(child));
  };
  fmt::print("\n");
  rss("agent RSS");
  int status = refusedBody(sock, kBody);
  rss(fmt::format("after 1 refused 15.7 MiB body (HTTP {})", status));
  for (int i = 1; i < 50; i++) status = refusedBody(sock, kBody);
  rss(fmt::format("after 50 refused 15.7 MiB bodies (HTTP {})", status));
  for (int i = 0; i < 50; i++) status = refusedBody(sock, kBody, true);
  rss(fmt::format("after 50 more of ~1M short options each (HTTP {})", status));
  for (int i = 0; i < 50; i++) status = refusedBody(sock, size_t{20} << 20);
  rss(fmt::format("after 50 bodies of 20 MiB (HTTP {})", status));
  fmt::print("/healthz after all that: {}\n", fmtMs(healthzMs(sock)));

  ::close(quit[1]);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  return 0;
}

}  // namespace
}  // namespace cilium

int main(int argc, char** argv) {
  cilium::setLogLevel("warn");
  if (argc > 1 && std::string_view(argv[1]) == "--abuse") return cilium::runAbuse();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
