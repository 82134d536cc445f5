// Pods and Namespaces from a k8s::Source into the endpoint manager (labels, named ports), and
// CiliumEndpoints back to the API server.
#include "agent/endpoint/k8s_feed.h"

#include <algorithm>
#include <cctype>

#include "agent/common/log.h"
#include "agent/datapath/maps.h"
#include "agent/k8s/source.h"
#include "agent/labels/k8s.h"

namespace cilium::endpoint {
namespace {

auto& log() {
  static auto l = cilium::logger("endpoint-k8s");
  return l;
}

}  // namespace

std::vector<policy::NamedPort> namedPortsOf(const k8s::Pod& pod) {
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

K8sFeed::K8sFeed(Manager& manager, policy::Engine& engine, policy::NamedPortTable& ports,
                 k8s::Source& source, K8sFeedOptions options)
    : manager_(manager), engine_(engine), ports_(ports), source_(source), opts_(options) {}

Result<std::unique_ptr<K8sFeed>> K8sFeed::start(Manager& manager, policy::Engine& engine,
                                                policy::NamedPortTable& ports,
                                                k8s::Source& source, K8sFeedOptions options) {
  if (!source.hasSynced())
    return Error(ErrorCode::kFailedPrecondition, "endpoint feed: the source has not synced");
  std::unique_ptr<K8sFeed> feed(new K8sFeed(manager, engine, ports, source, options));
  K8sFeed* f = feed.get();
  if (f->opts_.client != nullptr)
    f->ceps_ = std::make_unique<k8s::CiliumEndpointPublisher>(*f->opts_.client);
  // Pods first: policies that name ports and endpoints restored from the last run need them.
  f->watch();
  manager.setPodResolver([f](const Spec& spec) { return f->resolve(spec); });
  f->started_ = true;
  if (f->ceps_) f->writer_ = std::thread([f] { f->writerLoop(); });
  return feed;
}

K8sFeed::~K8sFeed() {
  manager_.setPodResolver(nullptr);
  for (auto& u : unregister_) u();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

// The pod's labels and named ports as its endpoint takes them; labels the runtime gave the
// endpoint that Kubernetes does not own (`runtime_labels`, any non-k8s source) stay.
Manager::PodMetadata K8sFeed::podMetadata(const k8s::Pod& pod,
                                          const labels::Labels& runtime_labels) const {
  labels::PodInfo info;
  info.labels = pod.meta.labels;
  info.namespace_name = pod.meta.namespace_name;
  if (auto ns = source_.stores().namespaces.get("", pod.meta.namespace_name))
    info.namespace_labels = ns->meta.labels;
  info.service_account = pod.service_account;
  info.cluster = opts_.cluster_name;
  Manager::PodMetadata meta;
  meta.labels = labels::podLabels(info);
  for (const auto& l : runtime_labels)
    if (l.source != labels::Source::kK8s && meta.labels.find(l.key) == nullptr) meta.labels.set(l);
  for (const auto& p : namedPortsOf(pod))
    meta.named_ports.push_back(NamedPort{p.name, p.port, static_cast<uint8_t>(p.protocol)});
  return meta;
}

Result<Manager::PodMetadata> K8sFeed::resolve(const Spec& spec) const {
  auto pod = source_.stores().pods.waitFor(k8s::objectKey(spec.pod_namespace, spec.pod_name),
                                           opts_.pod_wait);
  if (!pod) {
    return makeError(ErrorCode::kUnavailable,
                     "pod {}/{} is not known to the agent yet (source {}); try again later",
                     spec.pod_namespace, spec.pod_name, source_.name());
  }
  return podMetadata(*pod, spec.labels);
}

// The pod's endpoint (when it runs here) takes the pod's current labels and ports.
void K8sFeed::relabel(const k8s::Pod& pod) {
  Ref ref;
  ref.kind = Ref::Kind::kPodName;
  ref.value = pod.meta.namespace_name + "/" + pod.meta.name;
  auto ep = manager_.get(ref);
  if (!ep) return;
  auto meta = podMetadata(pod, ep->spec.labels);
  if (meta.labels == ep->spec.labels && meta.named_ports == ep->spec.named_ports) return;
  auto updated = manager_.updateLabels(ref, meta.labels, meta.named_ports);
  if (!updated.ok()) {
    log()->error("cannot relabel endpoint of pod={} error={}", ref.value,
                 updated.error().message());
    return;
  }
  log()->info("endpoint relabeled pod={} id={} identity={}", ref.value, updated->id(),
              updated->identity);
}

// The pod's named ports go into the cluster's table under its identity labels (egress rules
// take the port numbers of the destination identity's pods).
void K8sFeed::trackPorts(const k8s::Pod& pod, bool deleted) {
  std::string key = pod.meta.namespace_name + "/" + pod.meta.name;
  auto ports = deleted ? std::vector<policy::NamedPort>{} : namedPortsOf(pod);
  bool changed =
      ports.empty()
          ? ports_.removePod(key)
          : ports_.setPod(key, identity_filter_.filter(podMetadata(pod, {}).labels).identity,
                          std::move(ports));
  if (!changed) return;
  auto ids = engine_.namedPortsChanged();
  // An empty list would mean "every endpoint" to requestRegeneration.
  if (!ids.empty()) manager_.requestRegeneration(ids, "named ports changed");
}

void K8sFeed::relabelNamespace(const std::string& ns) {
  for (const auto& p : source_.stores().pods.list()) {
    if (p.meta.namespace_name != ns) continue;
    trackPorts(p);  // namespace labels are identity labels
    relabel(p);
  }
}

void K8sFeed::watch() {
  auto& pods = source_.stores().pods;
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
  unregister_.push_back([&pods, id] { pods.removeHandlers(id); });

  auto& namespaces = source_.stores().namespaces;
  k8s::Handlers<k8s::Namespace> nh;
  nh.on_update = [this](const k8s::Namespace& old_ns, const k8s::Namespace& ns) {
    if (old_ns.meta.labels != ns.meta.labels) relabelNamespace(ns.meta.name);
  };
  nh.on_add = [this](const k8s::Namespace& ns) {
    // Before the first sync every pod is relabeled anyway (the pods' own on_add).
    if (started_) relabelNamespace(ns.meta.name);
  };
  nh.on_delete = [this](const k8s::Namespace& ns) { relabelNamespace(ns.meta.name); };
  auto nid = namespaces.addHandlers(std::move(nh));
  unregister_.push_back([&namespaces, nid] { namespaces.removeHandlers(nid); });
}

void K8sFeed::publishEndpoints() {
  std::map<std::string, k8s::EndpointState> now;
  const std::string node_ip = opts_.node_ip ? opts_.node_ip() : std::string();
  for (const auto& ep : manager_.list()) {
    if (ep.spec.pod_name.empty()) continue;
    k8s::EndpointState st;
    st.pod_namespace = ep.spec.pod_namespace;
    st.pod_name = ep.spec.pod_name;
    st.endpoint_id = ep.id();
    st.identity = ep.identity;
    st.identity_labels = ep.identity_labels.toStrings();
    if (ep.spec.ipv4) st.ipv4 = ep.spec.ipv4->toString();
    if (ep.spec.ipv6) st.ipv6 = ep.spec.ipv6->toString();
    st.node_ip = node_ip;
    st.ingress_enforcing = ep.ingress_enforced;
    st.egress_enforcing = ep.egress_enforced;
    st.state = std::string(stateName(ep.state));
    now[ep.spec.podRef()] = std::move(st);
  }
  for (const auto& [key, st] : now) {
    auto it = published_.find(key);
    if (it != published_.end() && it->second == st) continue;
    if (auto s = ceps_->publish(st); !s.ok()) {
      log()->warn("cannot write CiliumEndpoint pod={} error={}", key, s.error().message());
      continue;  // retried next round
    }
    published_[key] = st;
  }
  for (auto it = published_.begin(); it != published_.end();) {
    if (now.count(it->first) != 0) {
      ++it;
      continue;
    }
    if (auto s = ceps_->remove(it->second.pod_namespace, it->second.pod_name); !s.ok()) {
      log()->warn("cannot delete CiliumEndpoint pod={} error={}", it->first, s.error().message());
      ++it;
      continue;
    }
    it = published_.erase(it);
  }
}

void K8sFeed::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void K8sFeed::writerLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    kicked_ = false;
    lock.unlock();
    publishEndpoints();
    lock.lock();
    cv_.wait_for(lock, opts_.publish_interval, [this] { return stopping_ || kicked_; });
  }
}

}  // namespace cilium::endpoint
