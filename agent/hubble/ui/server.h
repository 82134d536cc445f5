// Hubble UI's web server: the page (assets.h) and a JSON API over a Hubble server or
// hubble-relay's Observer API, on cpp-httplib.
//
//   GET /                          the page: namespace picker, service map, flow table
//   GET /api/namespaces            {"namespaces": [...]}: GetNamespaces, sorted
//   GET /api/flows?namespace=NS    {"namespace", "flows": [newest first], "map": ServiceMap}:
//                                  the last `max_flows` flows with a pod of NS on either side
//                                  (every flow without NS); an L7 flow's row carries "l7":
//                                  {type, latency_ns, http {method, url, code, protocol,
//                                  headers} | dns {query, ips, ttl, cnames, rcode, qtypes,
//                                  rrtypes}} for the details panel
// A failed call to the Observer is HTTP 502 with {"error": "..."}.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/hubble/proto.h"

namespace grpc {
class Channel;
}
namespace httplib {
class Server;
}

namespace cilium::hubble::ui {

struct UiOptions {
  std::string listen_address = "127.0.0.1:12000";  // host:port; port 0 = any
  uint64_t max_flows = 2000;                       // flows asked for per refresh
  std::chrono::milliseconds timeout{5000};         // per Observer call
};

class UiServer {
 public:
  UiServer(std::shared_ptr<grpc::Channel> hubble, UiOptions opts);
  ~UiServer();  // stop()
  UiServer(const UiServer&) = delete;
  UiServer& operator=(const UiServer&) = delete;

  Status start();  // binds, then serves on its own thread
  void stop();     // idempotent
  int port() const { return port_; }

  // The API's answers (what the handlers send).
  Result<nlohmann::json> namespaces();
  Result<nlohmann::json> flows(const std::string& ns);

 private:
  std::unique_ptr<observer::Observer::Stub> stub_;
  UiOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cilium::hubble::ui
