// REST handlers of the service manager.
#include "agent/service/api.h"

#include <charconv>

namespace cilium::service {
namespace {

Result<uint32_t> parseId(const std::string& text) {
  uint32_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size())
    return makeError(ErrorCode::kInvalidArgument, "service id '{}' is not a number", text);
  return id;
}

Result<FrontendType> parseType(const std::string& t) {
  if (t.empty() || t == "ClusterIP") return FrontendType::kClusterIp;
  if (t == "NodePort") return FrontendType::kNodePort;
  if (t == "ExternalIPs") return FrontendType::kExternalIp;
  if (t == "LoadBalancer") return FrontendType::kLoadBalancer;
  return makeError(ErrorCode::kInvalidArgument, "flags.type \"{}\" is not supported", t);
}

Result<uint16_t> parsePort(int64_t v, std::string_view field) {
  if (v < 1 || v > 65535)
    return makeError(ErrorCode::kInvalidArgument, "{} {} is not in 1..65535", field, v);
  return static_cast<uint16_t>(v);
}

}  // namespace

api::Service toApi(const LbService& s) {
  api::ServiceSpec spec;
  spec.id = s.id;
  spec.frontend_address.ip = s.frontend.ip.toString();
  spec.frontend_address.port = s.frontend.port;
  spec.frontend_address.protocol = std::string(protocolName(s.frontend.proto));
  spec.frontend_address.scope = "external";
  for (const auto& b : s.backends) {
    api::BackendAddress a;
    a.ip = b.ip.toString();
    a.port = b.port;
    a.state = b.state == BackendState::kActive ? "active" : "terminating";
    a.preferred = b.local;
    spec.backend_addresses.push_back(std::move(a));
  }
  api::ServiceSpecFlags f;
  f.type = std::string(frontendTypeName(s.type));
  f.ext_traffic_policy = s.ext_traffic_policy == TrafficPolicy::kLocal ? "Local" : "Cluster";
  f.name = s.owner.name;
  f.namespace_ = s.owner.ns;
  f.session_affinity = s.session_affinity;
  f.session_affinity_timeout = s.affinity_timeout;
  spec.flags = f;
  api::Service out;
  out.spec = spec;
  out.status = api::ServiceStatus{spec};
  return out;
}

Result<LbService> fromApi(const api::ServiceSpec& spec, uint32_t path_id) {
  LbService s;
  if (spec.id != 0 && spec.id != path_id)
    return makeError(ErrorCode::kInvalidArgument, "id {} in the body differs from {} in the path",
                     spec.id, path_id);
  s.id = path_id;
  auto ip = IpAddr::parse(spec.frontend_address.ip);
  if (!ip.ok()) return ip.error().withContext("frontend-address.ip");
  CILIUM_ASSIGN_OR_RETURN(uint16_t port,
                          parsePort(spec.frontend_address.port, "frontend-address.port"));
  Protocol proto = Protocol::kTcp;
  if (!spec.frontend_address.protocol.empty()) {
    auto p = parseProtocol(spec.frontend_address.protocol);
    if (!p.ok()) return p.error().withContext("frontend-address.protocol");
    proto = *p;
  }
  s.frontend = Frontend{*ip, port, proto};
  for (size_t i = 0; i < spec.backend_addresses.size(); i++) {
    const auto& a = spec.backend_addresses[i];
    std::string field = fmt::format("backend-addresses[{}]", i);
    auto bip = IpAddr::parse(a.ip);
    if (!bip.ok()) return bip.error().withContext(field + ".ip");
    CILIUM_ASSIGN_OR_RETURN(uint16_t bport, parsePort(a.port, field + ".port"));
    Backend b{*bip, bport, BackendState::kActive, a.preferred};
    if (a.state == "terminating")
      b.state = BackendState::kTerminating;
    else if (!a.state.empty() && a.state != "active")
      return makeError(ErrorCode::kInvalidArgument, "{}.state \"{}\" is not active or terminating",
                       field, a.state);
    s.backends.push_back(b);
  }
  if (spec.flags) {
    CILIUM_ASSIGN_OR_RETURN(s.type, parseType(spec.flags->type));
    if (spec.flags->ext_traffic_policy == "Local")
      s.ext_traffic_policy = TrafficPolicy::kLocal;
    else if (!spec.flags->ext_traffic_policy.empty() && spec.flags->ext_traffic_policy != "Cluster")
      return makeError(ErrorCode::kInvalidArgument,
                       "flags.extTrafficPolicy \"{}\" is not Cluster or Local",
                       spec.flags->ext_traffic_policy);
    s.session_affinity = spec.flags->session_affinity;
    if (spec.flags->session_affinity_timeout < 0 || spec.flags->session_affinity_timeout > 86400)
      return makeError(ErrorCode::kInvalidArgument,
                       "flags.sessionAffinityTimeout {} is not in 0..86400",
                       spec.flags->session_affinity_timeout);
    s.affinity_timeout = static_cast<uint32_t>(spec.flags->session_affinity_timeout);
    if (s.session_affinity && s.affinity_timeout == 0) s.affinity_timeout = 10800;
  }
  return s;
}

Status registerRoutes(api::Router& router, Manager& mgr) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/service", [&](const Request&) -> Result<Response> {
        api::Json out = api::Json::array();
        for (const auto& s : mgr.list()) out.push_back(api::encode(toApi(s)));
        return Response::json(std::move(out));
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/service/{id}", [&](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(uint32_t id, parseId(r.param("id")));
        auto s = mgr.get(id);
        if (!s) return makeError(ErrorCode::kNotFound, "service {} not found", id);
        return Response::json(api::encode(toApi(*s)));
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kPut, "/v1/service/{id}", [&](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(uint32_t id, parseId(r.param("id")));
        CILIUM_ASSIGN_OR_RETURN(auto spec, r.decodeBody<api::ServiceSpec>("ServiceSpec"));
        CILIUM_ASSIGN_OR_RETURN(LbService svc, fromApi(spec, id));
        bool existed = id != 0 && mgr.get(id).has_value();
        CILIUM_ASSIGN_OR_RETURN(uint32_t got, mgr.upsertFrontend(std::move(svc)));
        (void)got;
        return Response::empty(existed ? 200 : 201);
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kDelete, "/v1/service/{id}", [&](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(uint32_t id, parseId(r.param("id")));
        CILIUM_RETURN_IF_ERROR(mgr.deleteFrontend(id));
        return Response::empty(200);
      }));
  return okStatus();
}

}  // namespace cilium::service
