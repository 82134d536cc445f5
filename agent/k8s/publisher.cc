// CiliumEndpoint create/update/delete and policy status merge patches.
#include "agent/k8s/publisher.h"

#include <chrono>

#include "agent/common/log.h"

namespace cilium::k8s {

namespace {
using nlohmann::json;

auto& log() {
  static auto l = cilium::logger("k8s");
  return l;
}

std::string nowRfc3339() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Error httpError(std::string_view what, const Response& res) {
  auto code = res.status == 404                        ? ErrorCode::kNotFound
              : res.status == 409                      ? ErrorCode::kAborted
              : res.status == 400 || res.status == 422 ? ErrorCode::kInvalidArgument
                                                       : ErrorCode::kUnavailable;
  return makeError(code, "{}: HTTP {}: {}", what, res.status, res.body.substr(0, 200));
}
}  // namespace

Status CiliumEndpointPublisher::publish(const EndpointState& s) {
  if (s.pod_namespace.empty() || s.pod_name.empty())
    return makeError(ErrorCode::kInvalidArgument,
                     "ciliumendpoint: pod namespace and name required");
  CiliumEndpoint cep;
  cep.meta.name = s.pod_name;
  cep.meta.namespace_name = s.pod_namespace;
  cep.endpoint_id = s.endpoint_id;
  cep.identity_id = s.identity;
  cep.identity_labels = s.identity_labels;
  if (!s.ipv4.empty() || !s.ipv6.empty()) cep.addressing.push_back({s.ipv4, s.ipv6});
  cep.node = s.node_ip;
  cep.state = s.state;
  cep.ingress_enforcing = s.ingress_enforcing;
  cep.egress_enforcing = s.egress_enforcing;
  auto info = Resource<CiliumEndpoint>::info();
  std::string path = info.objectPath(s.pod_namespace, s.pod_name);
  std::string what = fmt::format("ciliumendpoint {}/{}", s.pod_namespace, s.pod_name);
  for (int attempt = 0; attempt < 5; attempt++) {
    CILIUM_ASSIGN_OR_RETURN(Response cur, client_.get(path));
    if (cur.status == 404) {
      CILIUM_ASSIGN_OR_RETURN(
          Response res,
          client_.request("POST", info.collectionPath(s.pod_namespace), toJson(cep).dump()));
      if (res.ok()) return okStatus();
      if (res.status == 409) continue;  // created meanwhile: update it
      return httpError(what, res);
    }
    if (!cur.ok()) return httpError(what, cur);
    json j = json::parse(cur.body, nullptr, false);
    auto existing = Resource<CiliumEndpoint>::decode(j);
    if (existing.ok()) {
      CiliumEndpoint cmp = cep;
      cmp.meta = existing->meta;
      if (cmp == *existing) return okStatus();
      cep.meta.resource_version = existing->meta.resource_version;
      cep.meta.uid = existing->meta.uid;
      cep.meta.labels = existing->meta.labels;
      cep.meta.annotations = existing->meta.annotations;
    }
    CILIUM_ASSIGN_OR_RETURN(Response res, client_.request("PUT", path, toJson(cep).dump()));
    if (res.ok()) return okStatus();
    if (res.status == 409 || res.status == 404) continue;  // lost a race: read again
    return httpError(what, res);
  }
  return makeError(ErrorCode::kAborted, "{}: conflicting writers, gave up after 5 attempts", what);
}

Status CiliumEndpointPublisher::remove(const std::string& ns, const std::string& name) {
  auto info = Resource<CiliumEndpoint>::info();
  CILIUM_ASSIGN_OR_RETURN(Response res, client_.request("DELETE", info.objectPath(ns, name)));
  if (res.ok() || res.status == 404) return okStatus();
  return httpError(fmt::format("delete ciliumendpoint {}/{}", ns, name), res);
}

Status PolicyStatusWriter::write(std::string_view kind, const std::string& ns,
                                 const std::string& name, const PolicyStatus& st) {
  const ResourceInfo* info = findResourceByKind(kind);
  if (!info || (kind != "CiliumNetworkPolicy" && kind != "CiliumClusterwideNetworkPolicy"))
    return makeError(ErrorCode::kInvalidArgument, "policy status: kind {} has no status", kind);
  json node = {{"ok", st.ok},
               {"enforcing", st.ok},
               {"localPolicyRevision", st.revision},
               {"lastUpdated", nowRfc3339()}};
  if (!st.ok) node["error"] = st.error;
  json patch = {{"status", {{"nodes", {{node_, node}}}}}};
  std::string path = info->objectPath(info->namespaced ? ns : "", name) + "/status";
  CILIUM_ASSIGN_OR_RETURN(
      Response res, client_.request("PATCH", path, patch.dump(), "application/merge-patch+json"));
  if (res.ok()) return okStatus();
  return httpError(fmt::format("status of {} {}{}{}", kind, ns, ns.empty() ? "" : "/", name), res);
}

PolicyStatusPublisher::PolicyStatusPublisher(Client& client, std::string node_name)
    : writer_(client, std::move(node_name)), thread_([this] { run(); }) {}

PolicyStatusPublisher::~PolicyStatusPublisher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PolicyStatusPublisher::queue(std::string_view kind, const ObjectMeta& meta,
                                  const PolicyStatus& status) {
  if (kind != "CiliumNetworkPolicy" && kind != "CiliumClusterwideNetworkPolicy") return;
  {
    std::lock_guard lock(mu_);
    pending_[{std::string(kind), meta.namespace_name, meta.name}] = status;
  }
  cv_.notify_all();
}

void PolicyStatusPublisher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (pending_.empty() && stopping_) return;
    auto batch = std::move(pending_);
    pending_.clear();
    lock.unlock();
    for (const auto& [key, st] : batch) {
      const auto& [kind, ns, name] = key;
      auto s = writer_.write(kind, ns, name, st);
      if (!s.ok() && s.error().code() != ErrorCode::kNotFound)
        log()->warn("cannot write policy status kind={} namespace={} name={} error={}", kind, ns,
                    name, s.error().message());
    }
    lock.lock();
  }
}

}  // namespace cilium::k8s
