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

Status Fabric::wireForDriverXdp() {
  for (const auto& ns : {outside_, remote_})
    CILIUM_RETURN_IF_ERROR(
        runChecked({"ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"}));
  return attachXdpPass(path(fabric_), "f-node");
}

}  // namespace cilium::testing
