// The etcd v3 client on gRPC's synchronous API, the Session (lease + owned keys) and the Mirror
// (list, watch, relist on compaction).
#include "agent/kvstore/etcd.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/yaml.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace cilium::kvstore {

namespace pb = etcdserverpb;

namespace {

auto& log() {
  static auto l = cilium::logger("kvstore");
  return l;
}

Error grpcError(const grpc::Status& s, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED: code = ErrorCode::kUnavailable; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = ErrorCode::kDeadlineExceeded; break;
    case grpc::StatusCode::NOT_FOUND: code = ErrorCode::kNotFound; break;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: code = ErrorCode::kInvalidArgument; break;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: code = ErrorCode::kPermissionDenied; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = ErrorCode::kFailedPrecondition; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = ErrorCode::kResourceExhausted; break;
    default: break;
  }
  return Error(code, fmt::format("etcd {}: {}", what, s.error_message()));
}

KeyValue fromPb(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.lease()};
}

// "http://127.0.0.1:2379" -> "127.0.0.1:2379"; the scheme must agree with the TLS settings.
Result<std::string> hostPort(const std::string& endpoint, bool* tls) {
  std::string_view e = endpoint;
  if (e.rfind("http://", 0) == 0) {
    *tls = false;
    e.remove_prefix(7);
  } else if (e.rfind("https://", 0) == 0) {
    *tls = true;
    e.remove_prefix(8);
  } else {
    return makeError(ErrorCode::kInvalidArgument,
                     "etcd endpoint {:?}: must start with http:// or https://", endpoint);
  }
  while (!e.empty() && e.back() == '/') e.remove_suffix(1);
  if (e.empty() || e.find('/') != std::string_view::npos || e.find(':') == std::string_view::npos)
    return makeError(ErrorCode::kInvalidArgument, "etcd endpoint {:?}: want scheme://host:port",
                     endpoint);
  return std::string(e);
}

}  // namespace

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Result<EtcdConfig> parseEtcdConfig(std::string_view yaml_text) {
  CILIUM_ASSIGN_OR_RETURN(auto docs, yaml::toJson(yaml_text));
  if (docs.size() != 1 || !docs[0].is_object())
    return Error(ErrorCode::kInvalidArgument, "etcd config: want one YAML mapping");
  const auto& j = docs[0];
  EtcdConfig c;
  auto str = [&](const char* key, std::string* out) -> Status {
    if (!j.contains(key)) return okStatus();
    if (!j[key].is_string())
      return makeError(ErrorCode::kInvalidArgument, "etcd config: {} must be a string", key);
    *out = j[key].get<std::string>();
    return okStatus();
  };
  for (const auto& [k, v] : j.items()) {
    static const std::set<std::string> kKnown = {
        "endpoints", "trusted-ca-file", "ca-file", "cert-file", "key-file", "username", "password"};
    if (kKnown.count(k) == 0)
      return makeError(ErrorCode::kInvalidArgument, "etcd config: unknown key {:?}", k);
  }
  if (!j.contains("endpoints") || !j["endpoints"].is_array() || j["endpoints"].empty())
    return Error(ErrorCode::kInvalidArgument, "etcd config: endpoints must be a non-empty list");
  for (const auto& e : j["endpoints"]) {
    if (!e.is_string())
      return Error(ErrorCode::kInvalidArgument, "etcd config: each endpoint must be a string");
    bool tls = false;
    if (auto hp = hostPort(e.get<std::string>(), &tls); !hp.ok()) return hp.error();
    c.endpoints.push_back(e.get<std::string>());
  }
  CILIUM_RETURN_IF_ERROR(str("trusted-ca-file", &c.trusted_ca_file));
  if (c.trusted_ca_file.empty()) CILIUM_RETURN_IF_ERROR(str("ca-file", &c.trusted_ca_file));
  CILIUM_RETURN_IF_ERROR(str("cert-file", &c.cert_file));
  CILIUM_RETURN_IF_ERROR(str("key-file", &c.key_file));
  CILIUM_RETURN_IF_ERROR(str("username", &c.username));
  CILIUM_RETURN_IF_ERROR(str("password", &c.password));
  if (c.cert_file.empty() != c.key_file.empty())
    return Error(ErrorCode::kInvalidArgument, "etcd config: cert-file and key-file go together");
  if (c.username.empty() != c.password.empty())
    return Error(ErrorCode::kInvalidArgument, "etcd config: username and password go together");
  return c;
}

Result<EtcdConfig> loadEtcdConfig(const std::string& path) {
  CILIUM_ASSIGN_OR_RETURN(auto text, readFile(path));
  auto c = parseEtcdConfig(text);
  if (!c.ok()) return c.error().withContext(path);
  return c;
}

std::chrono::milliseconds Backoff::next() {
  thread_local std::mt19937 rng{std::random_device{}()};
  int shift = std::min(attempt_++, 16);
  auto base = std::min<int64_t>(max_.count(), min_.count() << shift);
  std::uniform_int_distribution<int64_t> jitter(base / 2, base);
  return std::chrono::milliseconds(jitter(rng));
}

struct Client::Impl {
  EtcdConfig config;
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
  std::unique_ptr<pb::Auth::Stub> auth;

  std::mutex token_mu;
  std::string token;  // etcd auth token ("" without credentials)

  // A context with the call deadline and the auth token. `stream`: no deadline.
  std::unique_ptr<grpc::ClientContext> context(bool stream = false) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    // Wait for a connection up to the deadline instead of failing fast: with gRPC's synchronous
    // API only a waiting call drives the connection attempt, so calls that fail at once would
    // leave the channel unable to finish a handshake.
    ctx->set_wait_for_ready(true);
    if (!stream) ctx->set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    std::lock_guard lock(token_mu);
    if (!token.empty()) ctx->AddMetadata("token", token);
    return ctx;
  }

  Status authenticate() {
    if (config.username.empty()) return okStatus();
    pb::AuthenticateRequest req;
    req.set_name(config.username);
    req.set_password(config.password);
    pb::AuthenticateResponse resp;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    auto s = auth->Authenticate(&ctx, req, &resp);
    if (!s.ok()) return grpcError(s, "authenticate");
    std::lock_guard lock(token_mu);
    token = resp.token();
    return okStatus();
  }

  bool needsToken() {
    if (config.username.empty()) return false;
    std::lock_guard lock(token_mu);
    return token.empty();
  }

  // Runs `call` (a lambda making one unary RPC with the context it is given), authenticating
  // first when needed and once more when the token was refused (etcd tokens expire).
  template <typename F>
  grpc::Status unary(F&& call) {
    if (needsToken()) {
      if (auto st = authenticate(); !st.ok())
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, st.error().message());
    }
    auto ctx = context();
    grpc::Status s = call(*ctx);
    if (!config.username.empty() &&
        (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         s.error_message().find("invalid auth token") != std::string::npos)) {
      {
        std::lock_guard lock(token_mu);
        token.clear();
      }
      if (auto st = authenticate(); !st.ok())
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, st.error().message());
      ctx = context();
      s = call(*ctx);
    }
    return s;
  }
};

Result<std::unique_ptr<Client>> Client::create(const EtcdConfig& config, ClientOptions options) {
  if (config.endpoints.empty()) return Error(ErrorCode::kInvalidArgument, "etcd: no endpoints");
  std::vector<std::string> hosts;
  std::optional<bool> tls;
  for (const auto& e : config.endpoints) {
    bool t = false;
    CILIUM_ASSIGN_OR_RETURN(auto hp, hostPort(e, &t));
    if (tls && *tls != t)
      return Error(ErrorCode::kInvalidArgument, "etcd: endpoints mix http:// and https://");
    tls = t;
    hosts.push_back(std::move(hp));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (*tls) {
    grpc::SslCredentialsOptions so;
    if (!config.trusted_ca_file.empty()) {
      CILIUM_ASSIGN_OR_RETURN(so.pem_root_certs, readFile(config.trusted_ca_file));
    }
    if (!config.cert_file.empty()) {
      CILIUM_ASSIGN_OR_RETURN(so.pem_cert_chain, readFile(config.cert_file));
      CILIUM_ASSIGN_OR_RETURN(so.pem_private_key, readFile(config.key_file));
    }
    creds = grpc::SslCredentials(so);
  } else {
    if (!config.trusted_ca_file.empty() || !config.cert_file.empty())
      return Error(ErrorCode::kInvalidArgument,
                   "etcd: TLS files given but the endpoints are http://");
    creds = grpc::InsecureChannelCredentials();
  }
  // Several endpoints: gRPC's ipv4:/ipv6: resolvers take a list (pick_first moves on when one
  // fails); host names: the first one (DNS may return several addresses itself).
  std::string target;
  bool all_ipv4 = std::all_of(hosts.begin(), hosts.end(), [](const std::string& h) {
    return !h.empty() && std::isdigit(static_cast<unsigned char>(h[0])) &&
           std::count(h.begin(), h.end(), ':') == 1;
  });
  if (hosts.size() > 1 && all_ipv4) {
    target = "ipv4:";
    for (size_t i = 0; i < hosts.size(); i++) target += (i ? "," : "") + hosts[i];
  } else {
    target = hosts[0];
    if (hosts.size() > 1)
      log()->warn("etcd: several endpoints with host names; using {} only", hosts[0]);
  }
  grpc::ChannelArguments args;
  // Reconnect quickly when etcd comes back (gRPC's default backoff grows to 120 s). The
  // "minimum backoff" is in fact gRPC's connect timeout: kept at seconds, or a loaded machine
  // never completes a handshake.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Notice a peer that vanished without closing the connection.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  impl->channel = grpc::CreateCustomChannel(target, creds, args);
  impl->kv = pb::KV::NewStub(impl->channel);
  impl->lease = pb::Lease::NewStub(impl->channel);
  impl->watch = pb::Watch::NewStub(impl->channel);
  impl->maintenance = pb::Maintenance::NewStub(impl->channel);
  impl->auth = pb::Auth::NewStub(impl->channel);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const std::vector<std::string>& Client::endpoints() const { return impl_->config.endpoints; }

namespace {
Result<RangeResult> rangeCall(Client::Impl& impl, const std::string& key,
                              const std::string& range_end) {
  pb::RangeRequest req;
  req.set_key(key);
  if (!range_end.empty()) req.set_range_end(range_end);
  pb::RangeResponse resp;
  auto s = impl.unary([&](grpc::ClientContext& ctx) { return impl.kv->Range(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "range " + key);
  RangeResult out;
  out.revision = resp.header().revision();
  out.kvs.reserve(resp.kvs_size());
  for (const auto& kv : resp.kvs()) out.kvs.push_back(fromPb(kv));
  return out;
}

Result<int64_t> deleteCall(Client::Impl& impl, const std::string& key,
                           const std::string& range_end) {
  pb::DeleteRangeRequest req;
  req.set_key(key);
  if (!range_end.empty()) req.set_range_end(range_end);
  pb::DeleteRangeResponse resp;
  auto s =
      impl.unary([&](grpc::ClientContext& ctx) { return impl.kv->DeleteRange(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "delete " + key);
  return resp.deleted();
}

void toPb(const TxnOp& op, pb::RequestOp* out);

void toPb(const Compare& c, pb::Compare* pc) {
  pc->set_key(c.key);
  if (!c.range_end.empty()) pc->set_range_end(c.range_end);
  pc->set_result(c.op == Compare::Op::kEqual ? pb::Compare::EQUAL : pb::Compare::NOT_EQUAL);
  switch (c.target) {
    case Compare::Target::kCreateRevision:
      pc->set_target(pb::Compare::CREATE);
      pc->set_create_revision(c.revision);
      break;
    case Compare::Target::kModRevision:
      pc->set_target(pb::Compare::MOD);
      pc->set_mod_revision(c.revision);
      break;
    case Compare::Target::kValue:
      pc->set_target(pb::Compare::VALUE);
      pc->set_value(c.value);
      break;
  }
}

void toPb(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
          const std::vector<TxnOp>& failure, pb::TxnRequest* req) {
  for (const auto& c : compares) toPb(c, req->add_compare());
  for (const auto& op : success) toPb(op, req->add_success());
  for (const auto& op : failure) toPb(op, req->add_failure());
}

TxnResult fromPb(const pb::TxnResponse& resp) {
  TxnResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  for (const auto& r : resp.responses()) {
    if (r.has_response_range()) {
      std::vector<KeyValue> kvs;
      for (const auto& kv : r.response_range().kvs()) kvs.push_back(fromPb(kv));
      out.ranges.push_back(std::move(kvs));
    } else if (r.has_response_txn()) {
      out.txns.push_back(fromPb(r.response_txn()));
    }
  }
  return out;
}

void toPb(const TxnOp& op, pb::RequestOp* out) {
  switch (op.kind) {
    case TxnOp::Kind::kPut: {
      auto* p = out->mutable_request_put();
      p->set_key(op.key);
      p->set_value(op.value);
      p->set_lease(op.lease);
      break;
    }
    case TxnOp::Kind::kDelete: {
      auto* d = out->mutable_request_delete_range();
      d->set_key(op.key);
      if (!op.range_end.empty()) d->set_range_end(op.range_end);
      break;
    }
    case TxnOp::Kind::kRange: {
      auto* r = out->mutable_request_range();
      r->set_key(op.key);
      if (!op.range_end.empty()) r->set_range_end(op.range_end);
      break;
    }
    case TxnOp::Kind::kTxn: {
      auto* t = out->mutable_request_txn();
      if (op.txn) toPb(op.txn->compares, op.txn->success, op.txn->failure, t);
      break;
    }
  }
}
}  // namespace

Result<RangeResult> Client::get(const std::string& key) { return rangeCall(*impl_, key, ""); }

Result<RangeResult> Client::getPrefix(const std::string& prefix) {
  return rangeCall(*impl_, prefix, prefixEnd(prefix));
}

Result<int64_t> Client::put(const std::string& key, const std::string& value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  pb::PutResponse resp;
  auto s = impl_->unary([&](grpc::ClientContext& ctx) { return impl_->kv->Put(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "put " + key);
  return resp.header().revision();
}

Result<int64_t> Client::remove(const std::string& key) { return deleteCall(*impl_, key, ""); }

Result<int64_t> Client::removePrefix(const std::string& prefix) {
  return deleteCall(*impl_, prefix, prefixEnd(prefix));
}

Result<TxnResult> Client::txn(const std::vector<Compare>& compares,
                              const std::vector<TxnOp>& success,
                              const std::vector<TxnOp>& failure) {
  pb::TxnRequest req;
  toPb(compares, success, failure, &req);
  pb::TxnResponse resp;
  auto s = impl_->unary([&](grpc::ClientContext& ctx) { return impl_->kv->Txn(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "txn");
  return fromPb(resp);
}

Result<int64_t> Client::grantLease(std::chrono::seconds ttl) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl.count());
  pb::LeaseGrantResponse resp;
  auto s = impl_->unary(
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseGrant(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "lease grant");
  if (!resp.error().empty())
    return makeError(ErrorCode::kUnavailable, "etcd lease grant: {}", resp.error());
  return resp.id();
}

Result<int64_t> Client::keepAlive(int64_t lease) {
  // One request on a short-lived stream: simple, and a keep-alive every ttl/3 costs little.
  if (impl_->needsToken()) CILIUM_RETURN_IF_ERROR(impl_->authenticate());
  auto ctx = impl_->context();
  auto stream = impl_->lease->LeaseKeepAlive(ctx.get());
  pb::LeaseKeepAliveRequest req;
  req.set_id(lease);
  pb::LeaseKeepAliveResponse resp;
  bool ok = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  if (!ok) {
    ctx->TryCancel();
    auto s = stream->Finish();
    if (s.ok()) s = grpc::Status(grpc::StatusCode::UNAVAILABLE, "keep-alive stream ended");
    return grpcError(s, "lease keep-alive");
  }
  // Drain the stream's end so Finish() does not wait for the server.
  ctx->TryCancel();
  stream->Finish();
  if (resp.ttl() <= 0)
    return makeError(ErrorCode::kNotFound, "etcd lease {:x} expired or revoked", lease);
  return resp.ttl();
}

Status Client::revokeLease(int64_t lease) {
  pb::LeaseRevokeRequest req;
  req.set_id(lease);
  pb::LeaseRevokeResponse resp;
  auto s = impl_->unary(
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseRevoke(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "lease revoke");
  return okStatus();
}

Status Client::compact(int64_t revision) {
  pb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(true);
  pb::CompactionResponse resp;
  auto s =
      impl_->unary([&](grpc::ClientContext& ctx) { return impl_->kv->Compact(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "compact");
  return okStatus();
}

Result<std::string> Client::serverVersion() {
  pb::StatusRequest req;
  pb::StatusResponse resp;
  auto s = impl_->unary(
      [&](grpc::ClientContext& ctx) { return impl_->maintenance->Status(&ctx, req, &resp); });
  if (!s.ok()) return grpcError(s, "status");
  return resp.version();
}

// ---- Session ----

struct Session::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  bool running = false;
  bool stopping = false;
  std::thread thread;
  int64_t lease = 0;
  bool connected = false;
  uint64_t renewals = 0;
  bool had_lease = false;
  bool was_unreachable = false;
  std::map<std::string, std::string> owned;
  std::set<std::string> dirty;     // owned keys not yet written under the current lease
  std::set<std::string> removals;  // keys to delete
};

Session::Session(Client& client, SessionOptions options)
    : client_(client), options_(options), state_(std::make_unique<State>()) {}

Session::~Session() { stop(); }

void Session::start() {
  std::lock_guard lock(state_->mu);
  if (state_->running) return;
  state_->running = true;
  state_->stopping = false;
  state_->thread = std::thread([this] { run(); });
}

void Session::stop() {
  {
    std::lock_guard lock(state_->mu);
    if (!state_->running) return;
    state_->stopping = true;
  }
  state_->cv.notify_all();
  state_->thread.join();
  int64_t lease = 0;
  {
    std::lock_guard lock(state_->mu);
    state_->running = false;
    lease = state_->lease;
  }
  if (options_.revoke_on_stop && lease != 0) {
    if (auto st = client_.revokeLease(lease); !st.ok())
      log()->warn("cannot revoke lease={:x}: {}", lease, st.error().message());
  }
}

int64_t Session::lease() const {
  std::lock_guard lock(state_->mu);
  return state_->lease;
}

Result<int64_t> Session::waitForLease(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  if (!state_->cv.wait_for(lock, timeout, [&] { return state_->lease != 0; }))
    return Error(ErrorCode::kUnavailable, "no etcd lease (etcd unreachable?)");
  return state_->lease;
}

bool Session::connected() const {
  std::lock_guard lock(state_->mu);
  return state_->connected;
}

uint64_t Session::leaseRenewals() const {
  std::lock_guard lock(state_->mu);
  return state_->renewals;
}

size_t Session::ownedKeys() const {
  std::lock_guard lock(state_->mu);
  return state_->owned.size();
}

void Session::put(const std::string& key, const std::string& value) {
  {
    std::lock_guard lock(state_->mu);
    auto it = state_->owned.find(key);
    if (it != state_->owned.end() && it->second == value && !state_->dirty.count(key)) return;
    state_->owned[key] = value;
    state_->removals.erase(key);
    state_->dirty.insert(key);
  }
  state_->cv.notify_all();
}

void Session::adopt(const std::string& key, const std::string& value, int64_t lease) {
  {
    std::lock_guard lock(state_->mu);
    state_->owned[key] = value;
    state_->removals.erase(key);
    if (lease != state_->lease || lease == 0)
      state_->dirty.insert(key);
    else
      state_->dirty.erase(key);
  }
  state_->cv.notify_all();
}

void Session::remove(const std::string& key) {
  {
    std::lock_guard lock(state_->mu);
    state_->owned.erase(key);
    state_->dirty.erase(key);
    state_->removals.insert(key);
  }
  state_->cv.notify_all();
}

void Session::run() {
  State& s = *state_;
  Backoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(2));
  const auto ttl = options_.lease_ttl;
  const auto keepalive_every = std::chrono::milliseconds(ttl) / 3;
  auto last_keepalive = std::chrono::steady_clock::now();
  std::unique_lock lock(s.mu);
  while (!s.stopping) {
    std::chrono::milliseconds wait = keepalive_every;
    bool failed = false;
    if (s.lease == 0) {
      lock.unlock();
      auto lease = client_.grantLease(ttl);
      lock.lock();
      if (!lease.ok()) {
        failed = true;
        log()->debug("lease grant failed: {}", lease.error().message());
      } else {
        s.lease = *lease;
        last_keepalive = std::chrono::steady_clock::now();
        if (s.had_lease) s.renewals++;
        s.had_lease = true;
        // The old lease took its keys with it: write every owned key again.
        for (const auto& [k, v] : s.owned) s.dirty.insert(k);
        log()->info("etcd lease granted lease={:x} ttl={}s keys={}", s.lease, ttl.count(),
                    s.owned.size());
        s.cv.notify_all();
      }
    }
    // Pending writes and deletes.
    if (!failed && s.lease != 0) {
      while (!s.dirty.empty() && !s.stopping) {
        std::string key = *s.dirty.begin();
        std::string value = s.owned[key];
        int64_t lease = s.lease;
        lock.unlock();
        auto r = client_.put(key, value, lease);
        lock.lock();
        if (!r.ok()) {
          failed = true;
          log()->debug("put key={} failed: {}", key, r.error().message());
          break;
        }
        // Written unless it changed or the lease moved meanwhile.
        if (s.lease == lease && s.owned.count(key) && s.owned[key] == value) s.dirty.erase(key);
      }
    }
    if (!failed) {
      while (!s.removals.empty() && !s.stopping) {
        std::string key = *s.removals.begin();
        lock.unlock();
        auto r = client_.remove(key);
        lock.lock();
        if (!r.ok()) {
          failed = true;
          break;
        }
        if (!s.owned.count(key)) s.removals.erase(key);
      }
    }
    // Keep-alive when due.
    auto now = std::chrono::steady_clock::now();
    if (!failed && s.lease != 0 && now - last_keepalive >= keepalive_every) {
      int64_t lease = s.lease;
      lock.unlock();
      auto r = client_.keepAlive(lease);
      lock.lock();
      if (r.ok()) {
        last_keepalive = std::chrono::steady_clock::now();
      } else if (r.error().code() == ErrorCode::kNotFound) {
        log()->warn("etcd lease lost lease={:x}: granting a new one and re-creating {} keys", lease,
                    s.owned.size());
        if (s.lease == lease) s.lease = 0;
        continue;  // at once
      } else {
        failed = true;
      }
    }
    // Unreachable for longer than the TTL: the lease is gone on the server too.
    if (failed && s.lease != 0 &&
        std::chrono::steady_clock::now() - last_keepalive > std::chrono::milliseconds(ttl)) {
      log()->warn("etcd unreachable for longer than the lease TTL: lease={:x} given up", s.lease);
      s.lease = 0;
    }
    if (s.connected != !failed) {
      s.connected = !failed;
      if (failed) {
        log()->warn("etcd unreachable; retrying with backoff");
        s.was_unreachable = true;
      } else if (s.was_unreachable) {
        log()->info("etcd reachable again");
      }
    }
    if (failed) {
      wait = backoff.next();
    } else {
      backoff.reset();
      auto since = std::chrono::steady_clock::now() - last_keepalive;
      wait =
          std::max(std::chrono::milliseconds(0),
                   keepalive_every - std::chrono::duration_cast<std::chrono::milliseconds>(since));
      if (s.lease == 0) wait = std::chrono::milliseconds(0);
    }
    s.cv.wait_for(lock, wait, [&] {
      return s.stopping || (!failed && (!s.dirty.empty() || !s.removals.empty()));
    });
  }
}

// ---- Mirror ----

struct Mirror::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  bool running = false;
  bool stopping = false;
  std::thread thread;
  std::shared_ptr<grpc::ClientContext> stream_ctx;  // the watch in progress, to cancel
  bool synced = false;
  uint64_t lists = 0;
  uint64_t compactions = 0;
  int64_t revision = 0;
  std::map<std::string, KeyValue> keys;
};

Mirror::Mirror(Client& client, std::string prefix, MirrorHandler handler)
    : client_(client),
      prefix_(std::move(prefix)),
      handler_(std::move(handler)),
      state_(std::make_unique<State>()) {}

Mirror::~Mirror() { stop(); }

void Mirror::start() {
  std::lock_guard lock(state_->mu);
  if (state_->running) return;
  state_->running = true;
  state_->stopping = false;
  state_->thread = std::thread([this] { run(); });
}

void Mirror::stop() {
  {
    std::lock_guard lock(state_->mu);
    if (!state_->running) return;
    state_->stopping = true;
    if (state_->stream_ctx) state_->stream_ctx->TryCancel();
  }
  state_->cv.notify_all();
  state_->thread.join();
  std::lock_guard lock(state_->mu);
  state_->running = false;
  state_->stream_ctx.reset();
}

bool Mirror::waitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->synced; });
}

bool Mirror::synced() const {
  std::lock_guard lock(state_->mu);
  return state_->synced;
}
uint64_t Mirror::lists() const {
  std::lock_guard lock(state_->mu);
  return state_->lists;
}
uint64_t Mirror::compactions() const {
  std::lock_guard lock(state_->mu);
  return state_->compactions;
}
int64_t Mirror::revision() const {
  std::lock_guard lock(state_->mu);
  return state_->revision;
}
std::map<std::string, std::string> Mirror::snapshot() const {
  std::lock_guard lock(state_->mu);
  std::map<std::string, std::string> out;
  for (const auto& [k, kv] : state_->keys) out[k] = kv.value;
  return out;
}

void Mirror::run() {
  State& s = *state_;
  Backoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(2));
  bool need_list = true;
  auto upsert = [&](const KeyValue& kv) {
    {
      std::lock_guard lock(s.mu);
      s.keys[kv.key] = kv;
    }
    if (handler_.on_upsert) handler_.on_upsert(kv);
  };
  auto erase = [&](const std::string& key) {
    {
      std::lock_guard lock(s.mu);
      if (s.keys.erase(key) == 0) return;
    }
    if (handler_.on_delete) handler_.on_delete(key);
  };
  auto sleep = [&](std::chrono::milliseconds d) {
    std::unique_lock lock(s.mu);
    s.cv.wait_for(lock, d, [&] { return s.stopping; });
    return !s.stopping;
  };
  for (;;) {
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
    }
    if (need_list) {
      auto r = client_.getPrefix(prefix_);
      if (!r.ok()) {
        log()->debug("list prefix={} failed: {}", prefix_, r.error().message());
        if (!sleep(backoff.next())) return;
        continue;
      }
      // Tell only the differences: keys gone, then keys new or changed.
      std::set<std::string> present;
      for (const auto& kv : r->kvs) present.insert(kv.key);
      std::vector<std::string> gone;
      std::vector<const KeyValue*> changed;
      {
        std::lock_guard lock(s.mu);
        for (const auto& [k, kv] : s.keys)
          if (!present.count(k)) gone.push_back(k);
        for (const auto& kv : r->kvs) {
          auto it = s.keys.find(kv.key);
          if (it == s.keys.end() || it->second.mod_revision != kv.mod_revision ||
              it->second.value != kv.value)
            changed.push_back(&kv);
        }
      }
      for (const auto& k : gone) erase(k);
      for (const auto* kv : changed) upsert(*kv);
      {
        std::lock_guard lock(s.mu);
        s.revision = r->revision;
        s.lists++;
        s.synced = true;
      }
      s.cv.notify_all();
      if (handler_.on_synced) handler_.on_synced();
      need_list = false;
    }
    // Watch from the revision after the last one seen.
    auto ctx = std::make_shared<grpc::ClientContext>();
    ctx->set_wait_for_ready(true);
    if (client_.impl().needsToken()) {
      if (auto st = client_.impl().authenticate(); !st.ok()) {
        if (!sleep(backoff.next())) return;
        continue;
      }
    }
    {
      std::lock_guard tl(client_.impl().token_mu);
      if (!client_.impl().token.empty()) ctx->AddMetadata("token", client_.impl().token);
    }
    int64_t start_rev = 0;
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
      s.stream_ctx = ctx;
      start_rev = s.revision + 1;
    }
    auto stream = client_.impl().watch->Watch(ctx.get());
    pb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(prefixEnd(prefix_));
    create->set_start_revision(start_rev);
    create->set_progress_notify(true);
    bool ok = stream->Write(req);
    pb::WatchResponse resp;
    bool created = false;
    while (ok && stream->Read(&resp)) {
      if (resp.compact_revision() != 0) {
        // Our revision is gone from the history: list again and tell the differences.
        log()->info("watch prefix={} from revision={} compacted (compact_revision={}): relisting",
                    prefix_, start_rev, resp.compact_revision());
        std::lock_guard lock(s.mu);
        s.compactions++;
        need_list = true;
        break;
      }
      if (resp.canceled()) {
        log()->warn("watch prefix={} canceled by etcd: {}", prefix_, resp.cancel_reason());
        need_list = true;
        break;
      }
      if (resp.created()) {
        created = true;
        backoff.reset();
      }
      int64_t last = 0;
      for (const auto& ev : resp.events()) {
        KeyValue kv = fromPb(ev.kv());
        last = std::max(last, kv.mod_revision);
        if (ev.type() == mvccpb::Event::DELETE)
          erase(kv.key);
        else
          upsert(kv);
      }
      std::lock_guard lock(s.mu);
      if (last != 0) s.revision = std::max(s.revision, last);
      // A progress notification (no events) says nothing is missed up to its revision.
      if (resp.events_size() == 0 && !resp.created() && resp.header().revision() > s.revision)
        s.revision = resp.header().revision();
    }
    ctx->TryCancel();
    auto st = stream->Finish();
    {
      std::lock_guard lock(s.mu);
      s.stream_ctx.reset();
      if (s.stopping) return;
    }
    if (need_list) continue;
    log()->debug("watch prefix={} ended (created={}): {}", prefix_, created, st.error_message());
    if (!sleep(backoff.next())) return;
  }
}

}  // namespace cilium::kvstore
