// The node's VXLAN overlay device (routing-mode=tunnel): cilium_vxlan in collect_md mode. The pod
// MTU that leaves room for the encapsulation is podMtu() (map_config.h).
#pragma once

#include <cstdint>

#include "agent/common/error.h"

namespace cilium::datapath {

inline constexpr const char* kVxlanDevice = "cilium_vxlan";
inline constexpr uint16_t kDefaultTunnelPort = 8472;  // tunnel-port, as Cilium's VXLAN default

// Makes sure cilium_vxlan exists in the calling thread's network namespace as a collect_md VXLAN
// device on UDP `port`, and is up; returns its ifindex. A device of that name with another kind,
// port or mode is replaced (the agent owns every cilium_* device).
Result<int> ensureVxlanDevice(uint16_t port);
// Removes cilium_vxlan (native routing); absent is fine.
Status removeVxlanDevice();

}  // namespace cilium::datapath
