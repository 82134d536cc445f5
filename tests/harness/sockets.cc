#include "tests/harness/sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "agent/common/netns.h"

namespace cilium::testing {
namespace {

// An IPv4 or IPv6 socket address (by the form of `ip`).
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&ss); }
};

Result<SockAddr> addr(const std::string& ip, uint16_t port) {
  SockAddr a;
  if (ip.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    // A link-local address carries its interface as a numeric zone: fe80::1%3.
    std::string text = ip;
    if (size_t pct = text.find('%'); pct != std::string::npos) {
      in6->sin6_scope_id = static_cast<uint32_t>(std::strtoul(text.c_str() + pct + 1, nullptr, 10));
      text.resize(pct);
    }
    if (inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) != 1)
      return makeError(ErrorCode::kInvalidArgument, "bad IPv6 address {}", ip);
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &in->sin_addr) != 1)
    return makeError(ErrorCode::kInvalidArgument, "bad IPv4 address {}", ip);
  a.len = sizeof(sockaddr_in);
  return a;
}

Status waitFd(int fd, short events, std::chrono::milliseconds timeout, const char* what) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r < 0) return errnoError(errno, what);
  if (r == 0)
    return makeError(ErrorCode::kDeadlineExceeded, "{}: timed out after {} ms", what,
                     timeout.count());
  return okStatus();
}

}  // namespace

Result<UniqueFd> listenTcp(const std::string& netns, const std::string& ip, uint16_t port) {
  return runInNetnsValue<UniqueFd>(netns, [&]() -> Result<UniqueFd> {
    CILIUM_ASSIGN_OR_RETURN(SockAddr a, addr(ip, port));
    UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return errnoError(errno, "socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), a.get(), a.len) != 0) return errnoError(errno, "bind " + ip);
    if (::listen(fd.get(), 128) != 0) return errnoError(errno, "listen");
    return fd;
  });
}

Result<UniqueFd> connectTcp(const std::string& netns, const std::string& ip, uint16_t port,
                            std::chrono::milliseconds timeout) {
  CILIUM_ASSIGN_OR_RETURN(SockAddr a, addr(ip, port));
  CILIUM_ASSIGN_OR_RETURN(
      UniqueFd fd, runInNetnsValue<UniqueFd>(netns, [&]() -> Result<UniqueFd> {
        UniqueFd s(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!s) return errnoError(errno, "socket");
        return s;
      }));
  if (::connect(fd.get(), a.get(), a.len) != 0 && errno != EINPROGRESS)
    return errnoError(errno, "connect " + ip);
  CILIUM_RETURN_IF_ERROR(waitFd(fd.get(), POLLOUT, timeout, "connect"));
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return errnoError(err, "connect " + ip);
  int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Result<UniqueFd> acceptTcp(int listen_fd, std::chrono::milliseconds timeout) {
  CILIUM_RETURN_IF_ERROR(waitFd(listen_fd, POLLIN, timeout, "accept"));
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return errnoError(errno, "accept");
  return UniqueFd(fd);
}

Result<UniqueFd> bindUdp(const std::string& netns, const std::string& ip, uint16_t port) {
  return runInNetnsValue<UniqueFd>(netns, [&]() -> Result<UniqueFd> {
    CILIUM_ASSIGN_OR_RETURN(SockAddr a, addr(ip, port));
    UniqueFd fd(::socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return errnoError(errno, "socket");
    if (::bind(fd.get(), a.get(), a.len) != 0) return errnoError(errno, "bind " + ip);
    return fd;
  });
}

Status sendUdp(int fd, const std::string& ip, uint16_t port, const std::string& data) {
  CILIUM_ASSIGN_OR_RETURN(SockAddr a, addr(ip, port));
  if (::sendto(fd, data.data(), data.size(), 0, a.get(), a.len) < 0)
    return errnoError(errno, "sendto " + ip);
  return okStatus();
}

Result<std::string> recvUdp(int fd, std::chrono::milliseconds timeout, std::string* from_ip,
                            uint16_t* from_port) {
  CILIUM_RETURN_IF_ERROR(waitFd(fd, POLLIN, timeout, "recvfrom"));
  char buf[65536];
  sockaddr_storage from{};
  socklen_t len = sizeof(from);
  ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
  if (n < 0) return errnoError(errno, "recvfrom");
  const auto* in = reinterpret_cast<const sockaddr_in*>(&from);
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&from);
  const bool v6 = from.ss_family == AF_INET6;
  if (from_ip) {
    char s[INET6_ADDRSTRLEN];
    if (v6)
      inet_ntop(AF_INET6, &in6->sin6_addr, s, sizeof(s));
    else
      inet_ntop(AF_INET, &in->sin_addr, s, sizeof(s));
    *from_ip = s;
    // A link-local sender with its interface (fe80::1%3), so the answer can go back to it.
    if (v6 && in6->sin6_scope_id != 0) *from_ip += "%" + std::to_string(in6->sin6_scope_id);
  }
  if (from_port) *from_port = ntohs(v6 ? in6->sin6_port : in->sin_port);
  return std::string(buf, static_cast<size_t>(n));
}

Status expectUdpRefused(const std::string& netns, const std::string& ip, uint16_t port,
                        std::chrono::milliseconds timeout) {
  CILIUM_ASSIGN_OR_RETURN(SockAddr a, addr(ip, port));
  CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, runInNetnsValue<UniqueFd>(netns, [&]() -> Result<UniqueFd> {
                            UniqueFd s(::socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
                            if (!s) return errnoError(errno, "socket");
                            if (::connect(s.get(), a.get(), a.len) != 0)
                              return errnoError(errno, "connect");
                            return s;
                          }));
  if (::send(fd.get(), "q", 1, 0) != 1) return errnoError(errno, "send");
  pollfd p{fd.get(), POLLIN | POLLERR, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
    return makeError(ErrorCode::kDeadlineExceeded, "no answer from {}:{}: dropped silently", ip,
                     port);
  char buf[8];
  if (::recv(fd.get(), buf, sizeof(buf), 0) >= 0)
    return makeError(ErrorCode::kFailedPrecondition, "{}:{} answered instead of refusing", ip,
                     port);
  if (errno != ECONNREFUSED) return errnoError(errno, "expected ECONNREFUSED");
  return okStatus();
}

Status sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError(errno, "send");
    off += static_cast<size_t>(n);
  }
  return okStatus();
}

Result<std::string> recvExactly(int fd, size_t n, std::chrono::milliseconds timeout) {
  std::string out;
  out.reserve(n);
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return makeError(ErrorCode::kDeadlineExceeded, "received {} of {} bytes", out.size(), n);
    CILIUM_RETURN_IF_ERROR(waitFd(fd, POLLIN, left, "recv"));
    ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errnoError(errno, "recv");
    if (r == 0)
      return makeError(ErrorCode::kUnavailable, "peer closed after {} of {} bytes", out.size(), n);
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

Result<uint16_t> localPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return errnoError(errno, "getsockname");
  return ntohs(a.sin_port);
}

std::string socketAddress(int fd, bool local) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int r = local ? ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                : ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r != 0) return "";
  char s[INET6_ADDRSTRLEN];
  if (ss.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, s, sizeof(s));
    return "[" + std::string(s) + "]:" + std::to_string(ntohs(a6->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
  return std::string(s) + ":" + std::to_string(ntohs(a->sin_port));
}

std::string socketIp(int fd, bool local) {
  std::string a = socketAddress(fd, local);
  auto colon = a.rfind(':');
  if (colon == std::string::npos) return "";
  a.resize(colon);
  if (a.size() >= 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
  return a;
}

uint16_t socketPort(int fd, bool local) {
  std::string a = socketAddress(fd, local);
  auto colon = a.rfind(':');
  return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(a.substr(colon + 1)));
}

Result<double> tcpRequestResponseRate(const std::string& client_netns,
                                      const std::string& server_netns, const std::string& server_ip,
                                      uint16_t port, std::chrono::seconds duration) {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd lfd, listenTcp(server_netns, server_ip, port));
  CILIUM_ASSIGN_OR_RETURN(UniqueFd c, connectTcp(client_netns, server_ip, port));
  CILIUM_ASSIGN_OR_RETURN(UniqueFd s, acceptTcp(lfd.get()));
  int one = 1;
  ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::thread responder([fd = s.get()] {
    char b;
    while (::recv(fd, &b, 1, 0) == 1)
      if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1) break;
  });
  uint64_t n = 0;
  char b = 'x';
  auto start = std::chrono::steady_clock::now();
  auto end = start + duration;
  Status st = okStatus();
  while (true) {
    if (::send(c.get(), &b, 1, MSG_NOSIGNAL) != 1 || ::recv(c.get(), &b, 1, 0) != 1) {
      st = errnoError(errno, "request/response");
      break;
    }
    n++;
    // The clock is read every 256 transactions, not on each one.
    if ((n & 255) == 0 && std::chrono::steady_clock::now() >= end) break;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::shutdown(c.get(), SHUT_RDWR);
  responder.join();
  if (!st.ok()) return st.error();
  return static_cast<double>(n) / secs;
}

}  // namespace cilium::testing
