// The agent's Kubernetes (or manifests-directory) components.
#include "agent/daemon/k8s_component.h"

#include <cstdlib>

#include "agent/common/log.h"
#include "agent/endpoint/k8s_feed.h"
#include "agent/hubble/resolver.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/cluster_feed.h"
#include "agent/k8s/client.h"
#include "agent/k8s/crd_identity.h"
#include "agent/k8s/manifests.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/source.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/node/k8s_feed.h"
#include "agent/policy/k8s_feed.h"
#include "agent/policy/policy.h"
#include "agent/service/component.h"
#include "agent/service/k8s_feed.h"

namespace cilium::daemon {
namespace {

auto& log() {
  static auto l = cilium::logger("k8s");
  return l;
}

// host:port of the API server URL, for the call metric's `host` label.
std::string hostOf(const std::string& server) {
  auto start = server.find("://");
  std::string rest = start == std::string::npos ? server : server.substr(start + 3);
  return rest.substr(0, rest.find('/'));
}

Result<k8s::ClientConfig> serverConfig(const Config& cfg) {
  k8s::ClientConfig cc;
  if (!cfg.k8s_kubeconfig_path.empty()) {
    CILIUM_ASSIGN_OR_RETURN(cc, k8s::loadKubeconfig(cfg.k8s_kubeconfig_path));
    if (!cfg.k8s_api_server.empty()) cc.server = cfg.k8s_api_server;
    return cc;
  }
  if (!cfg.k8s_api_server.empty()) {
    // Cilium's behaviour: an explicit URL without a kubeconfig still picks up the service
    // account's token and CA when the agent runs in a pod.
    auto in_cluster = k8s::inClusterConfig([](const char* k) { return std::getenv(k); });
    if (in_cluster.ok()) cc = std::move(*in_cluster);
    cc.server = cfg.k8s_api_server;
    return cc;
  }
  return k8s::inClusterConfig([](const char* k) { return std::getenv(k); });
}

// Where the API server is, and how fast the agent may call it.
Result<k8s::ClientConfig> clientConfig(const Config& cfg) {
  CILIUM_ASSIGN_OR_RETURN(auto cc, serverConfig(cfg));
  cc.qps = cfg.k8s_client_qps;
  cc.burst = static_cast<int>(cfg.k8s_client_burst);
  return cc;
}

}  // namespace

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

K8sSourceComponent::K8sSourceComponent() = default;
K8sSourceComponent::~K8sSourceComponent() { stop(); }

Status K8sSourceComponent::start(Host& daemon) {
  Config cfg = daemon.config<Config>();
  const bool in_cluster = std::getenv("KUBERNETES_SERVICE_HOST") != nullptr;
  const bool api = !cfg.k8s_kubeconfig_path.empty() || !cfg.k8s_api_server.empty() ||
                   (in_cluster && cfg.manifests_dir.empty());
  if (api && !cfg.manifests_dir.empty())
    return Error(ErrorCode::kInvalidArgument,
                 "manifests-dir cannot be combined with k8s-kubeconfig-path or k8s-api-server: "
                 "choose one source of cluster state");
  if (!api && cfg.manifests_dir.empty()) {
    log()->info(
        "no cluster state source configured: policy and endpoints come from the REST "
        "API only");
    return okStatus();
  }
  auto timeout = std::chrono::seconds(cfg.k8s_sync_timeout);
  std::string where = "manifests " + cfg.manifests_dir;
  if (api) {
    CILIUM_ASSIGN_OR_RETURN(auto cc, clientConfig(cfg));
    where = cc.server;
    CILIUM_ASSIGN_OR_RETURN(client_, k8s::Client::create(std::move(cc)));
    source_ = std::make_unique<k8s::ApiSource>(*client_);
  } else {
    k8s::ManifestOptions mo;
    // What was in force survives a restart, whatever the files say then (docs/kubernetes.md).
    mo.state_file = cfg.stateFile("manifests.json");
    source_ = std::make_unique<k8s::ManifestSource>(cfg.manifests_dir, std::move(mo));
  }
  CILIUM_RETURN_IF_ERROR(source_->start());
  auto t0 = std::chrono::steady_clock::now();
  if (!source_->waitForSync(timeout)) {
    std::string missing = source_->name();
    source_->stop();
    return makeError(ErrorCode::kDeadlineExceeded,
                     "no full state from {} within k8s-sync-timeout={}s", missing,
                     cfg.k8s_sync_timeout);
  }
  log()->info(
      "source synced source={} took_ms={}", source_->name(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  addStatus(daemon, where);
  return okStatus();
}

void K8sSourceComponent::addStatus(Host& daemon, const std::string& where) {
  // Cilium's "Kubernetes: Ok" and "Kubernetes APIs" lines of cilium-dbg status.
  std::vector<std::string> apis;
  for (const auto& r : k8s::allResources())
    apis.push_back(fmt::format("{}::{}", r.apiVersion(), r.kind));
  k8s::Source* source = source_.get();
  daemon.addStatusProvider([source, where, apis](api::StatusResponse& s) {
    const bool synced = source->hasSynced();
    s.kubernetes = api::K8sStatus{synced ? api::StatusState::kOk : api::StatusState::kWarning,
                                  synced ? where : where + " (not synced)", apis};
  });
}

void K8sSourceComponent::stop() {
  if (source_) source_->stop();
}

K8sComponent::K8sComponent(K8sSourceComponent& source, ControlPlaneComponent& control_plane,
                           service::ServiceComponent* services,
                           ObservabilityComponent* observability)
    : source_(source),
      control_plane_(control_plane),
      services_(services),
      observability_(observability) {}

// Daemon::stop() has stopped it; by destruction time the control plane may be gone.
K8sComponent::~K8sComponent() = default;

Status K8sComponent::start(Host& daemon) {
  Status st = startWatching(daemon);
  if (!st.ok()) stop();  // the Daemon stops only the components that started
  return st;
}

Status K8sComponent::startWatching(Host& daemon) {
  k8s::Source* source = source_.source();
  if (source == nullptr) return okStatus();
  ControlPlane* cp = control_plane_.controlPlane();
  if (cp == nullptr)
    return Error(ErrorCode::kFailedPrecondition, "k8s: the control plane is not running");
  Config cfg = daemon.config<Config>();
  k8s::Client* client = source_.client();
  // Other nodes' CiliumIdentity objects are followed by the control plane (before its restore).
  CILIUM_ASSIGN_OR_RETURN(nodes_, node::K8sFeed::start(cp->nodes(), source->stores()));
  if (client != nullptr) {
    // Every other node's endpoints, addresses and pod CIDRs (one node needs none of it: the
    // manifests source is a single node).
    ipcache::ClusterFeedOptions co;
    co.node_name = cfg.node_name;
    co.tunnel = cfg.routing_mode == "tunnel";
    CILIUM_ASSIGN_OR_RETURN(cluster_, ipcache::ClusterFeed::start(cp->ipcache(), cp->nodes(),
                                                                  source->stores(), co));
    // Everything the synced stores hold is in the ipcache now.
    cp->ipcacheFeedSynced("k8s");
    // Hubble names other nodes' pods from their CiliumEndpoints.
    if (observability_ != nullptr) {
      ipcache::ClusterFeed* feed = cluster_.get();
      observability_->setRemoteEndpoints(
          [feed](const IpAddr& ip) -> std::shared_ptr<const hubble::EndpointInfo> {
            auto pod = feed->podByIp(ip);
            if (!pod) return nullptr;
            auto info = std::make_shared<hubble::EndpointInfo>();
            info->identity = pod->identity;
            info->pod_name = pod->name;
            info->pod_namespace = pod->namespace_name;
            return info;
          });
      remote_names_ = true;
    }
  }
  // Pods first: policies that name ports and endpoints restored from the last run need them.
  endpoint::K8sFeedOptions eo;
  eo.cluster_name = cfg.cluster_name;
  eo.client = client;
  // status.networking.node: where other nodes tunnel to for this node's pods.
  node::Manager* nodes = &cp->nodes();
  eo.node_ip = [nodes, name = cfg.node_name]() -> std::string {
    auto n = nodes->get(name);
    if (!n) return {};
    auto ip = n->tunnelAddress();
    return ip ? ip->toString() : std::string();
  };
  CILIUM_ASSIGN_OR_RETURN(endpoints_, endpoint::K8sFeed::start(cp->endpoints(), cp->policy(),
                                                               cp->namedPorts(), *source, eo));
  if (client != nullptr) {
    // A local endpoint added, removed or relabelled changes the ipcache: its CiliumEndpoint is
    // written at once, so other nodes learn the pod's identity within an API round trip.
    endpoint::K8sFeed* feed = endpoints_.get();
    ipcache_subscription_ =
        cp->ipcache().subscribe([feed](const std::vector<ipcache::Change>&) { feed->kick(); });
  }
  policy::StatusListener on_status;
  if (client != nullptr) {
    policy_status_ = std::make_unique<k8s::PolicyStatusPublisher>(*client, cfg.node_name);
    k8s::PolicyStatusPublisher* publisher = policy_status_.get();
    on_status = [publisher](std::string_view kind, const k8s::ObjectMeta& meta,
                            const k8s::PolicyStatus& st) { publisher->queue(kind, meta, st); };
  }
  CILIUM_ASSIGN_OR_RETURN(policies_,
                          policy::K8sFeed::start(cp->clusterPolicy(), source->stores(), on_status));
  log()->info("watching source={} pods={} policies={}", source->name(),
              source->stores().pods.size(),
              source->stores().network_policies.size() +
                  source->stores().cilium_network_policies.size() +
                  source->stores().cilium_clusterwide_network_policies.size());
  if (services_ != nullptr && services_->manager() != nullptr) {
    CILIUM_ASSIGN_OR_RETURN(
        feed_, service::K8sFeed::start(*services_->manager(), source->stores(), cfg.node_name,
                                       cfg.bpf_lb_algorithm_annotation));
  }
  if (k8s::Client* client = source_.client(); client != nullptr && observability_ != nullptr) {
    if (metrics::AgentMetrics* m = observability_->agentMetrics()) {
      std::string host = hostOf(client->config().server);
      auto* family = m->k8s_client_api_calls;
      client->calls().subscribe([family, host](const k8s::CallCounter::Key& key, uint64_t n) {
        family->with({host, std::get<0>(key), std::get<2>(key)}).inc(static_cast<double>(n));
      });
      subscribed_ = true;
    }
  }
  return okStatus();
}

void K8sComponent::stop() {
  if (k8s::Client* client = source_.client(); client != nullptr && subscribed_) {
    client->calls().subscribe(nullptr);
    subscribed_ = false;
  }
  feed_.reset();
  policies_.reset();
  policy_status_.reset();
  if (ipcache_subscription_ != 0) {
    if (ControlPlane* cp = control_plane_.controlPlane()) cp->ipcache().unsubscribe(ipcache_subscription_);
    ipcache_subscription_ = 0;
  }
  endpoints_.reset();
  if (remote_names_ && observability_ != nullptr) observability_->setRemoteEndpoints(nullptr);
  remote_names_ = false;
  cluster_.reset();
  nodes_.reset();
}

}  // namespace cilium::daemon
