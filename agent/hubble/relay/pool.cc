// PeerPool: Notify-driven discovery and self-healing channels to the nodes' Hubble servers.
#include "agent/hubble/relay/pool.h"

#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"

namespace cilium::hubble::relay {

namespace {

auto log() {
  static auto l = cilium::logger("hubble-relay");
  return l;
}

Result<std::string> readPem(const std::string& path, std::string_view flag) {
  std::ifstream in(path);
  if (!in) return makeError(ErrorCode::kFailedPrecondition, "{} {}: cannot be read", flag, path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty())
    return makeError(ErrorCode::kFailedPrecondition, "{} {}: empty", flag, path);
  return ss.str();
}

const char* stateName(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE: return "idle";
    case GRPC_CHANNEL_CONNECTING: return "connecting";
    case GRPC_CHANNEL_READY: return "ready";
    case GRPC_CHANNEL_TRANSIENT_FAILURE: return "transient-failure";
    case GRPC_CHANNEL_SHUTDOWN: return "shutdown";
  }
  return "unknown";
}

// gRPC's name of a connectivity state (Go's connectivity.State.String()).
const char* stateLabel(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE: return "IDLE";
    case GRPC_CHANNEL_CONNECTING: return "CONNECTING";
    case GRPC_CHANNEL_READY: return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN: return "SHUTDOWN";
  }
  return "UNKNOWN";
}

}  // namespace

Result<PeerPool::Pems> PeerPool::readPems(const ClientTls& tls) {
  Pems p;
  for (const auto& ca : tls.server_ca_files) {
    CILIUM_ASSIGN_OR_RETURN(auto pem, readPem(ca, "--tls-hubble-server-ca-files"));
    p.roots += pem;
    if (!pem.ends_with('\n')) p.roots += '\n';
  }
  if (!tls.cert_file.empty()) {
    CILIUM_ASSIGN_OR_RETURN(p.cert, readPem(tls.cert_file, "--tls-hubble-client-cert-file"));
    CILIUM_ASSIGN_OR_RETURN(p.key, readPem(tls.key_file, "--tls-hubble-client-key-file"));
  }
  // Not a full parse (gRPC does that at the handshake), but a file being rewritten or replaced
  // by something else is not taken for a certificate.
  if (p.roots.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    return makeError(ErrorCode::kFailedPrecondition,
                     "--tls-hubble-server-ca-files: no PEM certificate");
  if (!tls.cert_file.empty() && (p.cert.find("-----BEGIN CERTIFICATE-----") == std::string::npos ||
                                 p.key.find("PRIVATE KEY-----") == std::string::npos))
    return makeError(ErrorCode::kFailedPrecondition,
                     "--tls-hubble-client-cert-file/--tls-hubble-client-key-file: not a PEM "
                     "certificate and key");
  return p;
}

Result<std::unique_ptr<PeerPool>> PeerPool::create(PoolOptions opts) {
  std::unique_ptr<PeerPool> p(new PeerPool(std::move(opts)));
  const auto& tls = p->opts_.tls;
  if (tls.enabled) {
    if (tls.server_ca_files.empty())
      return makeError(ErrorCode::kInvalidArgument,
                       "client TLS needs --tls-hubble-server-ca-files (or --disable-client-tls)");
    if (tls.cert_file.empty() != tls.key_file.empty())
      return makeError(
          ErrorCode::kInvalidArgument,
          "--tls-hubble-client-cert-file and --tls-hubble-client-key-file go together");
    CILIUM_ASSIGN_OR_RETURN(p->pems_, readPems(tls));
  }
  if (p->opts_.cluster_name.empty()) p->opts_.cluster_name = "default";
  if (p->opts_.retry_timeout < std::chrono::milliseconds(100))
    p->opts_.retry_timeout = std::chrono::milliseconds(100);
  return p;
}

PeerPool::~PeerPool() { stop(); }

std::string PeerPool::dialTarget(const std::string& address, const std::string& peer_service) {
  if (address.starts_with("unix://") || address.starts_with("unix:")) return address;
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  std::string host = address.substr(0, colon);
  if (!host.empty() && host != "0.0.0.0" && host != "[::]") return address;
  std::string ps_host = "127.0.0.1";
  if (!peer_service.empty() && !peer_service.starts_with("unix:")) {
    auto c = peer_service.rfind(':');
    std::string h = peer_service.substr(0, c);
    if (!h.empty() && h != "0.0.0.0" && h != "[::]") ps_host = h;
  }
  return ps_host + address.substr(colon);
}

void PeerPool::upsert(const PeerInfo& announced, bool force) {
  PeerInfo p = announced;
  const bool bare = p.name.find('/') == std::string::npos;
  p.name = fullName(p.name);
  NodeConn n;
  n.info = p;
  n.target = dialTarget(p.address, opts_.peer_service);
  n.tls = opts_.tls.enabled && !n.target.starts_with("unix:");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(opts_.retry_timeout.count()));
  // A node that vanishes without closing its connections is noticed by keepalive.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  std::lock_guard lock(mu_);
  auto it = nodes_.find(p.name);
  // A re-announcement keeps the channel.
  if (!force && it != nodes_.end() && it->second.info == p) return;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (n.tls) {
    std::string name =
        !p.tls_server_name.empty()
            ? p.tls_server_name
            : hubbleTlsServerName(opts_.cluster_name,
                                  bare ? announced.name : p.name.substr(p.name.find('/') + 1));
    args.SetSslTargetNameOverride(name);
    n.tls_server_name = name;
    creds = grpc::SslCredentials({pems_.roots, pems_.key, pems_.cert});
  }
  n.channel = grpc::CreateCustomChannel(n.target, creds, args);
  n.channel->GetState(true);  // connect now, not at the first request
  log()->info("node {} name={} address={} target={} tls={}", force ? "reconnected" : "added",
              p.name, p.address, n.target, n.tls);
  nodes_[p.name] = std::move(n);
}

void PeerPool::reloadCerts() {
  auto fresh = readPems(opts_.tls);
  std::vector<PeerInfo> tls_nodes;
  {
    std::lock_guard lock(mu_);
    if (!fresh.ok()) {
      // Mid-rotation (a file half written) or removed: keep what works.
      log()->debug("client certificates not reloaded: {}", fresh.error().message());
      return;
    }
    if (*fresh == pems_) return;
    pems_ = std::move(*fresh);
    for (const auto& [name, n] : nodes_)
      if (n.tls) tls_nodes.push_back(n.info);
  }
  ++cert_reloads_;
  log()->info("client certificates changed; reconnecting {} TLS nodes", tls_nodes.size());
  for (const auto& p : tls_nodes) upsert(p, /*force=*/true);
}

std::string PeerPool::fullName(const std::string& announced) const {
  // Hubble's Fullname: the cluster is part of a node's name unless it is the default one.
  if (announced.find('/') != std::string::npos || opts_.cluster_name == "default") return announced;
  return opts_.cluster_name + "/" + announced;
}

void PeerPool::remove(const std::string& announced) {
  std::string name = fullName(announced);
  std::lock_guard lock(mu_);
  if (nodes_.erase(name) > 0) log()->info("node deleted name={}", name);
}

PoolStatus PeerPool::status() const {
  PoolStatus st;
  st.peer_service_connected = opts_.peer_service.empty() || peer_service_connected_.load();
  for (const char* s : {"IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN"})
    st.states[s] = 0;
  std::lock_guard lock(mu_);
  for (const auto& [name, n] : nodes_) {
    auto s = n.channel->GetState(false);
    ++st.states[stateLabel(s)];
    if (s != GRPC_CHANNEL_TRANSIENT_FAILURE && s != GRPC_CHANNEL_SHUTDOWN) ++st.available_peers;
  }
  return st;
}

std::vector<NodeConn> PeerPool::nodes() const {
  std::vector<NodeConn> out;
  std::lock_guard lock(mu_);
  for (const auto& [name, n] : nodes_) {
    out.push_back(n);
    out.back().connected = n.channel->GetState(false) == GRPC_CHANNEL_READY;
  }
  return out;
}

void PeerPool::start() {
  if (started_) return;
  started_ = true;
  stopping_ = false;
  for (const auto& p : opts_.static_peers) upsert(p);
  if (!opts_.peer_service.empty()) discover_ = std::thread([this] { discoverLoop(); });
  monitor_ = std::thread([this] { monitorLoop(); });
}

void PeerPool::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
    if (notify_ctx_) notify_ctx_->TryCancel();
  }
  stop_cv_.notify_all();
  if (discover_.joinable()) discover_.join();
  if (monitor_.joinable()) monitor_.join();
  started_ = false;
}

bool PeerPool::sleepUnlessStopping(std::chrono::milliseconds d) {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

bool PeerPool::peerServiceTls() const {
  return opts_.tls.enabled && !opts_.peer_service.starts_with("unix:");
}

std::string PeerPool::peerServiceTlsName() const {
  return hubbleTlsServerName(opts_.cluster_name, kPeerServiceName);
}

std::shared_ptr<grpc::Channel> PeerPool::peerServiceChannel() const {
  std::string target = opts_.peer_service;
  if (target.starts_with("unix:///")) target = "unix://" + target.substr(7);
  if (!peerServiceTls()) return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(peerServiceTlsName());
  std::lock_guard lock(mu_);
  return grpc::CreateCustomChannel(
      target, grpc::SslCredentials({pems_.roots, pems_.key, pems_.cert}), args);
}

void PeerPool::discoverLoop() {
  std::chrono::milliseconds backoff(100);
  log()->info("peer service target={} tls={} tls_server_name={}", opts_.peer_service,
              peerServiceTls(), peerServiceTls() ? peerServiceTlsName() : "");
  while (!stopping_) {
    // A channel per attempt: after a certificate reload the next attempt uses the new files.
    auto stub = peer::Peer::NewStub(peerServiceChannel());
    grpc::ClientContext ctx;
    {
      std::lock_guard lock(stop_mu_);
      if (stopping_) break;
      notify_ctx_ = &ctx;
    }
    auto reader = stub->Notify(&ctx, peer::NotifyRequest{});
    peer::ChangeNotification n;
    bool got_any = false;
    while (reader->Read(&n)) {
      got_any = true;
      peer_service_connected_ = true;
      PeerInfo p{n.name(), n.address(), n.has_tls() ? n.tls().server_name() : ""};
      switch (n.type()) {
        case peer::PEER_ADDED:
        case peer::PEER_UPDATED:
          if (!p.name.empty() && !p.address.empty()) upsert(p);
          break;
        case peer::PEER_DELETED: remove(p.name); break;
        default: break;
      }
    }
    auto st = reader->Finish();
    peer_service_connected_ = false;
    {
      std::lock_guard lock(stop_mu_);
      notify_ctx_ = nullptr;
    }
    if (stopping_) break;
    if (got_any) backoff = std::chrono::milliseconds(100);
    log()->warn("peer service {} stream ended code={} message=\"{}\"; retrying in {} ms",
                opts_.peer_service, static_cast<int>(st.error_code()), st.error_message(),
                backoff.count());
    if (!sleepUnlessStopping(backoff)) break;
    backoff = std::min(backoff * 2, opts_.retry_timeout);
  }
}

void PeerPool::monitorLoop() {
  std::map<std::string, grpc_connectivity_state> last;
  auto next_reload = std::chrono::steady_clock::now() + opts_.cert_reload_interval;
  while (sleepUnlessStopping(std::chrono::milliseconds(200))) {
    if (opts_.tls.enabled && std::chrono::steady_clock::now() >= next_reload) {
      reloadCerts();
      next_reload = std::chrono::steady_clock::now() + opts_.cert_reload_interval;
    }
    std::lock_guard lock(mu_);
    for (auto& [name, n] : nodes_) {
      // true: an idle channel (a lost connection) starts connecting again, under gRPC's backoff.
      auto s = n.channel->GetState(true);
      auto it = last.find(name);
      if (it == last.end() || it->second != s) {
        log()->info("node connection name={} state={}", name, stateName(s));
        last[name] = s;
      }
    }
  }
}

}  // namespace cilium::hubble::relay
