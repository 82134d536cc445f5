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
       {AddressType::kCiliumInternalIp, AddressType::kInternalIp, AddressType::kExternalIp})
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

bool Node::hasAddress(const IpAddr& ip) const {
  return std::any_of(addresses.begin(), addresses.end(),
                     [&](const Address& a) { return a.ip == ip; });
}

std::optional<Node> Manager::merge(const std::string& name, const Parts& parts) {
  if (!parts.node && !parts.cilium_node) return std::nullopt;
  Node out;
  out.name = name;
  out.from_node = parts.node.has_value();
  out.from_cilium_node = parts.cilium_node.has_value();
  for (const auto* part : {&parts.node, &parts.cilium_node}) {
    if (!*part) continue;
    for (const auto& a : (*part)->addresses)
      if (std::find(out.addresses.begin(), out.addresses.end(), a) == out.addresses.end())
        out.addresses.push_back(a);
  }
  // Cilium's IPAM writes the CiliumNode: its pod CIDRs win over the Node's.
  if (parts.cilium_node) {
    out.health = parts.cilium_node->health;
    out.boot_id = parts.cilium_node->boot_id;
  }
  if (parts.cilium_node && !parts.cilium_node->pod_cidrs.empty())
    out.pod_cidrs = parts.cilium_node->pod_cidrs;
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
    if (!p.node && !p.cilium_node) parts_.erase(name);
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
