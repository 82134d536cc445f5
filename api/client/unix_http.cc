// One HTTP/1.1 request and response over a Unix stream socket.
#include "api/client/unix_http.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/common/fd.h"

namespace cilium::api {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
// A collected (not streamed) body larger than this is refused rather than buffered.
constexpr size_t kMaxBodyBytes = size_t{256} << 20;

Error unreachable(const std::string& socket) {
  return makeError(ErrorCode::kUnavailable,
                   "cannot reach the agent at {}: connection failed (is cilium-agent running?)",
                   socket);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Reads from a connected socket with a per-read deadline.
class Reader {
 public:
  Reader(int fd, const std::string& socket, std::chrono::milliseconds timeout)
      : fd_(fd), socket_(socket), timeout_(timeout) {}

  // Appends what arrives next to buf_; false at end of stream.
  Result<bool> fill() {
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    } while (r < 0 && errno == EINTR);
    if (r == 0)
      return makeError(ErrorCode::kUnavailable,
                       "the agent at {} did not answer in time or closed the connection", socket_);
    if (r < 0) return errnoError(errno, "poll the agent's socket " + socket_);
    char chunk[16384];
    ssize_t n;
    do {
      n = ::recv(fd_, chunk, sizeof chunk, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
      return makeError(ErrorCode::kUnavailable, "reading from the agent at {} failed: {}", socket_,
                       std::strerror(errno));
    buf_.append(chunk, static_cast<size_t>(n));
    return n > 0;
  }

  std::string& buf() { return buf_; }

 private:
  int fd_;
  const std::string& socket_;
  std::chrono::milliseconds timeout_;
  std::string buf_;
};

Status sendAll(int fd, std::string_view data, const std::string& socket) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return makeError(ErrorCode::kUnavailable, "sending to the agent at {} failed: {}", socket,
                       std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return okStatus();
}

}  // namespace

Result<UnixHttpResponse> unixHttpRoundTrip(const std::string& socket_path,
                                           const UnixHttpRequest& req,
                                           std::chrono::milliseconds timeout,
                                           const UnixHttpBodySink& sink) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path)
    return makeError(ErrorCode::kInvalidArgument, "agent socket path '{}' is empty or too long",
                     socket_path);
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError(errno, "create a Unix socket");
  // A Unix connect blocks only while the listener's backlog is full; the send timeout bounds it.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EAGAIN || errno == EINPROGRESS)
      return makeError(ErrorCode::kDeadlineExceeded, "connecting to the agent at {} timed out",
                       socket_path);
    return unreachable(socket_path);
  }

  std::string head =
      req.method + " " + req.target + " HTTP/1.1\r\nHost: localhost\r\n" + "Connection: close\r\n";
  for (const auto& [k, v] : req.headers) head += k + ": " + v + "\r\n";
  // A POST without a body still says so: a server may otherwise read a body until the close.
  if (req.body || (req.method != "GET" && req.method != "HEAD"))
    head += "Content-Length: " + std::to_string(req.body ? req.body->size() : 0) + "\r\n";
  head += "\r\n";
  // The agent may answer before it has read the body (413, 415) and stop reading it: when the
  // send then fails, that answer is still there to read, and says more than "broken pipe".
  Status sent = sendAll(fd.get(), head, socket_path);
  if (sent.ok() && req.body) sent = sendAll(fd.get(), *req.body, socket_path);

  Reader in(fd.get(), socket_path, timeout);
  std::string& buf = in.buf();
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > kMaxHeaderBytes)
      return makeError(ErrorCode::kInternal, "the agent at {} sent oversized HTTP headers",
                       socket_path);
    auto more = in.fill();
    if (!sent.ok() && (!more.ok() || !*more)) return sent.error();
    if (!more.ok()) return more.error();
    if (!*more)
      return makeError(ErrorCode::kUnavailable,
                       "the agent at {} did not answer in time or closed the connection",
                       socket_path);
  }
  std::string_view headers(buf.data(), end);
  UnixHttpResponse resp;
  // Status line: HTTP/1.x SSS reason
  if (headers.substr(0, 5) != "HTTP/" || headers.find(' ') == std::string_view::npos)
    return makeError(ErrorCode::kInternal, "the agent at {} sent a response that is not HTTP",
                     socket_path);
  {
    auto sp = headers.find(' ');
    auto code = headers.substr(sp + 1, 3);
    if (code.size() != 3 ||
        !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return makeError(ErrorCode::kInternal, "the agent at {} sent a bad HTTP status line",
                       socket_path);
    resp.status = std::stoi(std::string(code));
  }
  std::optional<size_t> content_length;
  bool chunked = false;
  size_t pos = headers.find("\r\n");
  while (pos != std::string_view::npos && pos < headers.size()) {
    size_t next = headers.find("\r\n", pos + 2);
    std::string_view line = headers.substr(
        pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name = lower(trim(line.substr(0, colon)));
      std::string_view value = trim(line.substr(colon + 1));
      if (name == "content-length") {
        size_t n = 0;
        for (char c : value) {
          if (c < '0' || c > '9' || n > kMaxBodyBytes)
            return makeError(ErrorCode::kInternal, "the agent at {} sent a bad Content-Length",
                             socket_path);
          n = n * 10 + static_cast<size_t>(c - '0');
        }
        content_length = n;
      } else if (name == "transfer-encoding") {
        chunked = lower(value).find("chunked") != std::string::npos;
      }
    }
    pos = next;
  }
  buf.erase(0, end + 4);

  // Body bytes go to the sink as they arrive, or are collected.
  bool stopped = false;
  bool oversized = false;
  auto deliver = [&](std::string_view data) {
    if (data.empty() || stopped) return;
    if (sink) {
      if (!sink(resp.status, data)) stopped = true;
    } else {
      resp.body.append(data);
    }
    oversized = resp.body.size() > kMaxBodyBytes;
  };
  auto tooBig = [&] {
    return makeError(ErrorCode::kInternal, "the agent at {} sent a body over {} bytes", socket_path,
                     kMaxBodyBytes);
  };
  auto closedEarly = [&] {
    return makeError(ErrorCode::kUnavailable,
                     "the agent at {} did not answer in time or closed the connection",
                     socket_path);
  };

  if (chunked) {
    while (!stopped) {
      size_t eol;
      while ((eol = buf.find("\r\n")) == std::string::npos) {
        CILIUM_ASSIGN_OR_RETURN(bool more, in.fill());
        if (!more) return closedEarly();
      }
      size_t size = 0;
      std::string_view hex(buf.data(), eol);
      hex = hex.substr(0, hex.find(';'));  // chunk extensions
      if (trim(hex).empty())
        return makeError(ErrorCode::kInternal, "the agent at {} sent a bad chunk", socket_path);
      for (char c : trim(hex)) {
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0 || size > kMaxBodyBytes)
          return makeError(ErrorCode::kInternal, "the agent at {} sent a bad chunk size",
                           socket_path);
        size = size * 16 + static_cast<size_t>(d);
      }
      buf.erase(0, eol + 2);
      if (size == 0) break;  // trailers, if any, are not needed
      while (buf.size() < size + 2) {
        CILIUM_ASSIGN_OR_RETURN(bool more, in.fill());
        if (!more) return closedEarly();
      }
      deliver(std::string_view(buf.data(), size));
      buf.erase(0, size + 2);
      if (oversized) return tooBig();
    }
  } else if (content_length) {
    while (buf.size() < *content_length && !stopped) {
      CILIUM_ASSIGN_OR_RETURN(bool more, in.fill());
      if (!more) return closedEarly();
    }
    deliver(std::string_view(buf.data(), std::min(buf.size(), *content_length)));
  } else {
    // No length: the body ends when the agent closes the connection.
    while (!stopped) {
      deliver(buf);
      buf.clear();
      if (oversized) return tooBig();
      CILIUM_ASSIGN_OR_RETURN(bool more, in.fill());
      if (!more) break;
    }
  }
  return resp;
}

}  // namespace cilium::api
