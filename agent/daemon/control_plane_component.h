// The Daemon component that runs the ControlPlane (datapath, identities, ipcache, policy,
// endpoints, events) with the agent's configuration.
#pragma once

#include <memory>

#include "agent/daemon/control_plane.h"
#include "agent/daemon/daemon.h"

namespace cilium::daemon {

class K8sSourceComponent;
class KvstoreComponent;

class ControlPlaneComponent final : public Component {
 public:
  // `k8s` (may be null) gives the CiliumIdentity backend for identity-allocation-mode=crd; it
  // must start before this component.
  explicit ControlPlaneComponent(K8sSourceComponent* k8s = nullptr) : k8s_(k8s) {}
  // identity-allocation-mode=kvstore takes its backend from `kvstore`, which must start before
  // this component.
  void setKvstore(KvstoreComponent* kvstore) { kvstore_ = kvstore; }
  std::string_view name() const override { return "control-plane"; }
  Status start(Host& daemon) override;
  void stop() override;
  // Valid between start() and stop() (Hubble and metrics reach the modules through it).
  ControlPlane* controlPlane() { return cp_.get(); }

 private:
  K8sSourceComponent* k8s_;
  KvstoreComponent* kvstore_ = nullptr;
  std::unique_ptr<ControlPlane> cp_;
};

}  // namespace cilium::daemon
