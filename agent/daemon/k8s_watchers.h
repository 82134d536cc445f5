// What the agent does with the cluster state a k8s::Source keeps (the API server or a manifests
// directory, indistinguishable here):
//   - NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects go to the
//     policy engine through policy::K8sFeed (agent/policy/k8s_feed.h: last good version or fail
//     closed; rules of objects that vanished while the agent was down are deleted);
//   - pods and namespaces give endpoints their labels (identity) and named ports: a CNI ADD
//     for a pod waits briefly for the pod to reach the cache, and label changes relabel the
//     pod's endpoint;
//   - every pod's named ports feed the cluster-wide named-port table under the pod's identity
//     labels (egress rules by name take the numbers of the destination identity's pods);
//   - with an API client: a CiliumEndpoint per local pod, and per-node policy status.
//
// This header includes nothing of agent/common/ip_prefix.h (see control_plane.h).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "agent/common/error.h"

namespace cilium::k8s {
class Client;
class Source;
}  // namespace cilium::k8s

namespace cilium::identity {
class Backend;
}

namespace cilium::daemon {

class ControlPlane;

// identity-allocation-mode=crd: a factory for ControlPlaneOptions::cluster_identities that
// stores identities as CiliumIdentity objects through `client`, with the source's
// CiliumIdentity store as its cache. Both must outlive the control plane.
std::function<Result<std::unique_ptr<identity::Backend>>()> crdIdentityBackend(k8s::Client& client,
                                                                               k8s::Source& source);

struct K8sWatchersOptions {
  std::string node_name;
  std::string cluster_name = "default";
  // The API client: CiliumEndpoints and policy status are written through it. Null for the
  // manifests source (nothing to write back to).
  k8s::Client* client = nullptr;
  // identity-allocation-mode=crd: CiliumIdentity objects (other nodes' identities) are made
  // known to the allocator, so selectors match pods elsewhere in the cluster.
  bool crd_identities = false;
  // How long a CNI ADD waits for its pod to appear in the cache before "try again later".
  std::chrono::milliseconds pod_wait{5000};
  // How often CiliumEndpoints are reconciled with the endpoint manager.
  std::chrono::milliseconds publish_interval{1000};
};

class K8sWatchers {
 public:
  // Registers the handlers (every object already in the stores is processed before this
  // returns), then removes the policy of objects that are gone. The source must have synced.
  static Result<std::unique_ptr<K8sWatchers>> start(ControlPlane& cp, k8s::Source& source,
                                                    K8sWatchersOptions options);
  // Unregisters the handlers and stops the writer thread; what is in force stays.
  ~K8sWatchers();
  K8sWatchers(const K8sWatchers&) = delete;
  K8sWatchers& operator=(const K8sWatchers&) = delete;

  struct Impl;

 private:
  explicit K8sWatchers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cilium::daemon
