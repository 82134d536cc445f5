// Traffic for the network benchmarks: the latency of new TCP connections from a namespace, and
// a server that accepts and drains connections so that the client side alone is measured.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium::bench {

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
