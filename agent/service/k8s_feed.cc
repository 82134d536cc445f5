// Services and EndpointSlices from a k8s::Source into the service Manager.
#include "agent/service/k8s_feed.h"

#include <algorithm>

#include "agent/common/log.h"
#include "agent/k8s/source.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service-k8s");
  return l;
}

Result<IpAddr> addr(const std::string& text, const std::string& field) {
  auto ip = IpAddr::parse(text);
  if (!ip.ok())
    return makeError(ErrorCode::kInvalidArgument, "{}: {}", field, ip.error().message());
  return *ip;
}

Result<IpFamily> familyOf(const std::string& name, const std::string& field) {
  if (name == "IPv4") return IpFamily::kV4;
  if (name == "IPv6") return IpFamily::kV6;
  return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" is not IPv4 or IPv6", field, name);
}

// spec.clusterIPs checked against spec.ipFamilies and spec.ipFamilyPolicy (as the API server
// validates them: a stored object that breaks the rules is refused, not half programmed).
Status clusterIps(const k8s::Service& ks, Service& svc) {
  const std::string& policy = ks.ip_family_policy;
  if (!policy.empty() && policy != "SingleStack" && policy != "PreferDualStack" &&
      policy != "RequireDualStack")
    return makeError(ErrorCode::kInvalidArgument,
                     "spec.ipFamilyPolicy: \"{}\" is not SingleStack, PreferDualStack or "
                     "RequireDualStack",
                     policy);
  if (ks.ip_families.size() > 2)
    return makeError(ErrorCode::kInvalidArgument, "spec.ipFamilies: more than two families");
  std::vector<IpFamily> families;
  for (size_t i = 0; i < ks.ip_families.size(); i++) {
    CILIUM_ASSIGN_OR_RETURN(
        auto f, familyOf(ks.ip_families[i], "spec.ipFamilies[" + std::to_string(i) + "]"));
    if (!families.empty() && families[0] == f)
      return makeError(ErrorCode::kInvalidArgument, "spec.ipFamilies: {} twice", ks.ip_families[i]);
    families.push_back(f);
  }
  std::vector<IpAddr> ips;
  for (size_t i = 0; i < ks.cluster_ips.size(); i++) {
    const auto& text = ks.cluster_ips[i];
    if (text == "None" || text.empty()) continue;  // headless
    std::string field = "spec.clusterIPs[" + std::to_string(i) + "]";
    CILIUM_ASSIGN_OR_RETURN(auto a, addr(text, field));
    if (!ips.empty() && ips[0].family() == a.family())
      return makeError(ErrorCode::kInvalidArgument, "{}: {} is of the same family as {}", field,
                       text, ips[0].toString());
    if (ips.size() == 2)
      return makeError(ErrorCode::kInvalidArgument, "spec.clusterIPs: more than two");
    if (ips.size() < families.size() && families[ips.size()] != a.family())
      return makeError(ErrorCode::kInvalidArgument, "{}: {} is not of spec.ipFamilies[{}] {}",
                       field, text, ips.size(), ks.ip_families[ips.size()]);
    ips.push_back(a);
  }
  if (ips.empty()) return okStatus();
  if (ips.size() == 2 && (policy.empty() || policy == "SingleStack"))
    return makeError(ErrorCode::kInvalidArgument,
                     "spec.clusterIPs: two families with ipFamilyPolicy {}",
                     policy.empty() ? "unset (SingleStack)" : policy);
  if (ips.size() == 1 && policy == "RequireDualStack")
    return makeError(ErrorCode::kInvalidArgument,
                     "spec.clusterIPs: ipFamilyPolicy RequireDualStack with one ClusterIP ({})",
                     ips[0].toString());
  svc.cluster_ip = ips[0];
  svc.more_cluster_ips.assign(ips.begin() + 1, ips.end());
  return okStatus();
}

}  // namespace

Result<std::optional<Service>> fromK8s(const k8s::Service& ks,
                                       const std::vector<k8s::EndpointSlice>& slices,
                                       const std::string& node_name, bool lb_algorithm_annotation) {
  if (ks.type == "ExternalName") return std::optional<Service>();
  Service svc;
  svc.name = ServiceName{ks.meta.namespace_name, ks.meta.name};
  // Both families: each frontend gets its own family's backends (expandService).
  CILIUM_RETURN_IF_ERROR(clusterIps(ks, svc));
  for (size_t i = 0; i < ks.external_ips.size(); i++) {
    CILIUM_ASSIGN_OR_RETURN(
        auto a, addr(ks.external_ips[i], "spec.externalIPs[" + std::to_string(i) + "]"));
    svc.external_ips.push_back(a);
  }
  for (size_t i = 0; i < ks.load_balancer_ips.size(); i++) {
    CILIUM_ASSIGN_OR_RETURN(auto a, addr(ks.load_balancer_ips[i], "status.loadBalancer.ingress[" +
                                                                      std::to_string(i) + "].ip"));
    svc.load_balancer_ips.push_back(a);
  }
  if (!svc.cluster_ip && svc.external_ips.empty() && svc.load_balancer_ips.empty())
    return std::optional<Service>();
  svc.session_affinity = ks.session_affinity == "ClientIP";
  if (ks.session_affinity_timeout > 0)
    svc.affinity_timeout = static_cast<uint32_t>(ks.session_affinity_timeout);
  svc.ext_traffic_policy =
      ks.external_traffic_policy == "Local" ? TrafficPolicy::kLocal : TrafficPolicy::kCluster;
  if (auto it = ks.meta.annotations.find(std::string(kLbAlgorithmAnnotation));
      lb_algorithm_annotation && it != ks.meta.annotations.end()) {
    if (it->second == "maglev") {
      svc.lb_algorithm = LbAlgorithm::kMaglev;
    } else if (it->second == "random") {
      svc.lb_algorithm = LbAlgorithm::kRandom;
    } else {
      // Not a reason to leave the Service unbalanced: it gets the agent's algorithm.
      log()->warn(
          "service {}/{}: annotation {}=\"{}\" is not random or maglev; using bpf-lb-algorithm",
          ks.meta.namespace_name, ks.meta.name, kLbAlgorithmAnnotation, it->second);
    }
  }
  const bool node_ports = ks.type == "NodePort" || ks.type == "LoadBalancer";

  for (size_t i = 0; i < ks.ports.size(); i++) {
    const auto& kp = ks.ports[i];
    ServicePort port;
    port.name = kp.name;
    auto proto = parseProtocol(kp.protocol.empty() ? "TCP" : kp.protocol);
    if (!proto.ok()) continue;  // SCTP: not balanced
    port.proto = *proto;
    port.port = kp.port;
    if (node_ports) port.node_port = kp.node_port;
    for (const auto& slice : slices) {
      // FQDN slices are not balanced.
      if (slice.address_type != "IPv4" && slice.address_type != "IPv6") continue;
      const IpFamily slice_family = slice.address_type == "IPv4" ? IpFamily::kV4 : IpFamily::kV6;
      for (const auto& ep_port : slice.ports) {
        if (ep_port.name != kp.name || ep_port.port == 0) continue;
        if ((ep_port.protocol.empty() ? "TCP" : ep_port.protocol) !=
            (kp.protocol.empty() ? "TCP" : kp.protocol))
          continue;
        for (const auto& ep : slice.endpoints) {
          // Terminating endpoints keep their connections; other not-ready ones get nothing.
          BackendState state = BackendState::kActive;
          if (ep.terminating)
            state = BackendState::kTerminating;
          else if (!ep.ready)
            continue;
          for (const auto& addr : ep.addresses) {
            auto a = IpAddr::parse(addr);
            if (!a.ok() || a->family() != slice_family) {
              log()->warn("endpointslice {}/{}: skipping address {}", slice.meta.namespace_name,
                          slice.meta.name, addr);
              continue;
            }
            Backend b;
            b.ip = *a;
            b.port = ep_port.port;
            b.state = state;
            b.local = !node_name.empty() && ep.node_name == node_name;
            if (std::find(port.backends.begin(), port.backends.end(), b) == port.backends.end())
              port.backends.push_back(b);
          }
        }
      }
    }
    svc.ports.push_back(std::move(port));
  }
  return std::optional<Service>(std::move(svc));
}

K8sFeed::K8sFeed(Manager& manager, k8s::Stores& stores, std::string node_name,
                 bool lb_algorithm_annotation)
    : manager_(manager),
      stores_(stores),
      node_name_(std::move(node_name)),
      lb_algorithm_annotation_(lb_algorithm_annotation) {}

K8sFeed::~K8sFeed() {
  for (auto& u : unregister_) u();
}

std::vector<k8s::EndpointSlice> K8sFeed::slicesOf(const std::string& key) const {
  std::vector<k8s::EndpointSlice> out;
  auto it = slices_by_service_.find(key);
  if (it == slices_by_service_.end()) return out;
  for (const auto& slice_key : it->second)
    if (auto s = stores_.endpoint_slices.get(slice_key)) out.push_back(std::move(*s));
  return out;
}

void K8sFeed::sync(const std::string& key) {
  std::lock_guard lock(mu_);
  auto slash = key.find('/');
  ServiceName name{key.substr(0, slash), slash == std::string::npos ? "" : key.substr(slash + 1)};
  auto ks = stores_.services.get(key);
  std::optional<Service> svc;
  if (ks) {
    auto converted = fromK8s(*ks, slicesOf(key), node_name_, lb_algorithm_annotation_);
    if (!converted.ok()) {
      // What is programmed for it stays.
      log()->error("service {} rejected: {}", key, converted.error().message());
      return;
    }
    svc = std::move(*converted);
  }
  if (!svc) {
    auto st = manager_.deleteService(name);
    if (!st.ok() && st.error().code() != ErrorCode::kNotFound)
      log()->error("cannot delete service {}: {}", key, st.error().message());
    return;
  }
  if (auto st = manager_.upsertService(*svc); !st.ok())
    log()->error("cannot program service {}: {}", key, st.error().message());
}

void K8sFeed::changed(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    if (batching_) {
      dirty_.insert(key);
      return;
    }
  }
  sync(key);
}

Result<std::unique_ptr<K8sFeed>> K8sFeed::start(Manager& manager, k8s::Stores& stores,
                                                std::string node_name,
                                                bool lb_algorithm_annotation) {
  std::unique_ptr<K8sFeed> feed(
      new K8sFeed(manager, stores, std::move(node_name), lb_algorithm_annotation));
  K8sFeed* f = feed.get();
  auto serviceKey = [](const k8s::EndpointSlice& s) {
    return k8s::objectKey(s.meta.namespace_name, s.service_name);
  };
  auto sliceKey = [](const k8s::EndpointSlice& s) {
    return k8s::objectKey(s.meta.namespace_name, s.meta.name);
  };

  // Handlers first, in batching mode: registering replays every stored object as an add,
  // which only marks its Service dirty; the dirty set is then programmed in one batch, and
  // later changes go straight to the Manager. Nothing that changes meanwhile is missed.
  k8s::Handlers<k8s::Service> sh;
  auto onService = [f](const k8s::Service& s) {
    f->changed(k8s::objectKey(s.meta.namespace_name, s.meta.name));
  };
  sh.on_add = onService;
  sh.on_update = [onService](const k8s::Service&, const k8s::Service& s) { onService(s); };
  sh.on_delete = onService;

  k8s::Handlers<k8s::EndpointSlice> eh;
  auto onSlice = [f, serviceKey, sliceKey](const k8s::EndpointSlice* old_s,
                                           const k8s::EndpointSlice* new_s) {
    std::set<std::string> touched;
    {
      std::lock_guard lock(f->mu_);
      if (old_s && !old_s->service_name.empty()) {
        f->slices_by_service_[serviceKey(*old_s)].erase(sliceKey(*old_s));
        touched.insert(serviceKey(*old_s));
      }
      if (new_s && !new_s->service_name.empty()) {
        f->slices_by_service_[serviceKey(*new_s)].insert(sliceKey(*new_s));
        touched.insert(serviceKey(*new_s));
      }
    }
    for (const auto& k : touched) f->changed(k);
  };
  eh.on_add = [onSlice](const k8s::EndpointSlice& s) { onSlice(nullptr, &s); };
  eh.on_update = [onSlice](const k8s::EndpointSlice& o, const k8s::EndpointSlice& s) {
    onSlice(&o, &s);
  };
  eh.on_delete = [onSlice](const k8s::EndpointSlice& s) { onSlice(&s, nullptr); };

  auto eid = stores.endpoint_slices.addHandlers(std::move(eh));
  f->unregister_.push_back([&stores, eid] { stores.endpoint_slices.removeHandlers(eid); });
  auto sid = stores.services.addHandlers(std::move(sh));
  f->unregister_.push_back([&stores, sid] { stores.services.removeHandlers(sid); });

  std::lock_guard lock(f->mu_);
  f->batching_ = false;
  std::vector<Service> all;
  for (const auto& key : f->dirty_) {
    auto ks = stores.services.get(key);
    if (!ks) continue;  // restored frontends of deleted Services go with pruneRestored()
    auto converted = fromK8s(*ks, f->slicesOf(key), f->node_name_, f->lb_algorithm_annotation_);
    if (!converted.ok()) {
      log()->error("service {} rejected: {}", key, converted.error().message());
      continue;
    }
    if (*converted) all.push_back(std::move(**converted));
  }
  f->dirty_.clear();
  if (auto st = manager.upsertServices(all); !st.ok()) {
    // One bad Service must not keep the others out: fall back to one at a time.
    log()->warn("batched service sync failed ({}); programming one at a time",
                st.error().message());
    for (const auto& svc : all)
      if (auto s1 = manager.upsertService(svc); !s1.ok())
        log()->error("cannot program service {}: {}", svc.name.str(), s1.error().message());
  }
  CILIUM_RETURN_IF_ERROR(manager.pruneRestored());
  log()->info("services synced count={}", all.size());
  return feed;
}

}  // namespace cilium::service
