// HTTP/1.1 message framing for the proxy, on Debian's http-parser (2.9): requests and responses
// are cut at their exact byte boundaries, so an allowed request (head and body, chunked or not)
// is forwarded byte for byte, pipelined requests are taken one at a time, and a message the
// parser or our stricter checks refuse is an error the proxy answers with 400 and a close.
//
// Stricter than http-parser, against request smuggling and header floods: Content-Length and
// Transfer-Encoding together, more than one Transfer-Encoding or Content-Length header,
// Transfer-Encoding other than "chunked", whitespace before a header's colon, obs-fold lines,
// bare LF line ends; and limits on the head's size, the number of headers and the URL length.
#pragma once

#include <http_parser.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cilium::proxy {

struct Http1Limits {
  size_t max_head_bytes = 64 * 1024;
  size_t max_headers = 100;
  size_t max_url_bytes = 16 * 1024;
};

struct Http1Head {
  // Requests
  std::string method;
  std::string url;
  // Responses
  unsigned status = 0;
  unsigned short major = 1, minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string raw;  // the head exactly as received
  bool keep_alive = true;
  bool upgrade = false;   // an Upgrade request (or CONNECT)
  bool has_body = false;  // requests: Content-Length > 0 or chunked
  bool chunked = false;
  uint64_t content_length = 0;  // requests with a Content-Length

  // The value of the first header called `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

class Http1Parser {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onHead(Http1Head& head) = 0;
    // Raw bytes of the body (chunk framing included), as they arrive.
    virtual void onBody(const char* data, size_t len) = 0;
    virtual void onMessageEnd() = 0;
  };

  enum class Kind { kRequest, kResponse };
  Http1Parser(Kind kind, Handler& handler, Http1Limits limits = {});
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Feeds received bytes; returns how many were taken. Fewer than `len` only after an upgrade
  // message ended (the rest is not HTTP: see upgraded()) or on error.
  size_t feed(const char* data, size_t len);
  // The peer closed: ends a response delimited by the close. Returns false on a truncated one.
  bool finish();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Status to answer a failed request with: 400, 431 (head too large), 414 (URL too long).
  unsigned errorStatus() const { return error_status_; }
  bool upgraded() const { return upgraded_; }
  // After an upgrade request whose upgrade the server refused: parse HTTP again.
  void resetAfterUpgrade();
  // Responses: asked at each response head whether it answers a HEAD request (then it has no
  // body, whatever its headers say).
  void setIsHeadResponse(std::function<bool()> fn) { is_head_response_ = std::move(fn); }
  // Whether a message has started but not ended (bytes of a head or body were seen).
  bool inMessage() const { return state_ != State::kIdle; }

 private:
  enum class State { kIdle, kHead, kHeadNeedsLf, kBody };
  static int onMessageBegin(http_parser* p);
  static int onUrl(http_parser* p, const char* at, size_t len);
  static int onHeaderField(http_parser* p, const char* at, size_t len);
  static int onHeaderValue(http_parser* p, const char* at, size_t len);
  static int onHeadersComplete(http_parser* p);
  static int onMessageComplete(http_parser* p);
  void fail(std::string why, unsigned status = 400);
  bool checkHead();
  void deliverHead();

  Kind kind_;
  Handler& handler_;
  Http1Limits limits_;
  http_parser parser_{};
  http_parser_settings settings_{};
  State state_ = State::kIdle;
  Http1Head head_;
  std::string field_, value_;
  bool last_was_value_ = false;
  enum class Event { kNone, kHeadersComplete, kMessageComplete } event_ = Event::kNone;
  bool message_done_ = false;  // message_complete fired while the head's LF was pending
  bool upgraded_ = false;
  std::function<bool()> is_head_response_;
  std::string error_;
  unsigned error_status_ = 400;
};

// A whole response (status line, Content-Length, Connection) with a text body.
std::string http1Response(unsigned status, std::string_view reason, std::string_view body,
                          bool close, std::string_view content_type = "text/plain");

// The request head rebuilt: `head` with headers removed (case-insensitive names in `drop`) and
// `add` appended, the request line and every other header as received.
std::string rebuildRequestHead(const Http1Head& head, const std::vector<std::string>& drop,
                               const std::vector<std::pair<std::string, std::string>>& add);

}  // namespace cilium::proxy
