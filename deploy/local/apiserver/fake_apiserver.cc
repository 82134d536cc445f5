// The fake apiserver's routes, store, watch streams and fault injection.
#include "deploy/local/apiserver/fake_apiserver.h"

#include <httplib.h>

#include <algorithm>
#include <set>

namespace cilium::testing {

namespace {

using nlohmann::json;

// What the agent watches, the operator's Lease (leader election), and the other kinds the Helm
// chart installs (deploy/helm/cilium), so that `kubectl apply` of a rendered chart works here
// (stored as given: no defaulting, no controllers).
const std::vector<k8s::ResourceInfo>& servedResources() {
  static const std::vector<k8s::ResourceInfo> all = [] {
    std::vector<k8s::ResourceInfo> v = k8s::allResources();
    v.push_back(k8s::leaseResource());
    const std::vector<k8s::ResourceInfo> chart = {
        {"", "v1", "serviceaccounts", "ServiceAccount", true},
        {"", "v1", "configmaps", "ConfigMap", true},
        {"", "v1", "secrets", "Secret", true},
        {"apps", "v1", "daemonsets", "DaemonSet", true},
        {"apps", "v1", "deployments", "Deployment", true},
        {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false},
        {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false},
        {"rbac.authorization.k8s.io", "v1", "roles", "Role", true},
        {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true},
        {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
         false},
        {"monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", true},
        {"monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule", true},
    };
    v.insert(v.end(), chart.begin(), chart.end());
    return v;
  }();
  return all;
}

std::string keyOf(const k8s::ResourceInfo& info) {
  return fmt::format("{}.{}", info.plural, info.group);
}

json statusJson(int code, std::string_view reason, std::string_view message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

std::string_view reasonOf(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 404: return "NotFound";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 504: return "Timeout";
    default: return "InternalError";
  }
}

void reply(httplib::Response& res, int code, const json& body) {
  res.status = code;
  res.set_content(body.dump(), "application/json");
}

void fail(httplib::Response& res, int code, std::string_view message) {
  reply(res, code, statusJson(code, reasonOf(code), message));
}

std::string metaString(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto v = m->find(key);
  return v != m->end() && v->is_string() ? v->get<std::string>() : "";
}

std::string nowRfc3339() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Equality-based label selectors: "a=b,c!=d,e,!f".
bool matchesLabels(const json& obj, const std::string& selector) {
  if (selector.empty()) return true;
  json labels = json::object();
  if (auto m = obj.find("metadata");
      m != obj.end() && m->is_object() && m->contains("labels") && (*m)["labels"].is_object())
    labels = (*m)["labels"];
  size_t start = 0;
  while (start <= selector.size()) {
    size_t comma = selector.find(',', start);
    std::string term =
        selector.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? selector.size() + 1 : comma + 1;
    if (term.empty()) continue;
    auto neq = term.find("!=");
    auto eq = term.find('=');
    if (neq != std::string::npos) {
      std::string k = term.substr(0, neq), v = term.substr(neq + 2);
      if (labels.contains(k) && labels[k] == v) return false;
    } else if (eq != std::string::npos) {
      std::string k = term.substr(0, eq), v = term.substr(term[eq + 1] == '=' ? eq + 2 : eq + 1);
      if (!labels.contains(k) || labels[k] != v) return false;
    } else if (term[0] == '!') {
      if (labels.contains(term.substr(1))) return false;
    } else if (!labels.contains(term)) {
      return false;
    }
  }
  return true;
}

bool matchesFields(const json& obj, const std::string& selector) {
  if (selector.empty()) return true;
  size_t start = 0;
  while (start <= selector.size()) {
    size_t comma = selector.find(',', start);
    std::string term =
        selector.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? selector.size() + 1 : comma + 1;
    auto eq = term.find('=');
    if (eq == std::string::npos) continue;
    std::string k = term.substr(0, eq), v = term.substr(eq + 1);
    std::string have;
    if (k == "metadata.name")
      have = metaString(obj, "name");
    else if (k == "metadata.namespace")
      have = metaString(obj, "namespace");
    else if (k == "spec.nodeName")
      have = obj.value("/spec/nodeName"_json_pointer, std::string());
    if (have != v) return false;
  }
  return true;
}

// JSON merge patch, without strategic-merge directives ("$patch", "$setElementOrder/...").
void stripDirectives(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (!it.key().empty() && it.key()[0] == '$') {
        it = j.erase(it);
      } else {
        stripDirectives(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) stripDirectives(e);
  }
}

struct ParsedPath {
  std::string group, version, ns, plural, name, sub;
};

// /api/v1/[namespaces/<ns>/]<plural>[/<name>[/<sub>]] and /apis/<g>/<v>/...
std::optional<ParsedPath> parsePath(const std::string& path) {
  std::vector<std::string> s;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) s.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  ParsedPath p;
  size_t k;
  if (s.size() >= 3 && s[0] == "api") {
    p.version = s[1];
    k = 2;
  } else if (s.size() >= 4 && s[0] == "apis") {
    p.group = s[1];
    p.version = s[2];
    k = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
  // "namespaces/<ns>/<plural>...": a namespaced collection; "namespaces[/<name>]": namespaces.
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    p.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.empty() || rest.size() > 3) return std::nullopt;
  p.plural = rest[0];
  if (rest.size() >= 2) p.name = rest[1];
  if (rest.size() == 3) p.sub = rest[2];
  return p;
}

// Kinds whose status is written only through /status (main-resource writes keep it), as with
// the real apiserver: the built-in kinds and the Cilium policies. CiliumEndpoint, CiliumNode and
// CiliumIdentity have no status subresource: a PUT writes their status.
bool hasStatusSubresource(const k8s::ResourceInfo& info) {
  return info.group != "cilium.io" || info.plural.find("policies") != std::string_view::npos;
}

json resourceList(std::string_view group_version,
                  const std::vector<const k8s::ResourceInfo*>& infos) {
  json resources = json::array();
  for (const auto* r : infos) {
    std::string singular(r->kind);
    std::transform(singular.begin(), singular.end(), singular.begin(), ::tolower);
    json verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
    json e = {{"name", r->plural},
              {"singularName", singular},
              {"namespaced", r->namespaced},
              {"kind", r->kind},
              {"verbs", verbs}};
    if (r->plural == "ciliumnetworkpolicies") e["shortNames"] = {"cnp", "ciliumnp"};
    if (r->plural == "ciliumclusterwidenetworkpolicies") e["shortNames"] = {"ccnp"};
    if (r->plural == "ciliumendpoints") e["shortNames"] = {"cep", "ciliumep"};
    if (r->plural == "ciliumidentities") e["shortNames"] = {"ciliumid"};
    if (r->plural == "ciliumnodes") e["shortNames"] = {"cn", "ciliumn"};
    if (r->plural == "pods") e["shortNames"] = {"po"};
    if (r->plural == "services") e["shortNames"] = {"svc"};
    if (r->plural == "namespaces") e["shortNames"] = {"ns"};
    if (r->plural == "nodes") e["shortNames"] = {"no"};
    if (r->plural == "networkpolicies") e["shortNames"] = {"netpol"};
    resources.push_back(e);
    if (r->group == "cilium.io" && hasStatusSubresource(*r)) {
      resources.push_back({{"name", fmt::format("{}/status", r->plural)},
                           {"singularName", ""},
                           {"namespaced", r->namespaced},
                           {"kind", r->kind},
                           {"verbs", {"get", "patch", "update"}}});
    }
  }
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", group_version},
          {"resources", resources}};
}

}  // namespace

FakeApiServer::FakeApiServer() : FakeApiServer(Options{}) {}

FakeApiServer::FakeApiServer(Options options) : options_(std::move(options)) {
  for (const auto& info : servedResources()) collections_[keyOf(info)] = Collection{info, {}};
}

FakeApiServer::~FakeApiServer() { stop(); }

std::string FakeApiServer::url() const {
  return fmt::format("{}://{}:{}", options_.tls_cert_file.empty() ? "http" : "https", host_, port_);
}

Status FakeApiServer::start(const std::string& host, int port) {
  if (!options_.tls_cert_file.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(
        options_.tls_cert_file.c_str(), options_.tls_key_file.c_str(),
        options_.client_ca_file.empty() ? nullptr : options_.client_ca_file.c_str());
    if (!tls->is_valid())
      return makeError(ErrorCode::kInvalidArgument, "fake apiserver: bad TLS certificate or key");
    http_ = std::move(tls);
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  // Each open watch holds a worker thread, and so does each idle keep-alive connection (until
  // the keep-alive timeout): clients keep a few (k8s::ClientConfig::idle_connections).
  http_->new_task_queue = [] { return new httplib::ThreadPool(256); };
  http_->set_keep_alive_max_count(1000);
  http_->set_keep_alive_timeout(2);
  http_->set_tcp_nodelay(true);  // as Go's net/http, which kube-apiserver uses
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(5, 0);
  routes();
  if (port == 0) {
    port_ = http_->bind_to_any_port(host);
  } else {
    port_ = http_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ <= 0) return makeError(ErrorCode::kUnavailable, "fake apiserver: cannot bind {}", host);
  host_ = host == "0.0.0.0" || host.empty() ? "127.0.0.1" : host;
  stopping_ = false;
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  for (int i = 0; i < 500 && !http_->is_running(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return okStatus();
}

void FakeApiServer::stop() {
  stopping_ = true;
  changed_.notify_all();
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

FakeApiServer::Collection* FakeApiServer::collectionLocked(std::string_view group,
                                                           std::string_view version,
                                                           std::string_view plural) {
  auto it = collections_.find(fmt::format("{}.{}", plural, group));
  if (it == collections_.end() || it->second.info.version != version) return nullptr;
  return &it->second;
}

FakeApiServer::Collection& FakeApiServer::collectionLocked(const k8s::ResourceInfo& info) {
  auto it = collections_.find(keyOf(info));
  if (it == collections_.end()) it = collections_.emplace(keyOf(info), Collection{info, {}}).first;
  return it->second;
}

json FakeApiServer::commitLocked(Collection& c, const std::string& type, json object) {
  rv_++;
  object["metadata"]["resourceVersion"] = std::to_string(rv_);
  std::string key = k8s::objectKey(metaString(object, "namespace"), metaString(object, "name"));
  if (type == "DELETED")
    c.objects.erase(key);
  else
    c.objects[key] = object;
  history_.push_back(Event{rv_, keyOf(c.info), type, object});
  // Bounded history, as etcd's: older RVs become too old to watch from.
  while (history_.size() > 200000) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  changed_.notify_all();
  return object;
}

Result<json> FakeApiServer::createLocked(Collection& c, json obj, bool dry_run) {
  if (!obj.is_object()) return makeError(ErrorCode::kInvalidArgument, "body must be an object");
  if (obj.contains("kind") && obj["kind"] != c.info.kind)
    return makeError(ErrorCode::kInvalidArgument, "kind {} does not match {}", obj["kind"].dump(),
                     c.info.kind);
  obj["kind"] = c.info.kind;
  obj["apiVersion"] = c.info.apiVersion();
  if (!obj.contains("metadata") || !obj["metadata"].is_object())
    return makeError(ErrorCode::kInvalidArgument, "metadata: required");
  json& m = obj["metadata"];
  if (metaString(obj, "name").empty()) {
    std::string gen = metaString(obj, "generateName");
    if (gen.empty()) return makeError(ErrorCode::kInvalidArgument, "metadata.name: required");
    m["name"] = fmt::format("{}{:05x}", gen, ++uid_ & 0xfffff);
  }
  if (c.info.namespaced) {
    if (metaString(obj, "namespace").empty()) m["namespace"] = "default";
  } else {
    m.erase("namespace");
  }
  std::string key = k8s::objectKey(metaString(obj, "namespace"), metaString(obj, "name"));
  if (c.objects.count(key))
    return makeError(ErrorCode::kAlreadyExists, "{} \"{}\" already exists", c.info.plural,
                     metaString(obj, "name"));
  m["uid"] = fmt::format("00000000-0000-4000-8000-{:012x}", ++uid_);
  m["creationTimestamp"] = nowRfc3339();
  m["generation"] = 1;
  if (dry_run) return obj;
  return commitLocked(c, "ADDED", std::move(obj));
}

Result<json> FakeApiServer::updateLocked(Collection& c, json obj) {
  std::string key = k8s::objectKey(c.info.namespaced ? metaString(obj, "namespace") : "",
                                   metaString(obj, "name"));
  auto it = c.objects.find(key);
  if (it == c.objects.end())
    return makeError(ErrorCode::kNotFound, "{} \"{}\" not found", c.info.plural,
                     metaString(obj, "name"));
  std::string want_rv = metaString(obj, "resourceVersion");
  if (!want_rv.empty() && want_rv != metaString(it->second, "resourceVersion"))
    return makeError(ErrorCode::kAborted,
                     "Operation cannot be fulfilled on {} \"{}\": the object has been modified",
                     c.info.plural, metaString(obj, "name"));
  obj["kind"] = c.info.kind;
  obj["apiVersion"] = c.info.apiVersion();
  json& m = obj["metadata"];
  const json& old = it->second["metadata"];
  for (const char* keep : {"uid", "creationTimestamp"})
    if (old.contains(keep)) m[keep] = old[keep];
  if (c.info.namespaced) m["namespace"] = old.value("namespace", "default");
  m["generation"] = old.value("generation", 1) + 1;
  if (obj == it->second) return obj;
  return commitLocked(c, "MODIFIED", std::move(obj));
}

Result<json> FakeApiServer::create(const k8s::ResourceInfo& info, json object) {
  std::lock_guard lock(mu_);
  return createLocked(collectionLocked(info), std::move(object), false);
}

Result<json> FakeApiServer::update(const k8s::ResourceInfo& info, json object) {
  std::lock_guard lock(mu_);
  return updateLocked(collectionLocked(info), std::move(object));
}

Status FakeApiServer::remove(const k8s::ResourceInfo& info, const std::string& ns,
                             const std::string& name) {
  std::lock_guard lock(mu_);
  Collection& c = collectionLocked(info);
  auto it = c.objects.find(k8s::objectKey(info.namespaced ? ns : "", name));
  if (it == c.objects.end())
    return makeError(ErrorCode::kNotFound, "{} \"{}\" not found", info.plural, name);
  commitLocked(c, "DELETED", it->second);
  return okStatus();
}

std::optional<json> FakeApiServer::get(const k8s::ResourceInfo& info, const std::string& ns,
                                       const std::string& name) const {
  std::lock_guard lock(mu_);
  auto c = collections_.find(keyOf(info));
  if (c == collections_.end()) return std::nullopt;
  auto it = c->second.objects.find(k8s::objectKey(info.namespaced ? ns : "", name));
  if (it == c->second.objects.end()) return std::nullopt;
  return it->second;
}

size_t FakeApiServer::count(const k8s::ResourceInfo& info) const {
  std::lock_guard lock(mu_);
  auto c = collections_.find(keyOf(info));
  return c == collections_.end() ? 0 : c->second.objects.size();
}

void FakeApiServer::injectRaw(const k8s::ResourceInfo& info, json object) {
  std::lock_guard lock(mu_);
  Collection& c = collectionLocked(info);
  if (!object.contains("metadata") || !object["metadata"].is_object())
    object["metadata"] = {{"name", fmt::format("raw-{}", ++uid_)}};
  if (metaString(object, "name").empty())
    object["metadata"]["name"] = fmt::format("raw-{}", ++uid_);
  commitLocked(c, "ADDED", std::move(object));
}

std::string FakeApiServer::resourceVersion() const {
  std::lock_guard lock(mu_);
  return std::to_string(rv_);
}

void FakeApiServer::compact() {
  std::lock_guard lock(mu_);
  compacted_rv_ = rv_;  // events up to now are forgotten: older RVs cannot be watched from
  history_.clear();
  changed_.notify_all();
}

void FakeApiServer::dropWatches() {
  std::lock_guard lock(mu_);
  drop_generation_++;
  changed_.notify_all();
}

void FakeApiServer::setLatency(std::chrono::milliseconds latency) {
  std::lock_guard lock(mu_);
  latency_ = latency;
}

void FakeApiServer::failNext(int n, int status, std::string path_part) {
  std::lock_guard lock(mu_);
  failures_.push_back(Failure{n, status, std::move(path_part)});
}

void FakeApiServer::clearFaults() {
  std::lock_guard lock(mu_);
  failures_.clear();
  latency_ = std::chrono::milliseconds(0);
}

void FakeApiServer::setToken(std::string token) {
  std::lock_guard lock(mu_);
  options_.token = std::move(token);
}

void FakeApiServer::sendBookmarks() {
  std::lock_guard lock(mu_);
  bookmark_generation_++;
  changed_.notify_all();
}

void FakeApiServer::expireContinueTokens() {
  std::lock_guard lock(mu_);
  continue_epoch_++;
}

FakeApiServer::RequestRecord FakeApiServer::requestAttributes(
    const std::string& method, const std::string& path,
    const std::multimap<std::string, std::string>& params) {
  RequestRecord r;
  r.method = method;
  r.path = path;
  std::vector<std::string> parts;
  for (size_t start = 1; start <= path.size();) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  std::string lower_method = method;
  std::transform(lower_method.begin(), lower_method.end(), lower_method.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // Non-resource requests: discovery, /version, /openapi/... (the verb is the method's).
  size_t prefix = 0;
  if (parts.size() >= 3 && parts[0] == "api") {
    r.api_version = parts[1];
    prefix = 2;
  } else if (parts.size() >= 4 && parts[0] == "apis") {
    r.api_group = parts[1];
    r.api_version = parts[2];
    prefix = 3;
  } else {
    r.verb = lower_method == "head" ? "get" : lower_method;
    return r;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(prefix), parts.end());
  static const std::map<std::string, std::string> kVerbs = {
      {"POST", "create"}, {"GET", "get"},     {"HEAD", "get"},
      {"PUT", "update"},  {"PATCH", "patch"}, {"DELETE", "delete"}};
  auto v = kVerbs.find(method);
  r.verb = v == kVerbs.end() ? lower_method : v->second;
  // The deprecated /api/v1/watch/... form.
  if (!rest.empty() && rest[0] == "watch") {
    r.verb = "watch";
    rest.erase(rest.begin());
  }
  // As the apiserver: "namespaces/<ns>/<resource>..." names the namespace; "namespaces/<ns>"
  // (and its status and finalize subresources) is the Namespace object itself.
  if (!rest.empty() && rest[0] == "namespaces" && rest.size() > 1) {
    r.namespace_name = rest[1];
    if (rest.size() > 2 && rest[2] != "status" && rest[2] != "finalize")
      rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.size() >= 3) r.subresource = rest[2];
  if (rest.size() >= 2) r.name = rest[1];
  if (!rest.empty()) r.resource = rest[0];
  auto param = [&](const char* k) {
    auto it = params.find(k);
    return it == params.end() ? std::string() : it->second;
  };
  if (r.name.empty() && r.verb == "get") {
    std::string w = param("watch");
    r.verb = w == "true" || w == "1" ? "watch" : "list";
    // A list or watch of one object by field selector is authorized as that name.
    std::string fs = param("fieldSelector");
    if (fs.rfind("metadata.name=", 0) == 0 && fs.find(',') == std::string::npos)
      r.name = fs.substr(14);
  }
  if (r.name.empty() && r.verb == "delete") r.verb = "deletecollection";
  return r;
}

nlohmann::json FakeApiServer::requestLogJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : requests_) {
    nlohmann::json j = {{"user", r.user},
                        {"userAgent", r.user_agent},
                        {"verb", r.verb},
                        {"apiGroup", r.api_group},
                        {"apiVersion", r.api_version},
                        {"resource", r.resource},
                        {"subresource", r.subresource},
                        {"namespace", r.namespace_name},
                        {"name", r.name},
                        {"method", r.method},
                        {"path", r.path},
                        {"status", r.status}};
    if (r.resource.empty()) j["nonResourceURL"] = r.path;
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<FakeApiServer::RequestRecord> FakeApiServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void FakeApiServer::clearRequests() {
  std::lock_guard lock(mu_);
  requests_.clear();
  request_generation_++;
}

void FakeApiServer::routes() {
  // Authentication, latency and injected failures, before any route.
  // The request a worker thread is serving (pre- and post-routing run on that thread), to
  // record its response status. Post-routing runs before the response is written (the logger
  // only after it: a client reading the log at once could find no status yet).
  struct Current {
    uint64_t generation = 0;
    size_t index = SIZE_MAX;
  };
  static thread_local Current current;
  http_->set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(mu_);
    if (current.generation == request_generation_ && current.index < requests_.size())
      requests_[current.index].status = res.status;
    current.index = SIZE_MAX;
  });
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds latency;
    int status = 0;
    {
      std::lock_guard lock(mu_);
      current.index = SIZE_MAX;
      if (req.path == "/debug/requests") return httplib::Server::HandlerResponse::Unhandled;
      std::string query;
      for (const auto& [k, v] : req.params) query += (query.empty() ? "" : "&") + k + "=" + v;
      RequestRecord rec = requestAttributes(req.method, req.path, req.params);
      rec.query = std::move(query);
      rec.user_agent = req.get_header_value("User-Agent");
      const std::string auth = req.get_header_value("Authorization");
      const bool bearer = auth.rfind("Bearer ", 0) == 0;
      auto user = bearer ? options_.users.find(auth.substr(7)) : options_.users.end();
      if (user != options_.users.end()) rec.user = user->second;
      requests_.push_back(std::move(rec));
      current = {request_generation_, requests_.size() - 1};
      latency = latency_;
      const bool authenticated = (!options_.token.empty() && auth == "Bearer " + options_.token) ||
                                 user != options_.users.end();
      if ((!options_.token.empty() || !options_.users.empty()) && !authenticated) {
        status = 401;
      } else {
        for (auto& f : failures_) {
          const auto& rec = requests_.back();
          std::string target = rec.path + "?" + rec.query;
          if (f.remaining > 0 && target.find(f.path_part) != std::string::npos) {
            f.remaining--;
            status = f.status;
            requests_.back().injected_status = status;
            break;
          }
        }
      }
    }
    if (latency.count() > 0) std::this_thread::sleep_for(latency);
    if (status == 0) return httplib::Server::HandlerResponse::Unhandled;
    fail(res, status, status == 401 ? "Unauthorized" : "injected failure");
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->Get("/debug/requests", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(requestLogJson().dump(2), "application/json");
  });
  http_->Get("/version", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200,
          {{"major", "1"},
           {"minor", options_.version_minor},
           {"gitVersion", fmt::format("v1.{}.0-fake", options_.version_minor)},
           {"platform", "linux/amd64"}});
  });
  http_->Get("/api", [this](const httplib::Request&, httplib::Response& res) {
    reply(
        res, 200,
        {{"kind", "APIVersions"},
         {"versions", {"v1"}},
         {"serverAddressByClientCIDRs",
          {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", fmt::format("127.0.0.1:{}", port_)}}}}});
  });
  http_->Get("/apis", [](const httplib::Request&, httplib::Response& res) {
    std::map<std::string, std::string> groups;
    for (const auto& r : servedResources())
      if (!r.group.empty()) groups[std::string(r.group)] = std::string(r.version);
    json list = json::array();
    for (const auto& [g, v] : groups) {
      json gv = {{"groupVersion", g + "/" + v}, {"version", v}};
      list.push_back({{"name", g}, {"versions", {gv}}, {"preferredVersion", gv}});
    }
    reply(res, 200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}});
  });
  auto discovery = [](const std::string& group, const std::string& version,
                      httplib::Response& res) {
    std::vector<const k8s::ResourceInfo*> infos;
    for (const auto& r : servedResources())
      if (r.group == group && r.version == version) infos.push_back(&r);
    if (infos.empty()) return fail(res, 404, "the server could not find the requested resource");
    reply(res, 200, resourceList(group.empty() ? version : group + "/" + version, infos));
  };
  http_->Get("/api/v1", [discovery](const httplib::Request&, httplib::Response& res) {
    discovery("", "v1", res);
  });
  http_->Get(R"(/apis/([^/]+)/([^/]+))",
             [discovery](const httplib::Request& req, httplib::Response& res) {
               discovery(req.matches[1], req.matches[2], res);
             });
  http_->Get(R"(/apis/([^/]+))", [](const httplib::Request& req, httplib::Response& res) {
    for (const auto& r : servedResources()) {
      if (r.group != req.matches[1].str()) continue;
      json gv = {{"groupVersion", r.apiVersion()}, {"version", r.version}};
      return reply(res, 200,
                   {{"kind", "APIGroup"},
                    {"apiVersion", "v1"},
                    {"name", r.group},
                    {"versions", {gv}},
                    {"preferredVersion", gv}});
    }
    fail(res, 404, "not found");
  });

  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    auto p = parsePath(req.path);
    if (!p) return fail(res, 404, "the server could not find the requested resource");
    std::unique_lock lock(mu_);
    Collection* c = collectionLocked(p->group, p->version, p->plural);
    if (!c) return fail(res, 404, "the server could not find the requested resource");
    if (!c->info.namespaced && !p->ns.empty()) return fail(res, 404, "not namespaced");
    std::string key = k8s::objectKey(c->info.namespaced ? p->ns : "", p->name);

    if (req.method == "GET" && p->name.empty()) {
      bool watch = req.get_param_value("watch") == "1" || req.get_param_value("watch") == "true";
      std::string labels = req.get_param_value("labelSelector");
      std::string fields = req.get_param_value("fieldSelector");
      std::string ns = p->ns;
      auto selected = [=](const json& o) {
        return (ns.empty() || metaString(o, "namespace") == ns) && matchesLabels(o, labels) &&
               matchesFields(o, fields);
      };
      if (!watch) {
        std::string cont = req.get_param_value("continue");
        std::string rv_param = req.get_param_value("resourceVersion");
        if (!cont.empty() && !rv_param.empty() && rv_param != "0")
          return fail(res, 400, "specifying resource version is not allowed when using continue");
        int64_t limit = 0;
        if (req.has_param("limit")) limit = std::atoll(req.get_param_value("limit").c_str());
        std::string after;
        std::string list_rv = std::to_string(rv_);
        if (!cont.empty()) {
          // "<epoch>|<list rv>|<last key>"
          auto a = cont.find('|'), b = cont.find('|', a == std::string::npos ? 0 : a + 1);
          if (a == std::string::npos || b == std::string::npos)
            return fail(res, 400, "invalid continue token");
          if (std::stoull("0" + cont.substr(0, a)) != continue_epoch_ ||
              std::stoull("0" + cont.substr(a + 1, b - a - 1)) < compacted_rv_)
            return reply(res, 410,
                         statusJson(410, "Expired",
                                    "The provided continue parameter is too old to display a "
                                    "consistent list result."));
          list_rv = cont.substr(a + 1, b - a - 1);
          after = cont.substr(b + 1);
        }
        json items = json::array();
        std::string last;
        bool more = false;
        for (auto it = after.empty() ? c->objects.begin() : c->objects.upper_bound(after);
             it != c->objects.end(); ++it) {
          if (!selected(it->second)) continue;
          if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) {
            more = true;
            break;
          }
          items.push_back(it->second);
          last = it->first;
        }
        json meta = {{"resourceVersion", list_rv}};
        if (more) meta["continue"] = fmt::format("{}|{}|{}", continue_epoch_, list_rv, last);
        return reply(res, 200,
                     {{"kind", std::string(c->info.kind) + "List"},
                      {"apiVersion", c->info.apiVersion()},
                      {"metadata", meta},
                      {"items", items}});
      }
      // Watch.
      std::string rv_param = req.get_param_value("resourceVersion");
      bool bookmarks = req.get_param_value("allowWatchBookmarks") == "true";
      int64_t timeout_s = req.has_param("timeoutSeconds")
                              ? std::atoll(req.get_param_value("timeoutSeconds").c_str())
                              : 1800;
      struct WatchState {
        uint64_t next_rv;                 // send history events with rv >= this
        std::deque<std::string> initial;  // synthetic ADDED lines still to send
        bool gone = false;
        uint64_t drop_gen, bookmark_gen;
        std::chrono::steady_clock::time_point deadline;
        bool counted = false;
      };
      auto st = std::make_shared<WatchState>();
      st->drop_gen = drop_generation_;
      st->bookmark_gen = bookmark_generation_;
      st->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
      if (rv_param.empty() || rv_param == "0") {
        for (const auto& [k, o] : c->objects)
          if (selected(o)) st->initial.push_back(json{{"type", "ADDED"}, {"object", o}}.dump());
        st->next_rv = rv_ + 1;
      } else {
        uint64_t from = std::strtoull(rv_param.c_str(), nullptr, 10);
        st->next_rv = from + 1;
        if (from < compacted_rv_) st->gone = true;
      }
      std::string resource = keyOf(c->info);
      lock.unlock();
      open_watches_++;
      st->counted = true;
      res.status = 200;
      res.set_chunked_content_provider(
          // The real apiserver's watch media type; it also keeps httplib from gzipping (and so
          // buffering) the stream for clients that accept gzip, as Go clients do.
          "application/json;stream=watch",
          [this, st, selected, bookmarks, resource, c](size_t, httplib::DataSink& sink) {
            auto send = [&](const std::string& line) {
              std::string l = line + "\n";
              events_sent_++;
              return sink.write(l.data(), l.size());
            };
            if (st->gone) {
              send(json{{"type", "ERROR"},
                        {"object", statusJson(410, "Expired", "too old resource version")}}
                       .dump());
              sink.done();
              return true;
            }
            while (!st->initial.empty()) {
              if (!send(st->initial.front())) return false;
              st->initial.pop_front();
            }
            std::vector<std::string> lines;
            bool end = false, drop = false;
            {
              std::unique_lock lock(mu_);
              changed_.wait_for(lock, std::chrono::milliseconds(100), [&] {
                return stopping_ || drop_generation_ != st->drop_gen || st->next_rv <= rv_ ||
                       st->next_rv <= compacted_rv_ ||
                       (bookmarks && bookmark_generation_ != st->bookmark_gen);
              });
              if (stopping_ || drop_generation_ != st->drop_gen) {
                drop = true;
              } else if (st->next_rv <= compacted_rv_) {
                lines.push_back(
                    json{{"type", "ERROR"},
                         {"object", statusJson(410, "Expired", "too old resource version")}}
                        .dump());
                end = true;
              } else {
                auto from = std::lower_bound(history_.begin(), history_.end(), st->next_rv,
                                             [](const Event& e, uint64_t rv) { return e.rv < rv; });
                for (auto e_it = from; e_it != history_.end(); ++e_it) {
                  const Event& e = *e_it;
                  if (e.resource != resource) continue;
                  if (selected(e.object))
                    lines.push_back(json{{"type", e.type}, {"object", e.object}}.dump());
                }
                st->next_rv = rv_ + 1;
                if (bookmarks && bookmark_generation_ != st->bookmark_gen) {
                  st->bookmark_gen = bookmark_generation_;
                  lines.push_back(json{{"type", "BOOKMARK"},
                                       {"object",
                                        {{"kind", c->info.kind},
                                         {"apiVersion", c->info.apiVersion()},
                                         {"metadata", {{"resourceVersion", std::to_string(rv_)}}}}}}
                                      .dump());
                }
                if (std::chrono::steady_clock::now() >= st->deadline) end = true;
              }
            }
            if (drop) {
              if (st->counted) open_watches_--, st->counted = false;
              return false;  // abrupt close, no terminating chunk
            }
            for (const auto& l : lines)
              if (!send(l)) return false;
            if (end) sink.done();
            return true;
          },
          [this, st](bool) {
            if (st->counted) open_watches_--, st->counted = false;
          });
      return;
    }

    if (req.method == "GET") {
      if (!p->sub.empty() && p->sub != "status") return fail(res, 404, "no such subresource");
      auto it = c->objects.find(key);
      if (it == c->objects.end())
        return fail(res, 404, fmt::format("{} \"{}\" not found", c->info.plural, p->name));
      return reply(res, 200, it->second);
    }

    json body = json::parse(req.body, nullptr, false);
    if (req.method != "DELETE" && body.is_discarded()) return fail(res, 400, "body is not JSON");
    auto errorReply = [&](const Error& e) {
      int code = e.code() == ErrorCode::kNotFound        ? 404
                 : e.code() == ErrorCode::kAlreadyExists ? 409
                 : e.code() == ErrorCode::kAborted       ? 409
                                                         : 400;
      reply(
          res, code,
          statusJson(code, e.code() == ErrorCode::kAlreadyExists ? "AlreadyExists" : reasonOf(code),
                     e.message()));
    };

    if (req.method == "POST" && p->name.empty()) {
      if (body.is_object() && c->info.namespaced) {
        std::string body_ns = metaString(body, "namespace");
        if (!body_ns.empty() && !p->ns.empty() && body_ns != p->ns)
          return fail(res, 400, "the namespace of the object does not match the request");
        if (!p->ns.empty() && body.contains("metadata") && body["metadata"].is_object())
          body["metadata"]["namespace"] = p->ns;
      }
      auto r = createLocked(*c, std::move(body), req.has_param("dryRun"));
      if (!r.ok()) return errorReply(r.error());
      return reply(res, 201, *r);
    }
    if (p->name.empty()) return fail(res, 405, "method not allowed on a collection");
    auto it = c->objects.find(key);
    if (req.method == "DELETE") {
      if (it == c->objects.end())
        return fail(res, 404, fmt::format("{} \"{}\" not found", c->info.plural, p->name));
      json last = commitLocked(*c, "DELETED", it->second);
      return reply(res, 200, last);
    }
    if (it == c->objects.end())
      return fail(res, 404, fmt::format("{} \"{}\" not found", c->info.plural, p->name));
    if (req.method == "PUT") {
      if (!body.is_object() || metaString(body, "name") != p->name)
        return fail(res, 400, "metadata.name does not match the request");
      if (c->info.namespaced) body["metadata"]["namespace"] = p->ns;
      if (p->sub == "status") {
        json next = it->second;
        next["status"] = body.value("status", json::object());
        next["metadata"]["resourceVersion"] = metaString(body, "resourceVersion");
        body = std::move(next);
      } else if (hasStatusSubresource(c->info)) {
        if (it->second.contains("status"))
          body["status"] = it->second["status"];
        else
          body.erase("status");
      }
      auto r = updateLocked(*c, std::move(body));
      if (!r.ok()) return errorReply(r.error());
      return reply(res, 200, *r);
    }
    if (req.method == "PATCH") {
      std::string ct = req.get_header_value("Content-Type");
      if (ct.find("json-patch+json") != std::string::npos) {
        // JSON patch (RFC 6902), "test" operations included: a patch that does not apply
        // changes nothing. Status is the status subresource's, names are the URL's.
        if (!body.is_array()) return fail(res, 400, "a JSON patch must be a list of operations");
        json next;
        try {
          // As kube-apiserver's JSON patch library reads it, a "test" against null also passes
          // when the path is absent (nlohmann's patch() would fail it).
          json ops = json::array();
          for (const auto& op : body) {
            if (op.is_object() && op.value("op", "") == "test" && op.contains("value") &&
                op["value"].is_null() && op.contains("path") && op["path"].is_string() &&
                !it->second.contains(json::json_pointer(op["path"].get<std::string>())))
              continue;
            ops.push_back(op);
          }
          next = it->second.patch(ops);
        } catch (const json::exception& e) {
          return fail(res, 422, fmt::format("the JSON patch does not apply: {}", e.what()));
        }
        if (!next.is_object() || !next.contains("metadata") || !next["metadata"].is_object())
          return fail(res, 422, "the JSON patch removes metadata");
        if (p->sub == "status") {
          json status = next.value("status", json::object());
          next = it->second;
          next["status"] = std::move(status);
        } else if (hasStatusSubresource(c->info)) {
          if (it->second.contains("status"))
            next["status"] = it->second["status"];
          else
            next.erase("status");
        }
        next["metadata"]["name"] = p->name;
        if (c->info.namespaced) next["metadata"]["namespace"] = p->ns;
        next["metadata"].erase("resourceVersion");
        auto r = updateLocked(*c, std::move(next));
        if (!r.ok()) return errorReply(r.error());
        return reply(res, 200, *r);
      }
      if (ct.find("merge-patch+json") == std::string::npos &&
          ct.find("strategic-merge-patch+json") == std::string::npos)
        return fail(res, 415, fmt::format("patch type {} is not supported", ct));
      if (!body.is_object()) return fail(res, 400, "patch must be an object");
      stripDirectives(body);
      json next = it->second;
      if (p->sub == "status") {
        json status = next.value("status", json::object());
        if (body.contains("status")) status.merge_patch(body["status"]);
        next["status"] = status;
      } else {
        if (hasStatusSubresource(c->info)) body.erase("status");
        next.merge_patch(body);
      }
      next["metadata"].erase("resourceVersion");
      auto r = updateLocked(*c, std::move(next));
      if (!r.ok()) return errorReply(r.error());
      return reply(res, 200, *r);
    }
    fail(res, 405, "method not allowed");
  };
  for (const char* prefix : {"/api/v1/.*", "/apis/[^/]+/[^/]+/.*"}) {
    http_->Get(prefix, handle);
    http_->Post(prefix, handle);
    http_->Put(prefix, handle);
    http_->Patch(prefix, handle);
    http_->Delete(prefix, handle);
  }
}

}  // namespace cilium::testing
