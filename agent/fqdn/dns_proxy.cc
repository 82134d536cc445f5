// The DNS proxy on Boost.Asio: one event-loop thread, UDP (recvmsg for the original destination)
// and TCP (the accepted socket's local address is the original destination).
#include "agent/fqdn/dns_proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>

#include <boost/asio.hpp>

#include "agent/common/asio_inet.h"
#include "agent/common/fd.h"
#include "agent/common/log.h"
#include "agent/policy/fqdn_pattern.h"
#include "bpf/abi/proxy.h"

namespace cilium::fqdn {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

auto& log() {
  static auto l = cilium::logger("fqdn");
  return l;
}

constexpr uint8_t kUdp = IPPROTO_UDP, kTcp = IPPROTO_TCP;
constexpr std::chrono::seconds kTcpIdle{10};
const uint32_t kProxyMark = proxy_mark(MARK_MAGIC_PROXY_EGRESS, 0);

bool coversPort(const policy::L7PortRule& r, uint8_t proto, uint16_t port) {
  if (r.dir != policy::Direction::kEgress) return false;
  if (r.proto != 0 && r.proto != proto) return false;
  uint16_t mask =
      r.bits == 0 ? 0 : static_cast<uint16_t>(0xffffu << (16 - std::min<uint8_t>(r.bits, 16)));
  return (port & mask) == (r.port & mask);
}

bool coversPeer(const policy::L7PortRule& r, uint32_t remote) {
  if (!r.identities.empty() && r.identities.front() == 0) return true;
  return std::binary_search(r.identities.begin(), r.identities.end(), remote);
}

// Sends `msg` to `to` from `from` (the server the pod asked: not an address of this node, hence
// IP_TRANSPARENT), so the pod's stack and the datapath's conntrack see the server answer.
Status sendFrom(const udp::endpoint& from, const udp::endpoint& to,
                const std::vector<uint8_t>& msg) {
  const bool v4 = from.address().is_v4();
  UniqueFd fd(::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return makeError(ErrorCode::kInternal, "socket: {}", std::strerror(errno));
  int one = 1;
  setTransparent(fd.get(), v4);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  // The egress proxy's mark: the pod's lxc takes it for the answer of the redirected query
  // (without it, the reply of a redirected flow is sent up to the proxy again).
  uint32_t mark = kProxyMark;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  // Asio's endpoints are the sockaddr of their family.
  if (::bind(fd.get(), from.data(), static_cast<socklen_t>(from.size())) != 0)
    return makeError(ErrorCode::kInternal, "bind {}: {}", from.address().to_string(),
                     std::strerror(errno));
  if (::sendto(fd.get(), msg.data(), msg.size(), 0, to.data(), static_cast<socklen_t>(to.size())) <
      0)
    return makeError(ErrorCode::kInternal, "sendto: {}", std::strerror(errno));
  return okStatus();
}

}  // namespace

proxy::AccessRecord toAccessRecord(const DnsRecord& r) {
  proxy::AccessRecord a;
  const bool answer = r.kind == DnsRecord::Kind::kAnswer;
  a.type = answer ? proxy::AccessRecord::Type::kResponse : proxy::AccessRecord::Type::kRequest;
  a.verdict = !r.allowed                                 ? proxy::AccessRecord::Verdict::kDenied
              : (r.upstream_failed || r.not_enforceable) ? proxy::AccessRecord::Verdict::kError
                                                         : proxy::AccessRecord::Verdict::kForwarded;
  a.ingress = false;  // egress DNS of the endpoint
  a.time_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(r.time.time_since_epoch()).count();
  a.endpoint_id = r.endpoint_id;
  a.src_ip = r.source.toString();
  a.src_port = r.source_port;
  a.src_identity = r.source_identity;
  a.dst_ip = r.server.toString();
  a.dst_port = r.server_port;
  a.dst_identity = r.server_identity;
  a.proxy_port = r.proxy_port;
  a.l4_protocol = r.proto;
  if (answer) a.latency_ns = static_cast<uint64_t>(r.latency.count());
  auto fq = [](const std::string& n) { return n.empty() || n.back() == '.' ? n : n + "."; };
  proxy::AccessRecord::Dns d;
  d.query = fq(r.name);
  d.qtypes.push_back(typeName(r.qtype));
  if (answer && r.response) {
    d.rcode = r.response->rcode;
    bool first = true;
    for (const auto& addr : r.response->addresses) {
      d.ips.push_back(addr.ip.toString());
      d.ttl = first ? addr.ttl : std::min(d.ttl, addr.ttl);
      first = false;
    }
    for (const auto& c : r.response->cnames) d.cnames.push_back(fq(c));
    for (uint16_t t : r.response->rrtypes) d.rrtypes.push_back(typeName(t));
  }
  a.dns = std::move(d);
  return a;
}

// --- DnsPolicy ---------------------------------------------------------------------------------

void DnsPolicy::l7PoliciesChanged(const std::vector<Update>& updates) {
  std::lock_guard lock(mu_);
  for (const auto& u : updates) {
    if (auto it = ip_of_.find(u.endpoint_id); it != ip_of_.end()) {
      for (const auto& ip : it->second) by_ip_.erase(ip);
      ip_of_.erase(it);
    }
    std::vector<IpAddr> ips;
    if (u.ipv4) ips.push_back(*u.ipv4);
    if (u.ipv6) ips.push_back(*u.ipv6);
    if (ips.empty()) continue;
    Ep ep{u.endpoint_id, u.identity, {}};
    for (const auto& r : u.l7.rules)
      if (r.dir == policy::Direction::kEgress && (!r.dns.empty() || r.allow_all))
        ep.rules.push_back(r);
    bool has_dns =
        std::any_of(ep.rules.begin(), ep.rules.end(), [](const auto& r) { return !r.dns.empty(); });
    if (!has_dns) continue;
    for (const auto& ip : ips) by_ip_[ip] = ep;
    ip_of_[u.endpoint_id] = std::move(ips);
  }
}

void DnsPolicy::endpointRemoved(uint16_t endpoint_id) {
  std::lock_guard lock(mu_);
  if (auto it = ip_of_.find(endpoint_id); it != ip_of_.end()) {
    for (const auto& ip : it->second) by_ip_.erase(ip);
    ip_of_.erase(it);
  }
}

DnsPolicy::Verdict DnsPolicy::check(const IpAddr& source, uint8_t proto, uint16_t port,
                                    uint32_t server, const std::string& name) const {
  std::lock_guard lock(mu_);
  Verdict v;
  auto it = by_ip_.find(source);
  if (it == by_ip_.end()) return v;
  v.known = true;
  v.endpoint_id = it->second.id;
  v.identity = it->second.identity;
  for (const auto& r : it->second.rules) {
    if (!coversPort(r, proto, port) || !coversPeer(r, server)) continue;
    if (r.allow_all) {
      v.allowed = true;
      return v;
    }
    for (const auto& d : r.dns) {
      const std::string& pat = d.match_name.empty() ? d.match_pattern : d.match_name;
      if (policy::fqdnMatches(pat, name)) {
        v.allowed = true;
        return v;
      }
    }
  }
  return v;
}

size_t DnsPolicy::endpoints() const {
  std::lock_guard lock(mu_);
  return ip_of_.size();
}

// --- DnsProxy ----------------------------------------------------------------------------------

struct DnsProxy::Impl {
  Impl(const DnsProxyOptions& o, const DnsPolicy& p, NameManager& n, const ipcache::IpCache& i)
      : opts(o),
        policy(p),
        names(n),
        ipc(i),
        udp_sock(io),
        acceptor(io),
        udp_sock6(io),
        acceptor6(io) {}

  const DnsProxyOptions& opts;
  const DnsPolicy& policy;
  NameManager& names;
  const ipcache::IpCache& ipc;
  size_t tcp_connections = 0;  // event-loop thread only
  mutable std::mutex mu;
  DnsProxyStats stats;
  std::function<void(const DnsRecord&)> handler;
  // Declared last: destroyed first, the loop's pending handlers with them.
  asio::io_context io;
  udp::socket udp_sock;
  tcp::acceptor acceptor;
  udp::socket udp_sock6;  // not open: no IPv6 in the namespace
  tcp::acceptor acceptor6;
  std::thread thread;

  using Reply = std::function<void(std::vector<uint8_t>)>;

  void count(uint64_t DnsProxyStats::*field) {
    std::lock_guard lock(mu);
    stats.*field += 1;
  }
  void emit(const DnsRecord& r) {
    std::function<void(const DnsRecord&)> h;
    {
      std::lock_guard lock(mu);
      h = handler;
    }
    if (h) h(r);
  }

  // One query: decide, then answer through `reply`; false (and no answer) for a query that does
  // not parse.
  bool process(std::vector<uint8_t> msg, const IpAddr& src, uint16_t sport,
               const udp::endpoint& server, uint8_t proto, Reply reply) {
    auto t0 = std::chrono::steady_clock::now();
    auto q = parseQuery(msg);
    if (!q.ok()) {
      count(&DnsProxyStats::malformed);
      return false;
    }
    count(&DnsProxyStats::queries);
    IpAddr server_ip = fromAsio(server.address());
    auto entry = ipc.lookup(server_ip);
    uint32_t server_id = entry ? entry->info.identity : identity::kWorld;
    auto v = policy.check(src, proto, server.port(), server_id, q->name);
    auto rec = std::make_shared<DnsRecord>();
    rec->time = std::chrono::system_clock::now();
    rec->proxy_port = opts.port;
    rec->endpoint_id = v.endpoint_id;
    rec->source_identity = v.identity;
    rec->server_identity = server_id;
    rec->source = src;
    rec->source_port = sport;
    rec->server = server_ip;
    rec->server_port = server.port();
    rec->proto = proto;
    rec->name = q->name;
    rec->qtype = q->qtype;
    rec->allowed = v.allowed;
    if (!v.allowed) {
      count(&DnsProxyStats::denied);
      auto out = buildErrorResponse(msg, opts.reject_rcode);
      if (!out.ok()) return false;
      rec->latency = std::chrono::steady_clock::now() - t0;
      reply(std::move(*out));
      emit(*rec);
      return true;
    }
    count(&DnsProxyStats::allowed);
    emit(*rec);
    auto done = [this, msg, rec, t0, v, reply](Result<std::vector<uint8_t>> answer) {
      std::vector<uint8_t> out;
      std::optional<DnsResponse> resp;
      rec->kind = DnsRecord::Kind::kAnswer;
      if (answer.ok()) {
        auto r = parseResponse(*answer);
        if (r.ok() && r->id == (msg[0] << 8 | msg[1])) resp = std::move(*r);
      } else if (answer.error().code() == ErrorCode::kDeadlineExceeded) {
        count(&DnsProxyStats::upstream_timeouts);
        rec->upstream_timed_out = true;
      }
      auto servfail = [&]() -> bool {
        auto e = buildErrorResponse(msg, kRcodeServFail);
        if (!e.ok()) return false;
        out = std::move(*e);
        DnsResponse r;
        r.id = static_cast<uint16_t>(msg[0] << 8 | msg[1]);
        r.rcode = kRcodeServFail;
        r.name = rec->name;
        r.qtype = rec->qtype;
        rec->response = std::move(r);
        return true;
      };
      if (!resp) {
        count(&DnsProxyStats::upstream_errors);
        rec->upstream_failed = true;
        if (!servfail()) return;
      } else {
        // The addresses become enforceable before the pod sees them; when that fails the pod
        // gets SERVFAIL, never an answer it could not use.
        Status st = resp->rcode == kRcodeNoError ? names.learn(v.endpoint_id, *resp) : okStatus();
        if (st.ok()) {
          out = std::move(*answer);
          rec->response = std::move(resp);
        } else {
          log()->warn("fqdn: addresses of {} not enforceable: {}", resp->name,
                      st.error().message());
          rec->not_enforceable = true;
          if (!servfail()) return;
        }
      }
      count(&DnsProxyStats::answers);
      rec->time = std::chrono::system_clock::now();
      rec->latency = std::chrono::steady_clock::now() - t0;
      reply(std::move(out));
      emit(*rec);
    };
    if (proto == kUdp)
      forwardUdp(std::move(msg), server, std::move(done));
    else
      forwardTcp(std::move(msg), server, std::move(done));
    return true;
  }

  using Done = std::function<void(Result<std::vector<uint8_t>>)>;

  void forwardUdp(std::vector<uint8_t> msg, const udp::endpoint& server, Done done) {
    struct Op {
      udp::socket sock;
      asio::steady_timer timer;
      std::vector<uint8_t> query, buf;
      Done done;
      bool finished = false;
      Op(asio::io_context& io) : sock(io), timer(io) {}
      void finish(Result<std::vector<uint8_t>> r) {
        if (finished) return;
        finished = true;
        timer.cancel();
        boost::system::error_code ec;
        sock.close(ec);
        done(std::move(r));
      }
    };
    auto op = std::make_shared<Op>(io);
    op->query = std::move(msg);
    op->done = std::move(done);
    op->buf.resize(65535);
    boost::system::error_code ec;
    op->sock.open(server.protocol(), ec);
    if (!ec) op->sock.connect(server, ec);
    if (ec) return op->finish(Error(ErrorCode::kUnavailable, ec.message()));
    op->timer.expires_after(opts.upstream_timeout);
    op->timer.async_wait([op](boost::system::error_code e) {
      if (!e) op->finish(Error(ErrorCode::kDeadlineExceeded, "upstream timeout"));
    });
    op->sock.async_send(asio::buffer(op->query), [op](boost::system::error_code e, size_t) {
      if (e) return op->finish(Error(ErrorCode::kUnavailable, e.message()));
      op->sock.async_receive(asio::buffer(op->buf), [op](boost::system::error_code e2, size_t n) {
        if (e2) return op->finish(Error(ErrorCode::kUnavailable, e2.message()));
        op->buf.resize(n);
        op->finish(std::move(op->buf));
      });
    });
  }

  void forwardTcp(std::vector<uint8_t> msg, const udp::endpoint& server, Done done) {
    struct Op {
      tcp::socket sock;
      asio::steady_timer timer;
      std::vector<uint8_t> out, buf;
      std::array<uint8_t, 2> len{};
      Done done;
      bool finished = false;
      Op(asio::io_context& io) : sock(io), timer(io) {}
      void finish(Result<std::vector<uint8_t>> r) {
        if (finished) return;
        finished = true;
        timer.cancel();
        boost::system::error_code ec;
        sock.close(ec);
        done(std::move(r));
      }
    };
    auto op = std::make_shared<Op>(io);
    op->out.push_back(static_cast<uint8_t>(msg.size() >> 8));
    op->out.push_back(static_cast<uint8_t>(msg.size()));
    op->out.insert(op->out.end(), msg.begin(), msg.end());
    op->done = std::move(done);
    op->timer.expires_after(opts.upstream_timeout);
    op->timer.async_wait([op](boost::system::error_code e) {
      if (!e) op->finish(Error(ErrorCode::kDeadlineExceeded, "upstream timeout"));
    });
    tcp::endpoint to(server.address(), server.port());
    op->sock.async_connect(to, [op](boost::system::error_code e) {
      if (e) return op->finish(Error(ErrorCode::kUnavailable, e.message()));
      asio::async_write(
          op->sock, asio::buffer(op->out), [op](boost::system::error_code e2, size_t) {
            if (e2) return op->finish(Error(ErrorCode::kUnavailable, e2.message()));
            asio::async_read(
                op->sock, asio::buffer(op->len), [op](boost::system::error_code e3, size_t) {
                  if (e3) return op->finish(Error(ErrorCode::kUnavailable, e3.message()));
                  op->buf.resize(static_cast<size_t>(op->len[0]) << 8 | op->len[1]);
                  asio::async_read(
                      op->sock, asio::buffer(op->buf), [op](boost::system::error_code e4, size_t) {
                        if (e4) return op->finish(Error(ErrorCode::kUnavailable, e4.message()));
                        op->finish(std::move(op->buf));
                      });
                });
          });
    });
  }

  // --- UDP listener ---
  void armUdp(udp::socket& sock) {
    sock.async_wait(udp::socket::wait_read, [this, &sock](boost::system::error_code ec) {
      if (ec) return;
      drainUdp(sock);
      armUdp(sock);
    });
  }

  // The address and port of a sockaddr of either family.
  static std::optional<udp::endpoint> endpointOf(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) {
      const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
      return udp::endpoint(asio::ip::address_v4(ntohl(a.sin_addr.s_addr)), ntohs(a.sin_port));
    }
    if (ss.ss_family == AF_INET6) {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
      asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &a.sin6_addr, 16);
      return udp::endpoint(asio::ip::address_v6(b), ntohs(a.sin6_port));
    }
    return std::nullopt;
  }

  void drainUdp(udp::socket& sock) {
    for (int i = 0; i < 64; i++) {
      std::vector<uint8_t> buf(65535);
      sockaddr_storage from{};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(sockaddr_storage))];
      iovec iov{buf.data(), buf.size()};
      msghdr mh{};
      mh.msg_name = &from;
      mh.msg_namelen = sizeof(from);
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = control;
      mh.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(sock.native_handle(), &mh, MSG_DONTWAIT);
      if (n < 0) return;
      // The original destination: IP_ORIGDSTADDR, or IPV6_ORIGDSTADDR on the IPv6 socket.
      std::optional<udp::endpoint> server;
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR;
        bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR;
        if (!v4 && !v6) continue;
        sockaddr_storage o{};
        std::memcpy(&o, CMSG_DATA(c),
                    std::min<size_t>(c->cmsg_len - CMSG_LEN(0), sizeof(sockaddr_storage)));
        server = endpointOf(o);
      }
      auto client = endpointOf(from);
      if (!server || !client || server->address().is_v4() != client->address().is_v4() ||
          (mh.msg_flags & MSG_TRUNC)) {
        count(&DnsProxyStats::malformed);
        continue;
      }
      buf.resize(static_cast<size_t>(n));
      (void)process(std::move(buf), fromAsio(client->address()), client->port(), *server, kUdp,
                    [server = *server, client = *client](std::vector<uint8_t> out) {
                      if (auto st = sendFrom(server, client, out); !st.ok())
                        log()->warn("fqdn: answer to {}: {}", client.address().to_string(),
                                    st.error().message());
                    });
    }
  }

  // --- TCP listener ---
  void accept(tcp::acceptor& acc) {
    acc.async_accept([this, &acc](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (tcp_connections >= opts.max_tcp_connections) {
          count(&DnsProxyStats::rejected_connections);
          boost::system::error_code ignore;
          s.close(ignore);
        } else {
          serveTcp(std::make_shared<tcp::socket>(std::move(s)));
        }
      }
      accept(acc);
    });
  }

  // The UDP socket and TCP listener of one address (IPv4 or IPv6). kFailedPrecondition when the
  // namespace has no such address (IPv6 off), kUnavailable when the port is taken.
  static Status listenOn(const asio::ip::address& addr, uint16_t port, udp::socket& usock,
                         tcp::acceptor& acc) {
    const bool v4 = addr.is_v4();
    int one = 1;
    boost::system::error_code ec;
    auto failed = [&](const char* what) {
      bool no_family = ec.value() == EADDRNOTAVAIL || ec.value() == EAFNOSUPPORT;
      boost::system::error_code ignore;
      usock.close(ignore);
      acc.close(ignore);
      return makeError(no_family ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                       "DNS proxy {} {}:{}: {}", what, addr.to_string(), port, ec.message());
    };
    usock.open(v4 ? udp::v4() : udp::v6(), ec);
    if (!ec) {
      int fd = usock.native_handle();
      setTransparent(fd, v4);
      if (v4) {
        ::setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one));
      } else {
        ::setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one));
        usock.set_option(asio::ip::v6_only(true), ec);
      }
      if (!ec) usock.set_option(udp::socket::reuse_address(true), ec);
      if (!ec) usock.bind(udp::endpoint(addr, port), ec);
    }
    if (!ec) usock.non_blocking(true, ec);
    if (ec) return failed("UDP");
    acc.open(v4 ? tcp::v4() : tcp::v6(), ec);
    if (!ec) {
      setTransparent(acc.native_handle(), v4);
      // Accepted connections inherit it: their answers are the egress proxy's (sendFrom()).
      ::setsockopt(acc.native_handle(), SOL_SOCKET, SO_MARK, &kProxyMark, sizeof(kProxyMark));
      if (!v4) acc.set_option(asio::ip::v6_only(true), ec);
      if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acc.bind(tcp::endpoint(addr, port), ec);
    }
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return failed("TCP");
    return okStatus();
  }

  void serveTcp(std::shared_ptr<tcp::socket> s) {
    struct Conn {
      std::shared_ptr<tcp::socket> sock;
      asio::steady_timer idle;
      std::array<uint8_t, 2> len{};
      std::vector<uint8_t> buf;
      Conn(std::shared_ptr<tcp::socket> so, asio::io_context& io) : sock(std::move(so)), idle(io) {}
    };
    boost::system::error_code ec;
    auto local = s->local_endpoint(ec);
    auto remote = s->remote_endpoint(ec);
    if (ec) return;
    tcp_connections++;
    auto c = std::shared_ptr<Conn>(new Conn(s, io), [this](Conn* p) {
      tcp_connections--;
      delete p;
    });
    readTcp(c, udp::endpoint(local.address(), local.port()), remote);
  }

  template <typename ConnPtr>
  void readTcp(ConnPtr c, udp::endpoint server, tcp::endpoint client) {
    c->idle.expires_after(kTcpIdle);
    c->idle.async_wait([c](boost::system::error_code e) {
      if (e) return;
      boost::system::error_code ignore;
      c->sock->close(ignore);
    });
    asio::async_read(*c->sock, asio::buffer(c->len),
                     [this, c, server, client](boost::system::error_code e, size_t) {
                       if (e) return;
                       size_t n = static_cast<size_t>(c->len[0]) << 8 | c->len[1];
                       c->buf.assign(n, 0);
                       asio::async_read(
                           *c->sock, asio::buffer(c->buf),
                           [this, c, server, client](boost::system::error_code e2, size_t) {
                             if (e2) return;
                             c->idle.cancel();
                             std::vector<uint8_t> msg = std::move(c->buf);
                             bool ok = process(
                                 std::move(msg), fromAsio(client.address()), client.port(), server,
                                 kTcp, [this, c, server, client](std::vector<uint8_t> out) {
                                   auto framed = std::make_shared<std::vector<uint8_t>>();
                                   framed->push_back(static_cast<uint8_t>(out.size() >> 8));
                                   framed->push_back(static_cast<uint8_t>(out.size()));
                                   framed->insert(framed->end(), out.begin(), out.end());
                                   asio::async_write(*c->sock, asio::buffer(*framed),
                                                     [this, c, framed, server, client](
                                                         boost::system::error_code e3, size_t) {
                                                       if (!e3) readTcp(c, server, client);
                                                     });
                                 });
                             if (!ok) {  // a query that does not parse: the connection ends
                               boost::system::error_code ignore;
                               c->sock->close(ignore);
                             }
                           });
                     });
  }
};

Result<std::unique_ptr<DnsProxy>> DnsProxy::start(DnsProxyOptions options, const DnsPolicy& policy,
                                                  NameManager& names, const ipcache::IpCache& ipc) {
  if (options.port == 0) return Error(ErrorCode::kInvalidArgument, "DNS proxy: no port");
  std::unique_ptr<DnsProxy> p(new DnsProxy(std::move(options)));
  auto impl = std::make_unique<Impl>(p->options_, policy, names, ipc);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address_v4(p->options_.address, ec);
  if (ec) return makeError(ErrorCode::kInvalidArgument, "DNS proxy address: {}", ec.message());
  CILIUM_RETURN_IF_ERROR(Impl::listenOn(addr, p->options_.port, impl->udp_sock, impl->acceptor));
  bool v6 = false;
  if (!p->options_.address6.empty()) {
    auto addr6 = asio::ip::make_address_v6(p->options_.address6, ec);
    if (ec) return makeError(ErrorCode::kInvalidArgument, "DNS proxy address: {}", ec.message());
    auto st = Impl::listenOn(addr6, p->options_.port, impl->udp_sock6, impl->acceptor6);
    if (st.ok())
      v6 = true;
    else if (st.error().code() == ErrorCode::kFailedPrecondition)
      log()->warn("{}: IPv6 DNS redirected to port {} is dropped", st.error().message(),
                  p->options_.port);
    else
      return st.error();
  }
  impl->armUdp(impl->udp_sock);
  impl->accept(impl->acceptor);
  if (v6) {
    impl->armUdp(impl->udp_sock6);
    impl->accept(impl->acceptor6);
  }
  impl->thread = std::thread([raw = impl.get()] {
    auto guard = asio::make_work_guard(raw->io);
    raw->io.run();
  });
  p->impl_ = std::move(impl);
  log()->info("DNS proxy listening on {}:{} (UDP, TCP){}", p->options_.address, p->options_.port,
              v6 ? fmt::format(" and [{}]:{}", p->options_.address6, p->options_.port) : "");
  return p;
}

DnsProxy::DnsProxy(DnsProxyOptions options) : options_(std::move(options)) {}

DnsProxy::~DnsProxy() {
  if (!impl_) return;
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ec;
    impl->udp_sock.close(ec);
    impl->acceptor.close(ec);
    impl->udp_sock6.close(ec);
    impl->acceptor6.close(ec);
    impl->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

void DnsProxy::setRecordHandler(std::function<void(const DnsRecord&)> handler) {
  std::lock_guard lock(impl_->mu);
  impl_->handler = std::move(handler);
}

DnsProxyStats DnsProxy::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace cilium::fqdn
