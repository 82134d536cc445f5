// Serves a Registry's exposition at GET /metrics over HTTP (cpp-httplib), on host:port.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "agent/common/error.h"
#include "agent/metrics/registry.h"

namespace httplib {
class Server;
}

namespace cilium::metrics {

// "host:port", ":port" (every IPv4 address) or "[v6]:port"; port 0 picks a free port.
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> parseListenAddress(std::string_view text);

class MetricsServer {
 public:
  // `registry` must outlive the server.
  MetricsServer(const Registry& registry, std::string address);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // kInvalidArgument for a bad address; the bind error otherwise. Serves on its own thread.
  Status start();
  void stop();
  // The port bound (the chosen one when the address said port 0).
  int port() const { return port_; }

 private:
  const Registry& registry_;
  std::string address_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cilium::metrics
