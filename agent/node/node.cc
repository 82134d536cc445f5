// Node registry: merging a node's Kubernetes Node and CiliumNode, observers.
#include "agent/node/node.h"

#include <algorithm>

namespace cilium::node {

std::string_view addressTypeName(AddressType t) {
  switch (t) {
    case AddressType::kInternalIp: return "InternalIP";
    case AddressType::kExternalIp: return "ExternalIP";
    case AddressType::kCiliumInternalIp: return "CiliumInternalIP";
  }
  return "InternalIP";
}

std::optional<AddressType> parseAddressType(std::string_view name) {
  for (AddressType t :
       {AddressType::kInternalIp, AddressType::kExternalIp, AddressType::kCiliumInternalIp})
    if (addressTypeName(t) == name) return t;
  return std::nullopt;
}

std::optional<IpAddr> Node::primaryAddress(IpFamily family) const {
  for (AddressType t :
       {AddressType::kInternalIp, AddressType::kExternalIp, AddressType::kCiliumInternalIp})
    for (const auto& a : addresses)
      if (a.type == t && a.ip.family() == family) return a.ip;
  return std::nullopt;
}

std::optional<IpAddr> Node::tunnelAddress(IpFamily family) const {
  for (AddressType t : {AddressType::kInternalIp, AddressType::kExternalIp})
    for (const auto& a : addresses)
      if (a.type == t && a.ip.family() == family) return a.ip;
  return std::nullopt;
}

std::optional<IpAddr> Node::tunnelEndpoint() const {
  if (auto v4 = tunnelAddress(IpFamily::kV4)) return v4;
  return tunnelAddress(IpFamily::kV6);
}

bool Node::hasAddress(const IpAddr& ip) const {
  return std::any_of(addresses.begin(), addresses.end(),
                     [&](const Address& a) { return a.ip == ip; });
}

std::optional<Node> Manager::merge(const std::string& name, const Parts& parts) {
  if (!parts.node && !parts.cilium_node && !parts.kvstore) return std::nullopt;
  Node out;
  out.name = name;
  out.from_node = parts.node.has_value();
  out.from_cilium_node = parts.cilium_node.has_value();
  out.from_kvstore = parts.kvstore.has_value();
  for (const auto* part : {&parts.node, &parts.cilium_node, &parts.kvstore}) {
    if (!*part) continue;
    for (const auto& a : (*part)->addresses)
      if (std::find(out.addresses.begin(), out.addresses.end(), a) == out.addresses.end())
        out.addresses.push_back(a);
  }
  // Cilium's IPAM writes the CiliumNode: its pod CIDRs win over the Node's.
  // In kvstore mode the node's key in etcd stands for its CiliumNode.
  const std::optional<Node>& cilium = parts.cilium_node ? parts.cilium_node : parts.kvstore;
  if (cilium) {
    out.health = cilium->health;
    out.boot_id = cilium->boot_id;
  }
  if (cilium && !cilium->pod_cidrs.empty())
    out.pod_cidrs = cilium->pod_cidrs;
  else if (parts.node)
    out.pod_cidrs = parts.node->pod_cidrs;
  return out;
}

void Manager::update(const std::string& name, const std::function<void(Parts&)>& change) {
  // Observers run in the order of the changes they hear: the observer lock is taken before the
  // state changes and held until they have run (subscribe() takes the same one first).
  std::lock_guard olock(observers_mu_);
  std::optional<Node> heard;
  bool deleted = false;
  {
    std::lock_guard lock(mu_);
    Parts& p = parts_[name];
    change(p);
    std::optional<Node> now = merge(name, p);
    if (!p.node && !p.cilium_node && !p.kvstore) parts_.erase(name);
    auto it = nodes_.find(name);
    if (now) {
      if (it == nodes_.end() || it->second != *now) heard = now;
      nodes_[name] = std::move(*now);
    } else if (it != nodes_.end()) {
      heard = std::move(it->second);
      deleted = true;
      nodes_.erase(it);
    }
  }
  if (!heard) return;
  for (auto& [id, obs] : observers_) obs(*heard, deleted);
}

void Manager::updateFromNode(const std::string& name, std::optional<Node> n) {
  update(name, [&](Parts& p) { p.node = std::move(n); });
}

void Manager::updateFromCiliumNode(const std::string& name, std::optional<Node> n) {
  update(name, [&](Parts& p) { p.cilium_node = std::move(n); });
}

void Manager::updateFromKvstore(const std::string& name, std::optional<Node> n) {
  update(name, [&](Parts& p) { p.kvstore = std::move(n); });
}

std::optional<Node> Manager::get(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::vector<Node> Manager::list() const {
  std::lock_guard lock(mu_);
  std::vector<Node> out;
  for (const auto& [name, n] : nodes_) out.push_back(n);
  return out;
}

uint64_t Manager::subscribe(Observer observer) {
  std::lock_guard olock(observers_mu_);
  for (const auto& n : list()) observer(n, false);
  uint64_t id = next_id_++;
  observers_[id] = std::move(observer);
  return id;
}

void Manager::unsubscribe(uint64_t id) {
  std::lock_guard olock(observers_mu_);
  observers_.erase(id);
}

}  // namespace cilium::node
