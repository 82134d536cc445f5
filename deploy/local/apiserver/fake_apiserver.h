// A fake kube-apiserver, for tests and as the local cluster's store (cilium-local-apiserver):
// discovery (/version, /api, /apis, group versions with their resources, enough for kubectl),
// CRUD with resourceVersion semantics, list with limit/continue, watch with bookmarks, and
// injected faults (410 Gone, dropped connections, slow responses,
// compaction, failing requests, token checks). HTTP or HTTPS (optionally requiring client
// certificates) on loopback. See docs/kubernetes.md.
//
// Known differences from the real apiserver (documented there): one global RV counter for all
// resources (as etcd); continue pages read the current state after the last key rather than the
// first page's snapshot; strategic merge patch is applied as a JSON merge patch (right for the
// kinds here, whose lists have no merge keys); no server-side apply; label selectors support
// equality only (k=v, k!=v, k, !k), field selectors metadata.name, metadata.namespace and
// spec.nodeName.
//
// The request log: every request is recorded as the apiserver's authorizer sees it (RequestRecord:
// user, verb, apiGroup, resource, subresource, namespace, name; verbs derived as the apiserver
// derives them: GET of a collection is list, or watch with watch=true; DELETE of a collection is
// deletecollection), so RBAC rules can be checked against the calls a component really made.
// requestLogJson() renders it, one object per request, in arrival order:
//   {"user": "system:serviceaccount:kube-system:cilium", "userAgent": "cilium-cpp-agent",
//    "verb": "list", "apiGroup": "cilium.io", "apiVersion": "v2", "resource": "ciliumnodes",
//    "subresource": "", "namespace": "", "name": "", "method": "GET",
//    "path": "/apis/cilium.io/v2/ciliumnodes", "status": 200}
// Non-resource requests (/version, /api, /apis/..., /openapi/v2) have "resource": "" and
// "nonResourceURL": "<path>". "user" is the name Options::users gives the bearer token, "" when
// unknown. cilium-local-apiserver writes it with --request-log FILE on exit and serves it at
// GET /debug/requests (never recorded itself).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/k8s/resources.h"

namespace httplib {
class Server;
}

namespace cilium::testing {

class FakeApiServer {
 public:
  struct Options {
    std::string token;                 // required bearer token; "" = no authentication
    std::string version_minor = "32";  // /version (kubectl's dispatcher picks its binary by it)
    // HTTPS when both are set (PEM files); with client_ca_file, clients must present a
    // certificate signed by it.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string client_ca_file;
    // Bearer token -> user name for the request log ("system:serviceaccount:kube-system:cilium");
    // these tokens are accepted as well as `token`, and any of them turns authentication on.
    std::map<std::string, std::string> users;
  };
  struct RequestRecord {
    std::string method;
    std::string path;
    std::string query;        // decoded parameters joined with '&', in the order httplib keeps them
    int injected_status = 0;  // the failNext() status it got, 0 when served normally
    // As the apiserver's authorizer sees the request (see the header comment).
    std::string user;
    std::string user_agent;
    std::string verb;
    std::string api_group;
    std::string api_version;
    std::string resource;  // "" for a non-resource request
    std::string subresource;
    std::string namespace_name;
    std::string name;
    int status = 0;  // the response's status (0 while a watch is open)
  };
  // The apiserver's request attributes of `method path?query` (RequestRecord's verb, apiGroup,
  // apiVersion, resource, subresource, namespace, name). Pure; for the log and its tests.
  static RequestRecord requestAttributes(const std::string& method, const std::string& path,
                                         const std::multimap<std::string, std::string>& params);

  FakeApiServer();
  explicit FakeApiServer(Options options);
  ~FakeApiServer();

  // Listens on host:port (0 = any free port) and serves on background threads.
  Status start(const std::string& host = "127.0.0.1", int port = 0);
  void stop();
  int port() const { return port_; }
  // http(s)://<host>:<port>, with the host start() was given (127.0.0.1 for a wildcard).
  std::string url() const;

  // --- State, as a controller would change it (each change is one RV and one watch event) ----
  Result<nlohmann::json> create(const k8s::ResourceInfo& info, nlohmann::json object);
  Result<nlohmann::json> update(const k8s::ResourceInfo& info, nlohmann::json object);
  Status remove(const k8s::ResourceInfo& info, const std::string& ns, const std::string& name);
  std::optional<nlohmann::json> get(const k8s::ResourceInfo& info, const std::string& ns,
                                    const std::string& name) const;
  size_t count(const k8s::ResourceInfo& info) const;
  // Stores `object` in info's collection as is (no kind check): for wrong-kind tests.
  void injectRaw(const k8s::ResourceInfo& info, nlohmann::json object);
  std::string resourceVersion() const;

  // --- Faults -----------------------------------------------------------------------------------
  // Forgets the event history up to now: watches from an older RV get 200 + ERROR 410.
  void compact();
  // Closes every open watch stream abruptly (no terminating chunk).
  void dropWatches();
  // Every response waits this long first.
  void setLatency(std::chrono::milliseconds latency);
  // The next `n` requests whose "<path>?<query>" (the query as in RequestRecord) contains
  // `path_part` get `status` (410 with reason Expired).
  void failNext(int n, int status, std::string path_part = {});
  // Ends every failNext() rule and the latency.
  void clearFaults();
  void setToken(std::string token);
  // A BOOKMARK with the current RV to every watch that allowed bookmarks.
  void sendBookmarks();
  // Continue tokens handed out so far get 410 Expired.
  void expireContinueTokens();

  // --- Observation ----------------------------------------------------------------------------
  // Every request as it arrived (recorded before it is served, so open watches are listed).
  std::vector<RequestRecord> requests() const;
  void clearRequests();
  // The request log as a JSON array (format in the header comment).
  nlohmann::json requestLogJson() const;
  size_t openWatches() const { return open_watches_.load(); }
  uint64_t watchEventsSent() const { return events_sent_.load(); }

 private:
  struct Event {
    uint64_t rv;
    std::string resource;  // plural.group
    std::string type;
    nlohmann::json object;
  };
  struct Collection {
    k8s::ResourceInfo info;
    std::map<std::string, nlohmann::json> objects;  // objectKey -> object
  };
  void routes();
  // Applies a change under mu_: bumps the RV, records the event, wakes watchers.
  nlohmann::json commitLocked(Collection& c, const std::string& type, nlohmann::json object);
  Collection* collectionLocked(std::string_view group, std::string_view version,
                               std::string_view plural);
  Collection& collectionLocked(const k8s::ResourceInfo& info);
  Result<nlohmann::json> createLocked(Collection& c, nlohmann::json object, bool dry_run);
  Result<nlohmann::json> updateLocked(Collection& c, nlohmann::json object);

  Options options_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  std::string host_ = "127.0.0.1";  // what url() names

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Collection> collections_;  // plural.group
  std::deque<Event> history_;
  uint64_t rv_ = 1;
  uint64_t compacted_rv_ = 0;  // watches from an RV below this get 410
  uint64_t uid_ = 0;
  uint64_t drop_generation_ = 0;
  uint64_t bookmark_generation_ = 0;
  uint64_t continue_epoch_ = 0;
  std::chrono::milliseconds latency_{0};
  struct Failure {
    int remaining;
    int status;
    std::string path_part;
  };
  std::vector<Failure> failures_;
  std::vector<RequestRecord> requests_;
  uint64_t request_generation_ = 0;  // bumped by clearRequests()
  std::atomic<size_t> open_watches_{0};
  std::atomic<uint64_t> events_sent_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace cilium::testing
