// Routes to other nodes' pod CIDRs via their addresses on a shared L2 (auto-direct-node-routes).
#include "agent/node/direct_routes.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "agent/common/log.h"

namespace cilium::node {
namespace {

auto& log() {
  static auto l = cilium::logger("node-routes");
  return l;
}

std::string text(const DirectRoute& r) {
  if (r.via == IpAddr{})
    return fmt::format("{} dev ifindex {} src {} mtu {}", r.cidr.toString(), r.ifindex,
                       r.src.toString(), r.mtu);
  return fmt::format("{} via {} (ifindex {})", r.cidr.toString(), r.via.toString(), r.ifindex);
}

}  // namespace

std::unique_ptr<DirectRoutes> DirectRoutes::start(Manager& nodes, RouteTable& table,
                                                  std::string local_node,
                                                  std::optional<TunnelRoutes> tunnel) {
  std::unique_ptr<DirectRoutes> r(
      new DirectRoutes(table, std::move(local_node), std::move(tunnel)));
  DirectRoutes* self = r.get();
  uint64_t id = nodes.subscribe([self](const Node& n, bool deleted) { self->onNode(n, deleted); });
  r->unsubscribe_ = [&nodes, id] { nodes.unsubscribe(id); };
  return r;
}

DirectRoutes::~DirectRoutes() {
  // Waits for an observer call in progress (the manager holds its lock while calling).
  if (unsubscribe_) unsubscribe_();
}

std::vector<DirectRoute> DirectRoutes::wantedLocked(const Node& n) {
  std::vector<DirectRoute> out;
  std::vector<std::string> why;
  // Each family on its own: an IPv6 pod CIDR goes via the node's IPv6 address (natively) or
  // into cilium_host from the IPv6 router address (tunnel; bpf_overlay's cil_from_host
  // encapsulates both families).
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    const std::string fam = f == IpFamily::kV4 ? "IPv4" : "IPv6";
    std::vector<IpPrefix> cidrs;
    for (const auto& c : n.pod_cidrs)
      if (c.family() == f) cidrs.push_back(c);
    if (cidrs.empty()) {
      if (f == IpFamily::kV4) why.push_back("no IPv4 pod CIDR yet");
      continue;
    }
    if (tunnel_) {
      const auto& src = tunnel_->src(f);
      if (!src) continue;
      // Through the tunnel: whatever the node's address, the ipcache names its tunnel endpoint.
      for (const auto& c : cidrs)
        out.push_back(DirectRoute{c, IpAddr{}, tunnel_->ifindex, *src, tunnel_->mtu});
      continue;
    }
    auto via = n.tunnelAddress(f);
    if (!via) {
      why.push_back(fmt::format("no {} InternalIP or ExternalIP", fam));
    } else if (auto dev = table_.connectedDevice(*via); !dev) {
      why.push_back(fmt::format("{} is not on a directly connected subnet", via->toString()));
    } else {
      for (const auto& c : cidrs) out.push_back(DirectRoute{c, *via, *dev});
    }
  }
  std::string text = fmt::format("{}", fmt::join(why, "; "));
  auto& last = skipped_[n.name];
  if (text != last && !text.empty()) log()->info("no direct route to node={}: {}", n.name, text);
  last = text;
  return out;
}

void DirectRoutes::onNode(const Node& n, bool deleted) {
  if (n.name == local_) return;
  std::lock_guard lock(mu_);
  std::vector<DirectRoute> wanted;
  if (deleted)
    skipped_.erase(n.name);
  else
    wanted = wantedLocked(n);
  std::vector<DirectRoute>& have = by_node_[n.name];
  // Gone first: a CIDR that moves to another gateway is replaced below, not removed after.
  for (const auto& r : have) {
    if (std::find(wanted.begin(), wanted.end(), r) != wanted.end()) continue;
    bool same_cidr = std::any_of(wanted.begin(), wanted.end(),
                                 [&](const DirectRoute& w) { return w.cidr == r.cidr; });
    if (same_cidr) continue;
    if (auto st = table_.remove(r); !st.ok())
      log()->warn("removing route {} of node={}: {}", text(r), n.name, st.error().message());
    else
      log()->info("route removed {} node={}", text(r), n.name);
  }
  std::vector<DirectRoute> now;
  for (const auto& r : wanted) {
    if (std::find(have.begin(), have.end(), r) != have.end()) {
      now.push_back(r);
      continue;
    }
    // A failure is retried at the node's next change (it is not recorded as installed).
    if (auto st = table_.replace(r); !st.ok()) {
      log()->warn("installing route {} to node={}: {}", text(r), n.name, st.error().message());
      continue;
    }
    log()->info("route installed {} node={}", text(r), n.name);
    now.push_back(r);
  }
  if (now.empty())
    by_node_.erase(n.name);
  else
    have = std::move(now);
}

void DirectRoutes::synced() {
  std::lock_guard lock(mu_);
  removeStaleLocked();
}

void DirectRoutes::removeStaleLocked() {
  auto installed = table_.installed();
  if (!installed.ok()) {
    log()->warn("listing the node routes: {}", installed.error().message());
    return;
  }
  for (const auto& r : *installed) {
    bool kept = false;
    for (const auto& [name, routes] : by_node_)
      for (const auto& k : routes) kept = kept || k.sameRoute(r);
    if (kept) continue;
    if (auto st = table_.remove(r); !st.ok())
      log()->warn("removing stale route {}: {}", text(r), st.error().message());
    else
      log()->info("stale route removed {}", text(r));
  }
}

size_t DirectRoutes::removeAll(RouteTable& table) {
  auto installed = table.installed();
  if (!installed.ok()) {
    log()->warn("listing the node routes: {}", installed.error().message());
    return 0;
  }
  size_t removed = 0;
  for (const auto& r : *installed) {
    if (auto st = table.remove(r); !st.ok()) {
      log()->warn("removing route {}: {}", text(r), st.error().message());
      continue;
    }
    removed++;
    log()->info("route removed {} (this node routes no other node now)", text(r));
  }
  return removed;
}

std::map<std::string, std::vector<DirectRoute>> DirectRoutes::routes() const {
  std::lock_guard lock(mu_);
  return by_node_;
}

}  // namespace cilium::node
