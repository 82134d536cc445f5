// HTTP/2 sessions (prior knowledge, as gRPC clients speak it) on nghttp2: the client's streams
// are decided one by one (method, :path, :authority, headers; a gRPC method is the path
// /package.Service/Method), allowed ones are forwarded on one HTTP/2 connection to the original
// destination with their bodies and trailers streamed both ways, denied ones answered 403
// "Access denied" (a gRPC request: grpc-status 7 PERMISSION_DENIED, as Envoy answers).
// Flow control is manual: the client's window reopens only as its bytes are handed upstream
// (and the server's as its bytes go to the client), so memory per stream stays bounded.
#include <cstring>
#include <map>

#include <nghttp2/nghttp2.h>

#include "agent/common/log.h"
#include "agent/proxy/session.h"

namespace cilium::proxy {
namespace {

auto& log() {
  static auto l = cilium::logger("proxy");
  return l;
}

struct Header {
  std::string name, value;
};

std::vector<nghttp2_nv> toNv(const std::vector<Header>& hs) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(hs.size());
  for (const auto& h : hs)
    nv.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                            reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())),
                            h.name.size(), h.value.size(), NGHTTP2_NV_FLAG_NONE});
  return nv;
}

// Hop-by-hop headers are not HTTP/2's; nghttp2 refuses them.
bool hopByHop(const std::string& n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" ||
         n == "transfer-encoding" || n == "upgrade";
}

struct Stream {
  int32_t down_id = 0;
  int32_t up_id = 0;
  std::vector<Header> req_headers, req_trailers, resp_headers, resp_trailers;
  std::string method, path, authority, content_type;
  bool allowed = false, decided = false;
  bool req_ended = false, resp_ended = false;
  bool resp_started = false;
  std::string to_up, to_down;  // body bytes waiting for the other side
  size_t up_consumed = 0;      // bytes handed upstream whose window is not yet reopened
  std::chrono::steady_clock::time_point start;
  AccessRecord record;
  bool local = false;  // answered by the proxy
  std::string local_body;
  bool down_closed = false;  // kept until the upstream stream is gone too (its data source)
};

class Http2Session final : public Session {
 public:
  Http2Session(SessionHost& host, ConnInfo info, tcp::socket down)
      : Session(host, info, std::move(down)) {}

  ~Http2Session() override {
    if (srv_) nghttp2_session_del(srv_);
    if (cli_) nghttp2_session_del(cli_);
  }

  void start(std::string initial) override {
    armIdle();
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Http2Session::srvBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, &Http2Session::srvHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Http2Session::srvFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Http2Session::srvData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Http2Session::srvStreamClose);
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    // Bounded state per client: a header list and stream count no larger than Envoy's defaults.
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_session_server_new2(&srv_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024}};
    nghttp2_submit_settings(srv_, NGHTTP2_FLAG_NONE, iv, 3);
    if (!recvDown(initial.data(), initial.size())) return;
    flush();
    readDown();
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    down_.close(ec);
    up_.close(ec);
    idle_timer_.cancel();
    connect_timer_.cancel();
  }

 private:
  static Http2Session* self(void* p) { return static_cast<Http2Session*>(p); }

  // --- client side (server session)

  static int srvBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto* s = self(ud);
    auto st = std::make_unique<Stream>();
    st->down_id = f->hd.stream_id;
    st->start = std::chrono::steady_clock::now();
    s->streams_[f->hd.stream_id] = std::move(st);
    return 0;
  }

  static int srvHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                       const uint8_t* value, size_t vlen, uint8_t, void* ud) {
    auto* s = self(ud);
    Stream* st = s->stream(f->hd.stream_id);
    if (st == nullptr) return 0;
    Header h{std::string(reinterpret_cast<const char*>(name), nlen),
             std::string(reinterpret_cast<const char*>(value), vlen)};
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (h.name == ":method")
        st->method = h.value;
      else if (h.name == ":path")
        st->path = h.value;
      else if (h.name == ":authority")
        st->authority = h.value;
      else if (h.name == "host" && st->authority.empty())
        st->authority = h.value;
      else if (h.name == "content-type")
        st->content_type = h.value;
      st->req_headers.push_back(std::move(h));
    } else {
      st->req_trailers.push_back(std::move(h));
    }
    return 0;
  }

  static int srvFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    auto* s = self(ud);
    Stream* st = s->stream(f->hd.stream_id);
    if (st == nullptr) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      st->req_ended = end;
      s->decideStream(*st);
    } else if (end && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) {
      st->req_ended = true;
      if (st->allowed && st->up_id != 0) nghttp2_session_resume_data(s->cli_, st->up_id);
    }
    return 0;
  }

  static int srvData(nghttp2_session* sess, uint8_t, int32_t id, const uint8_t* data, size_t len,
                     void* ud) {
    auto* s = self(ud);
    Stream* st = s->stream(id);
    if (st == nullptr || !st->allowed) {
      // Denied or gone: dropped, and its window reopened at once.
      nghttp2_session_consume(sess, id, len);
      return 0;
    }
    st->to_up.append(reinterpret_cast<const char*>(data), len);
    if (st->up_id != 0) nghttp2_session_resume_data(s->cli_, st->up_id);
    return 0;
  }

  static int srvStreamClose(nghttp2_session*, int32_t id, uint32_t, void* ud) {
    auto* s = self(ud);
    auto it = s->streams_.find(id);
    if (it == s->streams_.end()) return 0;
    Stream* st = it->second.get();
    st->down_closed = true;
    if (st->up_id == 0 || s->cli_ == nullptr) {
      if (st->up_id != 0) s->by_up_.erase(st->up_id);
      s->streams_.erase(it);
      return 0;
    }
    // The upstream stream still reads from this one: cancelled, freed when it closes.
    if (!st->resp_ended)
      nghttp2_submit_rst_stream(s->cli_, NGHTTP2_FLAG_NONE, st->up_id, NGHTTP2_CANCEL);
    return 0;
  }

  void decideStream(Stream& st) {
    host_.stats().received++;
    RequestView view;
    view.method = st.method;
    view.path = st.path;
    view.host = st.authority;
    for (const auto& h : st.req_headers)
      if (h.name.empty() || h.name[0] != ':') view.headers.emplace_back(h.name, h.value);
    RequestVerdict v = decide(view);
    st.decided = true;
    st.record = baseRecord(v);
    st.record.type = AccessRecord::Type::kRequest;
    st.record.method = st.method;
    st.record.url = fmt::format("http://{}{}", st.authority, st.path);
    st.record.protocol = "HTTP/2";
    if (!v.decision.allowed) {
      host_.stats().denied++;
      st.record.verdict = AccessRecord::Verdict::kDenied;
      st.record.code = 403;
      host_.record(st.record);
      respondLocal(st, 403, "Access denied");
      return;
    }
    host_.stats().forwarded++;
    st.record.verdict = AccessRecord::Verdict::kForwarded;
    host_.record(st.record);
    st.allowed = true;
    // Header actions of headerMatches (mismatch ADD/DELETE/REPLACE).
    for (const auto& a : v.decision.actions) {
      if (a.kind == HeaderAction::Kind::kLog) continue;
      std::string lname = a.name;
      for (auto& c : lname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::erase_if(st.req_headers, [&](const Header& h) { return h.name == lname; });
      if (a.kind != HeaderAction::Kind::kDelete) st.req_headers.push_back({lname, a.value});
    }
    waiting_.push_back(st.down_id);
    ensureUpstream(v.src_identity);
    submitWaiting();
  }

  // A response of the proxy's own: 403 for a denial (trailers-only for gRPC), or an error.
  void respondLocal(Stream& st, unsigned status, std::string body) {
    st.local = true;
    st.resp_started = true;
    bool grpc = st.content_type.rfind("application/grpc", 0) == 0;
    std::vector<Header> hs;
    if (grpc) {
      // HTTP status -> gRPC code as Envoy maps it: 403 PERMISSION_DENIED, 503 UNAVAILABLE.
      std::string code = status == 403 ? "7" : status == 503 ? "14" : "13";
      hs = {{":status", "200"},
            {"content-type", "application/grpc"},
            {"grpc-status", code},
            {"grpc-message", body}};
      auto nv = toNv(hs);
      nghttp2_submit_response(srv_, st.down_id, nv.data(), nv.size(), nullptr);
    } else {
      st.local_body = std::move(body);
      hs = {{":status", std::to_string(status)},
            {"content-type", "text/plain"},
            {"content-length", std::to_string(st.local_body.size())}};
      auto nv = toNv(hs);
      nghttp2_data_provider prd;
      prd.source.ptr = &st;
      prd.read_callback = &Http2Session::readLocal;
      nghttp2_submit_response(srv_, st.down_id, nv.data(), nv.size(), &prd);
    }
    // The body of a refused request is not wanted: RST_STREAM(NO_ERROR) after the response
    // (RFC 9113 8.1). Not for gRPC: its clients take that reset, arriving before they sent their
    // whole request, as the call's outcome (INTERNAL "Received RST_STREAM") in place of the
    // trailers-only status; the rest of the body is dropped as it comes (srvData).
    if (!st.req_ended && !grpc)
      nghttp2_submit_rst_stream(srv_, NGHTTP2_FLAG_NONE, st.down_id, NGHTTP2_NO_ERROR);
  }

  static ssize_t readLocal(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* src, void*) {
    auto* st = static_cast<Stream*>(src->ptr);
    size_t n = std::min(length, st->local_body.size());
    std::memcpy(buf, st->local_body.data(), n);
    st->local_body.erase(0, n);
    if (st->local_body.empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  // --- upstream (client session)

  void ensureUpstream(uint32_t src_identity) {
    if (up_state_ != UpState::kNone) return;
    up_state_ = UpState::kConnecting;
    auto me = shared_from_this();
    connectUpstream(src_identity, [this, me](boost::system::error_code ec) {
      if (closed_) return;
      if (ec) {
        host_.stats().upstream_errors++;
        up_state_ = UpState::kFailed;
        for (int32_t id : waiting_)
          if (Stream* st = stream(id)) failStream(*st, 503);
        waiting_.clear();
        flush();
        return;
      }
      up_state_ = UpState::kConnected;
      nghttp2_session_callbacks* cb;
      nghttp2_session_callbacks_new(&cb);
      nghttp2_session_callbacks_set_on_header_callback(cb, &Http2Session::cliHeader);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Http2Session::cliFrameRecv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Http2Session::cliData);
      nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Http2Session::cliStreamClose);
      nghttp2_option* opt;
      nghttp2_option_new(&opt);
      nghttp2_option_set_no_auto_window_update(opt, 1);
      nghttp2_session_client_new2(&cli_, cb, this, opt);
      nghttp2_option_del(opt);
      nghttp2_session_callbacks_del(cb);
      nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
      nghttp2_submit_settings(cli_, NGHTTP2_FLAG_NONE, iv, 1);
      submitWaiting();
      flush();
      readUp();
    });
  }

  void failStream(Stream& st, unsigned status) {
    AccessRecord r = st.record;
    r.type = AccessRecord::Type::kResponse;
    r.verdict = AccessRecord::Verdict::kError;
    r.code = status;
    r.time_ns = wallNanos();
    host_.record(std::move(r));
    st.allowed = false;
    if (!st.resp_started)
      respondLocal(st, status, "upstream connect error or disconnect/reset before headers");
    else
      nghttp2_submit_rst_stream(srv_, NGHTTP2_FLAG_NONE, st.down_id, NGHTTP2_INTERNAL_ERROR);
  }

  void submitWaiting() {
    if (up_state_ != UpState::kConnected) return;
    for (int32_t id : waiting_) {
      Stream* st = stream(id);
      if (st == nullptr || !st->allowed) continue;
      std::vector<Header> hs;
      for (const auto& h : st->req_headers)
        if (!hopByHop(h.name)) hs.push_back(h);
      auto nv = toNv(hs);
      nghttp2_data_provider prd;
      prd.source.ptr = st;
      prd.read_callback = &Http2Session::readToUp;
      bool body = !st->req_ended || !st->to_up.empty() || !st->req_trailers.empty();
      int32_t up =
          nghttp2_submit_request(cli_, nullptr, nv.data(), nv.size(), body ? &prd : nullptr, st);
      if (up < 0) {
        failStream(*st, 503);
        continue;
      }
      st->up_id = up;
      by_up_[up] = id;
    }
    waiting_.clear();
  }

  // Request body to the server, then trailers; the client's window reopens as bytes go.
  static ssize_t readToUp(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* src, void* ud) {
    auto* s = self(ud);
    auto* st = static_cast<Stream*>(src->ptr);
    size_t n = std::min(length, st->to_up.size());
    std::memcpy(buf, st->to_up.data(), n);
    st->to_up.erase(0, n);
    if (n != 0) {
      nghttp2_session_consume(s->srv_, st->down_id, n);
    }
    if (st->to_up.empty()) {
      if (!st->req_ended)
        return n == 0 ? static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED) : static_cast<ssize_t>(n);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->req_trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nv = toNv(st->req_trailers);
        nghttp2_submit_trailer(s->cli_, st->up_id, nv.data(), nv.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  Stream* byUp(int32_t up_id) {
    auto it = by_up_.find(up_id);
    return it == by_up_.end() ? nullptr : stream(it->second);
  }

  static int cliHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                       const uint8_t* value, size_t vlen, uint8_t, void* ud) {
    auto* s = self(ud);
    Stream* st = s->byUp(f->hd.stream_id);
    if (st == nullptr) return 0;
    Header h{std::string(reinterpret_cast<const char*>(name), nlen),
             std::string(reinterpret_cast<const char*>(value), vlen)};
    if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      st->resp_headers.push_back(std::move(h));
    } else if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
      // Interim responses (1xx) are dropped; after the final response, trailers.
      if (st->resp_started) st->resp_trailers.push_back(std::move(h));
    }
    return 0;
  }

  static int cliFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    auto* s = self(ud);
    Stream* st = s->byUp(f->hd.stream_id);
    if (st == nullptr) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      std::string status;
      for (const auto& h : st->resp_headers)
        if (h.name == ":status") status = h.value;
      if (!status.empty() && status[0] == '1') {  // interim: wait for the final one
        st->resp_headers.clear();
        return 0;
      }
      st->resp_started = true;
      st->resp_ended = end;
      st->record.code = static_cast<uint32_t>(std::atoi(status.c_str()));
      std::vector<Header> hs;
      for (const auto& h : st->resp_headers)
        if (!hopByHop(h.name)) hs.push_back(h);
      auto nv = toNv(hs);
      nghttp2_data_provider prd;
      prd.source.ptr = st;
      prd.read_callback = &Http2Session::readToDown;
      nghttp2_submit_response(s->srv_, st->down_id, nv.data(), nv.size(), end ? nullptr : &prd);
      if (end) s->responseDone(*st);
    } else if (end) {
      st->resp_ended = true;
      nghttp2_session_resume_data(s->srv_, st->down_id);
    }
    return 0;
  }

  static int cliData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                     void* ud) {
    auto* s = self(ud);
    Stream* st = s->byUp(id);
    if (st == nullptr) {
      nghttp2_session_consume(s->cli_, id, len);
      return 0;
    }
    st->to_down.append(reinterpret_cast<const char*>(data), len);
    nghttp2_session_resume_data(s->srv_, st->down_id);
    return 0;
  }

  static ssize_t readToDown(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                            nghttp2_data_source* src, void* ud) {
    auto* s = self(ud);
    auto* st = static_cast<Stream*>(src->ptr);
    size_t n = std::min(length, st->to_down.size());
    std::memcpy(buf, st->to_down.data(), n);
    st->to_down.erase(0, n);
    if (n != 0 && s->cli_ != nullptr) nghttp2_session_consume(s->cli_, st->up_id, n);
    if (st->to_down.empty()) {
      if (!st->resp_ended)
        return n == 0 ? static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED) : static_cast<ssize_t>(n);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->resp_trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto nv = toNv(st->resp_trailers);
        nghttp2_submit_trailer(s->srv_, st->down_id, nv.data(), nv.size());
      }
      s->responseDone(*st);
    }
    return static_cast<ssize_t>(n);
  }

  void responseDone(Stream& st) {
    if (st.record.type == AccessRecord::Type::kResponse) return;
    AccessRecord r = st.record;
    r.type = AccessRecord::Type::kResponse;
    r.time_ns = wallNanos();
    r.latency_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::steady_clock::now() - st.start)
                                             .count());
    st.record.type = AccessRecord::Type::kResponse;  // reported once
    host_.record(std::move(r));
  }

  static int cliStreamClose(nghttp2_session*, int32_t id, uint32_t error, void* ud) {
    auto* s = self(ud);
    Stream* st = s->byUp(id);
    s->by_up_.erase(id);
    if (st == nullptr) return 0;
    st->up_id = 0;
    if (st->down_closed) {
      s->streams_.erase(st->down_id);
      return 0;
    }
    if (error != NGHTTP2_NO_ERROR && !st->resp_ended) {
      if (!st->resp_started) {
        s->failStream(*st, 503);
      } else {
        nghttp2_submit_rst_stream(s->srv_, NGHTTP2_FLAG_NONE, st->down_id, error);
      }
    }
    return 0;
  }

  // --- I/O

  Stream* stream(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  bool recvDown(const char* data, size_t len) {
    ssize_t r = nghttp2_session_mem_recv(srv_, reinterpret_cast<const uint8_t*>(data), len);
    if (r < 0) {
      host_.stats().parse_errors++;
      log()->debug("bad HTTP/2 from {}: {}", info_.src_ip.toString(),
                   nghttp2_strerror(static_cast<int>(r)));
      flush();
      close();
      return false;
    }
    return true;
  }

  void readDown() {
    if (closed_ || down_reading_) return;
    down_reading_ = true;
    auto me = shared_from_this();
    down_.async_read_some(asio::buffer(down_buf_),
                          [this, me](boost::system::error_code ec, size_t n) {
                            down_reading_ = false;
                            if (closed_) return;
                            touch();
                            if (ec) return close();
                            if (!recvDown(down_buf_.data(), n)) return;
                            flush();
                            maybeReadDown();
                          });
  }

  // Backpressure: no more from the client while the server's side holds a lot of its bytes.
  void maybeReadDown() {
    size_t held = 0;
    for (const auto& [id, st] : streams_) held += st->to_up.size();
    if (held < (4u << 20) && up_out_.size() < 64)
      readDown();
    else
      down_paused_ = true;
  }

  void readUp() {
    if (closed_ || up_reading_ || up_state_ != UpState::kConnected) return;
    up_reading_ = true;
    auto me = shared_from_this();
    up_.async_read_some(asio::buffer(up_buf_), [this, me](boost::system::error_code ec, size_t n) {
      up_reading_ = false;
      if (closed_) return;
      touch();
      if (ec) {
        up_state_ = UpState::kFailed;
        for (auto& [id, st] : streams_)
          if (st->allowed && !st->resp_ended) failStream(*st, 503);
        flush();
        return;
      }
      ssize_t r =
          nghttp2_session_mem_recv(cli_, reinterpret_cast<const uint8_t*>(up_buf_.data()), n);
      if (r < 0) {
        host_.stats().upstream_errors++;
        up_state_ = UpState::kFailed;
        for (auto& [id, st] : streams_)
          if (st->allowed && !st->resp_ended) failStream(*st, 503);
      }
      flush();
      size_t held = 0;
      for (const auto& [id, st] : streams_) held += st->to_down.size();
      if (held < (4u << 20) && down_out_.size() < 64)
        readUp();
      else
        up_paused_ = true;
    });
  }

  void flush() {
    if (closed_) return;
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(srv_, &data)) > 0)
      down_out_.emplace_back(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    if (cli_ != nullptr && up_state_ == UpState::kConnected)
      while ((n = nghttp2_session_mem_send(cli_, &data)) > 0)
        up_out_.emplace_back(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    writeDown();
    writeUp();
    if (!nghttp2_session_want_read(srv_) && !nghttp2_session_want_write(srv_) &&
        down_out_.empty() && !down_writing_)
      close();
  }

  void writeDown() {
    if (down_writing_ || down_out_.empty() || closed_) return;
    down_writing_ = true;
    auto me = shared_from_this();
    asio::async_write(down_, asio::buffer(down_out_.front()),
                      [this, me](boost::system::error_code ec, size_t) {
                        down_writing_ = false;
                        if (closed_) return;
                        touch();
                        if (ec) return close();
                        down_out_.pop_front();
                        if (up_paused_ && down_out_.size() < 16) {
                          up_paused_ = false;
                          readUp();
                        }
                        flush();
                      });
  }

  void writeUp() {
    if (up_writing_ || up_out_.empty() || closed_) return;
    up_writing_ = true;
    auto me = shared_from_this();
    asio::async_write(up_, asio::buffer(up_out_.front()),
                      [this, me](boost::system::error_code ec, size_t) {
                        up_writing_ = false;
                        if (closed_) return;
                        touch();
                        if (ec) {
                          up_state_ = UpState::kFailed;
                          return;
                        }
                        up_out_.pop_front();
                        if (down_paused_ && up_out_.size() < 16) {
                          down_paused_ = false;
                          readDown();
                        }
                        flush();
                      });
  }

  enum class UpState { kNone, kConnecting, kConnected, kFailed };

  nghttp2_session* srv_ = nullptr;
  nghttp2_session* cli_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  std::map<int32_t, int32_t> by_up_;  // upstream stream id -> client stream id
  std::vector<int32_t> waiting_;      // allowed streams to open upstream
  UpState up_state_ = UpState::kNone;
  std::array<char, 65536> down_buf_{}, up_buf_{};
  std::deque<std::string> down_out_, up_out_;
  bool down_reading_ = false, up_reading_ = false;
  bool down_writing_ = false, up_writing_ = false;
  bool down_paused_ = false, up_paused_ = false;
};

}  // namespace

std::shared_ptr<Session> makeHttp2Session(SessionHost& host, ConnInfo info, tcp::socket down) {
  return std::make_shared<Http2Session>(host, info, std::move(down));
}

}  // namespace cilium::proxy
