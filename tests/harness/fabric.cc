// The outside client, the remote node and the bridge between them and the node's ext0.
#include "tests/harness/fabric.h"

#include "agent/common/subprocess.h"
#include "tests/harness/endpoints.h"

namespace cilium::testing {
namespace {

Status ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  auto r = runChecked(args);
  if (!r.ok()) return r.error();
  return okStatus();
}

Status sysctlIn(const std::string& netns_path, const std::string& setting) {
  SpawnOptions opts;
  opts.netns = netns_path;
  auto r = runChecked({"sysctl", "-qw", setting}, opts);
  if (!r.ok()) return r.error();
  return okStatus();
}

}  // namespace

Fabric::~Fabric() {
  for (const auto& ns : netns_) (void)ip({"netns", "del", ns});
}

Status Fabric::addNetns(const std::string& name) {
  CILIUM_RETURN_IF_ERROR(ip({"netns", "add", name}));
  netns_.push_back(name);
  return ip({"-n", name, "link", "set", "lo", "up"});
}

// A veth from `ns` (named `ifname` there) into the bridge in the fabric namespace.
Status Fabric::plug(const std::string& ns, const std::string& ifname, const std::string& port,
                    const std::string& addr) {
  CILIUM_RETURN_IF_ERROR(ip(
      {"-n", fabric_, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", fabric_, "link", "set", port, "master", "br0", "up"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", ns, "addr", "add", addr + "/24", "dev", ifname}));
  return ip({"-n", ns, "link", "set", ifname, "up"});
}

Status Fabric::build(const Topology& topo) {
  fabric_ = topo.prefix() + "-fab";
  outside_ = topo.prefix() + "-out";
  remote_ = topo.prefix() + "-rem";
  std::string node = topo.nodeNetns().substr(std::string("/run/netns/").size());
  CILIUM_RETURN_IF_ERROR(addNetns(fabric_));
  CILIUM_RETURN_IF_ERROR(addNetns(outside_));
  CILIUM_RETURN_IF_ERROR(addNetns(remote_));
  CILIUM_RETURN_IF_ERROR(ip({"-n", fabric_, "link", "add", "br0", "type", "bridge"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", fabric_, "link", "set", "br0", "up"}));
  CILIUM_RETURN_IF_ERROR(plug(node, "ext0", "f-node", kNodeIp));
  CILIUM_RETURN_IF_ERROR(plug(outside_, "eth0", "f-out", kClientIp));
  CILIUM_RETURN_IF_ERROR(plug(remote_, "eth0", "f-rem", kRemoteNodeIp));
  // The remote node's pod address, and the node's route to the remote pod CIDR.
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", remote_, "addr", "add", std::string(kRemoteBackend) + "/32", "dev", "lo"}));
  return ip({"-n", node, "route", "add", "10.250.0.0/24", "via", kRemoteNodeIp, "dev", "ext0"});
}

Status Fabric::enableIpv6(const Topology& topo) {
  std::string node = topo.nodeNetns();
  for (const char* setting :
       {"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
        "net.ipv6.conf.all.forwarding=1"})
    CILIUM_RETURN_IF_ERROR(sysctlIn(node, setting));
  const std::string node_ns = node.substr(node.rfind('/') + 1);
  CILIUM_RETURN_IF_ERROR(ip(
      {"-n", node_ns, "-6", "addr", "add", std::string(kNodeIp6) + "/64", "dev", "ext0", "nodad"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", outside_, "-6", "addr", "add", std::string(kClientIp6) + "/64",
                             "dev", "eth0", "nodad"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", remote_, "-6", "addr", "add",
                             std::string(kRemoteNodeIp6) + "/64", "dev", "eth0", "nodad"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", remote_, "-6", "addr", "add",
                             std::string(kRemoteBackend6) + "/128", "dev", "lo", "nodad"}));
  return ip(
      {"-n", node_ns, "-6", "route", "add", "fd00:250::/64", "via", kRemoteNodeIp6, "dev", "ext0"});
}

Status Fabric::addFarHost(const Topology& topo, int mtu) {
  far_ = topo.prefix() + "-far";
  std::string node = topo.nodeNetns().substr(topo.nodeNetns().rfind('/') + 1);
  std::string m = std::to_string(mtu);
  CILIUM_RETURN_IF_ERROR(addNetns(far_));
  CILIUM_RETURN_IF_ERROR(ip({"-n", outside_, "link", "add", "far0", "mtu", m, "type", "veth",
                             "peer", "name", "eth0", "mtu", m, "netns", far_}));
  for (const char* setting : {"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"})
    CILIUM_RETURN_IF_ERROR(sysctlIn(path(outside_), setting));
  CILIUM_RETURN_IF_ERROR(ip({"-n", outside_, "addr", "add", "192.168.78.1/24", "dev", "far0"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", outside_, "-6", "addr", "add", "2001:db8:78::1/64", "dev", "far0", "nodad"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", outside_, "link", "set", "far0", "up"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", far_, "addr", "add", std::string(kFarIp) + "/24", "dev", "eth0"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", far_, "-6", "addr", "add", std::string(kFarIp6) + "/64", "dev", "eth0", "nodad"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", far_, "link", "set", "eth0", "up"}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", far_, "route", "add", "default", "via", "192.168.78.1"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", far_, "-6", "route", "add", "default", "via", "2001:db8:78::1"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", node, "route", "add", "192.168.78.0/24", "via", kClientIp, "dev", "ext0"}));
  // Without IPv6 on the node (enableIpv6 not called) only the IPv4 route is wanted.
  auto has6 =
      runChecked({"ip", "-n", node, "-6", "addr", "show", "dev", "ext0", "scope", "global"});
  if (has6.ok() && has6->find("inet6") != std::string::npos)
    CILIUM_RETURN_IF_ERROR(ip(
        {"-n", node, "-6", "route", "add", "2001:db8:78::/64", "via", kClientIp6, "dev", "ext0"}));
  return okStatus();
}

Status Fabric::wireForDriverXdp() {
  for (const auto& ns : {outside_, remote_})
    CILIUM_RETURN_IF_ERROR(
        runChecked({"ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"}));
  return attachXdpPass(path(fabric_), "f-node");
}

}  // namespace cilium::testing
