// Where the agent's cluster state comes from, behind one interface so that policy, identity and
// service code cannot tell the sources apart: the Kubernetes API (informers) or a directory of
// plain Kubernetes YAML (ManifestSource, manifests.h). Both fill the same typed stores.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/k8s/client.h"
#include "agent/k8s/reflector.h"
#include "agent/k8s/store.h"

namespace cilium::k8s {

// One store per resource kind. A source fills the kinds it serves; the others stay empty (and
// are marked synced, so hasSynced() waits only for what is served).
struct Stores {
  Store<Pod> pods;
  Store<Namespace> namespaces;
  Store<Node> nodes;
  Store<Service> services;
  Store<EndpointSlice> endpoint_slices;
  Store<NetworkPolicy> network_policies;
  Store<CiliumNetworkPolicy> cilium_network_policies;
  Store<CiliumClusterwideNetworkPolicy> cilium_clusterwide_network_policies;
  Store<CiliumNode> cilium_nodes;
  Store<CiliumEndpoint> cilium_endpoints;
  Store<CiliumIdentity> cilium_identities;

  // Calls fn(store) for every store, in the order of allResources().
  template <typename Fn>
  void forEach(Fn&& fn) {
    fn(pods);
    fn(namespaces);
    fn(nodes);
    fn(services);
    fn(endpoint_slices);
    fn(network_policies);
    fn(cilium_network_policies);
    fn(cilium_clusterwide_network_policies);
    fn(cilium_nodes);
    fn(cilium_endpoints);
    fn(cilium_identities);
  }
  bool allSynced() {
    bool all = true;
    forEach([&](auto& s) { all = all && s.hasSynced(); });
    return all;
  }
};

class Source {
 public:
  virtual ~Source() = default;
  virtual Stores& stores() = 0;
  // Starts filling the stores (threads of its own). Errors are configuration errors only; an
  // unreachable apiserver is retried in the background.
  virtual Status start() = 0;
  virtual void stop() = 0;
  // True once every served kind has its first full state.
  virtual bool hasSynced() = 0;
  // "kubernetes" or "manifests:<dir>".
  virtual std::string name() const = 0;

  // Polls hasSynced() until it holds or `timeout` passes.
  bool waitForSync(std::chrono::milliseconds timeout);
};

struct ApiSourceOptions {
  // Watch only this node's pods (spec.nodeName=<node>) when set; all pods otherwise (named ports
  // of remote pods are then known too).
  std::string node_name;
  // Kinds to serve (by Kind); empty = all of allResources().
  std::vector<std::string> kinds;
  ReflectorOptions reflector;
};

// The Kubernetes API source: one informer per served kind.
class ApiSource final : public Source {
 public:
  ApiSource(Client& client, ApiSourceOptions options = {});
  ~ApiSource() override;

  Stores& stores() override { return stores_; }
  Status start() override;
  void stop() override;
  bool hasSynced() override { return stores_.allSynced(); }
  std::string name() const override { return "kubernetes"; }

  // The reflector of one kind (nullptr when not served), for stats and tests.
  Reflector* reflector(std::string_view kind);

  struct Running;  // one informer (type-erased)

 private:
  Client& client_;
  ApiSourceOptions options_;
  Stores stores_;
  std::vector<std::unique_ptr<Running>> running_;
};

}  // namespace cilium::k8s
