// The node's place in the cluster (CRD mode), as a Daemon component between the cluster state
// source and the control plane: with the API server it publishes and keeps this node's
// CiliumNode (node/registration.h), learns the node's pod CIDR when ipv4-range is auto
// (ipam=cluster-pool: written by cilium-operator; ipam=kubernetes: Node.spec.podCIDRs), waiting
// up to k8s-sync-timeout for it, opens IPAM on it, reserves the health endpoint's address, and
// publishes the router (CiliumInternalIP) and health addresses. Without the API server it does
// nothing: the standalone node's pod CIDR is its ipv4-range.
#pragma once

#include <memory>

#include "agent/daemon/daemon.h"

namespace cilium::node {
class Registration;
}

namespace cilium::daemon {

class K8sSourceComponent;

class NodeComponent final : public Component {
 public:
  // `source` must outlive this component and start before it.
  explicit NodeComponent(K8sSourceComponent& source);
  ~NodeComponent() override;
  std::string_view name() const override { return "node"; }
  Status start(Host& host) override;
  void stop() override;

 private:
  K8sSourceComponent& source_;
  std::unique_ptr<node::Registration> registration_;
};

}  // namespace cilium::daemon
