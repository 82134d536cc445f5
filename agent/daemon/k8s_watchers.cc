// The Kubernetes watchers: cluster state (policies, pods, namespaces) into the policy engine and
// the endpoint manager, and agent state back into the API server.
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
#include "agent/labels/k8s.h"
#include "agent/policy/decode.h"
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

  // Until the first batch is imported, changes are collected here (latest state per object,
  // nullopt = deleted) instead of being imported one by one: a sync of 1,000 policies is one
  // import and one regeneration, not 1,000.
  std::mutex batch_mu;  // held across every import so a batch and later changes stay in order
  bool batching = true;
  struct Pending {
    k8s::ObjectMeta meta;
    std::optional<nlohmann::json> raw;
  };
  std::map<PolicyKey, Pending> pending;
  // What each object's rules were last made from (imported or rejected). Updates that change
  // nothing of it — the status this agent and others write, resourceVersion, managedFields —
  // are ignored; otherwise every status write would come back as a change and be written again.
  std::map<PolicyKey, nlohmann::json> processed;

  static nlohmann::json policyContent(const nlohmann::json& raw) {
    nlohmann::json c = nlohmann::json::object();
    if (!raw.is_object()) return raw;
    for (const char* k : {"spec", "specs"})
      if (auto it = raw.find(k); it != raw.end()) c[k] = *it;
    if (auto m = raw.find("metadata"); m != raw.end() && m->is_object()) {
      for (const char* k : {"name", "namespace", "uid", "labels"})
        if (auto it = m->find(k); it != m->end()) c["metadata"][k] = *it;
    }
    return c;
  }

  void reject(std::string_view kind, const k8s::ObjectMeta& meta, const Error& e) {
    log()->error("policy rejected kind={} namespace={} name={} error={}", kind, meta.namespace_name,
                 meta.name, e.message());
    queueStatus(kind, meta, k8s::PolicyStatus{false, e.message(), 0});
  }

  // The object's rules, decoded; a rejection is reported.
  std::optional<std::vector<policy::PolicyObject>> decode(std::string_view kind,
                                                          const k8s::ObjectMeta& meta,
                                                          nlohmann::json raw) {
    // The namespace the API server would have defaulted: a namespaced policy without one in
    // its manifest must not turn into a cluster-wide rule.
    if (!meta.namespace_name.empty() && raw.is_object()) {
      auto& m = raw["metadata"];
      if (m.is_object() && !m.contains("namespace")) m["namespace"] = meta.namespace_name;
    }
    auto objects = policy::decodePolicyJson(raw);
    if (!objects.ok()) {
      reject(kind, meta, objects.error());
      return std::nullopt;
    }
    return std::move(*objects);
  }

  // Imports (or deletes) one object's rules; call with batch_mu held.
  void importOne(std::string_view kind, const k8s::ObjectMeta& meta,
                 std::optional<nlohmann::json> raw) {
    if (!raw) return deleteLocked(kind, meta.namespace_name, meta.name);
    auto objects = decode(kind, meta, std::move(*raw));
    if (!objects) return;
    std::lock_guard lock(cp.policyMutex());
    auto res = cp.policy().importObjects(std::move(*objects));
    if (!res.ok()) return reject(kind, meta, res.error());
    for (const auto& w : res->warnings)
      log()->warn("policy kind={} namespace={} name={} warning={}", kind, meta.namespace_name,
                  meta.name, w);
    // The source replays every object after a restart: persistence may trail a little.
    cp.policyApplied(res->revision, res->affected_endpoints, false);
    log()->info("policy imported kind={} namespace={} name={} revision={}", kind,
                meta.namespace_name, meta.name, res->revision);
    queueStatus(kind, meta, k8s::PolicyStatus{true, "", res->revision});
  }

  void deleteLocked(std::string_view kind, const std::string& ns, const std::string& name) {
    std::lock_guard lock(cp.policyMutex());
    auto res = cp.policy().deleteObject(kind, ns, name);
    if (!res.ok()) {
      // Never imported (it was rejected): nothing to remove.
      if (res.error().code() != ErrorCode::kNotFound)
        log()->error("policy delete failed kind={} namespace={} name={} error={}", kind, ns, name,
                     res.error().message());
      return;
    }
    cp.policyApplied(res->revision, res->affected_endpoints, false);
    log()->info("policy deleted kind={} namespace={} name={} revision={}", kind, ns, name,
                res->revision);
  }

  void changed(std::string_view kind, const k8s::ObjectMeta& meta,
               std::optional<nlohmann::json> raw) {
    std::lock_guard lock(batch_mu);
    PolicyKey key{std::string(kind), meta.namespace_name, meta.name};
    if (batching) {
      pending[key] = Pending{meta, std::move(raw)};
      return;
    }
    if (!remember(key, raw)) return;
    importOne(kind, meta, std::move(raw));
  }

  // Records what `raw` (nullopt: deleted) makes of the object's rules; false when that is what
  // was processed last (nothing to do). Call with batch_mu held.
  bool remember(const PolicyKey& key, const std::optional<nlohmann::json>& raw) {
    if (!raw) {
      processed.erase(key);
      return true;  // a delete always goes to the engine (kNotFound there is harmless)
    }
    auto content = policyContent(*raw);
    auto it = processed.find(key);
    if (it != processed.end() && it->second == content) return false;
    processed[key] = std::move(content);
    return true;
  }

  // Imports what was collected while batching in one revision; when the engine refuses the
  // batch (one object it cannot take), falls back to one object at a time so the others get in.
  void flushBatch() {
    std::lock_guard lock(batch_mu);
    batching = false;
    std::vector<policy::PolicyObject> all;
    std::vector<std::pair<PolicyKey, Pending>> imported;
    for (auto& [key, p] : pending) {
      const auto& kind = std::get<0>(key);
      remember(key, p.raw);
      if (!p.raw) {
        deleteLocked(kind, p.meta.namespace_name, p.meta.name);
        continue;
      }
      auto objects = decode(kind, p.meta, *p.raw);
      if (!objects) continue;
      for (auto& o : *objects) all.push_back(std::move(o));
      imported.emplace_back(key, std::move(p));
    }
    pending.clear();
    if (all.empty()) return;
    Result<policy::ImportResult> res = Error(ErrorCode::kInternal, "not imported");
    {
      std::lock_guard plock(cp.policyMutex());
      res = cp.policy().importObjects(std::move(all));
      if (res.ok()) cp.policyApplied(res->revision, res->affected_endpoints, false);
    }
    if (!res.ok()) {
      log()->warn("policy batch refused ({}); importing one object at a time",
                  res.error().message());
      for (auto& [key, p] : imported) importOne(std::get<0>(key), p.meta, std::move(p.raw));
      return;
    }
    for (const auto& w : res->warnings) log()->warn("policy warning={}", w);
    for (const auto& [key, p] : imported)
      queueStatus(std::get<0>(key), p.meta, k8s::PolicyStatus{true, "", res->revision});
    log()->info("policies imported objects={} revision={}", imported.size(), res->revision);
  }

  template <typename T>
  void watchPolicies(k8s::Store<T>& store, std::string_view kind) {
    k8s::Handlers<T> h;
    h.on_add = [this, kind](const T& o) { changed(kind, o.meta, o.raw); };
    h.on_update = [this, kind](const T&, const T& o) { changed(kind, o.meta, o.raw); };
    h.on_delete = [this, kind](const T& o) { changed(kind, o.meta, std::nullopt); };
    auto id = store.addHandlers(std::move(h));
    unregister.push_back([&store, id] { store.removeHandlers(id); });
  }

  // Rules restored from the last run whose object no longer exists (deleted while the agent
  // was down) are removed once the stores hold the full state.
  void pruneVanishedPolicies() {
    auto& stores = source.stores();
    std::set<PolicyKey> in_engine;
    for (const auto& rule : cp.policy().rulesJson()) {
      auto it = rule.find("labels");
      if (it == rule.end()) continue;
      auto labels = labels::Labels::fromJson(*it, "labels");
      if (!labels.ok()) continue;
      const auto* from = labels->find(labels::kPolicyDerivedFromLabel);
      const auto* name = labels->find(labels::kPolicyNameLabel);
      if (from == nullptr || name == nullptr) continue;
      const auto* ns = labels->find(labels::kPolicyNamespaceLabel);
      in_engine.insert({from->value, ns ? ns->value : "", name->value});
    }
    for (const auto& [kind, ns, name] : in_engine) {
      bool present = true;
      if (kind == policy::kKindKnp)
        present = stores.network_policies.get(ns, name).has_value();
      else if (kind == policy::kKindCnp)
        present = stores.cilium_network_policies.get(ns, name).has_value();
      else if (kind == policy::kKindCcnp)
        present = stores.cilium_clusterwide_network_policies.get("", name).has_value();
      if (!present) {
        log()->info("policy object gone while the agent was down kind={} namespace={} name={}",
                    kind, ns, name);
        std::lock_guard lock(batch_mu);
        deleteLocked(kind, ns, name);
      }
    }
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

  void namedPortsChanged(const std::vector<policy::NamedPort>& removed,
                         const std::vector<policy::NamedPort>& added) {
    if (!cp.namedPorts().update(removed, added)) return;
    auto ids = cp.policy().namedPortsChanged();
    // An empty list would mean "every endpoint" to requestRegeneration.
    if (!ids.empty()) cp.endpoints().requestRegeneration(ids, "named ports changed");
  }

  void watchPods() {
    auto& pods = source.stores().pods;
    k8s::Handlers<k8s::Pod> h;
    h.on_add = [this](const k8s::Pod& p) {
      namedPortsChanged({}, clusterPorts(p));
      relabel(p);
    };
    h.on_update = [this](const k8s::Pod& old_pod, const k8s::Pod& p) {
      namedPortsChanged(clusterPorts(old_pod), clusterPorts(p));
      if (old_pod.meta.labels != p.meta.labels || old_pod.service_account != p.service_account ||
          old_pod.ports != p.ports)
        relabel(p);
    };
    h.on_delete = [this](const k8s::Pod& p) { namedPortsChanged(clusterPorts(p), {}); };
    auto id = pods.addHandlers(std::move(h));
    unregister.push_back([&pods, id] { pods.removeHandlers(id); });

    auto& namespaces = source.stores().namespaces;
    k8s::Handlers<k8s::Namespace> nh;
    auto relabelNamespace = [this](const std::string& ns) {
      for (const auto& p : source.stores().pods.list())
        if (p.meta.namespace_name == ns) relabel(p);
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
  w->watchPolicies(stores.network_policies, policy::kKindKnp);
  w->watchPolicies(stores.cilium_network_policies, policy::kKindCnp);
  w->watchPolicies(stores.cilium_clusterwide_network_policies, policy::kKindCcnp);
  w->flushBatch();
  w->pruneVanishedPolicies();
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
