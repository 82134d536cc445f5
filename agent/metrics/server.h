// Serves a Registry's exposition at GET /metrics over HTTP (cpp-httplib), on host:port, and any
// other GET path its owner adds (cilium-operator's /healthz).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

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

  // Another GET path beside /metrics (e.g. /healthz): the handler returns the status and a
  // text/plain body. Add before start().
  using Handler = std::function<std::pair<int, std::string>()>;
  void addGet(std::string path, Handler handler) { extra_[std::move(path)] = std::move(handler); }

  // kInvalidArgument for a bad address; the bind error otherwise. Serves on its own thread.
  Status start();
  void stop();
  // The port bound (the chosen one when the address said port 0).
  int port() const { return port_; }

 private:
  const Registry& registry_;
  std::string address_;
  std::map<std::string, Handler> extra_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cilium::metrics
