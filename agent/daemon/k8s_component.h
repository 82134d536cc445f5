// Where the agent's cluster state comes from, as two Daemon components around the control plane:
//
//   K8sSourceComponent (added before the control plane): builds the source from the
//     configuration — the API server (k8s-kubeconfig-path, k8s-api-server, or in-cluster
//     config), or a manifests directory (manifests-dir), or none — starts it and waits for its
//     first full state (k8s-sync-timeout), so the control plane and the CRD identity backend
//     start from complete data.
//   K8sComponent (added after the control plane, observability and the service component):
//     connects that state to the modules' feeds — endpoints (endpoint/k8s_feed.h), policies
//     (policy/k8s_feed.h, with per-node status written back), services (service/k8s_feed.h),
//     with the API server other nodes and their endpoints into the ipcache
//     (ipcache/cluster_feed.h) and, with identity-allocation-mode=crd, other nodes'
//     identities (k8s/crd_identity.h) — and
//     exports the client's call counts as cilium_k8s_client_api_calls_total.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/daemon/control_plane_component.h"
#include "agent/daemon/daemon.h"
#include "agent/daemon/observability.h"

namespace cilium::k8s {
class Client;
class Source;
class PolicyStatusPublisher;
}  // namespace cilium::k8s
namespace cilium::identity {
class Backend;
}
namespace cilium::endpoint {
class K8sFeed;
}
namespace cilium::node {
class K8sFeed;
}
namespace cilium::ipcache {
class ClusterFeed;
}
namespace cilium::policy {
class K8sFeed;
}
namespace cilium::service {
class ServiceComponent;
class K8sFeed;
}  // namespace cilium::service

namespace cilium::daemon {

// identity-allocation-mode=crd: a factory for ControlPlaneOptions::cluster_identities that
// stores identities as CiliumIdentity objects through `client`, with the source's
// CiliumIdentity store as its cache. Both must outlive the control plane.
std::function<Result<std::unique_ptr<identity::Backend>>()> crdIdentityBackend(k8s::Client& client,
                                                                               k8s::Source& source);

class K8sSourceComponent final : public Component {
 public:
  K8sSourceComponent();
  ~K8sSourceComponent() override;
  std::string_view name() const override { return "k8s-source"; }
  // Configuration errors (both sources set, crd identities without the API server, a kubeconfig
  // that does not parse, a missing manifests directory) fail the start, as does no full state
  // within k8s-sync-timeout.
  Status start(Host& daemon) override;
  void stop() override;

  // Null when the agent runs without a source (state only through the REST API).
  k8s::Source* source() { return source_.get(); }
  // Null unless the source is the API server.
  k8s::Client* client() { return client_.get(); }

 private:
  // The status's kubernetes part: Ok once synced, with `where` (the API server or the
  // manifests directory) and the kinds watched.
  void addStatus(Host& daemon, const std::string& where);

  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<k8s::Source> source_;
};

class K8sComponent final : public Component {
 public:
  // All must outlive this component; `services` and `observability` may be null.
  K8sComponent(K8sSourceComponent& source, ControlPlaneComponent& control_plane,
               service::ServiceComponent* services, ObservabilityComponent* observability);
  ~K8sComponent() override;
  std::string_view name() const override { return "k8s"; }
  Status start(Host& daemon) override;
  void stop() override;

 private:
  Status startWatching(Host& daemon);

  K8sSourceComponent& source_;
  ControlPlaneComponent& control_plane_;
  service::ServiceComponent* services_;
  ObservabilityComponent* observability_;
  std::unique_ptr<node::K8sFeed> nodes_;
  std::unique_ptr<ipcache::ClusterFeed> cluster_;
  bool remote_names_ = false;  // observability_ names remote pods through cluster_
  std::unique_ptr<endpoint::K8sFeed> endpoints_;
  uint64_t ipcache_subscription_ = 0;  // kicks endpoints_ when the ipcache changes
  std::unique_ptr<k8s::PolicyStatusPublisher> policy_status_;
  std::unique_ptr<policy::K8sFeed> policies_;
  std::unique_ptr<service::K8sFeed> feed_;
  bool subscribed_ = false;
};

}  // namespace cilium::daemon
