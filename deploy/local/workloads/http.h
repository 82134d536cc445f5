// The pod workloads' HTTP/1.1 over plain sockets: a server answering fixed routes given on the
// command line, and a one-shot client whose exit status tells a timeout from a refused connection
// from an HTTP answer. Enough HTTP for the demo and tests; not a general-purpose implementation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"

namespace cilium::local {

// "METHOD /path=STATUS:BODY", e.g. "POST /v1/request-landing=200:Ship landed".
struct Route {
  std::string method;
  std::string path;
  int status = 200;
  std::string body;
};
// kInvalidArgument naming the part that is wrong.
Result<Route> parseRoute(std::string_view text);

// "http://host[:port][/path]"; host is an IPv4 address, an IPv6 address in brackets
// (http://[fd00::1]:80/) or a name getaddrinfo knows (its first address, either family).
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
};
Result<Url> parseUrl(std::string_view text);

// "host:port", "[ipv6]:port" or ":port" (0.0.0.0: any IPv4 address). "[::]:port" serves both
// families.
struct ListenAddress {
  std::string host = "0.0.0.0";
  uint16_t port = 0;
};
Result<ListenAddress> parseListenAddress(std::string_view text);

// The standard reason phrase of `status` ("OK", "Not Found", ...), "Unknown" otherwise.
std::string_view reasonPhrase(int status);

// A listening server; serve() answers until `stop` becomes true (checked every 100 ms). Unknown
// paths get 404, a known path with another method 405. Each request is logged to stdout.
class HttpServer {
 public:
  static Result<HttpServer> listen(const ListenAddress& addr, std::vector<Route> routes);
  uint16_t port() const { return port_; }
  Status serve(const std::atomic<bool>& stop);

  HttpServer(HttpServer&& o) noexcept;
  HttpServer& operator=(HttpServer&&) = delete;
  ~HttpServer();

 private:
  HttpServer(int fd, uint16_t port, std::vector<Route> routes)
      : fd_(fd), port_(port), routes_(std::move(routes)) {}
  std::string respond(const std::string& method, const std::string& path, int* status) const;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<Route> routes_;
};

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::string body;
};

// One request with "Connection: close"; `timeout` bounds the whole exchange. Errors:
// kDeadlineExceeded (no answer in time), kUnavailable (refused, reset, unreachable),
// kInvalidArgument (the answer is not HTTP/1.x), others for local failures.
Result<HttpResponse> request(const std::string& method, const Url& url, std::string_view body,
                             std::chrono::milliseconds timeout);

}  // namespace cilium::local
