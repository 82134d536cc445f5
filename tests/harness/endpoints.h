// Programs the datapath maps for harness pods the way the agent's endpoint manager will: the
// endpoint in cilium_lxc/cilium_lxc_if, its address in the ipcache, and the node's address as a
// host endpoint. For tests, benchmarks and demos that run the datapath without an agent.
#pragma once

#include <cstdint>
#include <string>

#include "agent/datapath/maps.h"
#include "tests/harness/netns.h"

namespace cilium::testing {

// Writes `pod` as endpoint `id` with security identity `identity` (both addresses of a
// dual-stack pod). Does not touch policy.
Status programEndpoint(const datapath::Maps& maps, const Pod& pod, uint16_t id, uint32_t identity);
// Removes what programEndpoint() wrote.
Status unprogramEndpoint(const datapath::Maps& maps, const Pod& pod);
// Writes the node's address (the pods' router) as the local host: ipcache identity host and a
// cilium_lxc entry flagged ENDPOINT_F_HOST, so pods' traffic to it goes up the node's stack.
Status programNode(const datapath::Maps& maps, const std::string& node_ip);

// Makes `ifname` (a veth in namespace `netns_path`) behave like the far end of a wire for a
// device running driver-mode XDP: attaches a two-instruction XDP_PASS program in driver mode.
// A veth delivers its peer's XDP_TX / XDP_REDIRECT frames only while its own NAPI runs, which an
// XDP program guarantees. The attachment lives as long as the device.
Status attachXdpPass(const std::string& netns_path, const std::string& ifname);

}  // namespace cilium::testing
