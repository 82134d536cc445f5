// Garbage collection of objects whose owner is gone (cilium-operator): CiliumEndpoints whose Pod
// no longer exists (cilium-endpoint-gc) and CiliumNodes whose Node no longer exists
// (nodes-gc-interval), as Cilium's operator does. An orphan is only marked on the pass that
// first sees it and deleted on the next one if it is still an orphan, so an object whose owner
// is merely late in the informer's cache survives; the deletion is conditional on the
// resourceVersion seen, so an object rewritten meanwhile stays.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/common/periodic.h"
#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"
#include "agent/k8s/store.h"

namespace cilium::op {

struct Orphan {
  std::string namespace_name;  // "" for cluster-scoped objects
  std::string name;
  std::string resource_version;
};

class OrphanGc {
 public:
  // The orphans now; nullopt when this pass must not judge (the reason is the finder's to log).
  using Finder = std::function<std::optional<std::vector<Orphan>>()>;
  // Called after each deletion attempt (metrics): true when it succeeded or the object was gone.
  using Outcome = std::function<void(bool deleted)>;

  // `what` names the kind in logs. The client must outlive the collector.
  OrphanGc(k8s::Client& client, k8s::ResourceInfo info, std::string what, Finder finder,
           std::chrono::milliseconds interval, Outcome outcome = {});
  ~OrphanGc();  // stops the periodic runs
  OrphanGc(const OrphanGc&) = delete;
  OrphanGc& operator=(const OrphanGc&) = delete;

  struct Pass {
    bool skipped = false;  // the finder declined to judge
    size_t marked = 0;     // orphans seen for the first time, deleted next pass if still orphans
    size_t deleted = 0;
    size_t failed = 0;  // deletions the API server refused (tried again next pass)
  };
  Pass runOnce();
  // Runs a pass every interval on a thread of its own.
  void start();

 private:
  k8s::Client& client_;
  k8s::ResourceInfo info_;
  std::string what_;
  Finder finder_;
  std::chrono::milliseconds interval_;
  Outcome outcome_;
  std::set<std::string> marked_;  // store keys marked on the last pass
  Periodic runner_;
};

// CiliumEndpoints whose Pod (same namespace and name) is not in `pods`.
OrphanGc::Finder endpointOrphans(const k8s::Store<k8s::CiliumEndpoint>& endpoints,
                                 const k8s::Store<k8s::Pod>& pods);
// CiliumNodes whose Node is not in `nodes`. A cluster store with no Node at all (a local
// cluster that keeps only CiliumNodes, or an informer that lists nothing) is not judged: deleting
// every CiliumNode would take every node's pod CIDR away.
OrphanGc::Finder nodeOrphans(const k8s::Store<k8s::CiliumNode>& cilium_nodes,
                             const k8s::Store<k8s::Node>& nodes);

}  // namespace cilium::op
