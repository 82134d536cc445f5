// Cluster-pool IPAM's allocator (cilium-operator): carves per-node pod CIDRs of one size out of
// the cluster's pools (cluster-pool-ipv4-cidr / cluster-pool-ipv4-mask-size) and remembers which
// node holds which. Pure logic, no I/O; the controller (cluster_pool_controller.h) feeds it the
// CiliumNodes. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::op {

class ClusterPool {
 public:
  // kInvalidArgument when there is no pool, the pools mix families or overlap, or `mask_size` is
  // shorter than a pool's prefix or longer than the family's width. Node CIDRs of IPv6 pools
  // must have fewer than 64 host bits, and a pool at most 2^32 node CIDRs.
  static Result<ClusterPool> create(std::vector<IpPrefix> pools, int mask_size);

  // Records that `node` holds `cidr` (an allocation read back from its CiliumNode). Idempotent
  // for the node that holds it. kInvalidArgument when `cidr` is not one node CIDR of a pool
  // (outside every pool, or of another size); kAlreadyExists when another node holds it (the
  // message names that node); kFailedPrecondition when `node` already holds another CIDR.
  Status occupy(const std::string& node, const IpPrefix& cidr);
  // The CIDR `node` holds, or the next free one (round-robin from the last allocation, so a
  // released CIDR goes to a new node only after the others). kResourceExhausted when none is free.
  Result<IpPrefix> allocate(const std::string& node);
  // Frees what `node` holds; false when it held nothing.
  bool release(const std::string& node);

  std::optional<IpPrefix> cidrOf(const std::string& node) const;
  // The node holding `cidr`, if any.
  std::optional<std::string> holderOf(const IpPrefix& cidr) const;
  uint64_t capacity() const { return total_; }
  uint64_t used() const { return by_index_.size(); }
  const std::vector<IpPrefix>& pools() const { return pools_; }
  int maskSize() const { return mask_; }

 private:
  ClusterPool(std::vector<IpPrefix> pools, int mask, std::vector<uint64_t> starts, uint64_t total)
      : pools_(std::move(pools)), mask_(mask), starts_(std::move(starts)), total_(total) {}
  // Index of `cidr` among every pool's node CIDRs; nullopt when it is not one.
  std::optional<uint64_t> indexOf(const IpPrefix& cidr) const;
  IpPrefix cidrAt(uint64_t index) const;

  std::vector<IpPrefix> pools_;
  int mask_;
  std::vector<uint64_t> starts_;  // first index of each pool
  uint64_t total_;
  uint64_t cursor_ = UINT64_MAX;  // index of the last allocation
  std::map<uint64_t, std::string> by_index_;
  std::map<std::string, uint64_t> by_node_;
};

}  // namespace cilium::op
