// The world outside a node, for NodePort tests and benchmarks: an "outside" client and a
// "remote node" (holding a remote backend address on its loopback) share an L2 segment, a bridge
// in a "fabric" namespace, with the node's native device ext0:
//
//   outside 192.168.77.100 --+
//   remote  192.168.77.2   --+-- br0 (fabric) -- ext0 192.168.77.1 [node]
//     (backend 10.250.0.5 on its lo; the node routes 10.250.0.0/24 via the remote node)
//
// Namespaces carry the topology's prefix, so a killed run's are swept with it.
#pragma once

#include <string>
#include <vector>

#include "agent/common/error.h"
#include "tests/harness/netns.h"

namespace cilium::testing {

class Fabric {
 public:
  static constexpr const char* kNodeIp = "192.168.77.1";
  static constexpr const char* kRemoteNodeIp = "192.168.77.2";
  static constexpr const char* kClientIp = "192.168.77.100";
  static constexpr const char* kRemoteBackend = "10.250.0.5";
  // IPv6 (enableIpv6): the v6Twin of each address above on the same /64.
  static constexpr const char* kNodeIp6 = "2001:db8::1";
  static constexpr const char* kRemoteNodeIp6 = "2001:db8::2";
  static constexpr const char* kClientIp6 = "2001:db8::100";
  static constexpr const char* kRemoteBackend6 = "fd00:250::5";
  // A far host behind the outside client (addFarHost), over a link with a smaller MTU.
  static constexpr const char* kFarIp = "192.168.78.9";
  static constexpr const char* kFarIp6 = "2001:db8:78::9";

  Fabric() = default;
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;
  ~Fabric();

  // Builds the namespaces and links next to `topo`'s node namespace.
  Status build(const Topology& topo);

  // Makes the fabric behave towards ext0 like a wire towards a physical NIC, for driver-mode XDP
  // on ext0. Two things a wire gives that a veth does not:
  //  - frames with complete checksums: a veth hands over its sender's CHECKSUM_PARTIAL skbs,
  //    whose TCP checksum field holds only the pseudo-header sum, and driver-mode XDP sees raw
  //    bytes without that state; so the senders compute checksums themselves;
  //  - a receiver for XDP_TX: a veth delivers XDP_TX frames only to a peer running NAPI, which
  //    an XDP program of its own guarantees.
  Status wireForDriverXdp();

  // IPv6 on the node's ext0 (kNodeIp6/64), the outside client's eth0 (kClientIp6/64) and the
  // remote node's (kRemoteNodeIp6/64, kRemoteBackend6 on its lo, routed by the node via the
  // remote node), with IPv6 turned on in the node namespace (Topology turns it off) and
  // forwarding there, as a dual-stack node has: pods' IPv6 to the outside is routed out of ext0.
  Status enableIpv6(const Topology& topo);
  // A far host (kFarIp, kFarIp6) that the outside client routes to over a link of `mtu` bytes,
  // so that the client, as a router, answers bigger packets with ICMP "fragmentation needed" /
  // ICMPv6 "packet too big". The node routes the far host's networks via the client.
  Status addFarHost(const Topology& topo, int mtu);

  // /run/netns/<name> paths.
  std::string outsideNetns() const { return path(outside_); }
  std::string remoteNetns() const { return path(remote_); }
  std::string fabricNetns() const { return path(fabric_); }

 private:
  static std::string path(const std::string& name) { return "/run/netns/" + name; }
  Status addNetns(const std::string& name);
  Status plug(const std::string& ns, const std::string& ifname, const std::string& port,
              const std::string& addr);

  std::string fabric_, outside_, remote_, far_;
  std::vector<std::string> netns_;
};

}  // namespace cilium::testing
