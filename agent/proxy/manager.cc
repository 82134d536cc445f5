// The agent's proxy socket and policy snapshots.
#include "agent/proxy/manager.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <set>

#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace cilium::proxy {
namespace {

auto& log() {
  static auto l = cilium::logger("proxy");
  return l;
}

HeaderMatch::Mismatch mismatch(policy::HeaderMatch::Mismatch m) {
  switch (m) {
    case policy::HeaderMatch::Mismatch::kNone: return HeaderMatch::Mismatch::kNone;
    case policy::HeaderMatch::Mismatch::kLog: return HeaderMatch::Mismatch::kLog;
    case policy::HeaderMatch::Mismatch::kAdd: return HeaderMatch::Mismatch::kAdd;
    case policy::HeaderMatch::Mismatch::kDelete: return HeaderMatch::Mismatch::kDelete;
    case policy::HeaderMatch::Mismatch::kReplace: return HeaderMatch::Mismatch::kReplace;
  }
  return HeaderMatch::Mismatch::kNone;
}

bool sendFrame(int fd, const nlohmann::json& msg) {
  std::string bytes = encodeFrame(msg);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

EndpointPolicy toProxyPolicy(uint16_t id, uint32_t identity, const std::optional<IpAddr>& ipv4,
                             const policy::L7Policy& l7, const std::optional<IpAddr>& ipv6) {
  EndpointPolicy e;
  e.id = id;
  e.identity = identity;
  if (ipv4 && ipv4->isV4()) e.ipv4 = ipv4->toString();
  if (ipv6 && !ipv6->isV4()) e.ipv6 = ipv6->toString();
  for (const auto& r : l7.rules) {
    PortRule pr;
    pr.dir = r.dir == policy::Direction::kIngress ? Direction::kIngress : Direction::kEgress;
    pr.proto = r.proto;
    pr.port = r.port;
    pr.bits = r.bits;
    pr.identities.assign(r.identities.begin(), r.identities.end());
    pr.allow_all = r.allow_all;
    for (const auto& h : r.http) {
      HttpRule hr{h.method, h.path, h.host, h.headers, {}};
      for (const auto& m : h.header_matches)
        hr.header_matches.push_back({m.name, m.value, mismatch(m.mismatch)});
      pr.http.push_back(std::move(hr));
    }
    for (const auto& d : r.dns) pr.dns.push_back({d.match_name, d.match_pattern});
    e.rules.push_back(std::move(pr));
  }
  return e;
}

Result<std::unique_ptr<Manager>> Manager::start(ManagerOptions options) {
  std::unique_ptr<Manager> m(new Manager(std::move(options)));
  const std::string& path = m->options_.socket_path;
  sockaddr_un sa{};
  if (path.size() >= sizeof(sa.sun_path))
    return makeError(ErrorCode::kInvalidArgument, "proxy socket path {} is too long", path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError(errno, "proxy socket");
  ::unlink(path.c_str());
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return errnoError(errno, "bind " + path);
  ::chmod(path.c_str(), 0600);
  if (::listen(fd.get(), 4) != 0) return errnoError(errno, "listen " + path);
  m->listener_ = std::move(fd);
  Manager* raw = m.get();
  m->accept_thread_ = std::thread([raw] { raw->acceptLoop(); });
  log()->info("proxy socket {} http-ingress={} http-egress={} dns-egress={}", path,
              m->options_.ports.http_ingress, m->options_.ports.http_egress,
              m->options_.ports.dns_egress);
  return m;
}

Manager::~Manager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
  }
  cv_.notify_all();
  if (listener_) ::shutdown(listener_.get(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  for (auto& t : conn_threads_)
    if (t.joinable()) t.join();
  ::unlink(options_.socket_path.c_str());
}

void Manager::acceptLoop() {
  for (;;) {
    pollfd p{listener_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, 200);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (r <= 0) continue;
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::lock_guard lock(mu_);
    // The newest proxy wins: a restarted one replaces a connection not yet seen closed.
    if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
    conn_threads_.emplace_back([this, c] { serve(UniqueFd(c)); });
  }
}

PolicySnapshot Manager::snapshotLocked() const {
  PolicySnapshot s;
  s.version = version_;
  s.http_ingress_port = options_.ports.http_ingress;
  s.http_egress_port = options_.ports.http_egress;
  s.dns_egress_port = options_.ports.dns_egress;
  for (const auto& [id, e] : endpoints_) s.endpoints.push_back(e);
  return s;
}

PolicySnapshot Manager::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshotLocked();
}

void Manager::serve(UniqueFd fd) {
  timeval tv{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  uint64_t gen;
  {
    std::unique_lock lock(mu_);
    conn_fd_ = fd.get();
    gen = ++conn_gen_;
    status_.connections++;
    acked_ = 0;
    // What is in force now, before anything else: the proxy may have restarted without one.
    auto snap = snapshotLocked();
    nlohmann::json msg = toJson(snap);
    msg["type"] = "policy";
    if (!sendFrame(fd.get(), msg)) log()->warn("proxy: cannot send the policy");
  }
  FrameReader reader;
  std::array<char, 65536> buf{};
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reader.feed(buf.data(), static_cast<size_t>(n));
    bool bad = false;
    for (;;) {
      auto body = reader.nextBody();
      if (!body.ok()) {
        log()->warn("proxy socket: {}", body.error().message());
        bad = true;
        break;
      }
      if (!body->has_value()) break;
      if (!(*body)->empty() && (**body)[0] == kRecordsTag) {
        auto records = decodeRecords(**body);
        if (!records.ok()) {
          log()->warn("proxy socket: {}", records.error().message());
          bad = true;
          break;
        }
        std::function<void(const AccessRecord&)> handler;
        {
          std::lock_guard lock(mu_);
          handler = on_record_;
        }
        if (handler)
          for (const auto& r : *records) handler(r);
        continue;
      }
      auto m = nlohmann::json::parse(**body, nullptr, false);
      if (m.is_discarded() || !m.is_object()) {
        log()->warn("proxy socket: frame is not a JSON object");
        bad = true;
        break;
      }
      std::string type = m.value("type", std::string());
      if (type == "hello") {
        std::lock_guard lock(mu_);
        status_.pid = m.value("pid", 0);
        status_.restarts = m.value("restarts", uint64_t{0});
        status_.connected = true;
        log()->info("proxy connected pid={} restarts={} policy_version={}", status_.pid,
                    status_.restarts, m.value("policyVersion", uint64_t{0}));
      } else if (type == "ack") {
        std::lock_guard lock(mu_);
        acked_ = std::max(acked_, m.value("version", uint64_t{0}));
        status_.acked = acked_;
        cv_.notify_all();
      }
    }
    if (bad) break;
  }
  std::lock_guard lock(mu_);
  if (conn_gen_ == gen) {
    conn_fd_ = -1;
    status_.connected = false;
    log()->warn("proxy disconnected");
  }
  cv_.notify_all();
}

void Manager::pushLocked(std::unique_lock<std::mutex>& lock) {
  uint64_t v = ++version_;
  status_.version = v;
  if (conn_fd_ < 0) return;
  nlohmann::json msg = toJson(snapshotLocked());
  msg["type"] = "policy";
  if (!sendFrame(conn_fd_, msg)) return;
  uint64_t gen = conn_gen_;
  if (!cv_.wait_for(lock, options_.ack_timeout,
                    [&] { return acked_ >= v || conn_gen_ != gen || conn_fd_ < 0 || stopping_; })) {
    status_.ack_timeouts++;
    log()->warn("proxy did not acknowledge policy version={} within {} ms", v,
                options_.ack_timeout.count());
  }
}

void Manager::l7PoliciesChanged(const std::vector<Update>& updates) {
  std::unique_lock lock(mu_);
  bool changed = false;
  for (const auto& u : updates) {
    if (u.l7.empty()) {
      changed |= endpoints_.erase(u.endpoint_id) != 0;
      continue;
    }
    auto p = toProxyPolicy(u.endpoint_id, u.identity, u.ipv4, u.l7, u.ipv6);
    auto it = endpoints_.find(u.endpoint_id);
    if (it != endpoints_.end() && it->second == p) continue;
    endpoints_[u.endpoint_id] = std::move(p);
    changed = true;
  }
  if (!changed) return;
  status_.endpoints = endpoints_.size();
  std::set<std::tuple<uint16_t, int, uint8_t, uint16_t, uint8_t>> redirects;
  for (const auto& [id, e] : endpoints_)
    for (const auto& r : e.rules)
      if (!r.allow_all) redirects.insert({id, static_cast<int>(r.dir), r.proto, r.port, r.bits});
  status_.redirects = redirects.size();
  pushLocked(lock);
}

void Manager::endpointRemoved(uint16_t endpoint_id) {
  std::unique_lock lock(mu_);
  if (endpoints_.erase(endpoint_id) == 0) return;
  status_.endpoints = endpoints_.size();
  pushLocked(lock);
}

void Manager::setRecordHandler(std::function<void(const AccessRecord&)> handler) {
  std::lock_guard lock(mu_);
  on_record_ = std::move(handler);
}

ProxyStatus Manager::status() const {
  std::lock_guard lock(mu_);
  ProxyStatus s = status_;
  s.version = version_;
  s.acked = acked_;
  return s;
}

}  // namespace cilium::proxy
