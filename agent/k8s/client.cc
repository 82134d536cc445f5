// kubeconfig/in-cluster parsing, the token bucket, and requests over cpp-httplib (+OpenSSL).
#include "agent/k8s/client.h"

#include <httplib.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/yaml.h"

namespace cilium::k8s {

namespace {

using nlohmann::json;

template <typename... Args>
Error invalid(fmt::format_string<Args...> f, Args&&... args) {
  return makeError(ErrorCode::kInvalidArgument, f, std::forward<Args>(args)...);
}

Result<std::string> base64Decode(std::string_view in, std::string_view field) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '\n' || c == '\r' || c == ' ') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    int v = val(c);
    if (v < 0 || pad > 0) return invalid("{}: not valid base64", field);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2) return invalid("{}: not valid base64", field);
  return out;
}

// The named entry of a kubeconfig list ("clusters", "users", "contexts").
Result<const json*> namedEntry(const json& doc, const char* list, const char* inner,
                               const std::string& name) {
  auto it = doc.find(list);
  if (it == doc.end() || it->is_null()) return invalid("{}: no entry named \"{}\"", list, name);
  if (!it->is_array()) return invalid("{}: must be a list", list);
  for (size_t i = 0; i < it->size(); i++) {
    const json& e = (*it)[i];
    if (!e.is_object()) return invalid("{}[{}]: must be an object", list, i);
    auto n = e.find("name");
    if (n == e.end() || !n->is_string()) return invalid("{}[{}].name: required", list, i);
    if (n->get_ref<const std::string&>() != name) continue;
    auto body = e.find(inner);
    if (body == e.end() || !body->is_object())
      return invalid("{}[{}].{}: required", list, i, inner);
    return &*body;
  }
  return invalid("{}: no entry named \"{}\"", list, name);
}

Result<std::string> optString(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return invalid("{}.{}: must be a string", path, key);
  return it->get<std::string>();
}

std::string resolvePath(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
  return base_dir + "/" + p;
}

// "<field>-data" (base64) or "<field>" (a file path), read now.
Result<std::string> dataOrFile(const json& obj, const std::string& field, const std::string& path,
                               const std::string& base_dir) {
  CILIUM_ASSIGN_OR_RETURN(std::string data, optString(obj, (field + "-data").c_str(), path));
  if (!data.empty()) return base64Decode(data, path + "." + field + "-data");
  CILIUM_ASSIGN_OR_RETURN(std::string file, optString(obj, field.c_str(), path));
  if (file.empty()) return std::string();
  auto content = readFile(resolvePath(base_dir, file));
  if (!content.ok()) return invalid("{}.{}: {}", path, field, content.error().message());
  return *content;
}

struct ParsedUrl {
  std::string scheme, host;
  int port = 0;
};

Result<ParsedUrl> parseServer(const std::string& server) {
  ParsedUrl u;
  auto sep = server.find("://");
  if (sep == std::string::npos) return invalid("server: \"{}\" has no scheme", server);
  u.scheme = server.substr(0, sep);
  if (u.scheme != "https" && u.scheme != "http")
    return invalid("server: scheme \"{}\" is not http or https", u.scheme);
  std::string rest = server.substr(sep + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return invalid("server: \"{}\": unclosed '['", server);
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (u.host.empty()) return invalid("server: \"{}\" has no host", server);
  if (port.empty()) {
    u.port = u.scheme == "https" ? 443 : 80;
  } else {
    try {
      size_t used = 0;
      u.port = std::stoi(port, &used);
      if (used != port.size() || u.port <= 0 || u.port > 65535) throw std::out_of_range(port);
    } catch (const std::exception&) {
      return invalid("server: \"{}\": bad port", server);
    }
  }
  return u;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

Result<ClientConfig> parseKubeconfig(std::string_view text, const std::string& base_dir,
                                     std::string_view context) {
  CILIUM_ASSIGN_OR_RETURN(auto docs, yaml::toJson(text, yaml::Limits{.max_bytes = 1 << 20}));
  if (docs.size() != 1 || !docs[0].is_object())
    return invalid("kubeconfig: must be one YAML mapping");
  const json& doc = docs[0];
  std::string ctx_name(context);
  if (ctx_name.empty()) {
    CILIUM_ASSIGN_OR_RETURN(ctx_name, optString(doc, "current-context", ""));
    if (ctx_name.empty()) return invalid("current-context: not set and no context given");
  }
  CILIUM_ASSIGN_OR_RETURN(const json* ctx, namedEntry(doc, "contexts", "context", ctx_name));
  std::string cpath = fmt::format("contexts[{}].context", ctx_name);
  CILIUM_ASSIGN_OR_RETURN(std::string cluster_name, optString(*ctx, "cluster", cpath));
  CILIUM_ASSIGN_OR_RETURN(std::string user_name, optString(*ctx, "user", cpath));
  if (cluster_name.empty()) return invalid("{}.cluster: required", cpath);
  ClientConfig cfg;
  CILIUM_ASSIGN_OR_RETURN(std::string ns, optString(*ctx, "namespace", cpath));
  if (!ns.empty()) cfg.namespace_name = ns;

  CILIUM_ASSIGN_OR_RETURN(const json* cluster,
                          namedEntry(doc, "clusters", "cluster", cluster_name));
  std::string kpath = fmt::format("clusters[{}].cluster", cluster_name);
  CILIUM_ASSIGN_OR_RETURN(cfg.server, optString(*cluster, "server", kpath));
  if (cfg.server.empty()) return invalid("{}.server: required", kpath);
  if (auto st = parseServer(cfg.server); !st.ok()) return st.error().withContext(kpath);
  CILIUM_ASSIGN_OR_RETURN(cfg.ca_pem,
                          dataOrFile(*cluster, "certificate-authority", kpath, base_dir));
  if (auto it = cluster->find("insecure-skip-tls-verify"); it != cluster->end()) {
    if (!it->is_boolean()) return invalid("{}.insecure-skip-tls-verify: must be a boolean", kpath);
    cfg.insecure_skip_tls_verify = it->get<bool>();
  }

  if (!user_name.empty()) {
    CILIUM_ASSIGN_OR_RETURN(const json* user, namedEntry(doc, "users", "user", user_name));
    std::string upath = fmt::format("users[{}].user", user_name);
    CILIUM_ASSIGN_OR_RETURN(cfg.token, optString(*user, "token", upath));
    CILIUM_ASSIGN_OR_RETURN(std::string token_file, optString(*user, "tokenFile", upath));
    cfg.token_file = resolvePath(base_dir, token_file);
    CILIUM_ASSIGN_OR_RETURN(cfg.client_cert_pem,
                            dataOrFile(*user, "client-certificate", upath, base_dir));
    CILIUM_ASSIGN_OR_RETURN(cfg.client_key_pem, dataOrFile(*user, "client-key", upath, base_dir));
    if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty())
      return invalid("{}: client-certificate and client-key go together", upath);
    for (const char* unsupported : {"exec", "auth-provider", "username"}) {
      if (user->contains(unsupported))
        return makeError(ErrorCode::kUnimplemented, "{}.{}: not supported", upath, unsupported);
    }
  }
  return cfg;
}

Result<ClientConfig> loadKubeconfig(const std::string& path, std::string_view context) {
  CILIUM_ASSIGN_OR_RETURN(std::string text, readFile(path));
  auto cfg = parseKubeconfig(text, std::filesystem::path(path).parent_path().string(), context);
  if (!cfg.ok()) return cfg.error().withContext(path);
  return cfg;
}

Result<ClientConfig> inClusterConfig(const EnvLookup& env, const std::string& sa_dir) {
  const char* host = env("KUBERNETES_SERVICE_HOST");
  const char* port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return makeError(ErrorCode::kFailedPrecondition,
                     "not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
  ClientConfig cfg;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  cfg.server = fmt::format("https://{}:{}", h, port);
  CILIUM_RETURN_IF_ERROR(parseServer(cfg.server));
  cfg.token_file = sa_dir + "/token";
  if (auto tok = readFile(cfg.token_file); !tok.ok())
    return makeError(ErrorCode::kFailedPrecondition, "in-cluster token: {}", tok.error().message());
  CILIUM_ASSIGN_OR_RETURN(cfg.ca_pem, readFile(sa_dir + "/ca.crt"));
  if (auto ns = readFile(sa_dir + "/namespace"); ns.ok() && !ns->empty()) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    cfg.namespace_name = n;
  }
  return cfg;
}

// --- RateLimiter ---------------------------------------------------------------------------------

RateLimiter::RateLimiter(double qps, int burst)
    : qps_(qps),
      burst_(std::max(1, burst)),
      tokens_(std::max(1, burst)),
      last_(std::chrono::steady_clock::now()) {}

void RateLimiter::acquire() {
  if (qps_ <= 0) return;
  std::chrono::nanoseconds wait{0};
  {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
    last_ = now;
    // Take the token now (possibly going negative): later callers queue behind this one.
    tokens_ -= 1;
    if (tokens_ < 0)
      wait = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(-tokens_ / qps_));
  }
  if (wait.count() > 0) {
    waited_ns_ += wait.count();
    std::this_thread::sleep_for(wait);
  }
}

// --- CallCounter ---------------------------------------------------------------------------------

void CallCounter::add(std::string_view method, std::string_view resource, std::string_view code) {
  std::lock_guard lock(mu_);
  Key key(method, resource, code);
  counts_[key]++;
  if (observer_) observer_(key, 1);
}

void CallCounter::subscribe(Observer observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
  if (observer_)
    for (const auto& [key, n] : counts_) observer_(key, n);
}

std::map<CallCounter::Key, uint64_t> CallCounter::snapshot() const {
  std::lock_guard lock(mu_);
  return counts_;
}

uint64_t CallCounter::count(std::string_view method, std::string_view resource,
                            std::string_view code) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(Key(method, resource, code));
  return it == counts_.end() ? 0 : it->second;
}

std::string resourceOfPath(std::string_view path) {
  path = path.substr(0, path.find('?'));
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    auto slash = path.find('/');
    auto part = path.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  size_t i;
  if (!parts.empty() && parts[0] == "api")
    i = 2;
  else if (!parts.empty() && parts[0] == "apis")
    i = 3;
  else
    return parts.empty() ? "" : std::string(parts[0]);
  if (i < parts.size() && parts[i] == "namespaces" && i + 2 < parts.size()) i += 2;
  return i < parts.size() ? std::string(parts[i]) : "";
}

// --- CancelToken ---------------------------------------------------------------------------------

void CancelToken::cancel() {
  cancelled_ = true;
  std::lock_guard lock(mu_);
  if (abort_) abort_();
}

void CancelToken::setAbort(std::function<void()> abort) {
  std::lock_guard lock(mu_);
  abort_ = std::move(abort);
  if (cancelled_ && abort_) abort_();
}

void CancelToken::clearAbort() {
  std::lock_guard lock(mu_);
  abort_ = nullptr;
}

// --- Client --------------------------------------------------------------------------------------

struct Client::Endpoint {
  ParsedUrl url;
  X509* client_cert = nullptr;
  EVP_PKEY* client_key = nullptr;
  std::vector<X509*> cas;

  ~Endpoint() {
    if (client_cert) X509_free(client_cert);
    if (client_key) EVP_PKEY_free(client_key);
    for (X509* c : cas) X509_free(c);
  }

  std::unique_ptr<httplib::ClientImpl> connect() const {
    if (url.scheme == "http") return std::make_unique<httplib::ClientImpl>(url.host, url.port);
    std::unique_ptr<httplib::SSLClient> c;
    if (client_cert)
      c = std::make_unique<httplib::SSLClient>(url.host, url.port, client_cert, client_key);
    else
      c = std::make_unique<httplib::SSLClient>(url.host, url.port);
    if (!cas.empty()) {
      // The SSL context takes ownership of the store; each connection gets its own.
      X509_STORE* store = X509_STORE_new();
      for (X509* ca : cas) X509_STORE_add_cert(store, ca);
      c->set_ca_cert_store(store);
    }
    return c;
  }
};

Client::Client(ClientConfig config)
    : config_(std::move(config)), limiter_(config_.qps, config_.burst) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::create(ClientConfig config) {
  std::unique_ptr<Client> c(new Client(std::move(config)));
  CILIUM_RETURN_IF_ERROR(c->init());
  return c;
}

Status Client::init() {
  endpoint_ = std::make_unique<Endpoint>();
  CILIUM_ASSIGN_OR_RETURN(endpoint_->url, parseServer(config_.server));
  if (!config_.ca_pem.empty()) {
    BioPtr bio = memBio(config_.ca_pem);
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
      endpoint_->cas.push_back(ca);
    if (endpoint_->cas.empty()) return invalid("certificate-authority: no PEM certificate");
  }
  if (!config_.client_cert_pem.empty()) {
    BioPtr cb = memBio(config_.client_cert_pem);
    endpoint_->client_cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
    if (!endpoint_->client_cert) return invalid("client-certificate: no PEM certificate");
    BioPtr kb = memBio(config_.client_key_pem);
    endpoint_->client_key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
    if (!endpoint_->client_key) return invalid("client-key: no PEM private key");
  }
  if (!config_.token_file.empty()) {
    auto tok = readFile(config_.token_file);
    if (!tok.ok()) return tok.error().withContext("token file");
  }
  return okStatus();
}

std::string Client::currentToken(bool force_reload) {
  std::lock_guard lock(token_mu_);
  if (config_.token_file.empty()) return config_.token;
  auto now = std::chrono::steady_clock::now();
  if (force_reload || token_.empty() || now - token_read_ >= config_.token_reload) {
    if (auto tok = readFile(config_.token_file); tok.ok()) {
      std::string t = *tok;
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      token_ = t;
      token_read_ = now;
    } else {
      // Keep the last good token: a rotation replaces the file, it may be briefly absent.
      static auto log = logger("k8s");
      log->warn("re-reading token file failed path={} error={}", config_.token_file,
                tok.error().message());
    }
  }
  return token_;
}

namespace {

Error transportError(httplib::Error e, std::string_view method, const std::string& path) {
  // httplib reports a read timeout and a reset connection alike (Read): both are "the peer is not
  // answering", so only a connect timeout is told apart.
  auto code = e == httplib::Error::ConnectionTimeout ? ErrorCode::kDeadlineExceeded
                                                     : ErrorCode::kUnavailable;
  return makeError(code, "{} {}: {}", method, path, httplib::to_string(e));
}

void configure(httplib::ClientImpl& c, const ClientConfig& cfg,
               std::chrono::milliseconds read_timeout, bool keep_alive) {
  c.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(cfg.timeout));
  c.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read_timeout));
  c.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(cfg.timeout));
  c.enable_server_certificate_verification(!cfg.insecure_skip_tls_verify);
  c.set_keep_alive(keep_alive);
  // Small requests on a reused connection would otherwise wait out Nagle against the peer's
  // delayed ACK (about 40 ms each); Go's net/http (the apiserver) sets it as well.
  c.set_tcp_nodelay(true);
}

}  // namespace

std::unique_ptr<httplib::ClientImpl> Client::takeConnection(bool& reused) {
  {
    std::lock_guard lock(idle_mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      reused = true;
      return c;
    }
  }
  reused = false;
  auto c = endpoint_->connect();
  configure(*c, config_, config_.timeout, config_.idle_connections > 0);
  return c;
}

void Client::returnConnection(std::unique_ptr<httplib::ClientImpl> c) {
  std::lock_guard lock(idle_mu_);
  if (static_cast<int>(idle_.size()) < config_.idle_connections) idle_.push_back(std::move(c));
}

Result<Response> Client::request(std::string_view method, const std::string& path,
                                 const std::string& body, std::string_view content_type) {
  std::string resource = resourceOfPath(path);
  for (int attempt = 0;; attempt++) {
    limiter_.acquire();
    bool reused = false;
    auto c = takeConnection(reused);
    httplib::Headers headers = {{"Accept", "application/json"}, {"User-Agent", "cilium-cpp-agent"}};
    std::string token = currentToken(attempt > 0);
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Request req;
    req.method = std::string(method);
    req.path = path;
    req.headers = headers;
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      req.body = body;
      req.set_header("Content-Type", std::string(content_type));
    }
    auto res = c->send(req);
    if (!res) {
      // An idle connection the server closed just as it was reused (cpp-httplib checks that
      // the socket is alive first, so only a race is left): a GET is safe to send again on a
      // new connection; anything else may have reached the server, so its error stands.
      if (reused && method == "GET") {
        attempt--;
        continue;
      }
      calls_.add(method, resource, "<error>");
      return transportError(res.error(), method, path);
    }
    calls_.add(method, resource, std::to_string(res->status));
    if (config_.idle_connections > 0) returnConnection(std::move(c));
    // A 401 with a token file: the token may have rotated under us; re-read it once.
    if (res->status == 401 && attempt == 0 && !config_.token_file.empty()) continue;
    return Response{res->status, std::move(res->body)};
  }
}

Result<Response> Client::stream(const std::string& path,
                                const std::function<bool(std::string_view)>& on_line,
                                CancelToken& cancel, std::chrono::milliseconds read_timeout) {
  std::string resource = resourceOfPath(path);
  limiter_.acquire();
  for (int attempt = 0;; attempt++) {
    if (cancel.cancelled()) return makeError(ErrorCode::kAborted, "GET {}: cancelled", path);
    auto c = endpoint_->connect();
    configure(*c, config_, read_timeout, false);
    httplib::Headers headers = {{"Accept", "application/json"}, {"User-Agent", "cilium-cpp-agent"}};
    std::string token = currentToken(attempt > 0);
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::ClientImpl* raw = c.get();
    cancel.setAbort([raw] { raw->stop(); });
    std::string pending;
    std::string error_body;
    int status = 0;
    bool stopped_by_us = false;
    auto res = c->Get(
        path, headers,
        // A cancel that came before the request was in flight found nothing to abort
        // (ClientImpl::stop() shuts down only a socket in use), so both callbacks check it: the
        // answer's head arrives at once on a watch, and a quiet watch would otherwise hold the
        // caller until its read timeout.
        [&](const httplib::Response& r) {
          if (cancel.cancelled()) return false;
          status = r.status;
          return true;
        },
        [&](const char* data, size_t len) {
          if (cancel.cancelled()) return false;
          if (status < 200 || status >= 300) {
            if (error_body.size() < (1 << 20)) error_body.append(data, len);
            return true;
          }
          pending.append(data, len);
          size_t start = 0;
          for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string_view line(pending.data() + start, nl - start);
            if (line.empty()) continue;
            if (!on_line(line)) {
              stopped_by_us = true;
              return false;
            }
          }
          pending.erase(0, start);
          if (pending.size() > (64 << 20)) return false;  // a single event this large is abuse
          return true;
        });
    cancel.clearAbort();
    if (stopped_by_us) {
      calls_.add("WATCH", resource, std::to_string(status));
      return Response{status, {}};
    }
    if (!res) {
      if (res.error() == httplib::Error::Canceled && status != 0) {
        calls_.add("WATCH", resource, std::to_string(status));
        return Response{status, {}};
      }
      calls_.add("WATCH", resource, "<error>");
      if (cancel.cancelled()) return makeError(ErrorCode::kAborted, "GET {}: cancelled", path);
      return transportError(res.error(), "WATCH", path);
    }
    calls_.add("WATCH", resource, std::to_string(res->status));
    if (res->status == 401 && attempt == 0 && !config_.token_file.empty()) continue;
    if (!pending.empty() && res->status >= 200 && res->status < 300) on_line(pending);
    return Response{res->status, res->status >= 200 && res->status < 300 ? "" : error_body};
  }
}

}  // namespace cilium::k8s
