// HTTP/1.1 framing on http-parser, with the proxy's stricter checks.
#include "agent/proxy/http1.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace cilium::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lowerTrim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  std::string out(v);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool isTokenChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 32 || u >= 127) return false;
  return std::string_view("\"(),/:;<=>?@[\\]{}").find(c) == std::string_view::npos;
}

Http1Parser* self(http_parser* p) { return static_cast<Http1Parser*>(p->data); }

}  // namespace

std::optional<std::string_view> Http1Head::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return std::string_view(v);
  return std::nullopt;
}

Http1Parser::Http1Parser(Kind kind, Handler& handler, Http1Limits limits)
    : kind_(kind), handler_(handler), limits_(limits) {
  http_parser_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
  parser_.data = this;
  settings_.on_message_begin = &Http1Parser::onMessageBegin;
  settings_.on_url = &Http1Parser::onUrl;
  settings_.on_header_field = &Http1Parser::onHeaderField;
  settings_.on_header_value = &Http1Parser::onHeaderValue;
  settings_.on_headers_complete = &Http1Parser::onHeadersComplete;
  settings_.on_message_complete = &Http1Parser::onMessageComplete;
}

int Http1Parser::onMessageBegin(http_parser* p) {
  Http1Parser* s = self(p);
  s->state_ = State::kHead;
  return 0;
}

int Http1Parser::onUrl(http_parser* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  s->head_.url.append(at, len);
  if (s->head_.url.size() > s->limits_.max_url_bytes) {
    s->fail("URL too long", 414);
    return 1;
  }
  return 0;
}

int Http1Parser::onHeaderField(http_parser* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  if (s->last_was_value_) {
    s->head_.headers.emplace_back(std::move(s->field_), std::move(s->value_));
    s->field_.clear();
    s->value_.clear();
    s->last_was_value_ = false;
    if (s->head_.headers.size() > s->limits_.max_headers) {
      s->fail("too many headers", 431);
      return 1;
    }
  }
  s->field_.append(at, len);
  return 0;
}

int Http1Parser::onHeaderValue(http_parser* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  s->value_.append(at, len);
  s->last_was_value_ = true;
  return 0;
}

int Http1Parser::onHeadersComplete(http_parser* p) {
  Http1Parser* s = self(p);
  if (s->last_was_value_ || !s->field_.empty()) {
    s->head_.headers.emplace_back(std::move(s->field_), std::move(s->value_));
    s->field_.clear();
    s->value_.clear();
    s->last_was_value_ = false;
  }
  s->event_ = Event::kHeadersComplete;
  http_parser_pause(p, 1);
  if (s->kind_ == Kind::kResponse && s->is_head_response_ && s->is_head_response_()) return 1;
  return 0;
}

int Http1Parser::onMessageComplete(http_parser* p) {
  Http1Parser* s = self(p);
  s->event_ = Event::kMessageComplete;
  http_parser_pause(p, 1);
  return 0;
}

void Http1Parser::fail(std::string why, unsigned status) {
  if (error_.empty()) {
    error_ = std::move(why);
    error_status_ = status;
  }
}

bool Http1Parser::checkHead() {
  Http1Head& h = head_;
  if (h.headers.size() > limits_.max_headers) {
    fail("too many headers", 431);
    return false;
  }
  // Line ends: CRLF only; no obs-fold continuation lines.
  const std::string& raw = h.raw;
  for (size_t i = 0; i < raw.size(); i++) {
    if (raw[i] == '\n') {
      if (i == 0 || raw[i - 1] != '\r') {
        fail("bare LF line end");
        return false;
      }
      if (i + 1 < raw.size() && (raw[i + 1] == ' ' || raw[i + 1] == '\t')) {
        fail("obsolete line folding");
        return false;
      }
    }
  }
  size_t te = 0, cl = 0;
  std::string te_value;
  for (const auto& [k, v] : h.headers) {
    if (k.empty() || !std::all_of(k.begin(), k.end(), isTokenChar)) {
      fail(fmt::format("bad header name \"{}\"", k));
      return false;
    }
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      fail("bad header value");
      return false;
    }
    if (iequals(k, "transfer-encoding")) {
      te++;
      te_value = lowerTrim(v);
    } else if (iequals(k, "content-length")) {
      cl++;
    }
  }
  if (kind_ == Kind::kRequest) {
    // Two framings of one body are how requests get smuggled past a proxy.
    if (te > 0 && cl > 0) {
      fail("Content-Length and Transfer-Encoding together");
      return false;
    }
    if (te > 1 || cl > 1) {
      fail("repeated Transfer-Encoding or Content-Length");
      return false;
    }
    if (te == 1 && te_value != "chunked") {
      fail(fmt::format("Transfer-Encoding \"{}\" is not chunked", te_value));
      return false;
    }
    h.method = http_method_str(static_cast<http_method>(parser_.method));
    h.chunked = (parser_.flags & F_CHUNKED) != 0;
    if (!h.chunked && parser_.content_length != ULLONG_MAX)
      h.content_length = parser_.content_length;
    h.has_body = (parser_.flags & F_CHUNKED) ||
                 (parser_.content_length > 0 && parser_.content_length != ULLONG_MAX);
    h.upgrade = parser_.upgrade != 0;
  } else {
    h.status = parser_.status_code;
    h.upgrade = parser_.status_code == 101;
  }
  h.major = parser_.http_major;
  h.minor = parser_.http_minor;
  h.keep_alive = http_should_keep_alive(&parser_) != 0;
  return true;
}

void Http1Parser::deliverHead() {
  state_ = State::kBody;
  handler_.onHead(head_);
  if (message_done_) {
    message_done_ = false;
    handler_.onMessageEnd();
    state_ = State::kIdle;
    head_ = Http1Head{};
    if (parser_.upgrade) upgraded_ = true;
  }
}

size_t Http1Parser::feed(const char* data, size_t len) {
  size_t off = 0;
  while (off < len && !failed() && !upgraded_) {
    if (state_ == State::kHeadNeedsLf) {
      if (data[off] != '\n') {
        fail("bad line end");
        return off;
      }
      event_ = Event::kNone;
      http_parser_execute(&parser_, &settings_, data + off, 1);
      head_.raw.push_back('\n');
      off++;
      auto err = HTTP_PARSER_ERRNO(&parser_);
      if (err == HPE_PAUSED) {
        http_parser_pause(&parser_, 0);
        if (event_ == Event::kMessageComplete) message_done_ = true;
      } else if (err != HPE_OK) {
        fail(http_errno_description(err));
        return off;
      }
      deliverHead();
      continue;
    }
    event_ = Event::kNone;
    State before = state_;
    size_t n = http_parser_execute(&parser_, &settings_, data + off, len - off);
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (before == State::kBody) {
      if (n != 0) handler_.onBody(data + off, n);
    } else {
      head_.raw.append(data + off, n);
      if (head_.raw.size() > limits_.max_head_bytes) {
        fail("request head too large", 431);
        return off + n;
      }
    }
    off += n;
    if (failed()) return off;
    if (err == HPE_PAUSED) {
      http_parser_pause(&parser_, 0);
      if (event_ == Event::kHeadersComplete) {
        if (!checkHead()) return off;
        // The parser stops on the head's final CR; the LF that follows is the head's too.
        if (!head_.raw.empty() && head_.raw.back() == '\r') {
          state_ = State::kHeadNeedsLf;
          continue;
        }
        deliverHead();
      } else if (event_ == Event::kMessageComplete) {
        handler_.onMessageEnd();
        state_ = State::kIdle;
        head_ = Http1Head{};
        if (parser_.upgrade) upgraded_ = true;
      }
      continue;
    }
    if (err != HPE_OK) {
      fail(http_errno_description(err));
      return off;
    }
    if (n == 0) break;  // nothing consumed and no event: never spin
  }
  return off;
}

bool Http1Parser::finish() {
  if (failed()) return false;
  if (state_ == State::kIdle) return true;
  State before = state_;
  event_ = Event::kNone;
  http_parser_execute(&parser_, &settings_, nullptr, 0);
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_PAUSED) http_parser_pause(&parser_, 0);
  if (event_ == Event::kMessageComplete && before == State::kBody) {
    handler_.onMessageEnd();
    state_ = State::kIdle;
    return true;
  }
  fail("connection closed in the middle of a message");
  return false;
}

void Http1Parser::resetAfterUpgrade() {
  http_parser_init(&parser_, kind_ == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
  parser_.data = this;
  upgraded_ = false;
  state_ = State::kIdle;
  head_ = Http1Head{};
}

std::string http1Response(unsigned status, std::string_view reason, std::string_view body,
                          bool close, std::string_view content_type) {
  return fmt::format(
      "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ncontent-type: {}\r\n{}server: "
      "cilium-proxy\r\n\r\n{}",
      status, reason, body.size(), content_type, close ? "connection: close\r\n" : "", body);
}

std::string rebuildRequestHead(const Http1Head& head, const std::vector<std::string>& drop,
                               const std::vector<std::pair<std::string, std::string>>& add) {
  std::string out =
      fmt::format("{} {} HTTP/{}.{}\r\n", head.method, head.url, head.major, head.minor);
  for (const auto& h : head.headers) {
    bool dropped = std::any_of(drop.begin(), drop.end(),
                               [&](const std::string& d) { return iequals(d, h.first); });
    if (!dropped) out += fmt::format("{}: {}\r\n", h.first, h.second);
  }
  for (const auto& [k, v] : add) out += fmt::format("{}: {}\r\n", k, v);
  out += "\r\n";
  return out;
}

}  // namespace cilium::proxy
