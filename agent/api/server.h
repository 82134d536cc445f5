// The REST server: serves a Router over HTTP/1.1 on a Unix socket (Boost.Beast on Boost.Asio).
//
// Lifecycle: start() creates the socket's parent directory, replaces a stale socket file (one
// nobody answers on; a live one is an error, so two agents never share a socket), binds, sets
// the socket's mode and starts serving. stop() stops accepting, ends streams, lets in-flight
// requests finish, and removes the socket file if it is still ours.
// start() ignores SIGPIPE process-wide: a client that hangs up must not kill the agent.
//
// Under abuse (docs/api.md, "Limits"): connections are read by one event loop, so idle or slow
// clients hold no thread; every phase of a request has a deadline (waiting for a request, reading
// it, waiting for a handler thread, the handler, writing the answer), and each ends in an answer
// or a closed connection, never a hang. Bodies are refused from their Content-Length before they
// are read (chunked ones as they pass the limit), as are content types the API does not take.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "agent/api/router.h"
#include "agent/common/error.h"

namespace cilium::api {

namespace internal {
class ServerCore;
}

struct ServerOptions {
  std::string socket_path = "/var/run/cilium/cilium.sock";
  mode_t socket_mode = 0660;
  size_t threads = 16;           // handlers that run at once; more requests wait (queue_timeout)
  size_t max_connections = 512;  // more get 503 and are closed at once
  size_t max_streams = 8;        // concurrent streaming responses (each has its own thread)
  size_t max_body_bytes = 16 << 20;
  size_t max_header_bytes = 64 << 10;  // request line and headers
  // A connection with no request in progress (new, or kept alive after an answer) is closed
  // after this.
  std::chrono::milliseconds idle_timeout{5000};
  // From a request's first byte to its last (head and body): a slow client gets 408.
  std::chrono::milliseconds read_timeout{10000};
  // A request that finds every handler thread busy this long gets 503 and never runs.
  std::chrono::milliseconds queue_timeout{5000};
  // A handler still running after this: the client gets 504 and the connection is closed (the
  // handler finishes on its thread; its answer is dropped). cilium-cni waits 60 s.
  std::chrono::milliseconds handler_timeout{45000};
  // An answer (or a stream's line) the client does not take within this closes the connection.
  std::chrono::milliseconds write_timeout{10000};
  // While a stream has nothing to send, a blank line goes out this often; it is how a closed
  // client is noticed. NDJSON readers skip blank lines.
  std::chrono::milliseconds stream_heartbeat{1000};
  std::chrono::milliseconds stream_poll{200};
};

// What the server holds right now, and what it refused since start.
struct ServerStats {
  size_t connections = 0;
  size_t handlers_running = 0;
  size_t body_bytes = 0;        // request bodies read and not yet released by their handler
  uint64_t refused_bodies = 0;  // 413 and 415 answers
  uint64_t timeouts = 0;        // 408, 503 (queue) and 504 answers, and idle closes
};

class Server {
 public:
  Server(const Router& router, ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // kAlreadyExists when another process answers on the socket; kFailedPrecondition when the
  // path exists and is not a socket, or is too long for a Unix socket.
  Status start();
  // Idempotent. Returns once in-flight requests have finished (a handler that never returns
  // keeps it waiting: its client has had its 504 by then).
  void stop();

  const std::string& socketPath() const { return opts_.socket_path; }
  size_t activeStreams() const;
  ServerStats stats() const;

 private:
  Status prepareSocketPath();

  const Router& router_;
  ServerOptions opts_;
  std::unique_ptr<internal::ServerCore> core_;
  bool started_ = false;
  ino_t socket_inode_ = 0;
};

}  // namespace cilium::api
