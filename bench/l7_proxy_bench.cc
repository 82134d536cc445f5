// l7_proxy_bench: HTTP/1.1 keep-alive requests between two pods on one node, side by side in one
// run: "direct" (the server's port allowed at L4) and "proxy" (the port redirected to cilium-proxy
// with 10 HTTP rules, the matching one last). wrk in the client pod, a minimal keep-alive HTTP
// responder in the server pod. Alternating runs; prints requests/s, wrk's p50/p99 latency, and
// for the proxy the CPU time its process spent per request (user+system, from /proc: steadier
// than requests/s on a shared machine). The pods are dual stack: "direct6" and "proxy6" are the
// same over IPv6 (the proxy's [::1] listener). Never fails on time.
//
//   sudo ./build/bench/l7_proxy_bench [--seconds N] [--runs R] [--connections C] [--threads T]
//                                     [--proxy-binary PATH]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <regex>
#include <sstream>
#include <thread>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/proxy/manager.h"
#include "agent/proxy/ports.h"
#include "bench/bench_net.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kClientId = 1001, kServerId = 1002;

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "l7_proxy_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

// Answers every request head (no bodies) with a fixed 200, one thread per connection.
class Responder {
 public:
  explicit Responder(UniqueFd listener) : listener_(std::move(listener)) {
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Responder() {
    stop_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
    for (auto& t : conns_) t.join();
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      int fd = ::accept(listener_.get(), nullptr, nullptr);
      if (fd < 0) return;
      conns_.emplace_back([fd] {
        static const std::string resp =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        std::string buf;
        char tmp[16384];
        for (;;) {
          ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
          if (n <= 0) break;
          buf.append(tmp, static_cast<size_t>(n));
          size_t pos;
          std::string out;
          while ((pos = buf.find("\r\n\r\n")) != std::string::npos) {
            buf.erase(0, pos + 4);
            out += resp;
          }
          if (!out.empty() && !testing::sendAll(fd, out).ok()) break;
        }
        ::close(fd);
      });
    }
  }
  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

// User+system CPU seconds of a process so far.
double cpuSeconds(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return 0;
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  auto rest = stat->substr(stat->rfind(')') + 2);
  std::istringstream in(rest);
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; i++) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct WrkResult {
  double rps = 0, p50_ms = 0, p99_ms = 0;
};

double toMs(const std::string& v, const std::string& unit) {
  double x = std::stod(v);
  if (unit == "us") return x / 1000;
  if (unit == "s") return x * 1000;
  return x;
}

Result<WrkResult> wrk(testing::Topology& topo, const testing::Pod& client, const std::string& url,
                      int seconds, int connections) {
  CILIUM_ASSIGN_OR_RETURN(auto out,
                          topo.exec(client.netns,
                                    {"wrk", "-t1", "-c" + std::to_string(connections),
                                     "-d" + std::to_string(seconds) + "s", "--latency", url},
                                    std::chrono::seconds(seconds + 30)));
  if (out.exit_code != 0) return makeError(ErrorCode::kInternal, "wrk: {}", out.err);
  WrkResult r;
  std::smatch m;
  if (std::regex_search(out.out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))")))
    r.rps = std::stod(m[1]);
  if (std::regex_search(out.out, m, std::regex(R"(\n\s+50%\s+([0-9.]+)(us|ms|s))")))
    r.p50_ms = toMs(m[1], m[2]);
  if (std::regex_search(out.out, m, std::regex(R"(\n\s+99%\s+([0-9.]+)(us|ms|s))")))
    r.p99_ms = toMs(m[1], m[2]);
  if (std::regex_search(out.out, m, std::regex(R"(Non-2xx or 3xx responses:\s+([0-9]+))")))
    return makeError(ErrorCode::kInternal, "{} requests were not answered 2xx", m[1].str());
  if (r.rps == 0) return makeError(ErrorCode::kInternal, "no rate in wrk output: {}", out.out);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5, runs = 3, connections = 8, threads = 1;
  std::string proxy_binary = CILIUM_PROXY_BINARY;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--connections" && i + 1 < argc) {
      connections = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--proxy-binary" && i + 1 < argc) {
      proxy_binary = argv[++i];  // another build's cilium-proxy, for before/after numbers
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds N] [--runs R] [--connections C] [--threads T] "
                   "[--proxy-binary PATH]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!bench::startPrivilegedBench("l7_proxy_bench")) return 1;

  auto topo = testing::Topology::create(206);
  if (!topo.ok()) die("topology", topo.error());
  if (auto st = (*topo)->enableNodeIpv6(); !st.ok()) die("node IPv6", st.error());
  auto client = (*topo)->addPod("client", "10.206.0.11", "fd00:206::11");
  if (!client.ok()) die("pod", client.error());
  auto server = (*topo)->addPod("server", "10.206.0.12", "fd00:206::12");
  if (!server.ok()) die("pod", server.error());
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) die("pin dir", pin.error());
  auto dp = datapath::Datapath::load({*pin});
  if (!dp.ok()) die("load", dp.error());
  auto maps = (*dp)->maps();
  if (auto st = testing::programEndpoint(maps, *client, 1, kClientId); !st.ok())
    die("ep", st.error());
  if (auto st = testing::programEndpoint(maps, *server, 2, kServerId); !st.ok())
    die("ep", st.error());
  if (auto st = testing::programNode(maps, (*topo)->routerIp()); !st.ok()) die("node", st.error());
  auto ports = runInNetnsValue<proxy::ProxyPortSet>(
      (*topo)->nodeNetns(), [&]() -> Result<proxy::ProxyPortSet> {
        for (const auto* p : {&*client, &*server})
          CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(p->host_ifindex));
        CILIUM_RETURN_IF_ERROR((*dp)->enableProxyRedirect());
        return proxy::loadOrAllocatePorts((*topo)->tmpDir(), 10000, 10999);
      });
  if (!ports.ok()) die("proxy redirect", ports.error());
  auto entry = [](uint32_t id, uint8_t dir, uint16_t port, uint16_t proxy_port) {
    datapath::PolicyEntry e{datapath::policyKey(id, dir, port ? 6 : 0, port, port ? 16 : 0), {}};
    e.value.proxy_port = htons(proxy_port);
    return e;
  };
  std::vector<datapath::PolicyEntry> client_policy = {entry(0, POLICY_EGRESS, 0, 0)};
  std::vector<datapath::PolicyEntry> server_policy = {
      entry(kClientId, POLICY_INGRESS, 8080, 0),
      entry(kClientId, POLICY_INGRESS, 80, ports->http_ingress)};
  if (auto st = maps.policy->replace(1, client_policy); !st.ok()) die("policy", st.error());
  if (auto st = maps.policy->replace(2, server_policy); !st.ok()) die("policy", st.error());
  if (auto st = datapath::bumpPolicyRevision(*maps.runtime_config); !st.ok())
    die("rev", st.error());

  proxy::ManagerOptions mo;
  mo.socket_path = (*topo)->tmpDir() + "/proxy.sock";
  mo.ports = *ports;
  auto manager = proxy::Manager::start(mo);
  if (!manager.ok()) die("proxy manager", manager.error());
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kIngress;
  rule.proto = 6;
  rule.port = 80;
  rule.bits = 16;
  rule.identities = {kClientId};
  for (int i = 0; i < 9; i++)
    rule.http.push_back({"POST", "/v1/rule-" + std::to_string(i) + "/[a-z]+", "", {}, {}});
  rule.http.push_back({"GET", "/bench(/.*)?", "", {}, {}});
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  (*manager)->l7PoliciesChanged(
      {{2, kServerId, *IpAddr::parse(server->ip), l7, *IpAddr::parse(server->ip6)}});
  auto proxy_proc = (*topo)->spawnIn(
      (*topo)->nodeNetns(), {proxy_binary, "--no-supervisor", "--agent-socket", mo.socket_path,
                             "--state-dir", (*topo)->tmpDir() + "/proxy-state", "--bpf-pin-dir",
                             *pin, "--threads", std::to_string(threads)});
  if (!proxy_proc.ok()) die("cilium-proxy", proxy_proc.error());
  if (!testing::eventually([&] {
        auto s = (*manager)->status();
        return s.connected && s.acked >= s.version;
      }))
    die("cilium-proxy", Error(ErrorCode::kDeadlineExceeded, "no acknowledgement"));

  std::vector<std::unique_ptr<Responder>> servers;
  for (const std::string& ip : {server->ip, server->ip6}) {
    for (uint16_t port : {80, 8080}) {
      auto l = testing::listenTcp(server->netns, ip, port);
      if (!l.ok()) die("listen", l.error());
      servers.push_back(std::make_unique<Responder>(std::move(*l)));
    }
  }

  std::string load = readFile("/proc/loadavg").valueOr("?");
  std::printf(
      "HTTP/1.1 keep-alive GET, wrk -t1 -c%d, %d s per run, %d runs each, alternating; "
      "%s --threads %d; load average at start: %s",
      connections, seconds, runs, proxy_binary.c_str(), threads, load.c_str());
  std::printf("%-8s %12s %10s %10s %18s\n", "mode", "requests/s", "p50 ms", "p99 ms",
              "proxy CPU us/req");
  std::vector<double> direct, proxied, direct6, proxied6;
  struct Mode {
    const char* name;
    uint16_t port;
    bool v6;
    std::vector<double>* rps;
  };
  for (int r = 0; r < runs; r++) {
    for (auto [mode, port, v6, out] :
         {Mode{"direct", 8080, false, &direct}, Mode{"proxy", 80, false, &proxied},
          Mode{"direct6", 8080, true, &direct6}, Mode{"proxy6", 80, true, &proxied6}}) {
      double cpu_before = cpuSeconds((*proxy_proc)->pid());
      std::string host = v6 ? "[" + server->ip6 + "]" : server->ip;
      auto res = wrk(**topo, *client, "http://" + host + ":" + std::to_string(port) + "/bench/item",
                     seconds, connections);
      if (!res.ok()) die(mode, res.error());
      double cpu = cpuSeconds((*proxy_proc)->pid()) - cpu_before;
      std::string per_req =
          port == 80 ? fmt::format("{:.1f}", cpu * 1e6 / (res->rps * seconds)) : "-";
      std::printf("%-8s %12.0f %10.3f %10.3f %18s\n", mode, res->rps, res->p50_ms, res->p99_ms,
                  per_req.c_str());
      std::fflush(stdout);
      out->push_back(res->rps);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("median requests/s: direct %.0f, proxy %.0f (%.0f %% of direct)\n", median(direct),
              median(proxied), 100.0 * median(proxied) / median(direct));
  std::printf("median requests/s IPv6: direct %.0f, proxy %.0f (%.0f %% of direct)\n",
              median(direct6), median(proxied6), 100.0 * median(proxied6) / median(direct6));
  servers.clear();
  return 0;
}
