// Cluster-pool IPAM's controller (cilium-operator): keeps every CiliumNode's spec.ipam.podCIDRs
// allocated from the ClusterPools, one per family configured (a dual-stack node gets an IPv4 and
// an IPv6 CIDR, IPv4 first in the list; each family is allocated, restored and reported on its
// own, so an exhausted IPv6 pool never takes a node's IPv4 CIDR away). At start it reads back every
// allocation already written (so a restarted operator hands out nothing twice), then gives each
// node without a CIDR the next free one. A pool that is exhausted, or a CIDR that is outside the
// pool or held by another node, is written to the node's status.ipam.operator-status.error and
// logged; nothing is changed under a node that already has a CIDR. Work runs on a thread of its own
// (the informer's handlers only queue node names); a failed write is retried with backoff.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agent/k8s/client.h"
#include "agent/k8s/store.h"
#include "operator/work_queue.h"
#include "operator/ipam/cluster_pool.h"

namespace cilium::op {

struct ClusterPoolOptions {
  std::vector<IpPrefix> ipv4_cidrs;  // cluster-pool-ipv4-cidr; empty: no IPv4 allocation
  int ipv4_mask_size = 24;           // cluster-pool-ipv4-mask-size
  std::vector<IpPrefix> ipv6_cidrs;  // cluster-pool-ipv6-cidr; empty: no IPv6 allocation
  int ipv6_mask_size = 112;          // cluster-pool-ipv6-mask-size
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{10000};
};

class ClusterPoolController {
 public:
  // kInvalidArgument when a pool configuration is invalid, a pool is not of its family, or no
  // family has a pool. `client` and `nodes` (a synced
  // CiliumNode store) must outlive the controller.
  static Result<std::unique_ptr<ClusterPoolController>> create(k8s::Client& client,
                                                               k8s::Store<k8s::CiliumNode>& nodes,
                                                               ClusterPoolOptions options);
  ~ClusterPoolController();  // stops the worker and unregisters
  ClusterPoolController(const ClusterPoolController&) = delete;
  ClusterPoolController& operator=(const ClusterPoolController&) = delete;

  // Reads back every existing allocation, then starts the worker (which allocates the rest).
  void start();

  // What the pools hold now (for tests and metrics): used and total node CIDRs, every family.
  uint64_t used() const;
  uint64_t capacity() const;

 private:
  ClusterPoolController(k8s::Client& client, k8s::Store<k8s::CiliumNode>& nodes,
                        std::vector<ClusterPool> pools, ClusterPoolOptions options)
      : client_(client), nodes_(nodes), pools_(std::move(pools)), options_(std::move(options)) {}
  // One node: false when a write failed and it should be retried.
  bool reconcile(const std::string& name);
  // Allocations of `pool`'s family read back from the node's spec, checked against the pool:
  // the error text, "" when they are fine.
  std::string occupyFromSpec(ClusterPool& pool, const k8s::CiliumNode& cn);
  // Whether the node lacks a CIDR of some family that has a pool.
  bool needsCidr(const k8s::CiliumNode& cn) const;
  Status writeCidrs(const std::string& name, const std::vector<std::string>& cidrs);
  Status writeError(const std::string& name, const std::string& error);

  k8s::Client& client_;
  k8s::Store<k8s::CiliumNode>& nodes_;
  mutable std::mutex pool_mu_;  // held by the worker while it reconciles
  std::vector<ClusterPool> pools_;  // IPv4 first
  ClusterPoolOptions options_;
  WorkQueue queue_{options_.retry_min, options_.retry_max};  // CiliumNode names
  k8s::Store<k8s::CiliumNode>::HandlerId handlers_ = 0;
  bool registered_ = false;
};

}  // namespace cilium::op
