// auto-direct-node-routes (routing-mode=native): a route to each other node's pod CIDRs via that
// node's address, for every node on a subnet this node is directly connected to (a shared L2, so
// the address is a neighbour); nodes behind a router are skipped and logged, as Cilium does. The
// routes follow the node view (a node joining, leaving, changing its address or CIDRs); routes an
// earlier run installed (marked as the agent's in the kernel) and no longer wanted go once the
// view is complete (synced()). docs/datapath.md, "Native routing".
// In routing-mode=tunnel the same component routes every other node's pod CIDRs into cilium_host
// instead (TunnelRoutes: from the router address, at the tunnel MTU), where bpf_overlay's
// cil_from_host encapsulates the node's own packets towards the node the ipcache names.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/node/node.h"

namespace cilium::node {

struct DirectRoute {
  IpPrefix cidr;    // a node's pod CIDR
  IpAddr via;       // that node's address; unset (IpAddr{}) for a tunnel route
  int ifindex = 0;  // the device of the subnet holding `via`, or cilium_host
  IpAddr src;       // the preferred source (tunnel routes: the router address); unset: none
  uint32_t mtu = 0;  // tunnel routes: the pod MTU; 0: the device's
  auto operator<=>(const DirectRoute&) const = default;
  // The kernel's identity of a route (what installed() reads back): destination, gateway, device.
  bool sameRoute(const DirectRoute& o) const {
    return cidr == o.cidr && via == o.via && ifindex == o.ifindex;
  }
};

// routing-mode=tunnel: every other node's pod CIDRs go into `ifindex` (cilium_host), those of a
// family without a router address nowhere.
struct TunnelRoutes {
  int ifindex = 0;
  std::optional<IpAddr> src4;  // the IPv4 router address (cilium_host's)
  uint32_t mtu = 0;
  std::optional<IpAddr> src6;  // dual stack: the IPv6 router address, also on cilium_host
  const std::optional<IpAddr>& src(IpFamily f) const { return f == IpFamily::kV4 ? src4 : src6; }
};

// The kernel routing table as DirectRoutes needs it (netlink in the agent; a fake in tests).
// Called from node observers, one call at a time.
class RouteTable {
 public:
  virtual ~RouteTable() = default;
  // The routes marked as installed by this component, by this run or an earlier one.
  virtual Result<std::vector<DirectRoute>> installed() = 0;
  virtual Status replace(const DirectRoute& route) = 0;
  virtual Status remove(const DirectRoute& route) = 0;  // absent is fine
  // The device with an address on a subnet holding `ip` (ip is a neighbour); nullopt: none.
  virtual std::optional<int> connectedDevice(const IpAddr& ip) = 0;
};

class DirectRoutes {
 public:
  // Follows `nodes` from now on: the routes of the nodes already known are installed when this
  // returns. Nothing is removed that this run did not install until synced(). `nodes` and
  // `table` must outlive it.
  // With `tunnel`, the routes are TunnelRoutes rather than via the nodes' addresses.
  static std::unique_ptr<DirectRoutes> start(Manager& nodes, RouteTable& table,
                                             std::string local_node,
                                             std::optional<TunnelRoutes> tunnel = std::nullopt);
  // Stops following; the routes stay (the datapath keeps forwarding across a restart).
  ~DirectRoutes();
  DirectRoutes(const DirectRoutes&) = delete;
  DirectRoutes& operator=(const DirectRoutes&) = delete;

  // The node view is complete: installed routes that no known node wants (an earlier run's for
  // a node gone since) are removed. Before it, only routes this run installed are removed.
  void synced();
  // Neither auto-direct-node-routes nor tunnel routes: removes every route an earlier run
  // installed (the mode changed); how many went. Errors are logged.
  static size_t removeAll(RouteTable& table);
  // The routes in force, by node name (tests, status).
  std::map<std::string, std::vector<DirectRoute>> routes() const;

 private:
  DirectRoutes(RouteTable& table, std::string local_node, std::optional<TunnelRoutes> tunnel)
      : table_(table), local_(std::move(local_node)), tunnel_(std::move(tunnel)) {}
  void onNode(const Node& node, bool deleted);
  std::vector<DirectRoute> wantedLocked(const Node& node);
  void removeStaleLocked();

  RouteTable& table_;
  const std::string local_;
  const std::optional<TunnelRoutes> tunnel_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<DirectRoute>> by_node_;  // installed by this run
  std::map<std::string, std::string> skipped_;  // node -> why it has no routes (logged once)
  std::function<void()> unsubscribe_;
};

}  // namespace cilium::node
