// cpp-httplib glue for the /metrics endpoint.
#include "agent/metrics/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <thread>

#include "agent/common/log.h"

namespace cilium::metrics {

namespace {
auto log() {
  static auto l = cilium::logger("metrics");
  return l;
}
}  // namespace

Result<ListenAddress> parseListenAddress(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return makeError(ErrorCode::kInvalidArgument, "listen address \"{}\" has no :port", text);
  ListenAddress a;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  a.host = host.empty() ? "0.0.0.0" : std::string(host);
  auto port = text.substr(colon + 1);
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (ec != std::errc() || p != port.data() + port.size() || a.port < 0 || a.port > 65535)
    return makeError(ErrorCode::kInvalidArgument, "listen address \"{}\": port is not 0..65535",
                     text);
  return a;
}

MetricsServer::MetricsServer(const Registry& registry, std::string address)
    : registry_(registry), address_(std::move(address)) {}

MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start() {
  CILIUM_ASSIGN_OR_RETURN(auto addr, parseListenAddress(address_));
  http_ = std::make_unique<httplib::Server>();
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second server (another agent's,
  // or the agent's and Hubble's given the same address) binds the taken port without an error
  // and the kernel splits the scrapes between them. SO_REUSEADDR alone: a restart still binds
  // while old connections sit in TIME_WAIT, a port in use is refused. Close-on-exec, so that no
  // child process keeps the port after the agent is gone.
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_.expose(), std::string(kExpositionContentType).c_str());
  });
  for (const auto& [path, handler] : extra_)
    http_->Get(path, [h = handler](const httplib::Request&, httplib::Response& res) {
      auto [status, body] = h();
      res.status = status;
      res.set_content(body, "text/plain; charset=utf-8");
    });
  if (addr.port == 0) {
    port_ = http_->bind_to_any_port(addr.host);
    if (port_ < 0) return errnoError(errno, "bind metrics server " + address_);
  } else {
    if (!http_->bind_to_port(addr.host, addr.port))
      return errnoError(errno, "bind metrics server " + address_);
    port_ = addr.port;
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // httplib's stop() only reaches a server already in its accept loop: one stopped before that
  // (an operator started and destroyed at once) would block in accept() and its join forever.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!http_->is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  log()->info("metrics server listening address={} port={}", address_, port_);
  return okStatus();
}

void MetricsServer::stop() {
  if (!http_) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

}  // namespace cilium::metrics
