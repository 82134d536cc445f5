// rtnetlink on raw netlink sockets: links (veth pairs, state, MTU, names, namespaces), IPv4
// and IPv6 addresses and routes, in the calling thread's network namespace. The agent uses them for
// cilium_host/cilium_net and the per-endpoint routes; cilium-cni for pod veths. No `ip` command.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::datapath::netlink {

struct Link {
  int ifindex = 0;
  std::string name;
  std::string kind;  // "veth", ... ("" when the kernel does not say)
  uint32_t mtu = 0;
  bool up = false;
  std::string mac;  // "aa:bb:cc:dd:ee:ff"
  // The device's peer (veth) or lower device lives in another network namespace.
  bool peer_in_other_netns = false;
  // kind "vxlan": its UDP port, and whether it is in collect_md ("external") mode.
  uint16_t vxlan_port = 0;
  bool vxlan_external = false;
};

// kNotFound when no such device exists.
Result<Link> linkByName(const std::string& name);
Result<Link> linkByIndex(int ifindex);
Result<std::vector<Link>> listLinks();

// Creates a veth pair; `peer_netns_fd` >= 0 creates the peer directly in that namespace.
// kAlreadyExists when `name` exists.
Status createVeth(const std::string& name, const std::string& peer, int peer_netns_fd = -1);
// Creates a VXLAN device in collect_md ("external") mode on UDP `port`: every packet sent through
// it carries its remote and VNI as tunnel metadata (bpf_skb_set_tunnel_key), and received ones
// carry the sender's. `mtu` 0 leaves the kernel's default. kAlreadyExists when `name` exists.
Status createVxlanExternal(const std::string& name, uint16_t port, uint32_t mtu = 0);
Status deleteLink(int ifindex);  // absent is fine
Status setLinkUp(int ifindex, bool up = true);
Status setMtu(int ifindex, uint32_t mtu);
// Turns ARP off (IFF_NOARP): routes through the device need no neighbour answer.
Status setLinkNoArp(int ifindex);
Status renameLink(int ifindex, const std::string& name);  // the device must be down
Status moveToNetns(int ifindex, int netns_fd);

// IPv4 addresses in network byte order. Adding an address that exists is fine.
Status addAddress4(int ifindex, uint32_t ip, uint8_t prefix_len);
Status deleteAddress4(int ifindex, uint32_t ip, uint8_t prefix_len);  // absent is fine
struct Address4 {
  uint32_t ip = 0;  // network byte order
  uint8_t prefix_len = 0;
  int ifindex = 0;  // the device it is on
};
// The IPv4 addresses on a device; ifindex 0: on every device of the namespace.
Result<std::vector<Address4>> addresses4(int ifindex);

// Route protocol numbers (rtm_protocol): who installed a route. `ip route show proto N` lists
// one owner's routes.
inline constexpr uint8_t kRouteProtocolStatic = 4;  // RTPROT_STATIC, the default here
// The agent's routes to other nodes' pod CIDRs (auto-direct-node-routes): a number of our own
// (not in /etc/iproute2/rt_protos), so a restarted agent finds what it installed.
inline constexpr uint8_t kRouteProtocolCilium = 196;

// Creates or replaces the route to ip/prefix_len through `ifindex` (scope link, main table;
// `via` != 0 routes through that gateway instead), marked with `protocol`.
Status replaceRoute4(uint32_t dst, uint8_t prefix_len, int ifindex, uint32_t via = 0,
                     uint8_t protocol = kRouteProtocolStatic);
// Removes the route to ip/prefix_len through `ifindex` (via `via`, when not 0) of `protocol`;
// absent is fine.
Status deleteRoute4(uint32_t dst, uint8_t prefix_len, int ifindex, uint32_t via = 0,
                    uint8_t protocol = kRouteProtocolStatic);
struct Route4 {
  uint32_t dst = 0;  // network byte order
  uint8_t prefix_len = 0;
  int ifindex = 0;
  uint32_t via = 0;  // the gateway, network byte order; 0 = none (scope link)
  uint8_t protocol = kRouteProtocolStatic;
  uint32_t src = 0;  // the preferred source address, network byte order; 0 = none
  uint32_t mtu = 0;  // the route's MTU metric; 0 = the device's (not read back by routes4)
};
// Creates or replaces `r` in the main table.
Status replaceRoute4(const Route4& r);
// The unicast IPv4 routes of the main table marked with `protocol`.
Result<std::vector<Route4>> routes4(uint8_t protocol);

// IPv6 (addresses as 16 bytes, network order). addAddress6 skips duplicate address detection
// (IFA_F_NODAD): a pod's address is unique by IPAM and must be usable at once.
using Ip6 = std::array<uint8_t, 16>;
Status addAddress6(int ifindex, const Ip6& ip, uint8_t prefix_len);
// replaceRoute4/deleteRoute4 for IPv6: `via` all zero routes through the device (scope link).
Status replaceRoute6(const Ip6& dst, uint8_t prefix_len, int ifindex, const Ip6& via = {});
Status deleteRoute6(const Ip6& dst, uint8_t prefix_len, int ifindex);
// Route4 for IPv6 (all-zero `via` and `src` are none).
struct Route6 {
  Ip6 dst{};
  uint8_t prefix_len = 0;
  int ifindex = 0;
  Ip6 via{};
  uint8_t protocol = kRouteProtocolStatic;
  Ip6 src{};
  uint32_t mtu = 0;  // not read back by routes6
};
Status replaceRoute6(const Route6& r);
Status deleteRoute6(const Route6& r);  // by destination, device, gateway and protocol
// The unicast IPv6 routes of the main table marked with `protocol`.
Result<std::vector<Route6>> routes6(uint8_t protocol);
// The IPv6 addresses on a device (ifindex 0: every device), link-local ones included.
struct Address6 {
  Ip6 ip{};
  uint8_t prefix_len = 0;
  int ifindex = 0;
};
Result<std::vector<Address6>> addresses6(int ifindex);

// Policy routing for the L7 proxies (bpf/abi/proxy.h): a rule sending packets whose mark matches
// `mark`/`mask` to `table` at `priority` (an identical rule is kept, never duplicated), and a
// `local 0.0.0.0/0 dev <ifindex>` route in `table`, so that they are delivered on this node.
Status ensureFwmarkRule4(uint32_t mark, uint32_t mask, uint32_t table, uint32_t priority);
Status replaceLocalDefaultRoute4(uint32_t table, int ifindex);
// Removes both (absent is fine).
Status deleteFwmarkRule4(uint32_t mark, uint32_t mask, uint32_t table, uint32_t priority);
Status deleteLocalDefaultRoute4(uint32_t table, int ifindex);
// The same for either family (IPv6: `local ::/0 dev <ifindex>`); the ...4 forms are kV4.
Status ensureFwmarkRule(IpFamily family, uint32_t mark, uint32_t mask, uint32_t table,
                        uint32_t priority);
Status replaceLocalDefaultRoute(IpFamily family, uint32_t table, int ifindex);
Status deleteFwmarkRule(IpFamily family, uint32_t mark, uint32_t mask, uint32_t table,
                        uint32_t priority);
Status deleteLocalDefaultRoute(IpFamily family, uint32_t table, int ifindex);

// Sets <procfs>/sys/net/ipv4/conf/<dev>/<key> (per device only; never the global switches).
// procfs is the host's procfs mount (agent key procfs, /proc unless the agent runs in an
// unprivileged container); the device is looked up in the caller's network namespace.
Status setDeviceSysctl(const std::string& procfs, const std::string& dev, const std::string& key,
                       const std::string& value);

}  // namespace cilium::datapath::netlink
