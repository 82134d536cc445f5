// Connection latency, TCP_CRR, stream throughput, servers and the shared scaffolding (errors,
// commands, medians, arguments) of the network benchmarks.
#include "bench/bench_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

namespace cilium::bench {

void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what.c_str(),
               e.toString().c_str());
  std::exit(1);
}

void must(Status s, const std::string& what) {
  if (!s.ok()) die(what, s.error());
}

Status runOk(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  if (!r.ok()) return r.error();
  return okStatus();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string summary(const std::vector<double>& v, int prec) {
  if (v.empty()) return "-";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return fmt::format("{:.{}f} ({:.{}f}-{:.{}f})", median(v), prec, *lo, prec, *hi, prec);
}

int number(const char* arg) {
  char* end = nullptr;
  long v = std::strtol(arg, &end, 10);
  if (end == arg || *end != '\0' || v < 1 || v > 3600) {
    std::fprintf(stderr, "%s: '%s' is not a number in 1..3600\n", program_invocation_short_name,
                 arg);
    std::exit(2);
  }
  return static_cast<int>(v);
}

bool modeWanted(const std::string& modes, const char* mode) {
  return ("," + modes + ",").find(std::string(",") + mode + ",") != std::string::npos;
}

bool startPrivilegedBench(const char* name) {
  setLogLevel("warn");
  bpf::routeLibbpfLogs();
  if (auto why = testing::privilegedUnavailableReason(); !why.empty()) {
    std::fprintf(stderr, "%s needs root and bpf(): %s\n", name, why.c_str());
    return false;
  }
  (void)testing::sweepStale(false);
  return true;
}
namespace {

using Clock = std::chrono::steady_clock;

// A destination of either family (IPv6 when `ip` has a colon).
struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Address address(const std::string& ip, uint16_t port) {
  Address a;
  if (ip.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr);
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &in->sin_addr);
  a.len = sizeof(sockaddr_in);
  return a;
}

}  // namespace

Result<ConnectStats> measureConnects(const std::string& netns, const std::string& ip, uint16_t port,
                                     int n) {
  std::vector<double> us;
  us.reserve(n);
  size_t failed = 0;
  auto start = Clock::now();
  int warmup = n / 10;
  CILIUM_RETURN_IF_ERROR(runInNetns(netns, [&]() -> Status {
    Address a = address(ip, port);
    linger lg{1, 0};
    for (int i = -warmup; i < n; i++) {
      UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) return errnoError(errno, "socket");
      ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      if (i == 0) start = Clock::now();
      auto t0 = Clock::now();
      int r = ::connect(fd.get(), a.sa(), a.len);
      auto t1 = Clock::now();
      if (i < 0) continue;  // a warm-up connection
      if (r == 0)
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      else
        failed++;
    }
    return okStatus();
  }));
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ConnectStats s;
  s.failed = failed;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  s.max_us = us.back();
  s.per_sec = static_cast<double>(us.size()) / secs;
  return s;
}

Status prepareCrrClient(const std::string& netns) {
  // /proc/sys/net shows the namespace of the thread that opens it.
  return runInNetns(netns, []() -> Status {
    for (auto [path, value] : {std::pair{"/proc/sys/net/ipv4/ip_local_port_range", "1024 65535"},
                               std::pair{"/proc/sys/net/ipv4/tcp_tw_reuse", "1"}}) {
      std::ofstream(path) << value << "\n";
      std::string got;
      std::getline(std::ifstream(path), got);
      std::string want = value;
      std::replace(got.begin(), got.end(), '\t', ' ');
      if (got != want)
        return makeError(ErrorCode::kInternal, "{}: wrote '{}', reads '{}'", path, want, got);
    }
    return okStatus();
  });
}

Result<CrrStats> measureCrr(const std::string& netns, const std::string& ip, uint16_t port,
                            double seconds, double warmup) {
  std::vector<float> us;
  us.reserve(static_cast<size_t>(seconds * 30000));
  CrrStats s;
  double measured_secs = 0;
  CILIUM_RETURN_IF_ERROR(runInNetns(netns, [&]() -> Status {
    Address a = address(ip, port);
    timeval tv{2, 0};  // a lost peer ends a transaction, not the benchmark
    auto start = Clock::now();
    auto measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(warmup));
    auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(seconds));
    auto t0 = start;
    bool measuring = false;
    while (t0 < end) {
      if (!measuring && t0 >= measure_from) {
        measuring = true;
        measure_from = t0;
      }
      bool ok = false;
      {
        UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) return errnoError(errno, "socket");
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char b = 'q';
        ok = ::connect(fd.get(), a.sa(), a.len) == 0 &&
             ::send(fd.get(), &b, 1, MSG_NOSIGNAL) == 1 && ::recv(fd.get(), &b, 1, 0) == 1;
      }  // close(): the client's FIN
      auto t1 = Clock::now();
      if (measuring) {
        if (ok)
          us.push_back(std::chrono::duration<float, std::micro>(t1 - t0).count());
        else
          s.failed++;
      }
      t0 = t1;
    }
    measured_secs = std::chrono::duration<double>(t0 - measure_from).count();
    return okStatus();
  }));
  s.transactions = us.size();
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  s.max_us = us.back();
  s.per_sec = static_cast<double>(us.size()) / measured_secs;
  return s;
}

Result<std::unique_ptr<CrrServer>> CrrServer::start(const std::string& netns, const std::string& ip,
                                                    uint16_t port) {
  std::unique_ptr<CrrServer> s(new CrrServer());
  CILIUM_ASSIGN_OR_RETURN(s->listener_, testing::listenTcp(netns, ip, port));
  // A deep backlog: a descheduled server must not overflow its accept queue (a dropped SYN
  // costs the client a 1 s retransmission and the benchmark its p99).
  if (::listen(s->listener_.get(), 4096) != 0) return errnoError(errno, "listen");
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

CrrServer::~CrrServer() {
  stop_ = true;
  // Wakes the blocking accept() (it returns EINVAL on a shut-down listener).
  if (listener_) ::shutdown(listener_.get(), SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

void CrrServer::run() {
  timeval tv{2, 0};
  char buf[64];
  while (!stop_) {
    UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stop_) return;
      continue;
    }
    ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b;
    if (::recv(c.get(), &b, 1, 0) != 1 || ::send(c.get(), &b, 1, MSG_NOSIGNAL) != 1) continue;
    // The client closes first; its FIN ends the transaction here.
    while (::recv(c.get(), buf, sizeof(buf), 0) > 0) {
    }
    served_++;
  }
}

Result<double> streamGbps(const std::string& netns, const std::string& ip, uint16_t port,
                          double seconds) {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, testing::connectTcp(netns, ip, port));
  std::vector<char> buf(64 * 1024, 'x');
  uint64_t sent = 0;
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    ssize_t n = ::send(fd.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "stream send");
    }
    sent += static_cast<uint64_t>(n);
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(sent) * 8 / secs / 1e9;
}

Result<std::unique_ptr<SinkServer>> SinkServer::start(const std::string& netns,
                                                      const std::string& ip, uint16_t port) {
  std::unique_ptr<SinkServer> s(new SinkServer());
  CILIUM_ASSIGN_OR_RETURN(s->listener_, testing::listenTcp(netns, ip, port));
  // A deep backlog and a non-blocking accept loop: a client connecting as fast as it can must
  // never see the server's accept queue overflow (a dropped SYN costs it a second).
  if (::listen(s->listener_.get(), 4096) != 0) return errnoError(errno, "listen");
  int flags = ::fcntl(s->listener_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(s->listener_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    return errnoError(errno, "O_NONBLOCK");
  s->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!s->stop_) return errnoError(errno, "eventfd");
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

SinkServer::~SinkServer() {
  uint64_t one = 1;
  if (stop_) (void)!::write(stop_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void SinkServer::run() {
  std::vector<UniqueFd> conns;
  std::vector<char> buf(256 * 1024);
  for (;;) {
    std::vector<pollfd> pfds{{stop_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    for (const auto& c : conns) pfds.push_back({c.get(), POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[0].revents != 0) return;
    std::vector<UniqueFd> keep;
    for (size_t i = 0; i < conns.size(); i++) {
      if (pfds[i + 2].revents == 0) {
        keep.push_back(std::move(conns[i]));
        continue;
      }
      ssize_t n = ::recv(conns[i].get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
        if (n > 0) bytes_ += static_cast<uint64_t>(n);
        keep.push_back(std::move(conns[i]));
      }  // 0 or an error (RST): the connection is done and closed here
    }
    conns = std::move(keep);
    if (pfds[1].revents & POLLIN) {
      for (;;) {
        UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) break;
        conns.push_back(std::move(c));
      }
    }
  }
}

}  // namespace cilium::bench
