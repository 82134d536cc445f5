// Nodes and CiliumNodes from a k8s::Source into the node Manager.
#include "agent/node/k8s_feed.h"

#include "agent/common/log.h"
#include "agent/k8s/source.h"

namespace cilium::node {
namespace {

auto& log() {
  static auto l = cilium::logger("node");
  return l;
}

void addAddress(Node& out, AddressType type, const std::string& text, std::string_view kind) {
  auto ip = IpAddr::parse(text);
  if (!ip.ok()) {
    log()->warn("{} {}: address \"{}\" is not an IP address; left out", kind, out.name, text);
    return;
  }
  Address a{type, *ip};
  if (std::find(out.addresses.begin(), out.addresses.end(), a) == out.addresses.end())
    out.addresses.push_back(a);
}

void addCidrs(Node& out, const std::vector<std::string>& cidrs, std::string_view kind) {
  for (const auto& c : cidrs) {
    auto p = IpPrefix::parse(c);
    if (!p.ok()) {
      log()->warn("{} {}: pod CIDR \"{}\" is not a CIDR ({}); left out", kind, out.name, c,
                  p.error().message());
      continue;
    }
    out.pod_cidrs.push_back(*p);
  }
}

}  // namespace

Node fromK8s(const k8s::Node& n) {
  Node out;
  out.name = n.meta.name;
  for (const auto& ip : n.internal_ips) addAddress(out, AddressType::kInternalIp, ip, "Node");
  addCidrs(out, n.pod_cidrs, "Node");
  return out;
}

Node fromK8s(const k8s::CiliumNode& n) {
  Node out;
  out.name = n.meta.name;
  for (const auto& a : n.addresses) {
    // Cilium's own addresses carry their type; an untyped one is the node's Cilium address.
    auto type =
        a.type.empty() ? std::optional(AddressType::kCiliumInternalIp) : parseAddressType(a.type);
    if (!type) {
      log()->warn("CiliumNode {}: address {} has unknown type \"{}\"; left out", n.meta.name, a.ip,
                  a.type);
      continue;
    }
    addAddress(out, *type, a.ip, "CiliumNode");
  }
  addCidrs(out, n.pod_cidrs, "CiliumNode");
  for (const auto* h : {&n.health_ipv4, &n.health_ipv6}) {
    if (h->empty()) continue;
    auto ip = IpAddr::parse(*h);
    if (!ip.ok()) {
      log()->warn("CiliumNode {}: health address \"{}\" is not an IP address; left out",
                  n.meta.name, *h);
      continue;
    }
    out.health.push_back(*ip);
  }
  out.boot_id = n.boot_id;
  return out;
}

Result<std::unique_ptr<K8sFeed>> K8sFeed::start(Manager& manager, k8s::Stores& stores) {
  std::unique_ptr<K8sFeed> feed(new K8sFeed());
  {
    k8s::Handlers<k8s::Node> h;
    h.on_add = [&manager](const k8s::Node& n) { manager.updateFromNode(n.meta.name, fromK8s(n)); };
    h.on_update = [&manager](const k8s::Node&, const k8s::Node& n) {
      manager.updateFromNode(n.meta.name, fromK8s(n));
    };
    h.on_delete = [&manager](const k8s::Node& n) {
      manager.updateFromNode(n.meta.name, std::nullopt);
    };
    auto id = stores.nodes.addHandlers(std::move(h));
    feed->unregister_.push_back([&stores, id] { stores.nodes.removeHandlers(id); });
  }
  {
    k8s::Handlers<k8s::CiliumNode> h;
    h.on_add = [&manager](const k8s::CiliumNode& n) {
      manager.updateFromCiliumNode(n.meta.name, fromK8s(n));
    };
    h.on_update = [&manager](const k8s::CiliumNode&, const k8s::CiliumNode& n) {
      manager.updateFromCiliumNode(n.meta.name, fromK8s(n));
    };
    h.on_delete = [&manager](const k8s::CiliumNode& n) {
      manager.updateFromCiliumNode(n.meta.name, std::nullopt);
    };
    auto id = stores.cilium_nodes.addHandlers(std::move(h));
    feed->unregister_.push_back([&stores, id] { stores.cilium_nodes.removeHandlers(id); });
  }
  return feed;
}

K8sFeed::~K8sFeed() {
  for (auto& u : unregister_) u();
}

}  // namespace cilium::node
