// Connection latency, stream throughput and a draining server for the network benchmarks.
#include "bench/bench_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"
#include "tests/harness/sockets.h"

namespace cilium::bench {

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

sockaddr_in address(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
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
    sockaddr_in a = address(ip, port);
    linger lg{1, 0};
    for (int i = -warmup; i < n; i++) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) return errnoError(errno, "socket");
      ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      if (i == 0) start = Clock::now();
      auto t0 = Clock::now();
      int r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
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
