// The kube-apiserver REST client: configuration (kubeconfig, in-cluster), HTTPS with the cluster
// CA and client certificates, bearer tokens re-read from their file (projected tokens rotate),
// request timeouts, client-side rate limiting (token bucket) and a call counter by
// method/resource/code. Built on cpp-httplib with OpenSSL; see docs/kubernetes.md.
//
// Threading: Client is thread-safe; every request uses its own connection.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "agent/common/error.h"

namespace httplib {
class ClientImpl;
}

namespace cilium::k8s {

struct ClientConfig {
  std::string server;  // "https://10.0.0.1:6443" or "http://127.0.0.1:8080"
  std::string ca_pem;  // cluster CA (PEM); empty = system trust store
  bool insecure_skip_tls_verify = false;
  std::string token;       // static bearer token
  std::string token_file;  // re-read every token_reload and after a 401
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_name = "default";
  std::chrono::milliseconds timeout{30000};       // connect + whole response (not watches)
  std::chrono::milliseconds token_reload{60000};  // client-go reloads about once a minute
  double qps = 50;                                // 0 = no limit
  int burst = 100;
  // Idle keep-alive connections kept for request() (watches have their own); 0 = a new
  // connection (and TLS handshake) per request.
  int idle_connections = 8;
};

// Parses kubeconfig text: current-context (or `context` when not empty), its cluster (server,
// certificate-authority[-data], insecure-skip-tls-verify) and user (token, tokenFile,
// client-certificate[-data], client-key[-data]). Relative file paths are resolved against
// `base_dir`. Errors are kInvalidArgument naming the field ("users[0].user.token: ...").
Result<ClientConfig> parseKubeconfig(std::string_view text, const std::string& base_dir,
                                     std::string_view context = {});
Result<ClientConfig> loadKubeconfig(const std::string& path, std::string_view context = {});

// In-cluster config: KUBERNETES_SERVICE_HOST/PORT (IPv6 bracketed) and the service-account
// directory's token (kept as token_file, so it is re-read), ca.crt and namespace.
// kFailedPrecondition when not running in a cluster.
using EnvLookup = std::function<const char*(const char*)>;
Result<ClientConfig> inClusterConfig(
    const EnvLookup& env,
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// A token bucket: `qps` tokens a second, at most `burst` stored. acquire() blocks until a token
// is there (or returns at once when qps is 0).
class RateLimiter {
 public:
  RateLimiter(double qps, int burst);
  void acquire();
  // Waits since construction (for tests and metrics).
  std::chrono::nanoseconds waited() const { return std::chrono::nanoseconds(waited_ns_.load()); }

 private:
  double qps_;
  double burst_;
  std::mutex mu_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
  std::atomic<int64_t> waited_ns_{0};
};

// Calls made, by (method, resource, HTTP code or "<error>"): feeds
// cilium_k8s_client_api_calls_total.
class CallCounter {
 public:
  using Key = std::tuple<std::string, std::string, std::string>;
  void add(std::string_view method, std::string_view resource, std::string_view code);
  std::map<Key, uint64_t> snapshot() const;
  uint64_t count(std::string_view method, std::string_view resource, std::string_view code) const;
  // Hears every call from now on, after the calls counted so far (each key with its count), with
  // no call lost or told twice in between. Runs under the counter's lock: keep it short. One
  // observer; a new one replaces it, an empty one unsubscribes.
  using Observer = std::function<void(const Key& key, uint64_t n)>;
  void subscribe(Observer observer);

 private:
  mutable std::mutex mu_;
  std::map<Key, uint64_t> counts_;
  Observer observer_;
};

// The resource segment of an API path, for the call counter ("/api/v1/namespaces/x/pods/y" ->
// "pods", "/api/v1/namespaces/x" -> "namespaces").
std::string resourceOfPath(std::string_view path);

struct Response {
  int status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

// Lets another thread abort a running stream() (the reflector's stop()).
class CancelToken {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Registers what aborts the current request; runs it at once when already cancelled.
  void setAbort(std::function<void()> abort);
  void clearAbort();

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::function<void()> abort_;
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> create(ClientConfig config);
  ~Client();

  // One request. `path` includes the query ("/api/v1/pods?limit=500"). Transport failures are
  // kUnavailable (kDeadlineExceeded on timeout); any HTTP status is a Response.
  Result<Response> request(std::string_view method, const std::string& path,
                           const std::string& body = {},
                           std::string_view content_type = "application/json");
  Result<Response> get(const std::string& path) { return request("GET", path); }

  // A streaming GET (watch): `on_line` gets each newline-terminated line of a 2xx body and
  // returns false to stop. Returns the HTTP status (with the body for non-2xx), or an error
  // when the connection failed before or during the stream. `read_timeout` bounds silence.
  Result<Response> stream(const std::string& path,
                          const std::function<bool(std::string_view line)>& on_line,
                          CancelToken& cancel, std::chrono::milliseconds read_timeout);

  const ClientConfig& config() const { return config_; }
  CallCounter& calls() { return calls_; }
  RateLimiter& rateLimiter() { return limiter_; }

 private:
  struct Endpoint;
  explicit Client(ClientConfig config);
  Status init();
  std::string currentToken(bool force_reload);
  // A connection for one request: an idle keep-alive one, or a new one (`reused` says which).
  std::unique_ptr<httplib::ClientImpl> takeConnection(bool& reused);
  void returnConnection(std::unique_ptr<httplib::ClientImpl> c);

  ClientConfig config_;
  std::unique_ptr<Endpoint> endpoint_;
  RateLimiter limiter_;
  CallCounter calls_;
  std::mutex token_mu_;
  std::string token_;
  std::chrono::steady_clock::time_point token_read_{};
  std::mutex idle_mu_;
  std::vector<std::unique_ptr<httplib::ClientImpl>> idle_;
};

}  // namespace cilium::k8s
