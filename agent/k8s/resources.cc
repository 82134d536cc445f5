// Field-by-field decoding of Kubernetes objects; absent optional fields take their API defaults.
#include "agent/k8s/resources.h"

#include <fmt/format.h>

namespace cilium::k8s {

namespace {

using nlohmann::json;

template <typename... Args>
Error invalid(fmt::format_string<Args...> f, Args&&... args) {
  return makeError(ErrorCode::kInvalidArgument, f, std::forward<Args>(args)...);
}

std::string join(std::string_view path, std::string_view field) {
  return path.empty() ? std::string(field) : fmt::format("{}.{}", path, field);
}
std::string at(std::string_view path, size_t i) { return fmt::format("{}[{}]", path, i); }

// The member `key` of `obj` when present and not null.
const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<const json*> object(const json& parent, const char* key, std::string_view path) {
  const json* j = member(parent, key);
  if (j && !j->is_object()) return invalid("{}: must be an object", join(path, key));
  return j;
}

Result<const json*> list(const json& parent, const char* key, std::string_view path) {
  const json* j = member(parent, key);
  if (j && !j->is_array()) return invalid("{}: must be a list", join(path, key));
  return j;
}

Status str(const json& parent, const char* key, std::string_view path, std::string& out) {
  const json* j = member(parent, key);
  if (!j) return okStatus();
  if (!j->is_string()) return invalid("{}: must be a string", join(path, key));
  out = j->get<std::string>();
  return okStatus();
}

Status boolean(const json& parent, const char* key, std::string_view path, bool& out) {
  const json* j = member(parent, key);
  if (!j) return okStatus();
  if (!j->is_boolean()) return invalid("{}: must be true or false", join(path, key));
  out = j->get<bool>();
  return okStatus();
}

Status integer(const json& parent, const char* key, std::string_view path, int64_t min, int64_t max,
               int64_t& out) {
  const json* j = member(parent, key);
  if (!j) return okStatus();
  if (!j->is_number_integer()) return invalid("{}: must be an integer", join(path, key));
  int64_t v =
      j->is_number_unsigned() && j->get<uint64_t>() > INT64_MAX ? INT64_MAX : j->get<int64_t>();
  if (v < min || v > max)
    return invalid("{}: {} is outside [{}, {}]", join(path, key), v, min, max);
  out = v;
  return okStatus();
}

Status port(const json& parent, const char* key, std::string_view path, uint16_t& out) {
  int64_t v = out;
  CILIUM_RETURN_IF_ERROR(integer(parent, key, path, 0, 65535, v));
  out = static_cast<uint16_t>(v);
  return okStatus();
}

Status stringMap(const json& parent, const char* key, std::string_view path, StringMap& out) {
  CILIUM_ASSIGN_OR_RETURN(const json* m, object(parent, key, path));
  if (!m) return okStatus();
  for (const auto& [k, v] : m->items()) {
    if (!v.is_string()) return invalid("{}.{}: must be a string", join(path, key), k);
    out[k] = v.get<std::string>();
  }
  return okStatus();
}

Status stringList(const json& parent, const char* key, std::string_view path,
                  std::vector<std::string>& out) {
  CILIUM_ASSIGN_OR_RETURN(const json* l, list(parent, key, path));
  if (!l) return okStatus();
  for (size_t i = 0; i < l->size(); i++) {
    if (!(*l)[i].is_string()) return invalid("{}: must be a string", at(join(path, key), i));
    out.push_back((*l)[i].get<std::string>());
  }
  return okStatus();
}

// Calls fn(element, path) for each element of the list `key` (absent = none).
template <typename Fn>
Status eachOf(const json& parent, const char* key, std::string_view path, Fn&& fn) {
  CILIUM_ASSIGN_OR_RETURN(const json* l, list(parent, key, path));
  if (!l) return okStatus();
  for (size_t i = 0; i < l->size(); i++) {
    std::string p = at(join(path, key), i);
    if (!(*l)[i].is_object()) return invalid("{}: must be an object", p);
    CILIUM_RETURN_IF_ERROR(fn((*l)[i], p));
  }
  return okStatus();
}

Result<const json*> specOf(const json& obj) { return object(obj, "spec", ""); }

const json kEmpty = json::object();

template <typename T>
Result<T> decodePolicy(const json& obj) {
  T p;
  CILIUM_ASSIGN_OR_RETURN(p.meta, decodeMeta(obj, Resource<T>::info()));
  p.raw = obj;
  // List items may omit kind/apiVersion; the policy decoder needs them.
  p.raw["kind"] = Resource<T>::info().kind;
  p.raw["apiVersion"] = Resource<T>::info().apiVersion();
  return p;
}

}  // namespace

std::string objectKey(std::string_view namespace_name, std::string_view name) {
  if (namespace_name.empty()) return std::string(name);
  return fmt::format("{}/{}", namespace_name, name);
}

std::string ResourceInfo::apiVersion() const {
  if (group.empty()) return std::string(version);
  return fmt::format("{}/{}", group, version);
}

std::string ResourceInfo::collectionPath(std::string_view namespace_name) const {
  std::string base =
      group.empty() ? fmt::format("/api/{}", version) : fmt::format("/apis/{}/{}", group, version);
  if (namespaced && !namespace_name.empty())
    return fmt::format("{}/namespaces/{}/{}", base, namespace_name, plural);
  return fmt::format("{}/{}", base, plural);
}

std::string ResourceInfo::objectPath(std::string_view namespace_name, std::string_view name) const {
  return fmt::format("{}/{}", collectionPath(namespace_name), name);
}

const std::vector<ResourceInfo>& allResources() {
  static const std::vector<ResourceInfo> all = {
      Resource<Pod>::info(),
      Resource<Namespace>::info(),
      Resource<Node>::info(),
      Resource<Service>::info(),
      Resource<EndpointSlice>::info(),
      Resource<NetworkPolicy>::info(),
      Resource<CiliumNetworkPolicy>::info(),
      Resource<CiliumClusterwideNetworkPolicy>::info(),
      Resource<CiliumNode>::info(),
      Resource<CiliumEndpoint>::info(),
      Resource<CiliumIdentity>::info(),
  };
  return all;
}

const ResourceInfo* findResourceByKind(std::string_view kind) {
  for (const auto& r : allResources())
    if (r.kind == kind) return &r;
  return nullptr;
}

Result<ObjectMeta> decodeMeta(const json& obj, const ResourceInfo& info) {
  if (!obj.is_object()) return invalid("{}: must be an object", info.kind);
  if (const json* k = member(obj, "kind")) {
    if (!k->is_string() || k->get_ref<const std::string&>() != info.kind)
      return invalid("kind: {} is not {}", k->dump(), info.kind);
  }
  if (const json* v = member(obj, "apiVersion")) {
    if (!v->is_string() || v->get_ref<const std::string&>() != info.apiVersion())
      return invalid("apiVersion: {} is not {}", v->dump(), info.apiVersion());
  }
  CILIUM_ASSIGN_OR_RETURN(const json* m, object(obj, "metadata", ""));
  if (!m) return invalid("metadata: required");
  ObjectMeta meta;
  CILIUM_RETURN_IF_ERROR(str(*m, "name", "metadata", meta.name));
  if (meta.name.empty()) return invalid("metadata.name: required");
  if (meta.name.find('/') != std::string::npos)
    return invalid("metadata.name: \"{}\" contains '/'", meta.name);
  CILIUM_RETURN_IF_ERROR(str(*m, "namespace", "metadata", meta.namespace_name));
  if (!info.namespaced)
    meta.namespace_name.clear();
  else if (meta.namespace_name.empty())
    meta.namespace_name = "default";
  CILIUM_RETURN_IF_ERROR(str(*m, "uid", "metadata", meta.uid));
  CILIUM_RETURN_IF_ERROR(str(*m, "resourceVersion", "metadata", meta.resource_version));
  CILIUM_RETURN_IF_ERROR(stringMap(*m, "labels", "metadata", meta.labels));
  CILIUM_RETURN_IF_ERROR(stringMap(*m, "annotations", "metadata", meta.annotations));
  return meta;
}

Result<Pod> Resource<Pod>::decode(const json& obj) {
  Pod p;
  CILIUM_ASSIGN_OR_RETURN(p.meta, decodeMeta(obj, info()));
  CILIUM_ASSIGN_OR_RETURN(const json* spec, specOf(obj));
  const json& s = spec ? *spec : kEmpty;
  CILIUM_RETURN_IF_ERROR(str(s, "nodeName", "spec", p.node_name));
  CILIUM_RETURN_IF_ERROR(str(s, "serviceAccountName", "spec", p.service_account));
  CILIUM_RETURN_IF_ERROR(boolean(s, "hostNetwork", "spec", p.host_network));
  CILIUM_RETURN_IF_ERROR(
      eachOf(s, "containers", "spec", [&](const json& c, const std::string& cp) -> Status {
        return eachOf(c, "ports", cp, [&](const json& pj, const std::string& pp) -> Status {
          ContainerPort port;
          CILIUM_RETURN_IF_ERROR(str(pj, "name", pp, port.name));
          int64_t n = 0;
          CILIUM_RETURN_IF_ERROR(integer(pj, "containerPort", pp, 1, 65535, n));
          if (n == 0) return invalid("{}.containerPort: required", pp);
          port.port = static_cast<uint16_t>(n);
          CILIUM_RETURN_IF_ERROR(str(pj, "protocol", pp, port.protocol));
          p.ports.push_back(std::move(port));
          return okStatus();
        });
      }));
  CILIUM_ASSIGN_OR_RETURN(const json* status, object(obj, "status", ""));
  if (status) {
    CILIUM_RETURN_IF_ERROR(str(*status, "phase", "status", p.phase));
    CILIUM_RETURN_IF_ERROR(
        eachOf(*status, "podIPs", "status", [&](const json& ip, const std::string& path) -> Status {
          std::string a;
          CILIUM_RETURN_IF_ERROR(str(ip, "ip", path, a));
          if (!a.empty()) p.pod_ips.push_back(a);
          return okStatus();
        }));
    if (p.pod_ips.empty()) {
      std::string a;
      CILIUM_RETURN_IF_ERROR(str(*status, "podIP", "status", a));
      if (!a.empty()) p.pod_ips.push_back(a);
    }
    // The latest Ready condition wins, as client-go's GetLatestPodReadiness reads it.
    CILIUM_RETURN_IF_ERROR(eachOf(*status, "conditions", "status",
                                  [&](const json& c, const std::string& path) -> Status {
                                    std::string type, value;
                                    CILIUM_RETURN_IF_ERROR(str(c, "type", path, type));
                                    CILIUM_RETURN_IF_ERROR(str(c, "status", path, value));
                                    if (type == "Ready") p.ready = value == "True";
                                    return okStatus();
                                  }));
  }
  std::string deletion;
  CILIUM_RETURN_IF_ERROR(
      str(obj.at("metadata"), "deletionTimestamp", "metadata", deletion));  // decodeMeta checked it
  p.deleting = !deletion.empty();
  return p;
}

Result<Namespace> Resource<Namespace>::decode(const json& obj) {
  Namespace n;
  CILIUM_ASSIGN_OR_RETURN(n.meta, decodeMeta(obj, info()));
  return n;
}

Result<Node> Resource<Node>::decode(const json& obj) {
  Node n;
  CILIUM_ASSIGN_OR_RETURN(n.meta, decodeMeta(obj, info()));
  CILIUM_ASSIGN_OR_RETURN(const json* spec, specOf(obj));
  if (spec) {
    CILIUM_RETURN_IF_ERROR(stringList(*spec, "podCIDRs", "spec", n.pod_cidrs));
    if (n.pod_cidrs.empty()) {
      std::string c;
      CILIUM_RETURN_IF_ERROR(str(*spec, "podCIDR", "spec", c));
      if (!c.empty()) n.pod_cidrs.push_back(c);
    }
    CILIUM_RETURN_IF_ERROR(
        eachOf(*spec, "taints", "spec", [&](const json& t, const std::string& p) -> Status {
          Taint taint;
          CILIUM_RETURN_IF_ERROR(str(t, "key", p, taint.key));
          if (taint.key.empty()) return invalid("{}.key: required", p);
          CILIUM_RETURN_IF_ERROR(str(t, "effect", p, taint.effect));
          taint.raw = t;
          n.taints.push_back(std::move(taint));
          return okStatus();
        }));
  }
  CILIUM_ASSIGN_OR_RETURN(const json* status, object(obj, "status", ""));
  if (status) {
    CILIUM_RETURN_IF_ERROR(
        eachOf(*status, "addresses", "status", [&](const json& a, const std::string& p) -> Status {
          std::string type, addr;
          CILIUM_RETURN_IF_ERROR(str(a, "type", p, type));
          CILIUM_RETURN_IF_ERROR(str(a, "address", p, addr));
          if (type == "InternalIP") n.internal_ips.push_back(addr);
          return okStatus();
        }));
  }
  return n;
}

Result<Service> Resource<Service>::decode(const json& obj) {
  Service s;
  CILIUM_ASSIGN_OR_RETURN(s.meta, decodeMeta(obj, info()));
  CILIUM_ASSIGN_OR_RETURN(const json* spec, specOf(obj));
  const json& sp = spec ? *spec : kEmpty;
  CILIUM_RETURN_IF_ERROR(str(sp, "type", "spec", s.type));
  CILIUM_RETURN_IF_ERROR(stringList(sp, "clusterIPs", "spec", s.cluster_ips));
  if (s.cluster_ips.empty()) {
    std::string ip;
    CILIUM_RETURN_IF_ERROR(str(sp, "clusterIP", "spec", ip));
    if (!ip.empty()) s.cluster_ips.push_back(ip);
  }
  CILIUM_RETURN_IF_ERROR(stringList(sp, "ipFamilies", "spec", s.ip_families));
  CILIUM_RETURN_IF_ERROR(str(sp, "ipFamilyPolicy", "spec", s.ip_family_policy));
  CILIUM_RETURN_IF_ERROR(stringMap(sp, "selector", "spec", s.selector));
  CILIUM_RETURN_IF_ERROR(str(sp, "externalTrafficPolicy", "spec", s.external_traffic_policy));
  CILIUM_RETURN_IF_ERROR(str(sp, "internalTrafficPolicy", "spec", s.internal_traffic_policy));
  CILIUM_RETURN_IF_ERROR(stringList(sp, "externalIPs", "spec", s.external_ips));
  CILIUM_RETURN_IF_ERROR(str(sp, "sessionAffinity", "spec", s.session_affinity));
  CILIUM_ASSIGN_OR_RETURN(const json* affinity, object(sp, "sessionAffinityConfig", "spec"));
  if (affinity) {
    CILIUM_ASSIGN_OR_RETURN(const json* client_ip,
                            object(*affinity, "clientIP", "spec.sessionAffinityConfig"));
    if (client_ip) {
      CILIUM_RETURN_IF_ERROR(integer(*client_ip, "timeoutSeconds",
                                     "spec.sessionAffinityConfig.clientIP", 1, 86400,
                                     s.session_affinity_timeout));
    }
  }
  CILIUM_ASSIGN_OR_RETURN(const json* status, object(obj, "status", ""));
  if (status) {
    CILIUM_ASSIGN_OR_RETURN(const json* lb, object(*status, "loadBalancer", "status"));
    if (lb) {
      CILIUM_RETURN_IF_ERROR(eachOf(*lb, "ingress", "status.loadBalancer",
                                    [&](const json& ij, const std::string& p) -> Status {
                                      std::string ip;
                                      CILIUM_RETURN_IF_ERROR(str(ij, "ip", p, ip));
                                      if (!ip.empty()) s.load_balancer_ips.push_back(ip);
                                      return okStatus();
                                    }));
    }
  }
  CILIUM_RETURN_IF_ERROR(
      eachOf(sp, "ports", "spec", [&](const json& pj, const std::string& p) -> Status {
        ServicePort port;
        CILIUM_RETURN_IF_ERROR(str(pj, "name", p, port.name));
        CILIUM_RETURN_IF_ERROR(str(pj, "protocol", p, port.protocol));
        CILIUM_RETURN_IF_ERROR(::cilium::k8s::port(pj, "port", p, port.port));
        if (port.port == 0) return invalid("{}.port: required", p);
        CILIUM_RETURN_IF_ERROR(::cilium::k8s::port(pj, "nodePort", p, port.node_port));
        if (const json* t = member(pj, "targetPort")) {
          if (t->is_string()) {
            port.target_port = t->get<std::string>();
          } else if (t->is_number_integer() && t->get<int64_t>() >= 1 &&
                     t->get<int64_t>() <= 65535) {
            port.target_port = std::to_string(t->get<int64_t>());
          } else {
            return invalid("{}.targetPort: must be a port number or a port name", p);
          }
        }
        s.ports.push_back(std::move(port));
        return okStatus();
      }));
  return s;
}

Result<EndpointSlice> Resource<EndpointSlice>::decode(const json& obj) {
  EndpointSlice es;
  CILIUM_ASSIGN_OR_RETURN(es.meta, decodeMeta(obj, info()));
  if (auto it = es.meta.labels.find("kubernetes.io/service-name"); it != es.meta.labels.end())
    es.service_name = it->second;
  CILIUM_RETURN_IF_ERROR(str(obj, "addressType", "", es.address_type));
  CILIUM_RETURN_IF_ERROR(
      eachOf(obj, "endpoints", "", [&](const json& ej, const std::string& p) -> Status {
        Endpoint e;
        CILIUM_RETURN_IF_ERROR(stringList(ej, "addresses", p, e.addresses));
        CILIUM_RETURN_IF_ERROR(str(ej, "nodeName", p, e.node_name));
        CILIUM_ASSIGN_OR_RETURN(const json* cond, object(ej, "conditions", p));
        if (cond) {
          std::string cp = join(p, "conditions");
          CILIUM_RETURN_IF_ERROR(boolean(*cond, "ready", cp, e.ready));
          e.serving = e.ready;
          CILIUM_RETURN_IF_ERROR(boolean(*cond, "serving", cp, e.serving));
          CILIUM_RETURN_IF_ERROR(boolean(*cond, "terminating", cp, e.terminating));
        }
        es.endpoints.push_back(std::move(e));
        return okStatus();
      }));
  CILIUM_RETURN_IF_ERROR(
      eachOf(obj, "ports", "", [&](const json& pj, const std::string& p) -> Status {
        EndpointPort port;
        CILIUM_RETURN_IF_ERROR(str(pj, "name", p, port.name));
        CILIUM_RETURN_IF_ERROR(str(pj, "protocol", p, port.protocol));
        CILIUM_RETURN_IF_ERROR(::cilium::k8s::port(pj, "port", p, port.port));
        es.ports.push_back(std::move(port));
        return okStatus();
      }));
  return es;
}

Result<NetworkPolicy> Resource<NetworkPolicy>::decode(const json& obj) {
  return decodePolicy<NetworkPolicy>(obj);
}
Result<CiliumNetworkPolicy> Resource<CiliumNetworkPolicy>::decode(const json& obj) {
  return decodePolicy<CiliumNetworkPolicy>(obj);
}
Result<CiliumClusterwideNetworkPolicy> Resource<CiliumClusterwideNetworkPolicy>::decode(
    const json& obj) {
  return decodePolicy<CiliumClusterwideNetworkPolicy>(obj);
}

Result<CiliumNode> Resource<CiliumNode>::decode(const json& obj) {
  CiliumNode n;
  CILIUM_ASSIGN_OR_RETURN(n.meta, decodeMeta(obj, info()));
  CILIUM_ASSIGN_OR_RETURN(const json* st, object(obj, "status", ""));
  if (st) {
    CILIUM_ASSIGN_OR_RETURN(const json* sipam, object(*st, "ipam", "status"));
    if (sipam) {
      CILIUM_ASSIGN_OR_RETURN(const json* os, object(*sipam, "operator-status", "status.ipam"));
      if (os)
        CILIUM_RETURN_IF_ERROR(str(*os, "error", "status.ipam.operator-status", n.operator_error));
    }
  }
  CILIUM_ASSIGN_OR_RETURN(const json* spec, specOf(obj));
  if (!spec) return n;
  CILIUM_ASSIGN_OR_RETURN(const json* ipam, object(*spec, "ipam", "spec"));
  if (ipam) CILIUM_RETURN_IF_ERROR(stringList(*ipam, "podCIDRs", "spec.ipam", n.pod_cidrs));
  CILIUM_RETURN_IF_ERROR(
      eachOf(*spec, "addresses", "spec", [&](const json& a, const std::string& p) -> Status {
        NodeAddress na;
        CILIUM_RETURN_IF_ERROR(str(a, "type", p, na.type));
        CILIUM_RETURN_IF_ERROR(str(a, "ip", p, na.ip));
        if (!na.ip.empty()) n.addresses.push_back(std::move(na));
        return okStatus();
      }));
  CILIUM_ASSIGN_OR_RETURN(const json* health, object(*spec, "health", "spec"));
  if (health) {
    CILIUM_RETURN_IF_ERROR(str(*health, "ipv4", "spec.health", n.health_ipv4));
    CILIUM_RETURN_IF_ERROR(str(*health, "ipv6", "spec.health", n.health_ipv6));
  }
  CILIUM_RETURN_IF_ERROR(str(*spec, "bootid", "spec", n.boot_id));
  return n;
}

Result<CiliumEndpoint> Resource<CiliumEndpoint>::decode(const json& obj) {
  CiliumEndpoint c;
  CILIUM_ASSIGN_OR_RETURN(c.meta, decodeMeta(obj, info()));
  CILIUM_ASSIGN_OR_RETURN(const json* st, object(obj, "status", ""));
  if (!st) return c;
  CILIUM_RETURN_IF_ERROR(integer(*st, "id", "status", 0, INT64_MAX, c.endpoint_id));
  CILIUM_RETURN_IF_ERROR(str(*st, "state", "status", c.state));
  CILIUM_ASSIGN_OR_RETURN(const json* id, object(*st, "identity", "status"));
  if (id) {
    CILIUM_RETURN_IF_ERROR(integer(*id, "id", "status.identity", 0, UINT32_MAX, c.identity_id));
    CILIUM_RETURN_IF_ERROR(stringList(*id, "labels", "status.identity", c.identity_labels));
  }
  CILIUM_ASSIGN_OR_RETURN(const json* net, object(*st, "networking", "status"));
  if (net) {
    CILIUM_RETURN_IF_ERROR(eachOf(*net, "addressing", "status.networking",
                                  [&](const json& a, const std::string& p) -> Status {
                                    EndpointAddress ea;
                                    CILIUM_RETURN_IF_ERROR(str(a, "ipv4", p, ea.ipv4));
                                    CILIUM_RETURN_IF_ERROR(str(a, "ipv6", p, ea.ipv6));
                                    c.addressing.push_back(std::move(ea));
                                    return okStatus();
                                  }));
    CILIUM_RETURN_IF_ERROR(str(*net, "node", "status.networking", c.node));
  }
  CILIUM_ASSIGN_OR_RETURN(const json* pol, object(*st, "policy", "status"));
  if (pol) {
    for (auto [key, out] :
         {std::pair{"ingress", &c.ingress_enforcing}, std::pair{"egress", &c.egress_enforcing}}) {
      CILIUM_ASSIGN_OR_RETURN(const json* dir, object(*pol, key, "status.policy"));
      if (dir) CILIUM_RETURN_IF_ERROR(boolean(*dir, "enforcing", join("status.policy", key), *out));
    }
  }
  return c;
}

Result<CiliumIdentity> Resource<CiliumIdentity>::decode(const json& obj) {
  CiliumIdentity c;
  CILIUM_ASSIGN_OR_RETURN(c.meta, decodeMeta(obj, info()));
  CILIUM_RETURN_IF_ERROR(stringMap(obj, "security-labels", "", c.security_labels));
  return c;
}

namespace {
json metaJson(const ObjectMeta& m) {
  json j = {{"name", m.name}};
  if (!m.namespace_name.empty()) j["namespace"] = m.namespace_name;
  if (!m.resource_version.empty()) j["resourceVersion"] = m.resource_version;
  if (!m.uid.empty()) j["uid"] = m.uid;
  if (!m.labels.empty()) j["labels"] = m.labels;
  if (!m.annotations.empty()) j["annotations"] = m.annotations;
  return j;
}
}  // namespace

json toJson(const CiliumEndpoint& c) {
  json addressing = json::array();
  for (const auto& a : c.addressing) {
    json e = json::object();
    if (!a.ipv4.empty()) e["ipv4"] = a.ipv4;
    if (!a.ipv6.empty()) e["ipv6"] = a.ipv6;
    addressing.push_back(std::move(e));
  }
  json networking = {{"addressing", addressing}};
  if (!c.node.empty()) networking["node"] = c.node;
  return {
      {"apiVersion", "cilium.io/v2"},
      {"kind", "CiliumEndpoint"},
      {"metadata", metaJson(c.meta)},
      {"status",
       {{"id", c.endpoint_id},
        {"state", c.state},
        {"identity", {{"id", c.identity_id}, {"labels", c.identity_labels}}},
        {"networking", networking},
        {"policy",
         {{"ingress", {{"enforcing", c.ingress_enforcing}}},
          {"egress", {{"enforcing", c.egress_enforcing}}}}}}},
  };
}

json toJson(const CiliumIdentity& c) {
  return {{"apiVersion", "cilium.io/v2"},
          {"kind", "CiliumIdentity"},
          {"metadata", metaJson(c.meta)},
          {"security-labels", c.security_labels}};
}

json toJson(const CiliumNode& n) {
  json addresses = json::array();
  for (const auto& a : n.addresses) addresses.push_back({{"type", a.type}, {"ip", a.ip}});
  json spec = {{"addresses", addresses}, {"ipam", {{"podCIDRs", n.pod_cidrs}}}};
  json health = json::object();
  if (!n.health_ipv4.empty()) health["ipv4"] = n.health_ipv4;
  if (!n.health_ipv6.empty()) health["ipv6"] = n.health_ipv6;
  if (!health.empty()) spec["health"] = health;
  if (!n.boot_id.empty()) spec["bootid"] = n.boot_id;
  json out = {{"apiVersion", "cilium.io/v2"},
              {"kind", "CiliumNode"},
              {"metadata", metaJson(n.meta)},
              {"spec", spec}};
  if (!n.operator_error.empty())
    out["status"] = {{"ipam", {{"operator-status", {{"error", n.operator_error}}}}}};
  return out;
}

}  // namespace cilium::k8s
