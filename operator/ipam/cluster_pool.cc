// Cluster-pool allocator: node CIDR indexes over the pools, round-robin allocation.
#include "operator/ipam/cluster_pool.h"

namespace cilium::op {

Result<ClusterPool> ClusterPool::create(std::vector<IpPrefix> pools, int mask_size) {
  if (pools.empty()) return Error(ErrorCode::kInvalidArgument, "no pool CIDR given");
  std::vector<uint64_t> starts;
  uint64_t total = 0;
  for (size_t i = 0; i < pools.size(); i++) {
    const IpPrefix& p = pools[i];
    if (p.family() != pools[0].family())
      return makeError(ErrorCode::kInvalidArgument, "pool {} is not of the family of {}",
                       p.toString(), pools[0].toString());
    int bits = p.addr().bits();
    if (mask_size < p.len() || mask_size > bits)
      return makeError(ErrorCode::kInvalidArgument,
                       "mask size /{} does not fit pool {} (must be {}..{})", mask_size,
                       p.toString(), static_cast<int>(p.len()), bits);
    if (bits - mask_size >= 64)
      return makeError(ErrorCode::kInvalidArgument, "mask size /{} leaves 64 or more host bits",
                       mask_size);
    if (mask_size - p.len() > 32)
      return makeError(ErrorCode::kInvalidArgument,
                       "pool {} with mask size /{} holds more than 2^32 node CIDRs", p.toString(),
                       mask_size);
    for (size_t j = 0; j < i; j++)
      if (pools[j].contains(p) || p.contains(pools[j]))
        return makeError(ErrorCode::kInvalidArgument, "pools {} and {} overlap",
                         pools[j].toString(), p.toString());
    starts.push_back(total);
    total += uint64_t{1} << (mask_size - p.len());
  }
  return ClusterPool(std::move(pools), mask_size, std::move(starts), total);
}

std::optional<uint64_t> ClusterPool::indexOf(const IpPrefix& cidr) const {
  if (cidr.len() != mask_) return std::nullopt;
  for (size_t i = 0; i < pools_.size(); i++) {
    if (!pools_[i].contains(cidr)) continue;
    auto off = cidr.addr().offsetFrom(pools_[i].addr());
    if (!off) return std::nullopt;
    return starts_[i] + (*off >> (cidr.addr().bits() - mask_));
  }
  return std::nullopt;
}

IpPrefix ClusterPool::cidrAt(uint64_t index) const {
  size_t i = pools_.size() - 1;
  while (starts_[i] > index) i--;
  const IpPrefix& p = pools_[i];
  uint64_t off = (index - starts_[i]) << (p.addr().bits() - mask_);
  return IpPrefix(p.addr().plus(off), mask_);
}

Status ClusterPool::occupy(const std::string& node, const IpPrefix& cidr) {
  auto idx = indexOf(cidr);
  if (!idx) {
    std::string pools;
    for (const auto& p : pools_) pools += (pools.empty() ? "" : ", ") + p.toString();
    return makeError(ErrorCode::kInvalidArgument, "{} is not a /{} of the cluster pool ({})",
                     cidr.toString(), mask_, pools);
  }
  if (auto it = by_index_.find(*idx); it != by_index_.end()) {
    if (it->second == node) return okStatus();
    return makeError(ErrorCode::kAlreadyExists, "{} is already allocated to node {}",
                     cidr.toString(), it->second);
  }
  if (auto it = by_node_.find(node); it != by_node_.end())
    return makeError(ErrorCode::kFailedPrecondition, "node {} already holds {}", node,
                     cidrAt(it->second).toString());
  by_index_[*idx] = node;
  by_node_[node] = *idx;
  return okStatus();
}

Result<IpPrefix> ClusterPool::allocate(const std::string& node) {
  if (auto it = by_node_.find(node); it != by_node_.end()) return cidrAt(it->second);
  if (by_index_.size() >= total_) {
    std::string pools;
    for (const auto& p : pools_) pools += (pools.empty() ? "" : ", ") + p.toString();
    return makeError(ErrorCode::kResourceExhausted,
                     "cluster pool exhausted: all {} /{} CIDRs of {} are allocated", total_, mask_,
                     pools);
  }
  // Next free index after the cursor, wrapping; the used set is finite, so this ends within
  // used()+1 steps.
  uint64_t i = cursor_ == UINT64_MAX ? 0 : (cursor_ + 1) % total_;
  while (by_index_.count(i)) i = (i + 1) % total_;
  cursor_ = i;
  by_index_[i] = node;
  by_node_[node] = i;
  return cidrAt(i);
}

bool ClusterPool::release(const std::string& node) {
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return false;
  by_index_.erase(it->second);
  by_node_.erase(it);
  return true;
}

std::optional<IpPrefix> ClusterPool::cidrOf(const std::string& node) const {
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return std::nullopt;
  return cidrAt(it->second);
}

std::optional<std::string> ClusterPool::holderOf(const IpPrefix& cidr) const {
  auto idx = indexOf(cidr);
  if (!idx) return std::nullopt;
  auto it = by_index_.find(*idx);
  if (it == by_index_.end()) return std::nullopt;
  return it->second;
}

}  // namespace cilium::op
