// The Kubernetes watchers: cluster state (pods, namespaces) into the endpoint manager, policies
// through policy::K8sFeed, and agent state back into the API server.
#include "agent/daemon/k8s_watchers.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/daemon/control_plane.h"
#include "agent/endpoint/manager.h"
#include "agent/identity/allocator.h"
#include "agent/k8s/crd_identity.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/source.h"
#include "agent/labels/filter.h"
#include "agent/labels/k8s.h"
#include "agent/policy/decode.h"
#include "agent/policy/k8s_feed.h"
#include "agent/policy/policy.h"

namespace cilium::daemon {
namespace {

auto& log() {
  static auto l = cilium::logger("k8s-watcher");
  return l;
}

using PolicyKey = std::tuple<std::string, std::string, std::string>;  // kind, namespace, name

std::vector<policy::NamedPort> clusterPorts(const k8s::Pod& pod) {
  std::vector<policy::NamedPort> out;
  for (const auto& p : pod.ports) {
    if (p.name.empty()) continue;
    std::string name = p.name;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    policy::Protocol proto = p.protocol == "UDP"    ? policy::Protocol::kUdp
                             : p.protocol == "SCTP" ? policy::Protocol::kSctp
                                                    : policy::Protocol::kTcp;
    out.push_back(policy::NamedPort{std::move(name), p.port, proto});
  }
  return out;
}

}  // namespace

struct K8sWatchers::Impl {
  ControlPlane& cp;
  k8s::Source& source;
  K8sWatchersOptions opts;
  std::unique_ptr<k8s::CiliumEndpointPublisher> ceps;
  std::unique_ptr<k8s::PolicyStatusWriter> status_writer;
  std::unique_ptr<policy::K8sFeed> policies;

  std::vector<std::function<void()>> unregister;  // one per handler set

  // The writer thread: policy status and CiliumEndpoints go to the API server from here, never
  // from a handler (a slow apiserver must not hold up policy).
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::map<PolicyKey, k8s::PolicyStatus> pending_status;
  std::thread writer;
  std::map<std::string, k8s::EndpointState> published;  // writer thread only

  Impl(ControlPlane& c, k8s::Source& s, K8sWatchersOptions o)
      : cp(c), source(s), opts(std::move(o)) {}

  ~Impl() {
    policies.reset();
    for (auto& u : unregister) u();
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (writer.joinable()) writer.join();
  }

  // --- policy ----------------------------------------------------------------------------------

  void queueStatus(std::string_view kind, const k8s::ObjectMeta& meta, k8s::PolicyStatus st) {
    // Only Cilium's own kinds have a status subresource for per-node status.
    if (!status_writer || kind == policy::kKindKnp) return;
    {
      std::lock_guard lock(mu);
      pending_status[{std::string(kind), meta.namespace_name, meta.name}] = std::move(st);
    }
    cv.notify_all();
  }

  // --- pods ------------------------------------------------------------------------------------

  // The pod's labels and named ports as its endpoint takes them; labels the runtime gave the
  // endpoint that Kubernetes does not own (`runtime_labels`, any non-k8s source) stay.
  endpoint::Manager::PodMetadata podMetadata(const k8s::Pod& pod,
                                             const labels::Labels& runtime_labels) const {
    labels::PodInfo info;
    info.labels = pod.meta.labels;
    info.namespace_name = pod.meta.namespace_name;
    if (auto ns = source.stores().namespaces.get("", pod.meta.namespace_name))
      info.namespace_labels = ns->meta.labels;
    info.service_account = pod.service_account;
    info.cluster = opts.cluster_name;
    endpoint::Manager::PodMetadata meta;
    meta.labels = labels::podLabels(info);
    for (const auto& l : runtime_labels)
      if (l.source != labels::Source::kK8s && meta.labels.find(l.key) == nullptr)
        meta.labels.set(l);
    for (const auto& p : clusterPorts(pod))
      meta.named_ports.push_back(
          endpoint::NamedPort{p.name, p.port, static_cast<uint8_t>(p.protocol)});
    return meta;
  }

  Result<endpoint::Manager::PodMetadata> resolve(const endpoint::Spec& spec) const {
    auto pod = source.stores().pods.waitFor(k8s::objectKey(spec.pod_namespace, spec.pod_name),
                                            opts.pod_wait);
    if (!pod) {
      return makeError(ErrorCode::kUnavailable,
                       "pod {}/{} is not known to the agent yet (source {}); try again later",
                       spec.pod_namespace, spec.pod_name, source.name());
    }
    return podMetadata(*pod, spec.labels);
  }

  // The pod's endpoint (when it runs here) takes the pod's current labels and ports.
  void relabel(const k8s::Pod& pod) {
    endpoint::Ref ref;
    ref.kind = endpoint::Ref::Kind::kPodName;
    ref.value = pod.meta.namespace_name + "/" + pod.meta.name;
    auto ep = cp.endpoints().get(ref);
    if (!ep) return;
    auto meta = podMetadata(pod, ep->spec.labels);
    if (meta.labels == ep->spec.labels && meta.named_ports == ep->spec.named_ports) return;
    auto updated = cp.endpoints().updateLabels(ref, meta.labels, meta.named_ports);
    if (!updated.ok()) {
      log()->error("cannot relabel endpoint of pod={} error={}", ref.value,
                   updated.error().message());
      return;
    }
    log()->info("endpoint relabeled pod={} id={} identity={}", ref.value, updated->id(),
                updated->identity);
  }

  // The endpoint manager's filter (its default): a pod's identity labels, wherever it runs.
  const labels::LabelFilter identity_filter = labels::LabelFilter::defaults();

  // The pod's named ports go into the cluster's table under its identity labels (egress rules
  // take the port numbers of the destination identity's pods).
  void trackPorts(const k8s::Pod& pod, bool deleted = false) {
    std::string key = pod.meta.namespace_name + "/" + pod.meta.name;
    auto ports = deleted ? std::vector<policy::NamedPort>{} : clusterPorts(pod);
    bool changed = ports.empty()
                       ? cp.namedPorts().removePod(key)
                       : cp.namedPorts().setPod(
                             key, identity_filter.filter(podMetadata(pod, {}).labels).identity,
                             std::move(ports));
    if (!changed) return;
    auto ids = cp.policy().namedPortsChanged();
    // An empty list would mean "every endpoint" to requestRegeneration.
    if (!ids.empty()) cp.endpoints().requestRegeneration(ids, "named ports changed");
  }

  void watchPods() {
    auto& pods = source.stores().pods;
    k8s::Handlers<k8s::Pod> h;
    h.on_add = [this](const k8s::Pod& p) {
      trackPorts(p);
      relabel(p);
    };
    h.on_update = [this](const k8s::Pod& old_pod, const k8s::Pod& p) {
      trackPorts(p);
      if (old_pod.meta.labels != p.meta.labels || old_pod.service_account != p.service_account ||
          old_pod.ports != p.ports)
        relabel(p);
    };
    h.on_delete = [this](const k8s::Pod& p) { trackPorts(p, true); };
    auto id = pods.addHandlers(std::move(h));
    unregister.push_back([&pods, id] { pods.removeHandlers(id); });

    auto& namespaces = source.stores().namespaces;
    k8s::Handlers<k8s::Namespace> nh;
    auto relabelNamespace = [this](const std::string& ns) {
      for (const auto& p : source.stores().pods.list()) {
        if (p.meta.namespace_name != ns) continue;
        trackPorts(p);  // namespace labels are identity labels
        relabel(p);
      }
    };
    nh.on_update = [relabelNamespace](const k8s::Namespace& old_ns, const k8s::Namespace& ns) {
      if (old_ns.meta.labels != ns.meta.labels) relabelNamespace(ns.meta.name);
    };
    nh.on_add = [this, relabelNamespace](const k8s::Namespace& ns) {
      // Before the first sync every pod is relabeled anyway (watchPods' own on_add).
      if (started) relabelNamespace(ns.meta.name);
    };
    nh.on_delete = [relabelNamespace](const k8s::Namespace& ns) { relabelNamespace(ns.meta.name); };
    auto nid = namespaces.addHandlers(std::move(nh));
    unregister.push_back([&namespaces, nid] { namespaces.removeHandlers(nid); });
  }
  std::atomic<bool> started{false};

  // --- identities of the cluster -------------------------------------------------------------

  void watchIdentities() {
    auto& store = source.stores().cilium_identities;
    k8s::Handlers<k8s::CiliumIdentity> h;
    h.on_add = [this](const k8s::CiliumIdentity& ci) { remoteIdentity(ci); };
    h.on_update = [this](const k8s::CiliumIdentity&, const k8s::CiliumIdentity& ci) {
      remoteIdentity(ci);
    };
    h.on_delete = [this](const k8s::CiliumIdentity& ci) {
      if (auto id = identityNumber(ci)) cp.identities().removeRemote(*id);
    };
    auto id = store.addHandlers(std::move(h));
    unregister.push_back([&store, id] { store.removeHandlers(id); });
  }
  static std::optional<identity::NumericIdentity> identityNumber(const k8s::CiliumIdentity& ci) {
    char* end = nullptr;
    unsigned long v = std::strtoul(ci.meta.name.c_str(), &end, 10);
    if (ci.meta.name.empty() || *end != '\0' || v == 0 || v > UINT32_MAX) return std::nullopt;
    return static_cast<identity::NumericIdentity>(v);
  }
  void remoteIdentity(const k8s::CiliumIdentity& ci) {
    auto id = identityNumber(ci);
    auto labels = k8s::labelsOfSecurityLabels(ci.security_labels);
    if (!id || !labels.ok()) {
      log()->warn("skipping CiliumIdentity name={}: not a numeric identity with valid labels",
                  ci.meta.name);
      return;
    }
    cp.identities().upsertRemote(identity::Identity{*id, std::move(*labels)});
  }

  // --- writes to the API server ----------------------------------------------------------------

  void publishEndpoints() {
    std::map<std::string, k8s::EndpointState> now;
    for (const auto& ep : cp.endpoints().list()) {
      if (ep.spec.pod_name.empty()) continue;
      k8s::EndpointState st;
      st.pod_namespace = ep.spec.pod_namespace;
      st.pod_name = ep.spec.pod_name;
      st.endpoint_id = ep.id();
      st.identity = ep.identity;
      st.identity_labels = ep.identity_labels.toStrings();
      if (ep.spec.ipv4 != 0) st.ipv4 = datapath::formatIpv4(ep.spec.ipv4);
      st.ingress_enforcing = ep.ingress_enforced;
      st.egress_enforcing = ep.egress_enforced;
      st.state = std::string(endpoint::stateName(ep.state));
      now[ep.spec.podRef()] = std::move(st);
    }
    for (const auto& [key, st] : now) {
      auto it = published.find(key);
      if (it != published.end() && it->second == st) continue;
      if (auto s = ceps->publish(st); !s.ok()) {
        log()->warn("cannot write CiliumEndpoint pod={} error={}", key, s.error().message());
        continue;  // retried next round
      }
      published[key] = st;
    }
    for (auto it = published.begin(); it != published.end();) {
      if (now.count(it->first) != 0) {
        ++it;
        continue;
      }
      if (auto s = ceps->remove(it->second.pod_namespace, it->second.pod_name); !s.ok()) {
        log()->warn("cannot delete CiliumEndpoint pod={} error={}", it->first, s.error().message());
        ++it;
        continue;
      }
      it = published.erase(it);
    }
  }

  void writerLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      auto statuses = std::move(pending_status);
      pending_status.clear();
      lock.unlock();
      for (const auto& [key, st] : statuses) {
        const auto& [kind, ns, name] = key;
        auto s = status_writer->write(kind, ns, name, st);
        if (!s.ok() && s.error().code() != ErrorCode::kNotFound)
          log()->warn("cannot write policy status kind={} namespace={} name={} error={}", kind, ns,
                      name, s.error().message());
      }
      publishEndpoints();
      lock.lock();
      cv.wait_for(lock, opts.publish_interval,
                  [this] { return stopping || !pending_status.empty(); });
    }
  }
};

std::function<Result<std::unique_ptr<identity::Backend>>()> crdIdentityBackend(
    k8s::Client& client, k8s::Source& source) {
  return [&client, &source]() -> Result<std::unique_ptr<identity::Backend>> {
    if (!source.stores().cilium_identities.hasSynced())
      return Error(ErrorCode::kFailedPrecondition,
                   "identity-allocation-mode=crd: CiliumIdentity objects are not synced");
    return std::unique_ptr<identity::Backend>(
        std::make_unique<k8s::CrdIdentityBackend>(client, source.stores().cilium_identities));
  };
}

Result<std::unique_ptr<K8sWatchers>> K8sWatchers::start(ControlPlane& cp, k8s::Source& source,
                                                        K8sWatchersOptions options) {
  if (!source.hasSynced())
    return Error(ErrorCode::kFailedPrecondition, "k8s watchers: the source has not synced");
  auto impl = std::make_unique<Impl>(cp, source, std::move(options));
  Impl* w = impl.get();
  if (w->opts.client != nullptr) {
    w->ceps = std::make_unique<k8s::CiliumEndpointPublisher>(*w->opts.client);
    w->status_writer =
        std::make_unique<k8s::PolicyStatusWriter>(*w->opts.client, w->opts.node_name);
  }
  if (w->opts.crd_identities) w->watchIdentities();
  // Pods first: policies that name ports and endpoints restored from the last run need them.
  w->watchPods();
  cp.endpoints().setPodResolver([w](const endpoint::Spec& spec) { return w->resolve(spec); });
  auto& stores = source.stores();
  CILIUM_ASSIGN_OR_RETURN(
      w->policies,
      policy::K8sFeed::start(cp.clusterPolicy(), stores,
                             [w](std::string_view kind, const k8s::ObjectMeta& meta,
                                 const k8s::PolicyStatus& st) { w->queueStatus(kind, meta, st); }));
  w->started = true;
  if (w->opts.client != nullptr) w->writer = std::thread([w] { w->writerLoop(); });
  log()->info("watching source={} pods={} policies={}", source.name(), stores.pods.size(),
              stores.network_policies.size() + stores.cilium_network_policies.size() +
                  stores.cilium_clusterwide_network_policies.size());
  return std::unique_ptr<K8sWatchers>(new K8sWatchers(std::move(impl)));
}

K8sWatchers::K8sWatchers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

K8sWatchers::~K8sWatchers() {
  if (impl_) impl_->cp.endpoints().setPodResolver(nullptr);
}

}  // namespace cilium::daemon
