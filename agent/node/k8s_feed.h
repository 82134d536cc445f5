// Feeds the node Manager from a source's Nodes and CiliumNodes (the API server or a manifests
// directory): each object's addresses and pod CIDRs, decoded here once; an address or CIDR that
// does not parse is left out with a warning naming the object and the value.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "agent/common/error.h"
#include "agent/k8s/resources.h"
#include "agent/node/node.h"

namespace cilium::k8s {
struct Stores;
}

namespace cilium::node {

// The node as a Kubernetes Node or a CiliumNode says it.
Node fromK8s(const k8s::Node& n);
Node fromK8s(const k8s::CiliumNode& n);

class K8sFeed {
 public:
  // Every Node and CiliumNode already stored is in `manager` when this returns; changes follow.
  // The stores and the manager must outlive the feed.
  static Result<std::unique_ptr<K8sFeed>> start(Manager& manager, k8s::Stores& stores);
  ~K8sFeed();  // stops following; the nodes stay
  K8sFeed(const K8sFeed&) = delete;
  K8sFeed& operator=(const K8sFeed&) = delete;

 private:
  K8sFeed() = default;
  std::vector<std::function<void()>> unregister_;
};

}  // namespace cilium::node
