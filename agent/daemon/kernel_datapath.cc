// The control plane's kernel datapath: bpf_lxc loaded with the agent's configuration, endpoint
// programs attached with tcx, routes and veths over rtnetlink, cilium_host/cilium_net, and
// cilium_vxlan with bpf_overlay in routing-mode=tunnel, the node routes of
// auto-direct-node-routes in routing-mode=native.
#include <dirent.h>

#include <cstdio>
#include <set>

#include "agent/daemon/control_plane.h"
#include "agent/datapath/netlink.h"
#include "agent/datapath/tunnel.h"
#include "agent/endpoint/manager.h"
#include "agent/node/direct_routes.h"

namespace cilium::daemon {
namespace {

namespace nl = datapath::netlink;

// Devices, routes and programs for the endpoint manager, in the agent's (node) namespace.
class KernelDevices final : public endpoint::Devices {
 public:
  explicit KernelDevices(datapath::Datapath& dp) : dp_(dp) {}
  Status attach(int ifindex) override { return dp_.attachEndpoint(ifindex); }
  Status detach(int ifindex) override { return dp_.detachEndpoint(ifindex); }
  Status addRoute(const IpAddr& ip, int ifindex) override {
    if (!ip.isV4()) return nl::replaceRoute6(ip.bytes(), 128, ifindex);
    return nl::replaceRoute4(ip.v4NetworkOrder(), 32, ifindex);
  }
  Status removeRoute(const IpAddr& ip, int ifindex) override {
    if (!ip.isV4()) return nl::deleteRoute6(ip.bytes(), 128, ifindex);
    return nl::deleteRoute4(ip.v4NetworkOrder(), 32, ifindex);
  }
  Status deleteLink(int ifindex) override { return nl::deleteLink(ifindex); }
  bool linkExists(int ifindex, const std::string& name) override {
    auto l = nl::linkByIndex(ifindex);
    return l.ok() && (name.empty() || l->name == name);
  }
  Status checkPodDevice(int ifindex, const std::string& name) override {
    auto l = nl::linkByIndex(ifindex);
    if (!l.ok())
      return makeError(ErrorCode::kInvalidArgument, "no device with index {} on this node",
                       ifindex);
    if (!name.empty() && l->name != name)
      return makeError(ErrorCode::kInvalidArgument, "device {} is {}, not {}", ifindex, l->name,
                       name);
    if (l->name.rfind("cilium_", 0) == 0 || l->name == "lo")
      return makeError(ErrorCode::kInvalidArgument, "{} is one of the agent's own devices",
                       l->name);
    if (l->kind != "veth" || !l->peer_in_other_netns)
      return makeError(ErrorCode::kInvalidArgument,
                       "{} is not the host side of a pod's veth (a veth whose peer is in the "
                       "pod's network namespace)",
                       l->name);
    return okStatus();
  }
  std::vector<int> attachedLinks() override {
    // Pins are named lxc_<ifindex>_<direction> (Datapath::attachEndpoint).
    std::set<int> out;
    std::string dir = dp_.config().pin_dir + "/links";
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        int ifindex = 0;
        if (std::sscanf(e->d_name, "lxc_%d_", &ifindex) == 1 && ifindex > 0) out.insert(ifindex);
      }
      ::closedir(d);
    }
    return {out.begin(), out.end()};
  }

 private:
  datapath::Datapath& dp_;
};

// The main routing table of the agent's namespace for auto-direct-node-routes: IPv4 and IPv6
// routes via a node's address, marked with the agent's route protocol number.
class KernelNodeRoutes final : public node::RouteTable {
 public:
  Result<std::vector<node::DirectRoute>> installed() override {
    CILIUM_ASSIGN_OR_RETURN(auto routes, nl::routes4(nl::kRouteProtocolCilium));
    std::vector<node::DirectRoute> out;
    for (const auto& r : routes) {
      // Tunnel routes (into cilium_host) have no gateway.
      node::DirectRoute d{IpPrefix(IpAddr::fromNetworkOrder(r.dst), r.prefix_len), IpAddr{},
                          r.ifindex};
      if (r.via != 0) d.via = IpAddr::fromNetworkOrder(r.via);
      if (r.src != 0) d.src = IpAddr::fromNetworkOrder(r.src);
      out.push_back(d);
    }
    CILIUM_ASSIGN_OR_RETURN(auto routes6, nl::routes6(nl::kRouteProtocolCilium));
    for (const auto& r : routes6) {
      node::DirectRoute d{IpPrefix(v6(r.dst), r.prefix_len), IpAddr{}, r.ifindex};
      if (r.via != nl::Ip6{}) d.via = v6(r.via);
      if (r.src != nl::Ip6{}) d.src = v6(r.src);
      out.push_back(d);
    }
    return out;
  }
  Status replace(const node::DirectRoute& r) override {
    if (r.cidr.family() == IpFamily::kV6) return nl::replaceRoute6(kernel6(r));
    return nl::replaceRoute4(kernel(r));
  }
  Status remove(const node::DirectRoute& r) override {
    if (r.cidr.family() == IpFamily::kV6) return nl::deleteRoute6(kernel6(r));
    nl::Route4 k = kernel(r);
    return nl::deleteRoute4(k.dst, k.prefix_len, k.ifindex, k.via, k.protocol);
  }
  std::optional<int> connectedDevice(const IpAddr& ip) override {
    if (!ip.isV4()) {
      auto addrs = nl::addresses6(0);
      if (!addrs.ok()) return std::nullopt;
      for (const auto& a : *addrs) {
        IpAddr local = v6(a.ip);
        // Link-local prefixes are on every device; a /128 has no neighbours.
        if (a.prefix_len >= 128 || a.prefix_len == 0 || local == ip ||
            IpPrefix(*IpAddr::parse("fe80::"), 10).contains(local))
          continue;
        if (IpPrefix(local, a.prefix_len).contains(ip)) return a.ifindex;
      }
      return std::nullopt;
    }
    auto addrs = nl::addresses4(0);
    if (!addrs.ok()) return std::nullopt;
    for (const auto& a : *addrs) {
      // A /32 (cilium_host's router address) has no neighbours; the node's own address is none.
      if (a.prefix_len >= 32 || a.ip == ip.v4NetworkOrder()) continue;
      if (IpPrefix(IpAddr::fromNetworkOrder(a.ip), a.prefix_len).contains(ip)) return a.ifindex;
    }
    return std::nullopt;
  }

 private:
  static uint32_t v4(const IpAddr& ip) { return ip == IpAddr{} ? 0 : ip.v4NetworkOrder(); }
  static IpAddr v6(const nl::Ip6& b) { return IpAddr::fromBytes(IpFamily::kV6, b.data()); }
  static nl::Ip6 bytes6(const IpAddr& ip) {
    nl::Ip6 out{};
    if (!ip.isV4()) out = ip.bytes();
    return out;
  }
  static nl::Route4 kernel(const node::DirectRoute& r) {
    return nl::Route4{r.cidr.addr().v4NetworkOrder(), static_cast<uint8_t>(r.cidr.len()),
                      r.ifindex, v4(r.via), nl::kRouteProtocolCilium, v4(r.src), r.mtu};
  }
  static nl::Route6 kernel6(const node::DirectRoute& r) {
    return nl::Route6{r.cidr.addr().bytes(),
                      static_cast<uint8_t>(r.cidr.len()),
                      r.ifindex,
                      bytes6(r.via),
                      nl::kRouteProtocolCilium,
                      bytes6(r.src),
                      r.mtu};
  }
};

class KernelDatapath final : public ControlPlaneDatapath {
 public:
  KernelDatapath(std::unique_ptr<datapath::Datapath> dp, bool host_device, bool tunnel)
      : dp_(std::move(dp)), devices_(*dp_), host_device_(host_device), tunnel_(tunnel) {}
  datapath::Maps maps() override { return dp_->maps(); }
  endpoint::Devices& devices() override { return devices_; }
  Status setupHostDevice(const IpAddr& router, const std::optional<IpAddr>& router6) override {
    if (!host_device_) return okStatus();
    if (!nl::linkByName("cilium_host").ok())
      CILIUM_RETURN_IF_ERROR(nl::createVeth("cilium_host", "cilium_net"));
    CILIUM_ASSIGN_OR_RETURN(auto host, nl::linkByName("cilium_host"));
    CILIUM_ASSIGN_OR_RETURN(auto net, nl::linkByName("cilium_net"));
    // No neighbour answers behind cilium_host: what the node routes there (other nodes' pod
    // CIDRs in tunnel mode) leaves through bpf_overlay's cil_from_host on its egress.
    CILIUM_RETURN_IF_ERROR(nl::setLinkNoArp(host.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::setLinkUp(net.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::setLinkUp(host.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::addAddress4(host.ifindex, router.v4NetworkOrder(), 32));
    // Dual stack: the IPv6 router address too, the source of the node's own IPv6 packets to
    // other nodes' pods (the IPv6 tunnel routes) and where their replies come back to.
    if (router6) CILIUM_RETURN_IF_ERROR(nl::addAddress6(host.ifindex, router6->bytes(), 128));
    host_ifindex_ = host.ifindex;
    return tunnel_ ? dp_->attachHostEgress(host.ifindex) : dp_->detachHostEgress();
  }
  int hostDeviceIfindex() const override { return host_ifindex_; }
  bool hasEvents() const override { return true; }
  Result<std::unique_ptr<datapath::EventReader>> openEventReader(
      datapath::EventReader::Callback cb) override {
    return dp_->openEventReader(std::move(cb));
  }
  Result<std::vector<datapath::MetricsEntry>> readMetrics() const override {
    return dp_->readMetrics();
  }
  Result<datapath::EventCounters> eventCounters() const override { return dp_->eventCounters(); }
  Status enableProxyRedirect() override { return dp_->enableProxyRedirect(); }
  node::RouteTable* nodeRoutes() override { return &routes_; }

 private:
  std::unique_ptr<datapath::Datapath> dp_;
  KernelDevices devices_;
  KernelNodeRoutes routes_;
  bool host_device_;
  bool tunnel_;
  int host_ifindex_ = 0;
};

// Tunnel mode: cilium_vxlan and bpf_overlay on it, then encapsulation on. Native: encapsulation
// off and the device gone, whatever an earlier run in tunnel mode left.
Status setupRouting(datapath::Datapath& dp, const ControlPlaneOptions& opts) {
  if (opts.routing_mode == "tunnel") {
    CILIUM_ASSIGN_OR_RETURN(int ifindex, datapath::ensureVxlanDevice(opts.tunnel_port));
    return dp.attachOverlay(ifindex);
  }
  if (opts.routing_mode != "native")
    return makeError(ErrorCode::kInvalidArgument, "routing mode '{}' is neither tunnel nor native",
                     opts.routing_mode);
  CILIUM_RETURN_IF_ERROR(dp.detachOverlay());
  return datapath::removeVxlanDevice();
}

}  // namespace

Result<std::unique_ptr<ControlPlaneDatapath>> loadKernelDatapath(const ControlPlaneOptions& opts) {
  datapath::Config dcfg;
  dcfg.pin_dir = opts.pin_dir;
  dcfg.procfs = opts.procfs;
  dcfg.ct_tcp_map_entries = opts.ct_tcp_entries;
  dcfg.ct_any_map_entries = opts.ct_any_entries;
  dcfg.policy_map_entries = opts.policy_map_entries;
  dcfg.monitor_aggregation = opts.monitor_aggregation == "none"
                                 ? datapath::MonitorAggregation::kNone
                                 : datapath::MonitorAggregation::kMedium;
  auto loopback = IpAddr::parse(opts.service_loopback_ipv4);
  if (!loopback.ok() || !loopback->isV4())
    return makeError(ErrorCode::kInvalidArgument, "service loopback address '{}' is not IPv4",
                     opts.service_loopback_ipv4);
  dcfg.lb_loopback_ipv4 = loopback->v4NetworkOrder();
  auto loopback6 = IpAddr::parse(opts.service_loopback_ipv6);
  if (!loopback6.ok() || loopback6->isV4())
    return makeError(ErrorCode::kInvalidArgument, "service loopback address '{}' is not IPv6",
                     opts.service_loopback_ipv6);
  dcfg.lb_loopback_ipv6 = loopback6->bytes();
  CILIUM_ASSIGN_OR_RETURN(auto dp, datapath::Datapath::load(dcfg));
  if (opts.host_device) CILIUM_RETURN_IF_ERROR(setupRouting(*dp, opts));
  return std::unique_ptr<ControlPlaneDatapath>(
      std::make_unique<KernelDatapath>(std::move(dp), opts.host_device,
                                       opts.routing_mode == "tunnel"));
}

}  // namespace cilium::daemon
