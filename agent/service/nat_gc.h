// Garbage collection of the SNAT mappings (cilium_snat_v4_external, bpf/abi/nat.h): NodePort
// connections to remote backends and masqueraded pod connections (NAT_F_MASQ); and of IPv6
// masquerade's and IPv6 NodePort's (cilium_snat_v6_external), by the same code over the IPv6
// layouts.
//
// A masqueraded mapping lives as long as the pod's CT_KEY_EGRESS entry {pod -> remote}, which
// bpf_lxc refreshes with the pod's packets and their replies.
// A NodePort mapping lives exactly as long as its connection's CT_KEY_SERVICE entry {client ->
// frontend}: the datapath refreshes that entry with the client's packets and the backend's replies
// and advances its TCP state, so it expires 10 s after a close, 60 s after the last UDP packet (the
// conntrack timeouts), and the conntrack GC removes it. This GC then removes both entries of the
// mapping, which frees the node port. Without it a closed connection's port stays taken until the
// LRU map fills up, and a busy client exhausts the 4535 ports a backend offers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"

namespace cilium::service {

struct NatGcMaps {
  bpf::Map<nat4_key, nat4_entry>* nat = nullptr;
  bpf::Map<ct_key4, ct_entry>* ct_tcp = nullptr;  // cilium_ct4_global
  bpf::Map<ct_key4, ct_entry>* ct_any = nullptr;  // cilium_ct_any4_global
  bpf::Map<uint32_t, lb4_reverse_nat>* revnat = nullptr;
};

// IPv6: masquerade mappings and IPv6 NodePort's (lib/nodeport6.h).
struct NatGcMaps6 {
  bpf::Map<nat6_key, nat6_entry>* nat = nullptr;          // cilium_snat_v6_external
  bpf::Map<ct_key6, ct_entry>* ct_tcp = nullptr;          // cilium_ct6_global
  bpf::Map<ct_key6, ct_entry>* ct_any = nullptr;          // cilium_ct_any6_global
  bpf::Map<uint32_t, lb6_reverse_nat>* revnat = nullptr;  // cilium_lb6_reverse_nat
};

struct NatGcStats {
  size_t scanned = 0;
  size_t deleted = 0;  // entries, not mappings (a mapping has two)
  // Of the above, IPv6 ones (HostDatapath::collectNat sums both families).
  size_t scanned6 = 0;
  size_t deleted6 = 0;
};

// Mappings younger than this are never collected: the datapath writes the reverse entry first
// and the forward one right after, and a scan between the two must not take the half for an
// orphan.
inline constexpr uint32_t kNatGcMinAgeSeconds = 2;

// Deletes the mappings whose connection is over at monotonic time `now` (seconds, the
// datapath's clock): the CT_KEY_SERVICE (masquerade: CT_KEY_EGRESS) entry is gone or expired, or
// the frontend's service is gone. Also deletes a half whose other half is gone (evicted by the
// LRU). Safe to run while the datapath uses the maps: a mapping is re-read before it is deleted and
// kept if it changed.
Result<NatGcStats> gcNat(const NatGcMaps& maps, uint32_t now);
// The same for IPv6, on the ct6 maps and the IPv6 reverse-NAT map.
Result<NatGcStats> gcNat6(const NatGcMaps6& maps, uint32_t now);

}  // namespace cilium::service
