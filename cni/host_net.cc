// HostNet on rtnetlink: the pod's veth pair, created with its peer directly inside the pod's
// network namespace, addressed and routed there. Any failure removes the pair again.
#include <arpa/inet.h>

#include <optional>

#include <fmt/format.h>

#include "agent/common/inet.h"
#include "agent/common/netns.h"
#include "agent/datapath/netlink.h"
#include "cni/input.h"
#include "cni/plugin.h"

namespace cilium::cni {
namespace {

namespace nl = datapath::netlink;

// An address of `family`, or none for "".
Result<std::optional<IpAddr>> addressOf(IpFamily family, const std::string& text) {
  if (text.empty()) return std::optional<IpAddr>();
  CILIUM_ASSIGN_OR_RETURN(IpAddr ip, IpAddr::parse(text));
  if (ip.family() != family)
    return makeError(ErrorCode::kInvalidArgument, "{} is not {}", text,
                     family == IpFamily::kV4 ? "IPv4" : "IPv6");
  return std::optional<IpAddr>(ip);
}

// Inside the pod: the interface up with its MTU, the /32, a link route to the gateway (the only
// neighbour a /32 has) and the default route through it; the same for IPv6 (the gateway is
// answered by bpf_lxc's neighbour discovery responder). Either family may be absent.
Status configurePod(const PodLink& link, const std::optional<IpAddr>& ip,
                    const std::optional<IpAddr>& gw, const std::optional<IpAddr>& ip6,
                    const std::optional<IpAddr>& gw6) {
  CILIUM_ASSIGN_OR_RETURN(nl::Link dev, nl::linkByName(link.ifname));
  CILIUM_RETURN_IF_ERROR(nl::setMtu(dev.ifindex, static_cast<uint32_t>(link.mtu)));
  CILIUM_RETURN_IF_ERROR(nl::setLinkUp(dev.ifindex));
  if (ip && gw) {
    CILIUM_RETURN_IF_ERROR(nl::addAddress4(dev.ifindex, ip->v4NetworkOrder(), 32));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute4(gw->v4NetworkOrder(), 32, dev.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute4(0, 0, dev.ifindex, gw->v4NetworkOrder()));
  }
  if (ip6 && gw6) {
    CILIUM_RETURN_IF_ERROR(nl::addAddress6(dev.ifindex, ip6->bytes(), 128));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute6(gw6->bytes(), 128, dev.ifindex));
    CILIUM_RETURN_IF_ERROR(nl::replaceRoute6(nl::Ip6{}, 0, dev.ifindex, gw6->bytes()));
  }
  return okStatus();
}

class NetlinkHostNet final : public HostNet {
 public:
  Result<PodLinkInfo> setup(const PodLink& link) override {
    CILIUM_ASSIGN_OR_RETURN(auto ip, addressOf(IpFamily::kV4, link.address));
    CILIUM_ASSIGN_OR_RETURN(auto gw, addressOf(IpFamily::kV4, link.gateway));
    CILIUM_ASSIGN_OR_RETURN(auto ip6, addressOf(IpFamily::kV6, link.address6));
    CILIUM_ASSIGN_OR_RETURN(auto gw6, addressOf(IpFamily::kV6, link.gateway6));
    if (ip.has_value() != gw.has_value() || ip6.has_value() != gw6.has_value() || (!ip && !ip6))
      return Error(ErrorCode::kInvalidArgument,
                   "a pod link needs an address and its gateway of at least one family");
    auto netns = openNetns(link.netns);
    if (!netns.ok()) {
      return makeError(ErrorCode::kNotFound, "network namespace {}: {}", link.netns,
                       netns.error().message());
    }
    CILIUM_RETURN_IF_ERROR(nl::createVeth(link.host_ifname, link.ifname, netns->get()));
    auto undo = [&](const Error& e) -> Error {
      if (auto host = nl::linkByName(link.host_ifname); host.ok())
        (void)nl::deleteLink(host->ifindex);
      return e;
    };
    auto host = nl::linkByName(link.host_ifname);
    if (!host.ok()) return undo(host.error());
    if (auto st = nl::setMtu(host->ifindex, static_cast<uint32_t>(link.mtu)); !st.ok())
      return undo(st.error());
    if (auto st = nl::setLinkUp(host->ifindex); !st.ok()) return undo(st.error());
    auto pod = runInNetnsValue<nl::Link>(link.netns, [&]() -> Result<nl::Link> {
      CILIUM_RETURN_IF_ERROR(configurePod(link, ip, gw, ip6, gw6));
      return nl::linkByName(link.ifname);
    });
    if (!pod.ok()) return undo(pod.error());
    // The MAC as the kernel reports it after the device came up.
    auto host_now = nl::linkByName(link.host_ifname);
    if (!host_now.ok()) return undo(host_now.error());
    return PodLinkInfo{host_now->ifindex, host_now->mac, pod->mac, pod->ifindex};
  }

  Status teardown(const std::string& host_ifname) override {
    auto host = nl::linkByName(host_ifname);
    if (!host.ok())
      return host.error().code() == ErrorCode::kNotFound ? okStatus() : Status(host.error());
    return nl::deleteLink(host->ifindex);
  }

  Status checkNetns(const std::string& netns) override { return checkNetnsPath(netns); }

  Status check(const std::string& netns, const std::string& ifname,
               const std::string& address) override {
    CILIUM_ASSIGN_OR_RETURN(IpAddr ip, IpAddr::parse(address));
    return runInNetns(netns, [&]() -> Status {
      CILIUM_ASSIGN_OR_RETURN(nl::Link dev, nl::linkByName(ifname));
      if (!dev.up) return makeError(ErrorCode::kNotFound, "{} in {} is down", ifname, netns);
      if (ip.isV4()) {
        CILIUM_ASSIGN_OR_RETURN(auto addrs, nl::addresses4(dev.ifindex));
        for (const auto& a : addrs)
          if (a.ip == ip.v4NetworkOrder()) return okStatus();
      } else {
        CILIUM_ASSIGN_OR_RETURN(auto addrs, nl::addresses6(dev.ifindex));
        for (const auto& a : addrs)
          if (IpAddr::fromBytes(IpFamily::kV6, a.ip.data()) == ip) return okStatus();
      }
      return makeError(ErrorCode::kNotFound, "{} in {} does not carry {}", ifname, netns, address);
    });
  }
};

}  // namespace

std::unique_ptr<HostNet> makeHostNet() { return std::make_unique<NetlinkHostNet>(); }

}  // namespace cilium::cni
