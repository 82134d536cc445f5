// The proxy: listeners, the session base (upstream as the original client, idle deadline), and
// HTTP/1.1 sessions (keep-alive, pipelining, streaming bodies, upgrades, 403 for denials).
#include "agent/proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <list>
#include <thread>

#include "agent/common/log.h"
#include "agent/proxy/http1.h"
#include "agent/proxy/session.h"
#include "bpf/abi/proxy.h"

namespace cilium::proxy {
namespace {

auto& log() {
  static auto l = cilium::logger("proxy");
  return l;
}

constexpr size_t kReadBuffer = 64 * 1024;
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace

int64_t wallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- Session base ------------------------------------------------------------------------------

Session::Session(SessionHost& host, ConnInfo info, tcp::socket down)
    : host_(host),
      info_(info),
      down_(std::move(down)),
      up_(down_.get_executor()),
      idle_timer_(down_.get_executor()),
      connect_timer_(down_.get_executor()),
      last_activity_(std::chrono::steady_clock::now()) {}

Session::~Session() { host_.sessionClosed(); }

RequestVerdict Session::decide(const RequestView& req) const {
  RequestVerdict v;
  auto policy = host_.currentPolicy();
  if (!policy) return v;
  auto ep = policy->endpointByAddress(info_.ingress ? info_.dst_ip : info_.src_ip);
  if (!ep) return v;  // an endpoint the proxy has no policy for: fail closed
  v.endpoint_id = ep->id;
  uint32_t peer = info_.peer_identity.value_or(0);
  v.src_identity = info_.ingress ? peer : ep->identity;
  v.dst_identity = info_.ingress ? ep->identity : peer;
  if (!info_.peer_identity) return v;
  v.decision = policy->decide(*ep, info_.ingress ? Direction::kIngress : Direction::kEgress,
                              IPPROTO_TCP, info_.dst_port, peer, req);
  return v;
}

AccessRecord Session::baseRecord(const RequestVerdict& v) const {
  AccessRecord r;
  r.ingress = info_.ingress;
  r.time_ns = wallNanos();
  r.endpoint_id = v.endpoint_id;
  r.src_ip = info_.src_ip.toString();
  r.dst_ip = info_.dst_ip.toString();
  r.src_port = info_.src_port;
  r.dst_port = info_.dst_port;
  r.src_identity = v.src_identity;
  r.dst_identity = v.dst_identity;
  r.proxy_port = info_.proxy_port;
  return r;
}

void Session::touch() { last_activity_ = std::chrono::steady_clock::now(); }

void Session::armIdle() {
  auto timeout = host_.options().idle_timeout;
  idle_timer_.expires_at(last_activity_ + timeout);
  idle_timer_.async_wait([self = weak_from_this(), this](boost::system::error_code ec) {
    auto s = self.lock();
    if (!s || ec || closed_) return;
    if (std::chrono::steady_clock::now() >= last_activity_ + host_.options().idle_timeout) {
      close();
      return;
    }
    armIdle();
  });
}

void Session::connectUpstream(uint32_t src_identity,
                              std::function<void(boost::system::error_code)> done) {
  const auto& opts = host_.options();
  tcp::endpoint dst(asioAddress(info_.dst_ip), info_.dst_port);
  // The retry closure refers to itself weakly: a strong self-reference (or one to the session)
  // would keep every session alive forever, and with it the count of active connections.
  auto attempt = std::make_shared<std::function<void(bool)>>();
  std::weak_ptr<std::function<void(bool)>> weak_attempt = attempt;
  std::weak_ptr<Session> weak_self = shared_from_this();
  *attempt = [this, weak_self, weak_attempt, dst, src_identity, done, &opts](bool keep_port) {
    auto self = weak_self.lock();
    auto attempt = weak_attempt.lock();
    if (!self || !attempt) return;
    boost::system::error_code ec;
    if (up_.is_open()) up_.close(ec);
    up_.open(dst.protocol(), ec);
    if (ec) return done(ec);
    int fd = up_.native_handle();
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // Requests go out whole (gather writes): nothing gains from Nagle's wait.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opts.transparent) {
      // As the original client: its address (and port while free), the proxy's mark carrying
      // its identity, so the datapath judges the forwarded connection as the client's.
      setTransparent(fd, info_.dst_ip.isV4());
      uint32_t mark = proxy_mark(info_.ingress ? MARK_MAGIC_PROXY_INGRESS : MARK_MAGIC_PROXY_EGRESS,
                                 src_identity);
      ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
      tcp::endpoint src(asioAddress(info_.src_ip), keep_port ? info_.src_port : 0);
      up_.bind(src, ec);
      if (ec && keep_port) return (*attempt)(false);
      if (ec) return done(ec);
    }
    connect_timer_.expires_after(opts.connect_timeout);
    connect_timer_.async_wait([this, self](boost::system::error_code tec) {
      if (!tec) {
        boost::system::error_code ignored;
        up_.cancel(ignored);
      }
    });
    up_.async_connect(dst, [this, self, attempt, keep_port, done](boost::system::error_code cec) {
      connect_timer_.cancel();
      // The client's own 4-tuple may still be taken (TIME_WAIT, another proxy leg): a new port.
      if (cec && keep_port && (cec == asio::error::address_in_use || cec.value() == EADDRNOTAVAIL))
        return (*attempt)(false);
      done(cec);
    });
  };
  (*attempt)(true);
}

// --- HTTP/1.1 ----------------------------------------------------------------------------------

namespace {

// The largest body of a denied request the proxy reads (and drops) to keep the connection.
constexpr uint64_t kMaxDrainedBody = 64 * 1024;

class Http1Session final : public Session {
 public:
  Http1Session(SessionHost& host, ConnInfo info, tcp::socket down)
      : Session(host, info, std::move(down)),
        req_handler_(*this),
        resp_handler_(*this),
        req_parser_(Http1Parser::Kind::kRequest, req_handler_),
        resp_parser_(Http1Parser::Kind::kResponse, resp_handler_),
        header_timer_(down_.get_executor()) {
    resp_parser_.setIsHeadResponse([this] {
      for (const auto& p : pending_)
        if (!p.local) return p.head_method;
      return false;
    });
  }

  void start(std::string initial) override {
    armIdle();
    armHeaderTimer();
    if (!initial.empty()) {
      Batch batch(*this);
      processDown(initial.data(), initial.size());
    }
    if (!closed_ && !down_stop_ && up_out_.empty()) readDown();
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    down_.close(ec);
    up_.close(ec);
    idle_timer_.cancel();
    header_timer_.cancel();
    connect_timer_.cancel();
  }

 private:
  struct Pending {
    bool local = false;
    std::string response;  // local: the whole response
    bool close = false;    // local: close after it
    bool head_method = false;
    bool upgrade = false;
    std::chrono::steady_clock::time_point start;
    AccessRecord record;  // the request's, for the response record
  };

  struct ReqHandler final : Http1Parser::Handler {
    explicit ReqHandler(Http1Session& s) : s(s) {}
    void onHead(Http1Head& h) override { s.onRequestHead(h); }
    void onBody(const char* d, size_t n) override {
      if (s.cur_forward_) s.queueUp(std::string(d, n));
    }
    void onMessageEnd() override { s.onRequestEnd(); }
    Http1Session& s;
  };
  struct RespHandler final : Http1Parser::Handler {
    explicit RespHandler(Http1Session& s) : s(s) {}
    void onHead(Http1Head& h) override { s.onResponseHead(h); }
    void onBody(const char* d, size_t n) override { s.queueDown(std::string(d, n)); }
    void onMessageEnd() override { s.onResponseEnd(); }
    Http1Session& s;
  };

  // --- downstream (client) side

  void readDown() {
    if (closed_ || down_reading_) return;
    down_reading_ = true;
    auto self = shared_from_this();
    down_.async_read_some(
        asio::buffer(down_buf_), [this, self](boost::system::error_code ec, size_t n) {
          down_reading_ = false;
          if (closed_) return;
          touch();
          if (ec) return onDownEof();
          {
            Batch batch(*this);
            if (mode_ == Mode::kTunnel) {
              queueUp(std::string(down_buf_.data(), n));
            } else {
              processDown(down_buf_.data(), n);
            }
          }
          if (!closed_ && !down_stop_ && up_out_.empty() && mode_ != Mode::kUpgradePending)
            readDown();
        });
  }

  void processDown(const char* data, size_t len) {
    size_t n = req_parser_.feed(data, len);
    if (req_parser_.failed()) return onParseError();
    if (req_parser_.upgraded()) {
      // What the client sent after the upgrade request waits for the server's answer.
      tunnel_early_.append(data + n, len - n);
      if (ignore_upgrade_) {
        req_parser_.resetAfterUpgrade();
        ignore_upgrade_ = false;
        std::string rest;
        rest.swap(tunnel_early_);
        if (!rest.empty()) processDown(rest.data(), rest.size());
        return;
      }
      mode_ = Mode::kUpgradePending;
      return;
    }
    if (req_parser_.inMessage()) armHeaderTimer();
  }

  void onParseError() {
    host_.stats().parse_errors++;
    unsigned status = req_parser_.errorStatus();
    log()->debug("bad request from {}:{}: {}", info_.src_ip.toString(), info_.src_port,
                 req_parser_.error());
    AccessRecord r = baseRecord(decide(RequestView{}));
    r.type = AccessRecord::Type::kRequest;
    r.verdict = AccessRecord::Verdict::kError;
    r.parse_error = true;
    r.protocol = "HTTP/1.1";
    r.code = status;
    host_.record(std::move(r));
    const char* reason = status == 431   ? "Request Header Fields Too Large"
                         : status == 414 ? "URI Too Long"
                                         : "Bad Request";
    Pending p;
    p.local = true;
    p.response = http1Response(status, reason, reason, true);
    p.close = true;
    pending_.push_back(std::move(p));
    down_stop_ = true;
    flushPending();
  }

  void onRequestHead(Http1Head& h) {
    header_timer_.cancel();
    header_deadline_set_ = false;
    host_.stats().received++;
    RequestView view;
    view.method = h.method;
    view.path = h.url;
    auto host = h.header("host");
    view.host = host.value_or("");
    for (const auto& [k, v] : h.headers) view.headers.emplace_back(k, v);
    RequestVerdict v = decide(view);
    AccessRecord r = baseRecord(v);
    r.type = AccessRecord::Type::kRequest;
    r.method = h.method;
    r.url = fmt::format("http://{}{}", view.host, h.url);
    r.protocol = fmt::format("HTTP/{}.{}", h.major, h.minor);
    bool keep_alive = h.keep_alive;
    if (!keep_alive) down_stop_after_message_ = true;
    if (v.decision.allowed) {
      host_.stats().forwarded++;
      r.verdict = AccessRecord::Verdict::kForwarded;
      // h2c upgrades are not for us to pass (the stream would escape the HTTP/1 rules): dropped,
      // as Envoy does. Other upgrades (WebSocket) are tunnelled once the server agrees.
      std::vector<std::string> drop;
      std::vector<std::pair<std::string, std::string>> add;
      bool h2c = false;
      if (auto up = h.header("upgrade"); up && up->find("h2c") != std::string_view::npos) {
        h2c = true;
        drop = {"upgrade", "http2-settings", "connection"};
        ignore_upgrade_ = h.upgrade;
      }
      for (const auto& a : v.decision.actions) {
        if (a.kind == HeaderAction::Kind::kLog) continue;
        drop.push_back(a.name);
        if (a.kind != HeaderAction::Kind::kDelete) add.emplace_back(a.name, a.value);
      }
      Pending p;
      p.head_method = h.method == "HEAD";
      p.upgrade = h.upgrade && !h2c;
      p.start = std::chrono::steady_clock::now();
      p.record = r;
      pending_.push_back(std::move(p));
      cur_forward_ = true;
      queueUp(drop.empty() && add.empty() ? h.raw : rebuildRequestHead(h, drop, add));
      ensureUpstream(v.src_identity);
    } else {
      host_.stats().denied++;
      r.verdict = AccessRecord::Verdict::kDenied;
      r.code = 403;
      cur_forward_ = false;
      Pending p;
      p.local = true;
      // A small denied body is read and dropped, so that the connection lives on (keep-alive,
      // as Envoy answers); a large or chunked one is not waited for: closed after the answer.
      p.close = !keep_alive || h.upgrade || h.chunked || h.content_length > kMaxDrainedBody;
      p.response = http1Response(403, "Forbidden", "Access denied", p.close);
      if (p.close) down_stop_ = true;
      pending_.push_back(std::move(p));
      if (h.upgrade) ignore_upgrade_ = false;
      flushPending();
    }
    host_.record(std::move(r));
  }

  void onRequestEnd() {
    cur_forward_ = false;
    if (down_stop_after_message_) down_stop_ = true;
  }

  void onDownEof() {
    down_stop_ = true;
    bool upstream_pending = false;
    for (const auto& p : pending_) upstream_pending |= !p.local;
    if (mode_ == Mode::kTunnel || upstream_pending) {
      // Half-close towards the server; its answers still reach the client.
      boost::system::error_code ec;
      if (up_state_ == UpState::kConnected) up_.shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    if (down_out_.empty() && !down_writing_) close();
  }

  void armHeaderTimer() {
    if (header_deadline_set_) return;
    header_deadline_set_ = true;
    header_timer_.expires_after(host_.options().request_header_timeout);
    header_timer_.async_wait([self = weak_from_this(), this](boost::system::error_code ec) {
      auto s = self.lock();
      if (!s || ec || closed_) return;
      // A client that sends its request head too slowly (slowloris) gets 408 and a close.
      if (mode_ != Mode::kHttp) return;
      Pending p;
      p.local = true;
      p.close = true;
      p.response = http1Response(408, "Request Timeout", "Request Timeout", true);
      pending_.push_back(std::move(p));
      down_stop_ = true;
      flushPending();
    });
  }

  // --- upstream (server) side

  void ensureUpstream(uint32_t src_identity) {
    if (up_state_ == UpState::kConnecting || up_state_ == UpState::kConnected) return;
    up_state_ = UpState::kConnecting;
    auto self = shared_from_this();
    connectUpstream(src_identity, [this, self](boost::system::error_code ec) {
      if (closed_) return;
      if (ec) {
        host_.stats().upstream_errors++;
        log()->debug("upstream {}:{} connect failed: {}", info_.dst_ip.toString(), info_.dst_port,
                     ec.message());
        up_state_ = UpState::kFailed;
        failPendingUpstream(503, "upstream connect error or disconnect/reset before headers");
        return;
      }
      up_state_ = UpState::kConnected;
      writeUp();
      readUp();
    });
  }

  // Requests still waiting for the server get a local error in their place, then the
  // connection closes.
  void failPendingUpstream(unsigned status, std::string_view body) {
    up_out_.clear();
    for (auto& p : pending_) {
      if (p.local) continue;
      p.local = true;
      p.close = true;
      p.response =
          http1Response(status, status == 503 ? "Service Unavailable" : "Bad Gateway", body, true);
      AccessRecord r = p.record;
      r.type = AccessRecord::Type::kResponse;
      r.verdict = AccessRecord::Verdict::kError;
      r.code = status;
      r.time_ns = wallNanos();
      host_.record(std::move(r));
    }
    down_stop_ = true;
    flushPending();
  }

  void readUp() {
    if (closed_ || up_reading_ || up_state_ != UpState::kConnected) return;
    up_reading_ = true;
    auto self = shared_from_this();
    up_.async_read_some(asio::buffer(up_buf_),
                        [this, self](boost::system::error_code ec, size_t n) {
                          up_reading_ = false;
                          if (closed_) return;
                          touch();
                          if (ec) return onUpEof();
                          Batch batch(*this);
                          if (mode_ == Mode::kTunnel) {
                            queueDown(std::string(up_buf_.data(), n));
                          } else {
                            size_t used = resp_parser_.feed(up_buf_.data(), n);
                            if (resp_parser_.failed()) {
                              host_.stats().upstream_errors++;
                              failPendingUpstream(502, "upstream sent an invalid response");
                              return;
                            }
                            if (mode_ == Mode::kTunnel && used < n)
                              queueDown(std::string(up_buf_.data() + used, n - used));
                          }
                          batch.flush();
                          if (!closed_ && down_out_.empty()) readUp();
                        });
  }

  void onUpEof() {
    if (mode_ == Mode::kTunnel) {
      up_state_ = UpState::kClosed;
      down_stop_ = true;
      if (down_out_.empty() && !down_writing_) close();
      return;
    }
    resp_parser_.finish();
    bool upstream_pending = false;
    for (const auto& p : pending_) upstream_pending |= !p.local;
    boost::system::error_code ec;
    up_.close(ec);
    if (upstream_pending) {
      up_state_ = UpState::kFailed;
      failPendingUpstream(503, "upstream connect error or disconnect/reset before headers");
      return;
    }
    // Nothing outstanding: the next allowed request connects again.
    up_state_ = UpState::kNone;
    resp_parser_.resetAfterUpgrade();
    if (down_stop_ && down_out_.empty() && !down_writing_) close();
  }

  void onResponseHead(Http1Head& h) {
    queueDown(h.raw);
    cur_status_ = h.status;
  }

  void onResponseEnd() {
    if (cur_status_ >= 100 && cur_status_ < 200 && cur_status_ != 101) return;  // interim
    if (pending_.empty() || pending_.front().local) {
      // A response nobody asked for: the server is broken; stop here.
      host_.stats().upstream_errors++;
      close();
      return;
    }
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    AccessRecord r = std::move(p.record);
    r.type = AccessRecord::Type::kResponse;
    r.code = cur_status_;
    r.time_ns = wallNanos();
    r.latency_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::steady_clock::now() - p.start)
                                             .count());
    host_.record(std::move(r));
    if (p.upgrade) {
      if (cur_status_ == 101) {
        mode_ = Mode::kTunnel;
        if (!tunnel_early_.empty()) {
          queueUp(std::move(tunnel_early_));
          tunnel_early_.clear();
        }
        if (!down_stop_ && up_out_.empty()) readDown();
        return;
      }
      // The server refused the upgrade: HTTP goes on.
      mode_ = Mode::kHttp;
      req_parser_.resetAfterUpgrade();
      std::string rest;
      rest.swap(tunnel_early_);
      if (!rest.empty()) processDown(rest.data(), rest.size());
      if (!closed_ && !down_stop_ && up_out_.empty()) readDown();
    }
    flushPending();
  }

  // --- writes

  // What a read's processing queues (a response head and its body, pipelined answers) leaves in
  // one gather write per side when the batch ends: one send, one wakeup of the peer, instead of
  // one per piece.
  class Batch {
   public:
    explicit Batch(Http1Session& s) : s_(s) { s_.batch_depth_++; }
    ~Batch() { flush(); }
    void flush() {
      if (done_) return;
      done_ = true;
      if (--s_.batch_depth_ != 0) return;
      if (s_.up_state_ == UpState::kConnected) s_.writeUp();
      s_.writeDown();
    }

   private:
    Http1Session& s_;
    bool done_ = false;
  };

  // Up to kMaxGather queued pieces as one buffer sequence (writev).
  static std::vector<asio::const_buffer> gather(const std::deque<std::string>& out) {
    constexpr size_t kMaxGather = 64;
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(std::min(out.size(), kMaxGather));
    for (size_t i = 0; i < out.size() && i < kMaxGather; i++) bufs.push_back(asio::buffer(out[i]));
    return bufs;
  }

  void queueUp(std::string bytes) {
    if (bytes.empty()) return;
    up_out_.push_back(std::move(bytes));
    if (batch_depth_ == 0 && up_state_ == UpState::kConnected) writeUp();
  }

  void writeUp() {
    if (up_writing_ || up_out_.empty() || closed_) return;
    up_writing_ = true;
    auto self = shared_from_this();
    auto bufs = gather(up_out_);
    size_t pieces = bufs.size();
    asio::async_write(up_, bufs, [this, self, pieces](boost::system::error_code ec, size_t) {
      up_writing_ = false;
      if (closed_) return;
      touch();
      if (ec) return onUpEof();
      up_out_.erase(up_out_.begin(), up_out_.begin() + static_cast<long>(pieces));
      if (!up_out_.empty()) return writeUp();
      if (down_stop_ && mode_ == Mode::kTunnel) {
        boost::system::error_code ignored;
        up_.shutdown(tcp::socket::shutdown_send, ignored);
      }
      if (!down_stop_ && mode_ != Mode::kUpgradePending) readDown();
    });
  }

  void queueDown(std::string bytes) {
    if (bytes.empty()) return;
    down_out_.push_back(std::move(bytes));
    if (batch_depth_ == 0) writeDown();
  }

  void flushPending() {
    while (!pending_.empty() && pending_.front().local) {
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      queueDown(std::move(p.response));
      if (p.close) {
        close_after_write_ = true;
        pending_.clear();
        break;
      }
    }
    if (close_after_write_ && down_out_.empty() && !down_writing_) close();
  }

  void writeDown() {
    if (down_writing_ || down_out_.empty() || closed_) return;
    down_writing_ = true;
    auto self = shared_from_this();
    auto bufs = gather(down_out_);
    size_t pieces = bufs.size();
    asio::async_write(down_, bufs, [this, self, pieces](boost::system::error_code ec, size_t) {
      down_writing_ = false;
      if (closed_) return;
      touch();
      if (ec) return close();
      down_out_.erase(down_out_.begin(), down_out_.begin() + static_cast<long>(pieces));
      if (!down_out_.empty()) return writeDown();
      bool upstream_pending = false;
      for (const auto& p : pending_) upstream_pending |= !p.local;
      if (close_after_write_ || (down_stop_ && !upstream_pending && mode_ != Mode::kTunnel) ||
          (mode_ == Mode::kTunnel && up_state_ == UpState::kClosed)) {
        boost::system::error_code ignored;
        down_.shutdown(tcp::socket::shutdown_send, ignored);
        close();
        return;
      }
      readUp();
    });
  }

  enum class Mode { kHttp, kUpgradePending, kTunnel };
  enum class UpState { kNone, kConnecting, kConnected, kFailed, kClosed };

  ReqHandler req_handler_;
  RespHandler resp_handler_;
  Http1Parser req_parser_;
  Http1Parser resp_parser_;
  asio::steady_timer header_timer_;
  bool header_deadline_set_ = false;
  std::array<char, kReadBuffer> down_buf_{};
  std::array<char, kReadBuffer> up_buf_{};
  std::deque<Pending> pending_;
  std::deque<std::string> up_out_, down_out_;
  std::string tunnel_early_;
  Mode mode_ = Mode::kHttp;
  UpState up_state_ = UpState::kNone;
  unsigned cur_status_ = 0;
  bool cur_forward_ = false;
  bool ignore_upgrade_ = false;
  bool down_reading_ = false, up_reading_ = false;
  bool down_writing_ = false, up_writing_ = false;
  bool down_stop_ = false;  // read nothing more from the client
  bool down_stop_after_message_ = false;
  bool close_after_write_ = false;
  int batch_depth_ = 0;  // > 0: writes wait for the batch's end (Batch)
};

}  // namespace

std::shared_ptr<Session> makeHttp1Session(SessionHost& host, ConnInfo info, tcp::socket down) {
  return std::make_shared<Http1Session>(host, info, std::move(down));
}

// --- Proxy ------------------------------------------------------------------------------------

struct Proxy::Impl final : SessionHost, std::enable_shared_from_this<Proxy::Impl> {
  Impl(asio::io_context& io, ProxyOptions o, IdentitySource* ids, RecordSink sink)
      : io_(io), opts(std::move(o)), identities(ids), sink(std::move(sink)) {
    for (int i = 1; i < opts.threads; i++) {
      auto& w = workers.emplace_back(std::make_unique<Worker>());
      w->thread = std::thread([io = &w->io] { io->run(); });
    }
  }

  // Ends the worker threads (their sessions go with their io_contexts, when Impl goes).
  void stopWorkers() {
    for (auto& w : workers) {
      w->guard.reset();
      w->io.stop();
    }
    for (auto& w : workers)
      if (w->thread.joinable()) w->thread.join();
  }
  const ProxyOptions& options() const override { return opts; }
  std::shared_ptr<const CompiledPolicy> currentPolicy() const override {
    std::lock_guard lock(mu);
    return policy;
  }
  void record(AccessRecord r) override {
    if (sink) sink(std::move(r));
  }
  ProxyStats& stats() override { return stats_; }
  void sessionClosed() override { stats_.active--; }

  // One proxy port: its IPv4 listener and, where the namespace has IPv6, its IPv6 one.
  struct Listener {
    uint16_t port = 0;
    bool ingress = true;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::unique_ptr<tcp::acceptor> acceptor6;  // null: no IPv6 (IPv6 redirects drop)
    void close() {
      boost::system::error_code ec;
      if (acceptor) acceptor->close(ec);
      if (acceptor6) acceptor6->close(ec);
    }
  };

  // The listener of one family on `address`:port. kUnavailable when the port cannot be bound;
  // kFailedPrecondition when the namespace has no such address (IPv6 off).
  Result<std::unique_ptr<tcp::acceptor>> listenOn(const std::string& address, uint16_t port,
                                                  bool ingress) {
    auto acc = std::make_unique<tcp::acceptor>(io_);
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(address, ec), port);
    if (ec) return Error(ErrorCode::kInvalidArgument, "listen address: " + ec.message());
    acc->open(ep.protocol(), ec);
    if (!ec) {
      int one = 1;
      int fd = acc->native_handle();
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      // Each family its own socket: an IPv6 one never takes IPv4 (the datapath finds each).
      if (ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
      if (opts.transparent) {
        // Transparent: accepted connections keep the original destination as local address,
        // and answers leave with it. The mark tells the datapath they are the proxy's.
        setTransparent(fd, ep.address().is_v4());
        uint32_t mark = proxy_mark(ingress ? MARK_MAGIC_PROXY_INGRESS : MARK_MAGIC_PROXY_EGRESS, 0);
        ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
      }
      if (!ec) acc->bind(ep, ec);
    }
    if (!ec) acc->listen(1024, ec);
    if (ec) {
      bool no_family = ec == asio::error::address_family_not_supported ||
                       ec.value() == EADDRNOTAVAIL || ec.value() == EAFNOSUPPORT;
      return Error(no_family ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                   fmt::format("listen on {}:{}: {}", address, port, ec.message()));
    }
    return acc;
  }

  Result<Listener> listen(uint16_t port, bool ingress) {
    Listener l{port, ingress, nullptr, nullptr};
    CILIUM_ASSIGN_OR_RETURN(l.acceptor, listenOn(opts.listen_address, port, ingress));
    if (!opts.listen_address6.empty()) {
      auto acc6 = listenOn(opts.listen_address6, port, ingress);
      if (acc6.ok()) {
        l.acceptor6 = std::move(*acc6);
      } else if (acc6.error().code() == ErrorCode::kFailedPrecondition) {
        log()->warn("no IPv6 listener ({}): IPv6 traffic redirected to port {} is dropped",
                    acc6.error().message(), port);
      } else {
        l.close();
        return acc6.error();
      }
    }
    return l;
  }

  void accept(tcp::acceptor* acc, bool ingress, uint16_t port) {
    auto self = shared_from_this();
    acc->async_accept(
        [this, self, acc, ingress, port](boost::system::error_code ec, tcp::socket s) {
          if (ec == asio::error::operation_aborted || !acc->is_open()) return;
          if (!ec) onAccepted(std::move(s), ingress, port);
          accept_again(acc, ingress, port);
        });
  }
  void accept(Listener& l) {
    accept(l.acceptor.get(), l.ingress, l.port);
    if (l.acceptor6) accept(l.acceptor6.get(), l.ingress, l.port);
  }
  void accept_again(tcp::acceptor* acc, bool ingress, uint16_t port) {
    for (auto& l : listeners)
      if (l.acceptor.get() == acc || l.acceptor6.get() == acc) return accept(acc, ingress, port);
  }

  void onAccepted(tcp::socket s, bool ingress, uint16_t port) {
    stats_.connections++;
    if (stats_.active.load() >= opts.max_connections) {
      stats_.refused++;
      boost::system::error_code ec;
      s.close(ec);
      return;
    }
    boost::system::error_code ec1, ec2;
    auto local = s.local_endpoint(ec1);
    auto remote = s.remote_endpoint(ec2);
    if (ec1 || ec2 || local.address().is_v4() != remote.address().is_v4()) return;
    s.set_option(tcp::no_delay(true), ec1);
    // The connection's event loop, in turn: this one or a worker's. The socket moves there
    // whole (its descriptor re-registered with that loop's reactor).
    size_t turn = next_loop_++ % (workers.size() + 1);
    if (turn != 0) {
      tcp::socket moved(workers[turn - 1]->io);
      moved.assign(local.protocol(), s.release(), ec1);
      if (ec1) return;
      s = std::move(moved);
    }
    ConnInfo info;
    info.ingress = ingress;
    info.proxy_port = port;
    info.src_ip = fromAsio(remote.address());
    info.src_port = remote.port();
    info.dst_ip = fromAsio(local.address());
    info.dst_port = local.port();
    if (identities != nullptr)
      info.peer_identity =
          identities->peerIdentity(info.src_ip, info.src_port, info.dst_ip, info.dst_port, ingress);
    else
      info.peer_identity = 0;
    stats_.active++;
    auto sock = std::make_shared<tcp::socket>(std::move(s));
    auto exec = sock->get_executor();
    asio::post(exec, [self = shared_from_this(), sock, info] {
      self->sniff(sock, info, std::make_shared<std::string>());
    });
  }

  // Reads until the bytes tell HTTP/2 (the client preface, as gRPC sends it) from HTTP/1.
  void sniff(std::shared_ptr<tcp::socket> s, ConnInfo info, std::shared_ptr<std::string> got) {
    auto self = shared_from_this();
    auto buf = std::make_shared<std::array<char, 4096>>();
    auto timer =
        std::make_shared<asio::steady_timer>(s->get_executor(), opts.request_header_timeout);
    timer->async_wait([s](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        s->close(ignored);
      }
    });
    s->async_read_some(asio::buffer(*buf), [this, self, s, info, got, buf, timer](
                                               boost::system::error_code ec, size_t n) {
      timer->cancel();
      if (ec) {
        stats_.active--;
        return;
      }
      got->append(buf->data(), n);
      size_t cmp = std::min(got->size(), kH2Preface.size());
      bool maybe_h2 = got->compare(0, cmp, kH2Preface.substr(0, cmp)) == 0;
      if (maybe_h2 && got->size() < kH2Preface.size()) return sniff(s, info, got);
      std::shared_ptr<Session> session = maybe_h2 ? makeHttp2Session(*this, info, std::move(*s))
                                                  : makeHttp1Session(*this, info, std::move(*s));
      {
        std::lock_guard lock(sessions_mu);
        sessions.push_back(session);
        if (sessions.size() > 256) prune();
      }
      session->start(std::move(*got));
    });
  }

  void prune() {
    sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
  }

  asio::io_context& io_;
  ProxyOptions opts;
  IdentitySource* identities;
  RecordSink sink;
  mutable std::mutex mu;
  std::shared_ptr<const CompiledPolicy> policy;
  std::vector<Listener> listeners;
  std::mutex sessions_mu;
  std::list<std::weak_ptr<Session>> sessions;  // under sessions_mu
  ProxyStats stats_;
  std::atomic<bool> listening{false};
  size_t next_loop_ = 0;  // the listeners' thread only
  struct Worker {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::thread thread;
  };
  // Last: destroyed first, while the stats their sessions report to still exist.
  std::vector<std::unique_ptr<Worker>> workers;
};

Proxy::Proxy(asio::io_context& io, ProxyOptions options, IdentitySource* identities,
             RecordSink sink)
    : impl_(std::make_shared<Impl>(io, std::move(options), identities, std::move(sink))) {}

Proxy::~Proxy() { impl_->stopWorkers(); }

Status Proxy::setPolicy(std::shared_ptr<const CompiledPolicy> policy, uint16_t http_ingress_port,
                        uint16_t http_egress_port) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->policy = std::move(policy);
  }
  // (Re)open listeners on the io_context's thread; wait for the outcome.
  std::promise<Status> done;
  auto fut = done.get_future();
  asio::post(impl_->io_, [impl = impl_, http_ingress_port, http_egress_port, &done] {
    std::vector<std::pair<uint16_t, bool>> want;
    if (http_ingress_port != 0) want.emplace_back(http_ingress_port, true);
    if (http_egress_port != 0) want.emplace_back(http_egress_port, false);
    bool same = want.size() == impl->listeners.size();
    for (size_t i = 0; same && i < want.size(); i++)
      same =
          impl->listeners[i].port == want[i].first && impl->listeners[i].ingress == want[i].second;
    if (same) return done.set_value(okStatus());
    std::vector<Impl::Listener> fresh;
    for (auto [port, ingress] : want) {
      // A port already open stays (the datapath keeps finding it).
      bool kept = false;
      for (auto& l : impl->listeners) {
        if (l.port == port && l.ingress == ingress && l.acceptor) {
          fresh.push_back(std::move(l));
          kept = true;
          break;
        }
      }
      if (kept) continue;
      auto l = impl->listen(port, ingress);
      if (!l.ok()) return done.set_value(l.error());
      fresh.push_back(std::move(*l));
    }
    for (auto& l : impl->listeners) l.close();
    impl->listeners = std::move(fresh);
    for (auto& l : impl->listeners) impl->accept(l);
    impl->listening = !impl->listeners.empty();
    log()->info("proxy listening http_ingress={} http_egress={}", http_ingress_port,
                http_egress_port);
    done.set_value(okStatus());
  });
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    return Error(ErrorCode::kDeadlineExceeded, "proxy event loop did not answer");
  return fut.get();
}

std::shared_ptr<const CompiledPolicy> Proxy::policy() const { return impl_->currentPolicy(); }
bool Proxy::listening() const { return impl_->listening.load(); }
const ProxyStats& Proxy::stats() const { return impl_->stats_; }

void Proxy::stop() {
  asio::post(impl_->io_, [impl = impl_] {
    for (auto& l : impl->listeners) l.close();
    impl->listeners.clear();
    impl->listening = false;
    std::lock_guard lock(impl->sessions_mu);
    for (auto& w : impl->sessions)
      if (auto s = w.lock()) asio::post(s->executor(), [s] { s->close(); });
    impl->sessions.clear();
  });
}

}  // namespace cilium::proxy
