// cpp-httplib glue: Unix socket lifecycle, request translation and NDJSON streaming.
#include "agent/api/server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/common/fd.h"
#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::api {
namespace {

auto log() {
  static auto l = logger("api");
  return l;
}

// True when something accepts connections on the Unix socket at `path`.
bool socketAnswers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string statusReason(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 408: return "request timeout";
    case 413: return "request body too large";
    case 414: return "request target too long";
    case 416: return "range not satisfiable";
    default: return fmt::format("HTTP status {}", status);
  }
}

}  // namespace

Server::Server(const Router& router, ServerOptions options)
    : router_(router), opts_(std::move(options)) {}

Server::~Server() { stop(); }

Status Server::prepareSocketPath() {
  const std::string& path = opts_.socket_path;
  if (path.empty() || path[0] != '/')
    return makeError(ErrorCode::kFailedPrecondition, "socket path '{}' is not absolute", path);
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return makeError(ErrorCode::kFailedPrecondition,
                     "socket path {} is {} bytes long; Unix sockets allow at most {}", path,
                     path.size(), sizeof(sockaddr_un::sun_path) - 1);
  auto slash = path.rfind('/');
  if (slash > 0) CILIUM_RETURN_IF_ERROR(makeDirs(path.substr(0, slash), 0755));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return makeError(ErrorCode::kFailedPrecondition, "{} exists and is not a socket", path);
    if (socketAnswers(path))
      return makeError(ErrorCode::kAlreadyExists,
                       "another process is serving on {} (is an agent already running?)", path);
    log()->info("removing stale socket path={}", path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return errnoError(errno, "remove stale socket " + path);
  }
  return okStatus();
}

Status Server::start() {
  if (started_) return Error(ErrorCode::kFailedPrecondition, "server already started");
  ::signal(SIGPIPE, SIG_IGN);
  CILIUM_RETURN_IF_ERROR(prepareSocketPath());

  http_ = std::make_unique<httplib::Server>();
  size_t threads = opts_.threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_address_family(AF_UNIX);
  http_->set_payload_max_length(opts_.max_body_bytes);
  http_->set_read_timeout(opts_.io_timeout);
  http_->set_write_timeout(opts_.io_timeout);
  // Idle keep-alive connections hold a worker; keep them short so stop() is quick.
  http_->set_keep_alive_timeout(1);

  auto handle = [this](const httplib::Request& hreq, httplib::Response& hres) {
    std::map<std::string, std::string> headers;
    for (const auto& [k, v] : hreq.headers) headers[k] = v;
    std::string target = hreq.target.empty() ? hreq.path : hreq.target;
    Response res = router_.dispatch(hreq.method, target, headers, hreq.body);
    for (const auto& [k, v] : res.headers) hres.set_header(k, v);
    if (res.stream) {
      if (stopping_.load()) {
        hres.status = 503;
        hres.set_content(Json("the agent is shutting down").dump(), "application/json");
        return;
      }
      if (active_streams_.fetch_add(1) >= opts_.max_streams) {
        active_streams_.fetch_sub(1);
        hres.status = 503;
        hres.set_content(
            Json(fmt::format("too many streaming clients (at most {})", opts_.max_streams)).dump(),
            "application/json");
        return;
      }
      hres.status = res.status;
      auto source = res.stream;
      hres.set_chunked_content_provider(
          "application/x-ndjson",
          [this, source](size_t, httplib::DataSink& sink) {
            auto last_write = std::chrono::steady_clock::now();
            while (!stopping_.load()) {
              if (source->finished()) break;
              auto msg = source->next(opts_.stream_poll);
              if (msg) {
                std::string line = msg->dump() + "\n";
                if (!sink.write(line.data(), line.size())) return false;
                last_write = std::chrono::steady_clock::now();
              } else if (std::chrono::steady_clock::now() - last_write >= opts_.stream_heartbeat) {
                if (!sink.write("\n", 1)) return false;  // the client went away
                last_write = std::chrono::steady_clock::now();
              }
            }
            sink.done();
            return true;
          },
          [this](bool) { active_streams_.fetch_sub(1); });
      return;
    }
    hres.status = res.status;
    if (!res.body.is_null()) hres.set_content(res.body.dump(), "application/json");
  };
  http_->Get(".*", handle);
  http_->Post(".*", handle);
  http_->Put(".*", handle);
  http_->Patch(".*", handle);
  http_->Delete(".*", handle);
  http_->Options(".*", handle);
  // Errors httplib produces itself (malformed requests, bodies over the limit) get the API's
  // error body too; responses that already carry one are left alone.
  httplib::Server::HandlerWithResponse on_error = [](const httplib::Request&,
                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(Json(statusReason(res.status)).dump(), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  http_->set_error_handler(std::move(on_error));

  if (!http_->bind_to_port(opts_.socket_path, 80))
    return errnoError(errno, "bind API socket " + opts_.socket_path);
  if (::chmod(opts_.socket_path.c_str(), opts_.socket_mode) != 0)
    return errnoError(errno, "chmod " + opts_.socket_path);
  struct stat st {};
  if (::stat(opts_.socket_path.c_str(), &st) == 0) socket_inode_ = st.st_ino;

  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // stop() only works once the accept loop runs; wait for it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!http_->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      http_->stop();
      thread_.join();
      return Error(ErrorCode::kInternal, "API server did not start within 5s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  started_ = true;
  log()->info("API server listening socket={} mode={:o}", opts_.socket_path, opts_.socket_mode);
  return okStatus();
}

void Server::stop() {
  if (!started_) return;
  started_ = false;
  stopping_.store(true);
  http_->stop();  // closes the listening socket; the pool drains in-flight requests
  if (thread_.joinable()) thread_.join();
  struct stat st {};
  // Remove the socket only if it is the one we made: a new agent may already have replaced it.
  if (::stat(opts_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_inode_)
    ::unlink(opts_.socket_path.c_str());
  log()->info("API server stopped socket={}", opts_.socket_path);
}

}  // namespace cilium::api
