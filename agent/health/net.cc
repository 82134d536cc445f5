// Health endpoint namespace and veth, /hello responders, ICMP and HTTP probes.
#include "agent/health/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "agent/common/netns.h"
#include "agent/datapath/netlink.h"

namespace cilium::health {
namespace {

namespace nl = datapath::netlink;
using Clock = std::chrono::steady_clock;

// A new network namespace, made by a thread that unshares and then ends: the returned fd is
// its only reference.
Result<UniqueFd> newNetns() {
  Result<UniqueFd> out = Error(ErrorCode::kInternal, "new netns: not run");
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      out = errnoError(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      out = errnoError(errno, "open /proc/thread-self/ns/net");
      return;
    }
    out = UniqueFd(fd);
    // lo up: the namespace talks to itself (the responder answers on its own address too).
    if (auto lo = nl::linkByName("lo"); lo.ok()) (void)nl::setLinkUp(lo->ifindex);
  });
  t.join();
  return out;
}

std::string fdPath(int fd) { return fmt::format("/proc/{}/fd/{}", ::getpid(), fd); }

uint16_t checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2) sum += static_cast<uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::atomic<uint16_t> g_seq{1};

// cpp-httplib's error names ("Connection", "Read") in words.
std::string httpErrorText(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection: return "cannot connect (refused, or no answer in time)";
    case httplib::Error::ConnectionTimeout: return "connect timed out";
    case httplib::Error::Read: return "no answer in time";
    case httplib::Error::Write: return "cannot send the request";
    default: return httplib::to_string(e);
  }
}

}  // namespace

std::string HealthLink::netnsPath() const { return fdPath(netns.get()); }

Result<HealthLink> createHealthLink(const IpAddr& ip, const IpAddr& gateway, uint32_t mtu,
                                    const std::optional<IpAddr>& ip6,
                                    const std::optional<IpAddr>& gateway6) {
  if (!ip.isV4() || !gateway.isV4())
    return Error(ErrorCode::kInvalidArgument, "health endpoint: IPv4 addresses expected");
  if (ip6.has_value() != gateway6.has_value() || (ip6 && (ip6->isV4() || gateway6->isV4())))
    return Error(ErrorCode::kInvalidArgument,
                 "health endpoint: an IPv6 address needs an IPv6 gateway");
  // The device of an earlier agent goes with that agent's namespace, so one that exists belongs
  // to a live agent in this namespace (a second agent starting by mistake): left alone.
  if (nl::linkByName(kHostIfname).ok())
    return makeError(ErrorCode::kAlreadyExists,
                     "{} exists: is another agent running in this network namespace?", kHostIfname);
  HealthLink link;
  CILIUM_ASSIGN_OR_RETURN(link.netns, newNetns());
  CILIUM_RETURN_IF_ERROR(nl::createVeth(kHostIfname, "eth0", link.netns.get()));
  auto undo = [&](const Error& e) -> Error {
    if (auto host = nl::linkByName(kHostIfname); host.ok()) (void)nl::deleteLink(host->ifindex);
    return e.withContext("health endpoint");
  };
  auto host = nl::linkByName(kHostIfname);
  if (!host.ok()) return undo(host.error());
  if (mtu != 0)
    if (auto st = nl::setMtu(host->ifindex, mtu); !st.ok()) return undo(st.error());
  if (auto st = nl::setLinkUp(host->ifindex); !st.ok()) return undo(st.error());
  const uint32_t a = ip.v4NetworkOrder(), gw = gateway.v4NetworkOrder();
  auto pod = runInNetnsValue<nl::Link>(link.netnsPath(), [&]() -> Result<nl::Link> {
    CILIUM_ASSIGN_OR_RETURN(nl::Link dev, nl::linkByName("eth0"));
    if (mtu != 0) CILIUM_RETURN_IF_ERROR(nl::setMtu(dev.ifindex, mtu));
    CILIUM_RETURN_IF_ERROR(nl::setLinkUp(dev.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::addAddress4(dev.ifindex, a, 32));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute4(gw, 32, dev.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute4(0, 0, dev.ifindex, gw));
    if (ip6) {
      // As a dual-stack pod: its /128, the gateway on the link (bpf_lxc answers its neighbour
      // solicitation) and the default route through it.
      CILIUM_RETURN_IF_ERROR(nl::addAddress6(dev.ifindex, ip6->bytes(), 128));
      CILIUM_RETURN_IF_ERROR(nl::replaceRoute6(gateway6->bytes(), 128, dev.ifindex));
      CILIUM_RETURN_IF_ERROR(nl::replaceRoute6(nl::Ip6{}, 0, dev.ifindex, gateway6->bytes()));
    }
    return nl::linkByName("eth0");
  });
  if (!pod.ok()) return undo(pod.error());
  auto host_now = nl::linkByName(kHostIfname);
  if (!host_now.ok()) return undo(host_now.error());
  link.host_ifindex = host_now->ifindex;
  link.host_mac = host_now->mac;
  link.pod_mac = pod->mac;
  return link;
}

Result<std::unique_ptr<Responder>> Responder::start(int netns, const std::string& ip, uint16_t port,
                                                    std::string node_name) {
  std::unique_ptr<Responder> r(new Responder());
  r->http_ = std::make_unique<httplib::Server>();
  // Two threads: probes are rare and short; read/write deadlines keep a stuck client from
  // holding one for long.
  r->http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  r->http_->set_read_timeout(2, 0);
  r->http_->set_write_timeout(2, 0);
  r->http_->set_socket_options([](socket_t s) {
    int yes = 1;
    (void)::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  r->http_->Get("/hello",
                [name = std::move(node_name)](const httplib::Request&, httplib::Response& res) {
                  res.status = 200;
                  res.set_content("Hello from " + name + "\n", "text/plain");
                });
  auto bind = [&]() -> Status {
    if (!r->http_->bind_to_port(ip, port))
      return errnoError(errno, fmt::format("bind health responder {}:{}", ip, port));
    return okStatus();
  };
  if (netns >= 0)
    CILIUM_RETURN_IF_ERROR(runInNetns(fdPath(netns), bind));
  else
    CILIUM_RETURN_IF_ERROR(bind());
  httplib::Server* http = r->http_.get();
  r->thread_ = std::thread([http] { http->listen_after_bind(); });
  // stop() does nothing to a server whose loop has not started yet, so a Responder is returned
  // only once it runs (connections made meanwhile wait in the listen backlog).
  for (int i = 0; i < 2000 && !http->is_running(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!http->is_running()) return Error(ErrorCode::kInternal, "health responder did not start");
  return r;
}

Responder::~Responder() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

Status NetProbes::enter(Source from) {
  if (from == Source::kHost) return okStatus();
  if (endpoint_netns_ < 0)
    return Error(ErrorCode::kUnavailable, "no health endpoint to probe from");
  if (::setns(endpoint_netns_, CLONE_NEWNET) != 0)
    return errnoError(errno, "setns into the health endpoint");
  return okStatus();
}

Result<std::chrono::nanoseconds> NetProbes::icmp(Source from, const IpAddr& ip,
                                                 std::chrono::milliseconds timeout) {
  const bool v6 = !ip.isV4();
  // The probe runs on a thread of its own so that entering a namespace never moves a thread
  // of the caller.
  Result<std::chrono::nanoseconds> out = Error(ErrorCode::kInternal, "not run");
  std::thread t([&] {
    out = [&]() -> Result<std::chrono::nanoseconds> {
      CILIUM_RETURN_IF_ERROR(enter(from));
      // ICMPv6 raw sockets get the ICMPv6 message without the IP header, and the kernel fills
      // its checksum (it covers a pseudo header); ICMP ones get the IPv4 header too.
      int fd = v6 ? ::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6)
                  : ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
      if (fd < 0) return errnoError(errno, v6 ? "ICMPv6 socket" : "ICMP socket");
      UniqueFd sock(fd);
      sockaddr_storage dst{};
      socklen_t dst_len;
      if (v6) {
        auto* d6 = reinterpret_cast<sockaddr_in6*>(&dst);
        d6->sin6_family = AF_INET6;
        std::memcpy(&d6->sin6_addr, ip.bytes().data(), 16);
        dst_len = sizeof(sockaddr_in6);
      } else {
        auto* d4 = reinterpret_cast<sockaddr_in*>(&dst);
        d4->sin_family = AF_INET;
        d4->sin_addr.s_addr = ip.v4NetworkOrder();
        dst_len = sizeof(sockaddr_in);
      }
      // Only replies from the target reach this socket.
      if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), dst_len) != 0)
        return errnoError(errno, "connect ICMP socket to " + ip.toString());
      const uint16_t id = static_cast<uint16_t>(::getpid() ^ (g_seq.fetch_add(1) << 4));
      const uint16_t seq = g_seq.fetch_add(1);
      const uint8_t echo = v6 ? 128 : ICMP_ECHO, echo_reply = v6 ? 129 : ICMP_ECHOREPLY;
      uint8_t req[16] = {};
      req[0] = echo;
      req[4] = static_cast<uint8_t>(id >> 8);
      req[5] = static_cast<uint8_t>(id);
      req[6] = static_cast<uint8_t>(seq >> 8);
      req[7] = static_cast<uint8_t>(seq);
      std::memcpy(req + 8, "cilhlth!", 8);
      if (!v6) {
        uint16_t c = checksum(req, sizeof(req));
        req[2] = static_cast<uint8_t>(c >> 8);
        req[3] = static_cast<uint8_t>(c);
      }
      const auto start = Clock::now();
      const auto deadline = start + timeout;
      if (::send(fd, req, sizeof(req), 0) < 0)
        return errnoError(errno, "ICMP echo to " + ip.toString());
      uint8_t buf[1500];
      while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
        if (got < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          return errnoError(errno, "ICMP reply from " + ip.toString());
        }
        size_t hl = 0;
        if (!v6) {
          if (got < static_cast<ssize_t>(sizeof(iphdr))) continue;
          hl = static_cast<size_t>(buf[0] & 0x0f) * 4;
        }
        if (static_cast<size_t>(got) < hl + 8) continue;
        const uint8_t* icmp = buf + hl;
        if (icmp[0] != echo_reply) continue;
        if ((icmp[4] << 8 | icmp[5]) != id || (icmp[6] << 8 | icmp[7]) != seq) continue;
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
      }
      return makeError(ErrorCode::kDeadlineExceeded, "no ICMP echo reply from {} within {}ms",
                       ip.toString(), timeout.count());
    }();
  });
  t.join();
  return out;
}

Result<std::chrono::nanoseconds> NetProbes::http(Source from, const IpAddr& ip, uint16_t port,
                                                 std::chrono::milliseconds timeout) {
  Result<std::chrono::nanoseconds> out = Error(ErrorCode::kInternal, "not run");
  std::thread t([&] {
    out = [&]() -> Result<std::chrono::nanoseconds> {
      CILIUM_RETURN_IF_ERROR(enter(from));
      httplib::Client cli(ip.toString(), port);
      auto secs = static_cast<time_t>(timeout.count() / 1000);
      auto usecs = static_cast<time_t>((timeout.count() % 1000) * 1000);
      cli.set_connection_timeout(secs, usecs);
      cli.set_read_timeout(secs, usecs);
      cli.set_write_timeout(secs, usecs);
      const auto start = Clock::now();
      auto res = cli.Get("/hello");
      auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
      if (!res)
        return makeError(ErrorCode::kUnavailable, "GET http://{}:{}/hello: {}", ip.toString(), port,
                         httpErrorText(res.error()));
      if (res->status != 200)
        return makeError(ErrorCode::kUnavailable, "GET http://{}:{}/hello: status {}",
                         ip.toString(), port, res->status);
      return took;
    }();
  });
  t.join();
  return out;
}

}  // namespace cilium::health
