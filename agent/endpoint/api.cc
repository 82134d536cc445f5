// REST handlers of the endpoint manager.
#include "agent/endpoint/api.h"

#include "agent/datapath/maps.h"

namespace cilium::endpoint {
namespace {

api::EndpointState apiState(State s) {
  switch (s) {
    case State::kWaitingForIdentity: return api::EndpointState::kWaitingForIdentity;
    case State::kRestoring: return api::EndpointState::kRestoring;
    case State::kRegenerating: return api::EndpointState::kRegenerating;
    case State::kReady: return api::EndpointState::kReady;
    case State::kDisconnecting: return api::EndpointState::kDisconnecting;
    case State::kNotReady: return api::EndpointState::kNotReady;
  }
  return api::EndpointState::kInvalid;
}

Result<Ref> lookupRef(const api::Request& r) {
  CILIUM_ASSIGN_OR_RETURN(auto ref, api::parseEndpointRef(r.param("id")));
  return refFromApi(ref);
}

Result<Endpoint> find(const Manager& m, const api::Request& r) {
  CILIUM_ASSIGN_OR_RETURN(auto ref, lookupRef(r));
  auto ep = m.get(ref);
  if (!ep) return makeError(ErrorCode::kNotFound, "endpoint {} not found", r.param("id"));
  return *ep;
}

}  // namespace

Ref refFromApi(const api::EndpointRef& ref) {
  Ref out;
  using K = api::EndpointRef::Kind;
  switch (ref.kind) {
    case K::kCiliumLocal:
      out.kind = Ref::Kind::kId;
      out.id = static_cast<uint16_t>(ref.local_id);
      break;
    case K::kContainerId: out.kind = Ref::Kind::kContainerId; break;
    case K::kContainerName: out.kind = Ref::Kind::kContainerName; break;
    case K::kPodName: out.kind = Ref::Kind::kPodName; break;
    case K::kDockerEndpoint: out.kind = Ref::Kind::kDockerEndpoint; break;
    case K::kCniAttachment: out.kind = Ref::Kind::kCniAttachment; break;
  }
  out.value = ref.kind == K::kPodName ? ref.pod_namespace + "/" + ref.pod_name : ref.value;
  out.interface = ref.interface;
  return out;
}

Result<Spec> specFromRequest(const api::EndpointChangeRequest& req,
                             const api::EndpointRef& path_ref) {
  Spec s;
  if (path_ref.kind == api::EndpointRef::Kind::kCiliumLocal && path_ref.local_id != 0) {
    if (req.id != 0 && req.id != path_ref.local_id)
      return makeError(ErrorCode::kInvalidArgument, "id: {} differs from the path's endpoint id {}",
                       req.id, path_ref.local_id);
    s.id = static_cast<uint16_t>(path_ref.local_id);
  } else {
    s.id = static_cast<uint16_t>(req.id);
  }
  s.container_id = req.container_id;
  s.container_name = req.container_name;
  s.container_interface_name = req.container_interface_name;
  s.docker_endpoint_id = req.docker_endpoint_id;
  s.pod_namespace = req.k8s_namespace;
  s.pod_name = req.k8s_pod_name;
  s.k8s_uid = req.k8s_uid;
  s.interface_name = req.interface_name;
  s.ifindex = static_cast<int>(req.interface_index);
  s.mac = req.mac;
  s.host_mac = req.host_mac;
  s.netns = req.netns;
  if (req.addressing && !req.addressing->ipv4.empty()) {
    auto ip = IpAddr::parse(req.addressing->ipv4);
    if (!ip.ok() || !ip->isV4())
      return makeError(ErrorCode::kInvalidArgument, "addressing.ipv4: '{}' is not an IPv4 address",
                       req.addressing->ipv4);
    s.ipv4 = *ip;
  }
  if (req.addressing && !req.addressing->ipv6.empty()) {
    auto ip = IpAddr::parse(req.addressing->ipv6);
    if (!ip.ok() || ip->isV4())
      return makeError(ErrorCode::kInvalidArgument, "addressing.ipv6: '{}' is not an IPv6 address",
                       req.addressing->ipv6);
    s.ipv6 = *ip;
  }
  auto labels = labels::Labels::parse(req.labels, labels::Source::kUnspec);
  if (!labels.ok()) return labels.error().withContext("labels");
  s.labels = std::move(*labels);
  CILIUM_RETURN_IF_ERROR(s.validate());
  return s;
}

api::Endpoint toApi(const Endpoint& ep) {
  const Spec& s = ep.spec;
  api::Endpoint out;
  out.id = s.id;
  api::EndpointStatus st;
  st.state = apiState(ep.state);
  api::EndpointIdentifiers ids;
  ids.container_id = s.container_id;
  ids.container_name = s.container_name;
  ids.docker_endpoint_id = s.docker_endpoint_id;
  if (!s.pod_name.empty()) ids.pod_name = s.podRef();
  ids.k8s_pod_name = s.pod_name;
  ids.k8s_namespace = s.pod_namespace;
  if (!s.container_id.empty())
    ids.cni_attachment_id = s.container_id + ":" + s.container_interface_name;
  st.external_identifiers = ids;
  if (ep.identity != identity::kUnknown)
    st.identity =
        api::Identity{ep.identity, ep.identity_labels.toStrings(), ep.identity_labels.sha256()};
  api::LabelConfigurationStatus ls;
  ls.realized = api::LabelConfigurationSpec{s.labels.toStrings()};
  ls.security_relevant = ep.identity_labels.toStrings();
  ls.derived = ep.information_labels.toStrings();
  st.labels = ls;
  api::EndpointNetworking net;
  api::AddressPair addr;
  if (s.ipv4) addr.ipv4 = s.ipv4->toString();
  if (s.ipv6) addr.ipv6 = s.ipv6->toString();
  net.addressing.push_back(addr);
  net.host_mac = s.host_mac;
  net.mac = s.mac;
  net.interface_name = s.interface_name;
  net.interface_index = s.ifindex;
  net.container_interface_name = s.container_interface_name;
  st.networking = net;
  api::EndpointPolicy pol;
  pol.policy_revision = static_cast<int64_t>(ep.policy_revision);
  pol.id = ep.identity;
  using E = api::EndpointPolicyEnabled;
  pol.policy_enabled = ep.ingress_enforced && ep.egress_enforced ? E::kBoth
                       : ep.ingress_enforced                     ? E::kIngress
                       : ep.egress_enforced                      ? E::kEgress
                                                                 : E::kNone;
  st.policy = api::EndpointPolicyStatus{pol, pol, 0};
  for (const auto& c : ep.log)
    st.log.push_back(api::EndpointStatusChange{c.timestamp, c.ok ? "ok" : "failed", c.message,
                                               apiState(c.state)});
  using H = api::EndpointHealthStatus;
  H h = ep.state == State::kReady      ? H::kOk
        : ep.state == State::kNotReady ? H::kFailure
                                       : H::kPending;
  st.health = api::EndpointHealth{h, h, h, ep.state == State::kReady};
  out.status = std::move(st);
  return out;
}

Status registerRoutes(api::Router& router, Manager& m) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/endpoint", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto filter, labels::Labels::parse(r.queryValues("labels")));
        std::vector<api::Endpoint> out;
        for (const auto& ep : m.list()) {
          labels::Labels all = ep.spec.labels;
          all.merge(ep.identity_labels);
          if (all.contains(filter)) out.push_back(toApi(ep));
        }
        return Response::json(api::encodeList(out));
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/endpoint/{id}", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ep, find(m, r));
        return Response::json(api::encode(toApi(ep)));
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kPut, "/v1/endpoint/{id}", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ref, api::parseEndpointRef(r.param("id")));
        CILIUM_ASSIGN_OR_RETURN(auto req,
                                r.decodeBody<api::EndpointChangeRequest>("EndpointChangeRequest"));
        CILIUM_ASSIGN_OR_RETURN(auto spec, specFromRequest(req, ref));
        CILIUM_ASSIGN_OR_RETURN(auto ep, m.add(std::move(spec)));
        return Response::json(api::encode(toApi(ep)), 201);
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kPatch, "/v1/endpoint/{id}", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ref, lookupRef(r));
        CILIUM_ASSIGN_OR_RETURN(auto req,
                                r.decodeBody<api::EndpointChangeRequest>("EndpointChangeRequest"));
        CILIUM_ASSIGN_OR_RETURN(auto labels, labels::Labels::parse(req.labels));
        auto cur = m.get(ref);
        if (!cur) return makeError(ErrorCode::kNotFound, "endpoint {} not found", r.param("id"));
        if (labels == cur->spec.labels) return Response::empty(200);
        CILIUM_ASSIGN_OR_RETURN(auto ep, m.updateLabels(ref, labels));
        (void)ep;
        return Response::empty(200);
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kDelete, "/v1/endpoint/{id}", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ref, lookupRef(r));
        CILIUM_ASSIGN_OR_RETURN(int errors, m.remove(ref));
        if (errors == 0) return Response::empty(200);
        return Response::json(api::Json(errors), 206);
      }));
  CILIUM_RETURN_IF_ERROR(router.add(
      Method::kGet, "/v1/endpoint/{id}/labels", [&m](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto ep, find(m, r));
        api::LabelConfiguration lc;
        lc.spec = api::LabelConfigurationSpec{ep.spec.labels.toStrings()};
        lc.status = toApi(ep).status->labels;
        return Response::json(api::encode(lc));
      }));
  CILIUM_RETURN_IF_ERROR(router.add(Method::kGet, "/v1/endpoint/{id}/healthz",
                                    [&m](const Request& r) -> Result<Response> {
                                      CILIUM_ASSIGN_OR_RETURN(auto ep, find(m, r));
                                      return Response::json(api::encode(*toApi(ep).status->health));
                                    }));
  return okStatus();
}

}  // namespace cilium::endpoint
