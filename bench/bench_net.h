// Traffic for the network benchmarks: the latency of new TCP connections from a namespace, TCP_CRR
// transactions, and a server that accepts and drains connections so that the client side alone
// is measured; and what those benchmarks' mains share: fatal errors, commands, medians, arguments.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium::bench {

// Ends the benchmark: "<program>: <what>: <error>" on stderr, exit status 1.
[[noreturn]] void die(const std::string& what, const Error& e);
// The value of `r`, or die(what).
template <typename T>
T must(Result<T> r, const std::string& what) {
  if (!r.ok()) die(what, r.error());
  return std::move(*r);
}
void must(Status s, const std::string& what);
// Runs a command; an error when it cannot run or exits non-zero.
Status runOk(const std::vector<std::string>& argv);

// The median of `v` (the upper middle of an even count); 0 when empty.
double median(std::vector<double> v);
// "median (min-max)" with `prec` decimals; "-" when empty.
std::string summary(const std::vector<double>& v, int prec);
// A command-line number in 1..3600, or exit 2 saying what is wrong with it.
int number(const char* arg);

// Whether `mode` is one of the comma-separated `modes` (the value of --modes).
bool modeWanted(const std::string& modes, const char* mode);

// The common start of a privileged network benchmark `name`: logs at warnings and above,
// libbpf's log routed to ours, root and bpf() checked (false, the reason printed, when missing),
// and whatever a killed earlier run left behind swept away.
bool startPrivilegedBench(const char* name);

struct ConnectStats {
  double p50_us = 0, p99_us = 0, max_us = 0, per_sec = 0;
  size_t failed = 0;
};

// `n` connections from namespace `netns` to ip:port, one at a time, after n/10 that are not
// measured (the first connections after an attach or a map change warm caches up). Each is
// socket(), blocking connect() (the measured part), close() with SO_LINGER 0 (an RST, no
// TIME_WAIT left behind).
Result<ConnectStats> measureConnects(const std::string& netns, const std::string& ip, uint16_t port,
                                     int n);

// Sends as fast as it can on one TCP connection from `netns` to ip:port for `seconds`; returns
// the payload rate in Gbit/s.
Result<double> streamGbps(const std::string& netns, const std::string& ip, uint16_t port,
                          double seconds);

struct CrrStats {
  double per_sec = 0;  // measured transactions per second
  double p50_us = 0, p99_us = 0, max_us = 0;
  uint64_t transactions = 0;  // measured (the warm-up excluded)
  uint64_t failed = 0;        // connect, send or receive errors (each also ends its transaction)
};

// netperf's TCP_CRR from namespace `netns` to a CrrServer on ip:port, one transaction at a time:
// socket(), blocking connect(), a 1-byte request, the 1-byte response, close() (the client
// closes first, with a FIN, as netperf does). Latency is that whole sequence. Runs `warmup`
// seconds unmeasured, then `seconds` measured. The client's namespace needs room for the
// TIME_WAIT sockets it leaves: see prepareCrrClient().
Result<CrrStats> measureCrr(const std::string& netns, const std::string& ip, uint16_t port,
                            double seconds, double warmup);

// Readies namespace `netns` for a TCP_CRR client: the widest ephemeral port range and
// net.ipv4.tcp_tw_reuse = 1, so ports held in TIME_WAIT for more than a second are reused
// instead of running out. Only that namespace's sysctls change.
Status prepareCrrClient(const std::string& netns);

// The server side of TCP_CRR on ip:port in `netns`: a thread accepts a connection, reads the
// 1-byte request, answers 1 byte, waits for the client's FIN and closes; then the next one.
class CrrServer {
 public:
  static Result<std::unique_ptr<CrrServer>> start(const std::string& netns, const std::string& ip,
                                                  uint16_t port);
  ~CrrServer();
  uint64_t served() const { return served_.load(); }

 private:
  CrrServer() = default;
  void run();

  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> served_{0};
  std::thread thread_;
};

// Listens on ip:port in namespace `netns`; a thread accepts every connection and reads it until
// the peer closes or resets it.
class SinkServer {
 public:
  static Result<std::unique_ptr<SinkServer>> start(const std::string& netns, const std::string& ip,
                                                   uint16_t port);
  ~SinkServer();
  uint64_t bytes() const { return bytes_.load(); }

 private:
  SinkServer() = default;
  void run();

  UniqueFd listener_;
  UniqueFd stop_;  // eventfd
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;
};

}  // namespace cilium::bench
