// Other nodes' endpoints, nodes, health endpoints and pod CIDRs into the ipcache.
#include "agent/ipcache/cluster_feed.h"

#include <algorithm>
#include <set>

#include "agent/common/log.h"
#include "agent/k8s/source.h"

namespace cilium::ipcache {
namespace {

auto& log() {
  static auto l = cilium::logger("ipcache");
  return l;
}

std::string cepKey(const k8s::CiliumEndpoint& cep) {
  return k8s::objectKey(cep.meta.namespace_name, cep.meta.name);
}

// The largest identity a VNI carries (24 bits); local-scope identities never leave a node.
constexpr identity::NumericIdentity kMaxVni = 0xffffff;

}  // namespace

Result<RemoteEndpoint> remoteEndpointOf(const k8s::CiliumEndpoint& cep) {
  const std::string key = cepKey(cep);
  RemoteEndpoint out;
  if (cep.identity_id <= 0 || cep.identity_id > kMaxVni)
    return makeError(ErrorCode::kInvalidArgument,
                     "CiliumEndpoint {}: status.identity.id {} is not a cluster identity", key,
                     cep.identity_id);
  out.identity = static_cast<identity::NumericIdentity>(cep.identity_id);
  for (const auto& a : cep.addressing) {
    for (const std::string* text : {&a.ipv4, &a.ipv6}) {
      if (text->empty()) continue;
      auto ip = IpAddr::parse(*text);
      if (!ip.ok())
        return makeError(ErrorCode::kInvalidArgument,
                         "CiliumEndpoint {}: address \"{}\" is not an IP address", key, *text);
      if ((text == &a.ipv4) != (ip->family() == IpFamily::kV4))
        return makeError(ErrorCode::kInvalidArgument,
                         "CiliumEndpoint {}: address \"{}\" is of the wrong family", key, *text);
      IpPrefix p = IpPrefix::host(*ip);
      if (std::find(out.prefixes.begin(), out.prefixes.end(), p) == out.prefixes.end())
        out.prefixes.push_back(p);
    }
  }
  if (out.prefixes.empty())
    return makeError(ErrorCode::kInvalidArgument,
                     "CiliumEndpoint {}: no address in status.networking.addressing", key);
  if (cep.node.empty())
    return makeError(ErrorCode::kInvalidArgument,
                     "CiliumEndpoint {}: no node in status.networking.node", key);
  out.node_ref = cep.node;
  return out;
}

Result<std::unique_ptr<ClusterFeed>> ClusterFeed::start(IpCache& cache, node::Manager& nodes,
                                                        k8s::Stores& stores,
                                                        ClusterFeedOptions options) {
  if (options.node_name.empty())
    return Error(ErrorCode::kInvalidArgument, "ipcache cluster feed: node name required");
  std::unique_ptr<ClusterFeed> feed(new ClusterFeed(cache, std::move(options)));
  ClusterFeed* f = feed.get();
  // Nodes first: endpoints then resolve their node at once.
  uint64_t sub = nodes.subscribe([f](const node::Node& n, bool deleted) { f->onNode(n, deleted); });
  f->unregister_.push_back([&nodes, sub] { nodes.unsubscribe(sub); });
  k8s::Handlers<k8s::CiliumEndpoint> h;
  h.on_add = [f](const k8s::CiliumEndpoint& c) { f->onCep(c, false); };
  h.on_update = [f](const k8s::CiliumEndpoint&, const k8s::CiliumEndpoint& c) {
    f->onCep(c, false);
  };
  h.on_delete = [f](const k8s::CiliumEndpoint& c) { f->onCep(c, true); };
  auto id = stores.cilium_endpoints.addHandlers(std::move(h));
  f->unregister_.push_back([&stores, id] { stores.cilium_endpoints.removeHandlers(id); });
  {
    std::lock_guard lock(f->mu_);
    log()->info("cluster feed started node={} tunnel={} nodes={} endpoints={} entries={}",
                f->opts_.node_name, f->opts_.tunnel, f->nodes_.size(), f->ceps_.size(),
                f->written_.size());
  }
  return feed;
}

ClusterFeed::~ClusterFeed() {
  // Handlers may be running: unregistering waits for them (both registries hold their delivery
  // lock while calling), so nothing touches this object afterwards.
  for (auto it = unregister_.rbegin(); it != unregister_.rend(); ++it) (*it)();
}

size_t ClusterFeed::entries() const {
  std::lock_guard lock(mu_);
  return written_.size();
}

ClusterFeed::Wanted ClusterFeed::nodeEntriesLocked(const node::Node& n) const {
  Wanted out;
  const bool local = n.name == opts_.node_name;
  // Both families' prefixes tunnel to the node's underlay address (IPv4 when it has one).
  const auto tunnel_to = [&](IpFamily) -> std::optional<IpAddr> {
    if (local) return std::nullopt;
    return n.tunnelEndpoint();
  };
  for (const auto& a : n.addresses) {
    Info info{local ? identity::kHost : identity::kRemoteNode, std::nullopt, 0, 0};
    // A CiliumInternalIP is on the node's pod network: reached through the tunnel, as Cilium
    // does; the underlay addresses are reached directly.
    if (opts_.tunnel && a.type == node::AddressType::kCiliumInternalIp)
      info.tunnel_endpoint = tunnel_to(a.ip.family());
    out.emplace_back(IpPrefix::host(a.ip), info);
  }
  for (const auto& h : n.health)
    out.emplace_back(IpPrefix::host(h), Info{identity::kHealth, tunnel_to(h.family()), 0, 0});
  if (opts_.tunnel && !local) {
    for (const auto& cidr : n.pod_cidrs) {
      auto via = tunnel_to(cidr.family());
      if (!via) continue;  // nowhere to send it yet
      out.emplace_back(cidr, Info{identity::kWorld, via, 0, 0});
    }
  }
  return out;
}

void ClusterFeed::onNode(const node::Node& n, bool deleted) {
  std::lock_guard lock(mu_);
  if (deleted)
    nodes_.erase(n.name);
  else
    nodes_[n.name] = n;
  setOwnerLocked("node/" + n.name, deleted ? Wanted{} : nodeEntriesLocked(n));
  // Endpoints of this node (its address changed, or it is gone) and those not placed yet.
  for (auto& [key, cep] : ceps_)
    if (cep.resolved_node.empty() || cep.resolved_node == n.name) refreshCepLocked(key, cep);
}

void ClusterFeed::onCep(const k8s::CiliumEndpoint& c, bool deleted) {
  const std::string key = cepKey(c);
  std::lock_guard lock(mu_);
  unindexLocked(key);
  if (deleted) {
    ceps_.erase(key);
    setOwnerLocked("cep/" + key, {});
    return;
  }
  auto ep = remoteEndpointOf(c);
  if (!ep.ok()) {
    log()->warn("{}; left out", ep.error().message());
    ceps_.erase(key);
    setOwnerLocked("cep/" + key, {});
    return;
  }
  Cep& cep = ceps_[key];
  cep.ep = std::move(*ep);
  for (const auto& p : cep.ep.prefixes) cep_by_ip_[p.addr()] = key;
  refreshCepLocked(key, cep);
}

void ClusterFeed::unindexLocked(const std::string& key) {
  auto it = ceps_.find(key);
  if (it == ceps_.end()) return;
  for (const auto& p : it->second.ep.prefixes) {
    auto at = cep_by_ip_.find(p.addr());
    if (at != cep_by_ip_.end() && at->second == key) cep_by_ip_.erase(at);
  }
}

std::optional<RemotePod> ClusterFeed::podByIp(const IpAddr& ip) const {
  std::lock_guard lock(mu_);
  auto at = cep_by_ip_.find(ip);
  if (at == cep_by_ip_.end()) return std::nullopt;
  auto it = ceps_.find(at->second);
  if (it == ceps_.end()) return std::nullopt;
  RemotePod pod;
  auto slash = at->second.find('/');
  pod.namespace_name = slash == std::string::npos ? "" : at->second.substr(0, slash);
  pod.name = slash == std::string::npos ? at->second : at->second.substr(slash + 1);
  pod.identity = it->second.ep.identity;
  pod.node = it->second.resolved_node;
  return pod;
}

void ClusterFeed::refreshCepLocked(const std::string& key, Cep& cep) {
  // Where it runs: the node that has the address the endpoint names (or the node of that name);
  // else the node it was on, whose address just changed (the endpoint's own record follows
  // when its agent rewrites it); else nobody known yet, and the named address is used as is.
  const node::Node* on = nullptr;
  auto ref_ip = IpAddr::parse(cep.ep.node_ref);
  for (const auto& [name, n] : nodes_) {
    if (ref_ip.ok() ? n.hasAddress(*ref_ip) : name == cep.ep.node_ref) {
      on = &n;
      break;
    }
  }
  if (on == nullptr && !cep.resolved_node.empty()) {
    auto it = nodes_.find(cep.resolved_node);
    if (it != nodes_.end()) on = &it->second;
  }
  cep.resolved_node = on != nullptr ? on->name : "";
  if (on != nullptr && on->name == opts_.node_name) {
    setOwnerLocked("cep/" + key, {});  // this node's: the endpoint manager's (kLocal)
    return;
  }
  Wanted wanted;
  for (const auto& p : cep.ep.prefixes) {
    std::optional<IpAddr> via;
    // Either family's address tunnels to the node's underlay address (IPv4 when it has one).
    if (on != nullptr) via = on->tunnelEndpoint();
    if (!via && ref_ip.ok()) via = *ref_ip;
    if (!via && on == nullptr) continue;  // a node name not known yet: wait for it
    wanted.emplace_back(p, Info{cep.ep.identity, via, 0, 0});
  }
  setOwnerLocked("cep/" + key, std::move(wanted));
}

void ClusterFeed::setOwnerLocked(const std::string& owner, Wanted wanted) {
  std::set<IpPrefix> touched;
  auto it = owned_.find(owner);
  if (it != owned_.end()) {
    for (const auto& p : it->second) {
      auto c = claims_.find(p);
      if (c == claims_.end()) continue;
      c->second.erase(owner);
      if (c->second.empty()) claims_.erase(c);
      touched.insert(p);
    }
    owned_.erase(it);
  }
  if (!wanted.empty()) {
    auto& mine = owned_[owner];
    for (auto& [p, info] : wanted) {
      claims_[p][owner] = info;
      mine.push_back(p);
      touched.insert(p);
    }
  }
  for (const auto& p : touched) writeLocked(p);
}

void ClusterFeed::writeLocked(const IpPrefix& prefix) {
  std::optional<Info> want;
  if (auto c = claims_.find(prefix); c != claims_.end()) want = c->second.begin()->second;
  auto w = written_.find(prefix);
  if (want && w != written_.end() && w->second == *want) return;
  if (!want && w == written_.end()) return;
  Status st = want ? cache_.upsert(prefix, *want, Source::kCustomResource)
                   : cache_.remove(prefix, Source::kCustomResource);
  if (!st.ok()) {
    log()->warn("ipcache {} {}: {}", want ? "upsert" : "remove", prefix.toString(),
                st.error().message());
    return;  // the next change of this prefix tries again
  }
  if (want)
    written_[prefix] = *want;
  else
    written_.erase(prefix);
}

}  // namespace cilium::ipcache
