// The HTTP/gRPC proxy of the cilium-proxy process (docs/l7.md): transparent listeners on the
// ports the agent allocated, one session per accepted connection (HTTP/1.1, or HTTP/2 when the
// client starts with the HTTP/2 preface, as gRPC does), each request decided against the L7
// policy in force, allowed ones forwarded to the original destination as the original client,
// denied ones answered 403 "Access denied"; access records for Hubble.
//
// Threading: the listeners run on the io_context given to Proxy; each connection runs wholly on
// one event loop, that one or (options.threads > 1) one of the proxy's own worker threads,
// taken in turn. setPolicy() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/proxy/l7_policy.h"
#include "agent/proxy/wire.h"

namespace cilium::proxy {

// The identity of the peer of a redirected connection, as the datapath judged it.
class IdentitySource {
 public:
  virtual ~IdentitySource() = default;
  // The connection's original tuple (either family, host order ports); `ingress`: redirected on
  // the way into the endpoint (the peer is the source), else out of it.
  virtual std::optional<uint32_t> peerIdentity(const IpAddr& saddr, uint16_t sport,
                                               const IpAddr& daddr, uint16_t dport,
                                               bool ingress) = 0;
};

// Reads the conntrack entry the redirect created (its remote identity), else the ipcache, from
// the pinned maps under `pin_dir`.
Result<std::unique_ptr<IdentitySource>> kernelIdentitySource(const std::string& pin_dir);

struct ProxyOptions {
  std::chrono::milliseconds request_header_timeout{30000};  // slowloris: a whole head in time
  std::chrono::milliseconds idle_timeout{300000};           // no bytes either way
  std::chrono::milliseconds connect_timeout{5000};
  size_t max_connections = 10000;  // more are refused (closed at once)
  // Listen addresses; the datapath assigns redirected packets to sockets on 127.0.0.1 and, for
  // IPv6, on ::1 (bpf/abi/proxy.h). "" = none of that family. A namespace without IPv6 cannot
  // bind ::1: the proxy then listens on IPv4 only (IPv6 redirects drop, fail closed).
  std::string listen_address = "127.0.0.1";
  std::string listen_address6 = "::1";
  // Mark the proxy's sockets (bpf/abi/proxy.h); off only in tests without the datapath.
  bool transparent = true;
  // Event loops for connections: the given io_context's and threads - 1 of the proxy's own.
  int threads = 1;
};

struct ProxyStats {
  std::atomic<uint64_t> connections{0}, active{0};
  std::atomic<uint64_t> received{0}, forwarded{0}, denied{0}, parse_errors{0};
  std::atomic<uint64_t> upstream_errors{0}, refused{0};
};

class Proxy {
 public:
  using RecordSink = std::function<void(AccessRecord)>;
  Proxy(boost::asio::io_context& io, ProxyOptions options, IdentitySource* identities,
        RecordSink sink);
  ~Proxy();

  // Puts a compiled snapshot in force for every request from now on; (re)opens the listeners
  // on its ports. kUnavailable when a port cannot be bound (the previous listeners stay).
  Status setPolicy(std::shared_ptr<const CompiledPolicy> policy, uint16_t http_ingress_port,
                   uint16_t http_egress_port);
  std::shared_ptr<const CompiledPolicy> policy() const;
  bool listening() const;
  // Closes the listeners and every connection (on the io_context's thread).
  void stop();

  const ProxyStats& stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace cilium::proxy
