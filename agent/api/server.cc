// The HTTP/1.1 server on Boost.Beast: one event-loop thread reads and writes every connection
// under a deadline, a fixed pool runs handlers, and each stream has a thread of its own.
#include "agent/api/server.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "agent/common/fd.h"
#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using beast::error_code;

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

void setCloexec(int fd) { ::fcntl(fd, F_SETFD, FD_CLOEXEC); }

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

std::string errorBody(std::string_view message) { return Json(std::string(message)).dump(); }

std::string seconds(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

// The media types a request body may be declared as: the API takes JSON, and YAML where a
// handler accepts it (PUT /v1/policy). No Content-Type at all is taken as JSON.
bool acceptedContentType(std::string_view value) {
  std::string type(value.substr(0, value.find(';')));
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.erase(0, 1);
  if (type.empty() || type == "application/json" || type == "application/yaml" ||
      type == "application/x-yaml" || type == "text/yaml" || type == "text/x-yaml")
    return true;
  return type.rfind("application/", 0) == 0 && type.size() > 5 &&
         type.compare(type.size() - 5, 5, "+json") == 0;
}

// Errors of the HTTP parser (as opposed to the socket) mean the client sent something malformed.
bool isParseError(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// A request body of at least this size is followed by malloc_trim: glibc keeps freed memory in
// the arena of the thread that freed it (and raises its mmap threshold after the first large
// free), so without it every handler thread would keep its largest body's memory for good.
constexpr size_t kTrimAfterBodyBytes = size_t{1} << 20;
constexpr int kMmapThreshold = 128 << 10;
// After a refusal the rest of the request is read and dropped (so the client, still sending,
// sees the answer instead of a reset connection) for at most this long.
constexpr std::chrono::milliseconds kLingerTime{2000};

// A fixed set of threads that run jobs in order of submission.
class WorkerPool {
 public:
  void start(size_t threads) {
    for (size_t i = 0; i < threads; i++) threads_.emplace_back([this] { run(); });
  }
  void submit(std::function<void()> job) {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    cv_.notify_one();
  }
  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

// One request on its way through a handler thread. The event loop and the handler thread race
// for it (a deadline against a start or an answer); the state decides, once.
struct Job {
  enum State : int { kQueued, kRunning, kDone, kExpired, kAbandoned };
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;
  std::string body;
  size_t body_size = 0;
  std::atomic<int> state{kQueued};
  Clock::time_point started;  // written before the kQueued -> kRunning transition

  bool transition(int from, int to) { return state.compare_exchange_strong(from, to); }
};

// What a handler's Response becomes on the wire.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;
  std::shared_ptr<StreamSource> stream;
  bool close = false;   // Connection: close after it
  bool linger = false;  // the request was not read to its end: drain it before closing
};

Reply errorReply(int status, std::string_view message) {
  return Reply{status, errorBody(message), "application/json", {}, {}, true, false};
}

}  // namespace

namespace internal {

class Connection;

// Owns the event loop, the handler pool, the stream threads and the set of open connections.
class ServerCore {
 public:
  ServerCore(const Router& router, const ServerOptions& opts) : router_(router), opts_(opts) {}

  Status listen();
  void run();
  void stop();

  size_t activeStreams() const { return streams_.load(); }
  ServerStats stats() const {
    return ServerStats{connections_.load(), running_.load(), body_bytes_.load(),
                       refused_bodies_.load(), timeouts_.load()};
  }

 private:
  friend class Connection;

  void accept();
  void removeConnection(Connection* c);
  void runJob(const std::shared_ptr<Connection>& conn, const std::shared_ptr<Job>& job);
  Reply toReply(Response res);
  void startStream(std::shared_ptr<Connection> conn, Reply reply);
  void runStream(int fd, const Reply& reply);
  void reapStreams(bool all);

  const Router& router_;
  const ServerOptions& opts_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  Local::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  std::thread loop_;
  WorkerPool pool_;

  std::atomic<bool> stopping_{false};
  std::atomic<size_t> connections_{0};
  std::atomic<size_t> running_{0};
  std::atomic<size_t> body_bytes_{0};
  std::atomic<size_t> streams_{0};
  std::atomic<uint64_t> refused_bodies_{0};
  std::atomic<uint64_t> timeouts_{0};

  // Event-loop thread only.
  std::unordered_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::array<char, 65536> drain_{};  // where refused bodies go; nobody reads it

  std::mutex mu_;
  std::condition_variable cv_;  // connections_ reached 0 (while stopping)
  struct StreamThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<StreamThread> stream_threads_;  // under mu_
};

// One client connection, driven by the event loop: wait for a request, read it, hand it to a
// handler thread, write the answer, and again while the client keeps the connection alive.
// Every phase runs under the connection's one timer.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore& core, Local::socket socket)
      : core_(core), socket_(std::move(socket)), timer_(core.io_) {}

  void start() { waitRequest(); }

  // At shutdown: connections without a request under way are closed at once.
  void closeIfIdle() {
    if (phase_ == Phase::kIdle || phase_ == Phase::kReadHead || phase_ == Phase::kReadBody) close();
  }

  // From the handler thread, through the event loop.
  void onJobStarted() {
    if (phase_ != Phase::kQueued || !job_) return;
    phase_ = Phase::kRunning;
    arm(job_->started + core_.opts_.handler_timeout);
  }
  void onReply(Reply reply) {
    if (phase_ != Phase::kQueued && phase_ != Phase::kRunning) {
      if (reply.stream) core_.streams_--;  // the slot toReply() took
      return;
    }
    job_.reset();
    if (reply.stream) {
      phase_ = Phase::kStreaming;
      disarm();
      core_.startStream(shared_from_this(), std::move(reply));
      return;
    }
    write(std::move(reply));
  }

  int nativeHandle() { return socket_.native_handle(); }
  void close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    disarm();
    error_code ignored;
    socket_.close(ignored);
    core_.removeConnection(this);
  }

 private:
  enum class Phase {
    kIdle,      // waiting for a request's first byte
    kReadHead,  // reading the request line and headers
    kReadBody,
    kQueued,   // waiting for a handler thread
    kRunning,  // the handler runs
    kWriting,
    kStreaming,  // a stream thread owns the socket
    kLingering,  // dropping the rest of a refused request
    kClosed,
  };

  const ServerOptions& opts() const { return core_.opts_; }

  void arm(Clock::time_point deadline) {
    ++timer_gen_;
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this(), gen = timer_gen_](error_code ec) {
      if (!ec && gen == self->timer_gen_) self->onTimeout();
    });
  }
  void disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void waitRequest() {
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) return readHead();  // the next request is already here
    arm(Clock::now() + opts().idle_timeout);
    socket_.async_wait(Local::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (self->phase_ != Phase::kIdle) return;
      if (ec) return self->close();
      self->readHead();
    });
  }

  void readHead() {
    phase_ = Phase::kReadHead;
    timed_out_ = false;
    arm(Clock::now() + opts().read_timeout);
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(opts().max_header_bytes));
    parser_->body_limit(opts().max_body_bytes);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->onHead(ec); });
  }

  // A read that ended early: timed out, malformed, or the client went away.
  void readFailed(const error_code& ec) {
    if (phase_ == Phase::kClosed) return;
    if (timed_out_) {
      core_.timeouts_++;
      if (parser_ && parser_->got_some())
        return refuse(
            408, fmt::format("the request did not arrive within {}", seconds(opts().read_timeout)));
      return close();
    }
    if (ec == http::error::header_limit)
      return refuse(431,
                    fmt::format("request line and headers over {} bytes", opts().max_header_bytes));
    if (ec == http::error::body_limit) {
      core_.refused_bodies_++;
      return refuse(413, "request body too large");
    }
    if (isParseError(ec)) return refuse(400, "malformed HTTP request: " + ec.message());
    close();
  }

  void onHead(const error_code& ec) {
    if (ec) return readFailed(ec);
    const auto& req = parser_->get();
    auto length = parser_->content_length();
    const bool has_body = parser_->chunked() || (length && *length > 0);
    if (has_body) {
      std::string_view type = sv(req[http::field::content_type]);
      if (!acceptedContentType(type)) {
        core_.refused_bodies_++;
        return refuse(415, fmt::format("unsupported Content-Type {}: the API takes "
                                       "application/json (and YAML for /v1/policy); with curl, "
                                       "add -H 'Content-Type: application/json'",
                                       std::string(type)));
      }
      // Refused before a byte of it is read.
      if (length && *length > opts().max_body_bytes) {
        core_.refused_bodies_++;
        return refuse(413, "request body too large");
      }
      if (beast::iequals(req[http::field::expect], "100-continue")) {
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(socket_, asio::buffer(kContinue),
                          [self = shared_from_this()](error_code wec, size_t) {
                            if (wec) return self->close();
                            self->readBody();
                          });
        return;
      }
    }
    readBody();
  }

  void readBody() {
    if (phase_ == Phase::kClosed) return;
    // The deadline passed just as the head arrived.
    if (timed_out_) return readFailed(asio::error::operation_aborted);
    phase_ = Phase::kReadBody;  // still under the read deadline of readHead()
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->onBody(ec); });
  }

  void onBody(const error_code& ec) {
    if (ec) return readFailed(ec);
    auto msg = parser_->release();
    parser_.reset();
    // A HEAD answer carries the same body a GET would; closing after it keeps a client that
    // expects none from reading it as the next response.
    keep_alive_ = msg.keep_alive() && msg.method() != http::verb::head;
    auto job = std::make_shared<Job>();
    job->method = std::string(sv(msg.method_string()));
    job->target = std::string(sv(msg.target()));
    for (const auto& f : msg)
      job->headers[std::string(sv(f.name_string()))] = std::string(sv(f.value()));
    job->body = std::move(msg.body());
    job->body_size = job->body.size();
    core_.body_bytes_ += job->body_size;
    job_ = job;
    phase_ = Phase::kQueued;
    arm(Clock::now() + opts().queue_timeout);
    core_.pool_.submit([&core = core_, self = shared_from_this(), job] { core.runJob(self, job); });
  }

  void onTimeout() {
    switch (phase_) {
      case Phase::kIdle: core_.timeouts_++; return close();
      case Phase::kReadHead:
      case Phase::kReadBody:
        // The pending read completes with operation_aborted and answers (readFailed).
        timed_out_ = true;
        socket_.cancel();
        return;
      case Phase::kQueued:
        if (job_ && job_->transition(Job::kQueued, Job::kExpired)) {
          core_.timeouts_++;
          log()->warn("api request not started: every handler thread busy for {} method={} path={}",
                      seconds(opts().queue_timeout), job_->method, job_->target);
          return write(errorReply(
              503,
              fmt::format("the agent is busy: all {} API handler threads stayed in use for {}; "
                          "the request was not run, try again",
                          opts().threads, seconds(opts().queue_timeout))));
        }
        return;  // it started: onJobStarted() arms the handler deadline
      case Phase::kRunning:
        if (job_ && job_->transition(Job::kRunning, Job::kAbandoned)) {
          core_.timeouts_++;
          log()->warn("api handler still running after {} method={} path={}",
                      seconds(opts().handler_timeout), job_->method, job_->target);
          return write(
              errorReply(504, fmt::format("the agent did not finish {} {} within {}", job_->method,
                                          job_->target.substr(0, job_->target.find('?')),
                                          seconds(opts().handler_timeout))));
        }
        return;  // it finished: the reply is on its way
      case Phase::kWriting:
      case Phase::kLingering: core_.timeouts_ += phase_ == Phase::kWriting ? 1 : 0; return close();
      case Phase::kStreaming:
      case Phase::kClosed: return;
    }
  }

  // Answers and closes without reading the rest of the request.
  void refuse(int status, std::string_view message) {
    Reply r = errorReply(status, message);
    r.linger = true;
    write(std::move(r));
  }

  void write(Reply reply) {
    job_.reset();
    phase_ = Phase::kWriting;
    arm(Clock::now() + opts().write_timeout);
    const bool keep = keep_alive_ && !reply.close && !core_.stopping_.load();
    linger_ = reply.linger;
    auto& res = response_.emplace();
    res.version(11);
    res.result(static_cast<unsigned>(reply.status));
    for (const auto& [k, v] : reply.headers) res.set(k, v);
    if (!reply.content_type.empty()) res.set(http::field::content_type, reply.content_type);
    res.body() = std::move(reply.body);
    res.keep_alive(keep);
    res.prepare_payload();
    http::async_write(socket_, res, [self = shared_from_this(), keep](error_code ec, size_t) {
      self->response_.reset();
      if (self->phase_ != Phase::kWriting) return;
      if (ec) return self->close();
      if (self->linger_) return self->linger();
      if (!keep) return self->shutdownAndClose();
      self->waitRequest();
    });
  }

  void shutdownAndClose() {
    error_code ignored;
    socket_.shutdown(Local::socket::shutdown_send, ignored);
    close();
  }

  // The answer is out; read and drop what the client still sends, then close, so that it reads
  // the answer rather than a reset connection.
  void linger() {
    phase_ = Phase::kLingering;
    parser_.reset();
    buffer_.clear();
    arm(Clock::now() + std::min(kLingerTime, opts().read_timeout));
    error_code ignored;
    socket_.shutdown(Local::socket::shutdown_send, ignored);
    drain();
  }
  void drain() {
    socket_.async_read_some(asio::buffer(core_.drain_),
                            [self = shared_from_this()](error_code ec, size_t) {
                              if (self->phase_ != Phase::kLingering) return;
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  ServerCore& core_;
  Local::socket socket_;
  asio::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  Phase phase_ = Phase::kIdle;
  bool timed_out_ = false;
  bool keep_alive_ = false;
  bool linger_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::shared_ptr<Job> job_;
};

Status ServerCore::listen() {
  error_code ec;
  acceptor_.open(Local(), ec);
  if (!ec) setCloexec(acceptor_.native_handle());
  if (!ec) acceptor_.bind(Local::endpoint(opts_.socket_path), ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return makeError(ErrorCode::kUnavailable, "bind API socket {}: {}", opts_.socket_path,
                     ec.message());
  return okStatus();
}

void ServerCore::run() {
  work_.emplace(io_.get_executor());
  pool_.start(opts_.threads);
  accept();
  loop_ = std::thread([this] { io_.run(); });
}

void ServerCore::accept() {
  acceptor_.async_accept([this](error_code ec, Local::socket socket) {
    if (stopping_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors, most likely: try again shortly rather than spin.
      log()->warn("accept on the API socket failed: {}", ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](error_code tec) {
        if (!tec && !stopping_) accept();
      });
      return;
    }
    setCloexec(socket.native_handle());
    if (conns_.size() >= opts_.max_connections) {
      std::string body = errorBody(fmt::format(
          "too many connections to the agent's API (at most {})", opts_.max_connections));
      std::string res = fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
          body.size(), body);
      // A new socket's send buffer is empty: this never blocks.
      (void)!::send(socket.native_handle(), res.data(), res.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      error_code ignored;
      socket.shutdown(Local::socket::shutdown_send, ignored);
      socket.close(ignored);
    } else {
      auto conn = std::make_shared<Connection>(*this, std::move(socket));
      conns_.emplace(conn.get(), conn);
      connections_++;
      conn->start();
    }
    accept();
  });
}

void ServerCore::removeConnection(Connection* c) {
  conns_.erase(c);
  std::lock_guard lock(mu_);
  connections_--;
  cv_.notify_all();
}

Reply ServerCore::toReply(Response res) {
  Reply r;
  r.status = res.status;
  r.headers = std::move(res.headers);
  if (res.stream) {
    if (stopping_.load()) return errorReply(503, "the agent is shutting down");
    if (streams_.fetch_add(1) >= opts_.max_streams) {
      streams_.fetch_sub(1);
      return errorReply(503,
                        fmt::format("too many streaming clients (at most {})", opts_.max_streams));
    }
    r.stream = std::move(res.stream);
    r.content_type = "application/x-ndjson";
    return r;
  }
  if (!res.body.is_null()) {
    r.body = res.body.dump();
    r.content_type = "application/json";
  }
  return r;
}

void ServerCore::runJob(const std::shared_ptr<Connection>& conn, const std::shared_ptr<Job>& job) {
  auto release = [&] {
    body_bytes_ -= job->body_size;
    if (job->body_size >= kTrimAfterBodyBytes) ::malloc_trim(0);
  };
  job->started = Clock::now();
  if (!job->transition(Job::kQueued, Job::kRunning)) {
    std::string().swap(job->body);
    release();
    return;  // the client was told the agent is busy; the request must not run now
  }
  asio::post(io_, [conn] { conn->onJobStarted(); });
  running_++;
  Response res = router_.dispatch(job->method, job->target, job->headers, std::move(job->body));
  running_--;
  Reply reply = toReply(std::move(res));
  release();
  if (!job->transition(Job::kRunning, Job::kDone)) {
    if (reply.stream) streams_--;
    return;  // the client got its 504; this answer has nowhere to go
  }
  asio::post(io_, [conn, reply = std::move(reply)]() mutable { conn->onReply(std::move(reply)); });
}

void ServerCore::startStream(std::shared_ptr<Connection> conn, Reply reply) {
  reapStreams(false);
  auto done = std::make_shared<std::atomic<bool>>(false);
  int fd = conn->nativeHandle();
  std::lock_guard lock(mu_);
  stream_threads_.push_back(
      StreamThread{std::thread([this, conn = std::move(conn), fd, reply = std::move(reply), done] {
                     runStream(fd, reply);
                     streams_--;
                     asio::post(io_, [conn] { conn->close(); });
                     done->store(true);
                   }),
                   done});
}

void ServerCore::reapStreams(bool all) {
  std::list<StreamThread> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = stream_threads_.begin(); it != stream_threads_.end();) {
      if (all || it->done->load()) {
        finished.splice(finished.end(), stream_threads_, it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& t : finished) t.thread.join();
}

// The stream thread owns the socket (the event loop leaves it alone until it is told the stream
// ended): chunked NDJSON written with blocking-style sends under the write deadline.
void ServerCore::runStream(int fd, const Reply& reply) {
  auto sendAll = [&](std::string_view data) {
    auto deadline = Clock::now() + opts_.write_timeout;
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;  // the client stopped reading
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    }
    return true;
  };
  auto chunk = [&](std::string_view data) {
    return sendAll(fmt::format("{:x}\r\n", data.size())) && sendAll(data) && sendAll("\r\n");
  };
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", reply.status,
                                 sv(http::obsolete_reason(static_cast<http::status>(reply.status))),
                                 reply.content_type);
  for (const auto& [k, v] : reply.headers) head += k + ": " + v + "\r\n";
  head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  if (!sendAll(head)) return;
  auto last_write = Clock::now();
  while (!stopping_.load()) {
    if (reply.stream->finished()) break;
    auto msg = reply.stream->next(opts_.stream_poll);
    if (msg) {
      if (!chunk(msg->dump() + "\n")) return;
      last_write = Clock::now();
    } else if (Clock::now() - last_write >= opts_.stream_heartbeat) {
      if (!chunk("\n")) return;  // the client went away
      last_write = Clock::now();
    }
  }
  sendAll("0\r\n\r\n");
}

void ServerCore::stop() {
  stopping_ = true;
  asio::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    // Copy: closing removes from the set.
    std::vector<std::shared_ptr<Connection>> all;
    for (auto& [ptr, c] : conns_) all.push_back(c);
    for (auto& c : all) c->closeIfIdle();
  });
  // In-flight requests finish (each is bounded by its deadlines), streams end within a poll.
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return connections_.load() == 0; });
  }
  work_.reset();
  io_.stop();
  if (loop_.joinable()) loop_.join();
  reapStreams(true);
  pool_.stop();
  io_.restart();
  io_.poll();  // let posted completions release their connections before the loop goes away
}

}  // namespace internal

Server::Server(const Router& router, ServerOptions options)
    : router_(router), opts_(std::move(options)) {}

Server::~Server() { stop(); }

size_t Server::activeStreams() const { return core_ ? core_->activeStreams() : 0; }

ServerStats Server::stats() const { return core_ ? core_->stats() : ServerStats{}; }

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
  // glibc serves a large block from mmap only until the first one is freed; then it raises its
  // threshold (up to 32 MiB) and keeps up to twice that free at the top of each thread's arena.
  // With a thread per handler, every refused 16 MiB body stayed resident for good (50 of them:
  // ~1 GB). Fixing the threshold at glibc's default keeps large blocks in mmap, returned at free.
  ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  CILIUM_RETURN_IF_ERROR(prepareSocketPath());
  auto core = std::make_unique<internal::ServerCore>(router_, opts_);
  CILIUM_RETURN_IF_ERROR(core->listen());
  if (::chmod(opts_.socket_path.c_str(), opts_.socket_mode) != 0)
    return errnoError(errno, "chmod " + opts_.socket_path);
  struct stat st {};
  if (::stat(opts_.socket_path.c_str(), &st) == 0) socket_inode_ = st.st_ino;
  core_ = std::move(core);
  core_->run();
  started_ = true;
  log()->info("API server listening socket={} mode={:o}", opts_.socket_path, opts_.socket_mode);
  return okStatus();
}

void Server::stop() {
  if (!started_) return;
  started_ = false;
  core_->stop();
  struct stat st {};
  // Remove the socket only if it is the one we made: a new agent may already have replaced it.
  if (::stat(opts_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_inode_)
    ::unlink(opts_.socket_path.c_str());
  log()->info("API server stopped socket={}", opts_.socket_path);
}

}  // namespace cilium::api
