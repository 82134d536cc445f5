// HTTP/1.1 server and client for the pod workloads, over blocking sockets with poll() deadlines.
#include "deploy/local/workloads/http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

#include "agent/common/fd.h"
#include "agent/common/inet.h"

namespace cilium::local {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxHeader = 16 << 10;
constexpr size_t kMaxBody = 1 << 20;

Result<uint16_t> parsePort(std::string_view s, std::string_view what) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535)
    return makeError(ErrorCode::kInvalidArgument, "{}: port '{}' is not 1..65535", what, s);
  return static_cast<uint16_t>(v);
}

// "host:port", "[v6]:port", "host" or "[v6]" -> host (without brackets) and the port text.
Result<std::pair<std::string, std::optional<std::string_view>>> splitHostPort(
    std::string_view text, std::string_view what) {
  std::pair<std::string, std::optional<std::string_view>> out;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos)
      return makeError(ErrorCode::kInvalidArgument, "{} '{}': no ']' after '['", what, text);
    out.first = text.substr(1, close - 1);
    std::string_view after = text.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      return makeError(ErrorCode::kInvalidArgument, "{} '{}': expected ':' after ']'", what,
                       text);
    if (!after.empty()) out.second = after.substr(1);
    return out;
  }
  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && text.find(':') != colon)
    return makeError(ErrorCode::kInvalidArgument, "{} '{}': an IPv6 address goes in brackets",
                     what, text);
  out.first = text.substr(0, colon);
  if (colon != std::string_view::npos) out.second = text.substr(colon + 1);
  return out;
}

// A peer's address as text; an IPv4 client of a dual-stack socket (::ffff:a.b.c.d) as IPv4.
std::string peerAddress(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, text, sizeof(text));
  } else if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a))
      ::inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof(text));
    else
      ::inet_ntop(AF_INET6, &a, text, sizeof(text));
  }
  return text;
}

int remainingMs(Clock::time_point deadline) {
  // Rounded up: a wait never ends before the deadline.
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd until the deadline: true when ready.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remainingMs(deadline));
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

bool sendAll(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    if (!waitFor(fd, POLLOUT, deadline)) return false;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The value of header `name` (case-insensitive) in a header block, or "".
std::string headerValue(std::string_view head, std::string_view name) {
  std::string want = lower(name) + ":";
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    size_t end = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (lower(line.substr(0, want.size())) == want) {
      std::string_view v = line.substr(want.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
  }
  return "";
}

std::optional<size_t> contentLength(std::string_view head) {
  std::string v = headerValue(head, "Content-Length");
  if (v.empty()) return std::nullopt;
  size_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

}  // namespace

Result<Route> parseRoute(std::string_view text) {
  // Split at the first '=' after the path, then at the first ':' after the status.
  size_t sp = text.find(' ');
  size_t eq = text.find('=');
  if (sp == std::string_view::npos || eq == std::string_view::npos || eq < sp)
    return makeError(ErrorCode::kInvalidArgument, "route '{}': expected 'METHOD /path=STATUS:BODY'",
                     text);
  Route r;
  r.method = text.substr(0, sp);
  r.path = text.substr(sp + 1, eq - sp - 1);
  if (r.method.empty() ||
      r.method.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos)
    return makeError(ErrorCode::kInvalidArgument,
                     "route '{}': method '{}' is not upper-case letters", text, r.method);
  if (r.path.empty() || r.path[0] != '/' || r.path.find(' ') != std::string::npos)
    return makeError(ErrorCode::kInvalidArgument, "route '{}': path '{}' must start with '/'", text,
                     r.path);
  std::string_view rest = text.substr(eq + 1);
  size_t colon = rest.find(':');
  std::string_view status = rest.substr(0, colon);
  auto [p, ec] = std::from_chars(status.data(), status.data() + status.size(), r.status);
  if (status.empty() || ec != std::errc() || p != status.data() + status.size() || r.status < 100 ||
      r.status > 599)
    return makeError(ErrorCode::kInvalidArgument, "route '{}': status '{}' is not 100..599", text,
                     status);
  if (colon != std::string_view::npos) r.body = rest.substr(colon + 1);
  return r;
}

Result<Url> parseUrl(std::string_view text) {
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme)
    return makeError(ErrorCode::kInvalidArgument, "URL '{}': only http:// is supported", text);
  std::string_view rest = text.substr(kScheme.size());
  Url u;
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) u.path = rest.substr(slash);
  CILIUM_ASSIGN_OR_RETURN(auto hp, splitHostPort(authority, "URL"));
  u.host = hp.first;
  if (hp.second) {
    CILIUM_ASSIGN_OR_RETURN(u.port, parsePort(*hp.second, "URL"));
  }
  if (u.host.empty()) return makeError(ErrorCode::kInvalidArgument, "URL '{}': no host", text);
  return u;
}

Result<ListenAddress> parseListenAddress(std::string_view text) {
  CILIUM_ASSIGN_OR_RETURN(auto hp, splitHostPort(text, "--listen"));
  if (!hp.second)
    return makeError(ErrorCode::kInvalidArgument,
                     "--listen '{}': expected host:port, [ipv6]:port or :port", text);
  ListenAddress a;
  if (!hp.first.empty()) a.host = hp.first;
  auto ip = IpAddr::parse(a.host);
  if (!ip.ok())
    return makeError(ErrorCode::kInvalidArgument, "--listen '{}': '{}' is not an IP address",
                     text, a.host);
  CILIUM_ASSIGN_OR_RETURN(a.port, parsePort(*hp.second, "--listen"));
  return a;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

Result<HttpServer> HttpServer::listen(const ListenAddress& addr, std::vector<Route> routes) {
  CILIUM_ASSIGN_OR_RETURN(IpAddr ip, IpAddr::parse(addr.host));
  const int family = ip.isV4() ? AF_INET : AF_INET6;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError(errno, "socket");
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (ip.isV4()) {
    auto& sa = reinterpret_cast<sockaddr_in&>(ss);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(addr.port);
    sa.sin_addr.s_addr = ip.v4NetworkOrder();
    len = sizeof(sa);
  } else {
    // "[::]:80" serves both families (IPv4 clients arrive as ::ffff:a.b.c.d), as most servers
    // in dual-stack pods do.
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    auto& sa = reinterpret_cast<sockaddr_in6&>(ss);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(addr.port);
    std::memcpy(&sa.sin6_addr, ip.bytes().data(), 16);
    len = sizeof(sa);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return errnoError(errno, "bind " + addr.host + " port " + std::to_string(addr.port));
  if (::listen(fd.get(), 128) != 0) return errnoError(errno, "listen");
  len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  uint16_t port = ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(ss).sin_port
                                          : reinterpret_cast<sockaddr_in6&>(ss).sin6_port;
  return HttpServer(fd.release(), ntohs(port), std::move(routes));
}

HttpServer::HttpServer(HttpServer&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), port_(o.port_), routes_(std::move(o.routes_)) {}

HttpServer::~HttpServer() {
  if (fd_ >= 0) ::close(fd_);
}

std::string HttpServer::respond(const std::string& method, const std::string& path,
                                int* status) const {
  bool path_known = false;
  for (const auto& r : routes_) {
    if (r.path != path) continue;
    path_known = true;
    if (r.method == method) {
      *status = r.status;
      return r.body;
    }
  }
  *status = path_known ? 405 : 404;
  return std::string(reasonPhrase(*status));
}

Status HttpServer::serve(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return errnoError(errno, "poll");
    if (r <= 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    UniqueFd conn(::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!conn) continue;
    const std::string peer_ip = peerAddress(peer);

    // One request per connection; a client that sends nothing for 2 s is dropped so that it
    // cannot hold the (sequential) server.
    auto deadline = Clock::now() + std::chrono::seconds(2);
    std::string in;
    size_t head_end = std::string::npos;
    char buf[4096];
    while (head_end == std::string::npos && in.size() < kMaxHeader &&
           waitFor(conn.get(), POLLIN, deadline)) {
      ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      head_end = in.find("\r\n\r\n");
    }
    if (head_end == std::string::npos) continue;
    std::string_view head(in.data(), head_end);
    size_t sp1 = head.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : head.find(' ', sp1 + 1);
    int status = 400;
    std::string body = "Bad Request";
    std::string method, path;
    if (sp2 != std::string_view::npos) {
      method = head.substr(0, sp1);
      path = head.substr(sp1 + 1, sp2 - sp1 - 1);
      // The request body is read and ignored, so the client never sees a reset.
      size_t want = std::min(contentLength(head).value_or(0), kMaxBody);
      while (in.size() - head_end - 4 < want && waitFor(conn.get(), POLLIN, deadline)) {
        ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      body = respond(method, path, &status);
    }
    body += "\n";
    std::string out =
        "HTTP/1.1 " + std::to_string(status) + " " + std::string(reasonPhrase(status)) +
        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n" + body;
    sendAll(conn.get(), out, deadline);
    std::printf("%s %s %s -> %d\n", peer_ip.c_str(), method.c_str(), path.c_str(), status);
    std::fflush(stdout);
  }
  return okStatus();
}

Result<HttpResponse> request(const std::string& method, const Url& url, std::string_view body,
                             std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(url.host.c_str(), nullptr, &hints, &res); rc != 0)
    return makeError(ErrorCode::kUnavailable, "resolve {}: {}", url.host, ::gai_strerror(rc));
  sockaddr_storage sa{};
  const socklen_t sa_len = res->ai_addrlen;
  std::memcpy(&sa, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (sa.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in&>(sa).sin_port = htons(url.port);
  else
    reinterpret_cast<sockaddr_in6&>(sa).sin6_port = htons(url.port);

  UniqueFd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errnoError(errno, "socket");
  const bool v6_literal = url.host.find(':') != std::string::npos;
  std::string target = (v6_literal ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sa_len) != 0) {
    // Every immediate failure (refused, unreachable) means "nobody to talk to": kUnavailable.
    if (errno != EINPROGRESS)
      return makeError(ErrorCode::kUnavailable, "connect {}: {}", target, std::strerror(errno));
    if (!waitFor(fd.get(), POLLOUT, deadline))
      return makeError(ErrorCode::kDeadlineExceeded, "connect {}: no answer within {} ms", target,
                       timeout.count());
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == ETIMEDOUT)
      return makeError(ErrorCode::kDeadlineExceeded, "connect {}: timed out", target);
    if (err != 0)
      return makeError(ErrorCode::kUnavailable, "connect {}: {}", target, std::strerror(err));
  }

  std::string req = method + " " + url.path + " HTTP/1.1\r\nHost: " + target +
                    "\r\nUser-Agent: cilium-http-client\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  if (!sendAll(fd.get(), req, deadline))
    return makeError(ErrorCode::kDeadlineExceeded, "send to {}: not done within {} ms", target,
                     timeout.count());

  std::string in;
  char buf[4096];
  for (;;) {
    if (!waitFor(fd.get(), POLLIN, deadline))
      return makeError(ErrorCode::kDeadlineExceeded, "{}: no complete answer within {} ms", target,
                       timeout.count());
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return errnoError(errno, "receive from " + target);
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > kMaxHeader + kMaxBody)
      return makeError(ErrorCode::kInvalidArgument, "{}: answer larger than {} bytes", target,
                       kMaxHeader + kMaxBody);
    // Done early when the announced body is complete (the server might not close at once).
    if (size_t he = in.find("\r\n\r\n"); he != std::string::npos) {
      auto cl = contentLength(std::string_view(in).substr(0, he));
      if (cl && in.size() >= he + 4 + *cl) break;
    }
  }

  size_t he = in.find("\r\n\r\n");
  std::string_view sv(in);
  if (he == std::string::npos || sv.substr(0, 7) != "HTTP/1." || sv.size() < 12)
    return makeError(ErrorCode::kInvalidArgument, "{}: the answer is not HTTP/1.x", target);
  HttpResponse r;
  std::string_view status = sv.substr(9, 3);
  auto [p, ec] = std::from_chars(status.data(), status.data() + status.size(), r.status);
  if (ec != std::errc() || p != status.data() + status.size())
    return makeError(ErrorCode::kInvalidArgument, "{}: bad status line", target);
  size_t eol = sv.find("\r\n");
  r.reason = eol > 13 ? std::string(sv.substr(13, eol - 13)) : "";
  std::string_view payload = sv.substr(he + 4);
  if (auto cl = contentLength(sv.substr(0, he)); cl && *cl < payload.size())
    payload = payload.substr(0, *cl);
  r.body = payload;
  return r;
}

}  // namespace cilium::local
