// The kernel side of NodePort / externalIPs / LoadBalancer and BPF masquerade on the node's
// native devices: loads bpf_host (sharing the LB, conntrack and endpoint maps pinned by bpf_lxc
// and bpf_sock) and attaches it with tcx links, pinned so that the devices keep translating
// while the agent is down and a restarted agent swaps the programs atomically.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/service/nat_gc.h"

struct bpf_host;
struct bpf_program;

namespace cilium::service {

using NatMap = bpf::Map<nat4_key, nat4_entry>;
using IpMasqMap = bpf::Map<ipmasq_key4, uint8_t>;
using NatMap6 = bpf::Map<nat6_key, nat6_entry>;
using IpMasqMap6 = bpf::Map<ipmasq_key6, uint8_t>;

struct HostOptions {
  // Masquerade pods' connections to the outside on the devices (enable-bpf-masquerade,
  // bpf/lib/masquerade.h). Replies of mappings made earlier are translated back either way.
  bool enable_masquerade = false;
  // The same for IPv6 (enable-ipv6-masquerade with enable-ipv6), from the device's IPv6 address.
  bool enable_masquerade6 = false;
  // bpf-lb-mode: LB_MODE_SNAT, LB_MODE_DSR or LB_MODE_HYBRID (bpf/abi/lb.h). DSR also makes the
  // devices honour the DSR option of connections other nodes load-balance to local pods.
  uint8_t lb_mode = LB_MODE_SNAT;
};

// XDP acceleration of a device: none, in the driver (bpf-lb-acceleration=native), or generic
// (on the skb; for devices whose driver cannot XDP_TX, such as a veth whose peer has no XDP).
enum class XdpMode { kDisabled, kNative, kGeneric };

struct HostPrograms {
  const bpf_program* from_netdev = nullptr;  // tcx ingress of a native device
  const bpf_program* to_netdev = nullptr;    // tcx egress
  const bpf_program* xdp = nullptr;          // XDP (bpf-lb-acceleration=native)
};

class HostDatapath {
 public:
  // Loads bpf_host with its maps under `pin_dir`. Maps already pinned there (by the datapath's
  // bpf_lxc, with the agent's configured sizes) are reused at their size; load bpf_lxc first.
  static Result<std::unique_ptr<HostDatapath>> load(const std::string& pin_dir,
                                                    const HostOptions& opts = {});
  ~HostDatapath();

  // Attaches cil_from_netdev / cil_to_netdev to device `ifindex` (in the calling thread's
  // network namespace) and records `snat_address` (IPv4) as the address connections SNATed out
  // of this device use, and `snat6` (IPv6, when given) as IPv6 masquerade's and IPv6
  // NodePort's; without it IPv6 that needs SNAT drops on this device (DROP_NAT_NO_MAPPING).
  // Links are pinned under <pin_dir>/links/host_<ifindex>_{ingress,egress};
  // an attached device gets the new programs atomically. With `xdp` other than kDisabled,
  // cil_xdp_entry is attached too, pinned as host_<ifindex>_xdp; with kDisabled such a link is
  // removed.
  Status attachDevice(int ifindex, const IpAddr& snat_address, XdpMode xdp = XdpMode::kDisabled,
                      const std::optional<IpAddr>& snat6 = std::nullopt);
  // Detaches and unpins; a device that is gone is not an error.
  Status detachDevice(int ifindex);
  // Detaches every device an earlier agent attached that is not in `keep` (devices removed from
  // the configuration).
  Status detachAllExcept(const std::vector<int>& keep);

  HostPrograms programs() const;
  NatMap& nat();
  NatMap6& nat6();
  // Makes `cidrs` the destinations never masqueraded (IPv4 ones in cilium_ipmasq_v4, IPv6 ones in
  // cilium_ipmasq_v6): new prefixes are added before old ones are removed, so a destination in
  // both is never masqueraded meanwhile.
  Status setNonMasqueradeCidrs(const std::vector<IpPrefix>& cidrs);
  IpMasqMap& ipMasq();
  IpMasqMap6& ipMasq6();
  // Collects the SNAT mappings of connections that are over at monotonic second `now`
  // (nat_gc.h), both families (the stats are the sum). The agent runs it periodically.
  Result<NatGcStats> collectNat(uint32_t now);

 private:
  HostDatapath() = default;
  struct State;
  std::unique_ptr<State> s_;
  std::string pin_dir_;
};

}  // namespace cilium::service
