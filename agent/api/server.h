// The REST server: serves a Router over HTTP/1.1 on a Unix socket (cpp-httplib).
//
// Lifecycle: start() creates the socket's parent directory, replaces a stale socket file (one
// nobody answers on; a live one is an error, so two agents never share a socket), binds, sets
// the socket's mode and starts serving on a worker pool. stop() stops accepting, ends streams,
// lets in-flight requests finish, and removes the socket file if it is still ours.
// start() ignores SIGPIPE process-wide: a client that hangs up must not kill the agent.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "agent/api/router.h"
#include "agent/common/error.h"

namespace httplib {
class Server;
}

namespace cilium::api {

struct ServerOptions {
  std::string socket_path = "/var/run/cilium/cilium.sock";
  mode_t socket_mode = 0660;
  size_t threads = 16;     // concurrent connections served
  size_t max_streams = 8;  // concurrent streaming responses (each holds a thread)
  size_t max_body_bytes = 16 << 20;
  std::chrono::seconds io_timeout{10};
  // While a stream has nothing to send, a blank line goes out this often; it is how a closed
  // client is noticed. NDJSON readers skip blank lines.
  std::chrono::milliseconds stream_heartbeat{1000};
  std::chrono::milliseconds stream_poll{200};
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
  // Idempotent. Returns once in-flight requests have finished.
  void stop();

  const std::string& socketPath() const { return opts_.socket_path; }
  size_t activeStreams() const { return active_streams_.load(); }

 private:
  Status prepareSocketPath();

  const Router& router_;
  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> active_streams_{0};
  bool started_ = false;
  ino_t socket_inode_ = 0;
};

}  // namespace cilium::api
