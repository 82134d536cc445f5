// Internal to the proxy (proxy.cc, http2.cc): what a session knows about its connection, and the
// base class both protocols' sessions share (upstream connect as the original client, timers,
// access records).
#pragma once

#include <netinet/in.h>

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "agent/common/asio_inet.h"
#include "agent/proxy/proxy.h"

namespace cilium::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The redirected connection: original tuple (either family), direction, identities.
struct ConnInfo {
  bool ingress = true;
  uint16_t proxy_port = 0;
  IpAddr src_ip, dst_ip;
  uint16_t src_port = 0, dst_port = 0;
  std::optional<uint32_t> peer_identity;  // nullopt: unknown (every request is denied)
};

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual const ProxyOptions& options() const = 0;
  virtual std::shared_ptr<const CompiledPolicy> currentPolicy() const = 0;
  virtual void record(AccessRecord r) = 0;
  virtual ProxyStats& stats() = 0;
  virtual void sessionClosed() = 0;
};

// The decision for one request, with the identities for its records.
struct RequestVerdict {
  Decision decision;
  uint16_t endpoint_id = 0;
  uint32_t src_identity = 0, dst_identity = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(SessionHost& host, ConnInfo info, tcp::socket down);
  virtual ~Session();
  // Starts with the bytes already read from the client.
  virtual void start(std::string initial) = 0;
  // Only on the session's own executor (its io_context's thread).
  virtual void close() = 0;
  // Where the session runs: the io_context its client socket belongs to.
  asio::any_io_executor executor() { return down_.get_executor(); }

 protected:
  RequestVerdict decide(const RequestView& req) const;
  AccessRecord baseRecord(const RequestVerdict& v) const;
  // Opens the upstream socket as the original client (address, and port when free; the proxy's
  // mark with the client's identity) and connects to the original destination.
  void connectUpstream(uint32_t src_identity, std::function<void(boost::system::error_code)> done);
  void touch();  // activity: pushes the idle deadline back
  void armIdle();

  SessionHost& host_;
  ConnInfo info_;
  tcp::socket down_;
  tcp::socket up_;
  asio::steady_timer idle_timer_;
  asio::steady_timer connect_timer_;
  std::chrono::steady_clock::time_point last_activity_;
  bool closed_ = false;
};

std::shared_ptr<Session> makeHttp1Session(SessionHost& host, ConnInfo info, tcp::socket down);
std::shared_ptr<Session> makeHttp2Session(SessionHost& host, ConnInfo info, tcp::socket down);

int64_t wallNanos();

}  // namespace cilium::proxy
