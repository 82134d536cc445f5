// cilium_vxlan over rtnetlink.
#include "agent/datapath/tunnel.h"

#include "agent/datapath/netlink.h"

namespace cilium::datapath {

Result<int> ensureVxlanDevice(uint16_t port) {
  auto existing = netlink::linkByName(kVxlanDevice);
  if (existing.ok() &&
      (existing->kind != "vxlan" || !existing->vxlan_external || existing->vxlan_port != port)) {
    CILIUM_RETURN_IF_ERROR(netlink::deleteLink(existing->ifindex));
    existing = makeError(ErrorCode::kNotFound, "replaced");
  }
  if (!existing.ok()) {
    if (existing.error().code() != ErrorCode::kNotFound) return existing.error();
    CILIUM_RETURN_IF_ERROR(netlink::createVxlanExternal(kVxlanDevice, port));
    CILIUM_ASSIGN_OR_RETURN(existing, netlink::linkByName(kVxlanDevice));
  }
  CILIUM_RETURN_IF_ERROR(netlink::setLinkUp(existing->ifindex));
  return existing->ifindex;
}

Status removeVxlanDevice() {
  auto existing = netlink::linkByName(kVxlanDevice);
  if (!existing.ok())
    return existing.error().code() == ErrorCode::kNotFound ? okStatus() : existing.error();
  return netlink::deleteLink(existing->ifindex);
}

}  // namespace cilium::datapath
