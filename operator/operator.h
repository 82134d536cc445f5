// cilium-operator's composition: the configuration (flags with Cilium's names), a Kubernetes
// client, leader election on a Lease, /healthz and metrics (cilium_operator_*), and, while
// leading, the cluster-wide duties: cluster-pool IPAM (ipam/controller.h) over a CiliumNode
// informer, the identity GC (identity_gc.h) over CiliumIdentity and CiliumEndpoint informers,
// the GC of CiliumEndpoints without a Pod and CiliumNodes without a Node (orphan_gc.h), and the
// removal of the agent-not-ready taint from nodes whose agent pod is ready (node_taint.h).
// See docs/cluster.md.
#pragma once

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/k8s/client.h"
#include "agent/metrics/registry.h"

namespace cilium::k8s {
class ApiSource;
}
namespace cilium::metrics {
class MetricsServer;
}

namespace cilium::op {

class ClusterPoolController;
class IdentityGc;
class LeaderElector;
class NodeTaintController;
class OrphanGc;

struct Config {
  std::string k8s_api_server;
  std::string k8s_kubeconfig_path;
  // The API client's rate limit (Cilium's defaults: the operator writes for the whole cluster).
  double k8s_client_qps = 100;  // --operator-k8s-client-qps; 0 = no limit
  int k8s_client_burst = 200;   // --operator-k8s-client-burst
  std::string ipam = "cluster-pool";  // cluster-pool | kubernetes (nothing to allocate)
  std::vector<std::string> cluster_pool_ipv4_cidr = {"10.0.0.0/8"};
  int cluster_pool_ipv4_mask_size = 24;
  // Dual stack: the IPv6 pools (empty: no IPv6 pod CIDRs are handed out), as Cilium's
  // cluster-pool-ipv6-cidr / cluster-pool-ipv6-mask-size.
  std::vector<std::string> cluster_pool_ipv6_cidr;
  int cluster_pool_ipv6_mask_size = 112;
  std::string identity_allocation_mode = "crd";  // crd: identity GC runs; kvstore: agents GC
  double identity_gc_interval = 15 * 60;         // seconds
  double identity_heartbeat_timeout = 30 * 60;   // seconds
  bool cilium_endpoint_gc = true;                // --cilium-endpoint-gc
  double cilium_endpoint_gc_interval = 5 * 60;   // seconds
  double nodes_gc_interval = 5 * 60;             // seconds
  // The agent-not-ready taint (node_taint.h), with Cilium's flag names and defaults.
  bool remove_cilium_node_taints = true;
  bool set_cilium_node_taints = false;
  std::string agent_not_ready_taint_key = "node.cilium.io/agent-not-ready";
  std::string cilium_pod_namespace = "kube-system";
  std::string cilium_pod_labels = "k8s-app=cilium";
  // /healthz (and /metrics) always; /metrics also on the Prometheus address with enable-metrics.
  std::string operator_api_serve_addr = "localhost:9234";
  bool enable_metrics = false;
  std::string operator_prometheus_serve_addr = ":9963";
  bool leader_election = true;                   // --enable-leader-election (ours)
  std::string leader_election_identity;          // "" = <hostname>-<pid>
  std::string leader_election_namespace = "kube-system";
  double leader_election_lease_duration = 15;  // seconds
  double leader_election_renew_deadline = 10;
  double leader_election_retry_period = 2;
  std::string log_level = "info";
  bool debug = false;
  // --config-dir: the cilium-config ConfigMap mounted as one file per key; the keys this
  // operator has no flag for are ignored (listed here, logged once at start).
  std::string config_dir;
  std::vector<std::string> ignored_keys;
  bool help = false;
  bool version = false;
};

// Flags: --name=value or --name value, Cilium's names (see usage()), and --config-dir's keys
// below them. kInvalidArgument naming the flag for unknown flags and bad values (of a flag or a
// config dir key); unknown config dir keys are only listed (Config::ignored_keys). As Cilium's
// operator, the Lease and the agents' pods are looked for in $CILIUM_K8S_NAMESPACE (the pod's
// own namespace in the chart) unless a key or flag names another; `getenv` reads it.
Result<Config> parseFlags(const std::vector<std::string>& args,
                          const std::function<const char*(const char*)>& getenv = std::getenv);
std::string usage();

class Operator {
 public:
  // Checks the configuration, connects (the API server may be down: it is retried), and starts
  // leader election (or leads at once when it is off).
  static Result<std::unique_ptr<Operator>> start(const Config& config, k8s::ClientConfig client);
  ~Operator();  // stops the duties and steps down

  bool leading() const;
  // While leading, once the CiliumNodes are synced: the cluster-pool IPAM (nullptr otherwise).
  ClusterPoolController* clusterPool();
  // While leading with identity-allocation-mode=crd: the identity GC (nullptr otherwise).
  IdentityGc* identityGc();
  // While leading: the CiliumEndpoint GC (when enabled) and the CiliumNode GC.
  OrphanGc* endpointGc();
  OrphanGc* nodeGc();
  // While leading with remove- or set-cilium-node-taints: the taint sync (nullptr otherwise).
  NodeTaintController* nodeTaint();
  // The port of operator-api-serve-addr (the bound one for port 0).
  int apiPort() const;
  const metrics::Registry& registry() const { return registry_; }

 private:
  explicit Operator(Config config);
  Status startServers();
  Status registerMetrics();
  void startDuties();
  void stopDuties();

  Config config_;
  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<LeaderElector> elector_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  std::unique_ptr<k8s::ApiSource> source_;
  std::unique_ptr<ClusterPoolController> ipam_;
  std::unique_ptr<IdentityGc> identity_gc_;
  std::unique_ptr<OrphanGc> endpoint_gc_;
  std::unique_ptr<OrphanGc> node_gc_;
  std::unique_ptr<NodeTaintController> node_taint_;
  metrics::Registry registry_;
  metrics::Family<metrics::Gauge>* identity_gc_entries_ = nullptr;
  metrics::Family<metrics::Gauge>* identity_gc_runs_ = nullptr;
  metrics::Family<metrics::Counter>* endpoint_gc_objects_ = nullptr;
  std::unique_ptr<metrics::MetricsServer> api_server_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace cilium::op
