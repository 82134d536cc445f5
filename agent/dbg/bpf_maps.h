// `cilium-dbg bpf ...`: the datapath's pinned maps read directly, printed as Cilium prints them.
// The printers take the map interfaces of agent/datapath/maps.h, so tests feed them fakes; the
// command layer opens the pinned kernel maps under the pin directory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/datapath/maps.h"

namespace cilium::dbg {

// Pinned map names (bpf/abi/*.h); each is pinned as <pin dir>/<name>.
inline constexpr char kEndpointMapName[] = "cilium_lxc";
inline constexpr char kIpcacheMapName[] = "cilium_ipcache";
inline constexpr char kCtTcpMapName[] = "cilium_ct4_global";
inline constexpr char kCtAnyMapName[] = "cilium_ct_any4_global";
inline constexpr char kCt6TcpMapName[] = "cilium_ct6_global";
inline constexpr char kCt6AnyMapName[] = "cilium_ct_any6_global";
inline constexpr char kMetricsMapName[] = "cilium_metrics";
inline constexpr char kPolicyMapName[] = "cilium_policy_v2";
inline constexpr char kLbServicesMapName[] = "cilium_lb4_services";
inline constexpr char kLbSlotsMapName[] = "cilium_lb4_slots";
inline constexpr char kLbBackendsMapName[] = "cilium_lb4_backends";
inline constexpr char kLb6ServicesMapName[] = "cilium_lb6_services";
inline constexpr char kLb6BackendsMapName[] = "cilium_lb6_backends";
inline constexpr char kNatMapName[] = "cilium_snat_v4_external";
inline constexpr char kIpMasqMapName[] = "cilium_ipmasq_v4";
inline constexpr char kNat6MapName[] = "cilium_snat_v6_external";
inline constexpr char kIpMasq6MapName[] = "cilium_ipmasq_v6";

// IP ADDRESS / LOCAL ENDPOINT INFO, sorted by address.
Status printEndpoints(const datapath::EndpointMap& map, bool json, std::ostream& out);
// IP PREFIX/ADDRESS / IDENTITY, sorted by prefix.
Status printIpcache(const datapath::IpcacheMap& map, bool json, std::ostream& out);
// `bpf tunnel list`: the ipcache entries that name a tunnel endpoint (Cilium's tunnel map view:
// prefix -> the node VXLAN packets for it go to).
Status printTunnels(const datapath::IpcacheMap& map, bool json, std::ostream& out);
// One line per entry of both conntrack maps, then of the IPv6 ones when given (IPv6 addresses in
// brackets, as Cilium prints them); `now` is CLOCK_MONOTONIC seconds (the clock of
// ct_entry.lifetime).
struct Ct6Maps {
  const datapath::Ct6Map* tcp = nullptr;
  const datapath::Ct6Map* any = nullptr;
};
Status printConntrack(const datapath::CtMap& tcp, const datapath::CtMap& any, uint64_t now,
                      bool json, std::ostream& out, Ct6Maps v6 = {});
// The IPv6 service maps, when pinned (bpf/abi/lb.h; slots are shared with IPv4).
struct Lb6Maps {
  const bpf::Map<lb6_key, lb4_service>* services = nullptr;
  const bpf::Map<uint32_t, lb6_backend>* backends = nullptr;
};
// SERVICE ADDRESS / BACKEND ADDRESS: each frontend with its type and service id, then the
// backends of its current slots (bpf/abi/lb.h), sorted by frontend: IPv4, then IPv6 ones
// ("[addr]:port") when `v6` is given.
Status printLb(const bpf::Map<lb4_key, lb4_service>& services,
               const bpf::Map<lb4_slot_key, uint32_t>& slots,
               const bpf::Map<uint32_t, lb4_backend>& backends, bool json, std::ostream& out,
               Lb6Maps v6 = {});
// One line per entry of cilium_snat_v4_external (bpf/abi/nat.h), as Cilium's `bpf nat list`:
// "TCP OUT 10.0.0.5:40000 -> 1.1.1.1:80 XLATE_SRC 192.168.1.1:61234 Created=3sec ago Masquerade";
// then of cilium_snat_v6_external when given ("[fd00::5]:40000"); `now` is CLOCK_MONOTONIC
// seconds (the clock of nat4_entry.created).
Status printNat(const bpf::Map<nat4_key, nat4_entry>& nat, uint64_t now, bool json,
                std::ostream& out, const bpf::Map<nat6_key, nat6_entry>* nat6 = nullptr);
// Deletes every entry of the NAT map; returns how many were deleted. Connections that were
// being translated lose their mapping (their next packet allocates a new one, so they break).
Result<size_t> flushNat(bpf::Map<nat4_key, nat4_entry>& nat);
Result<size_t> flushNat6(bpf::Map<nat6_key, nat6_entry>& nat);
// IP PREFIX: the destinations BPF masquerade leaves alone (cilium_ipmasq_v4, then
// cilium_ipmasq_v6 when given).
Status printIpMasq(const bpf::Map<ipmasq_key4, uint8_t>& map, bool json, std::ostream& out,
                   const bpf::Map<ipmasq_key6, uint8_t>* map6 = nullptr);
// REASON / DIRECTION / PACKETS / BYTES / LINE / FILE, summed over CPUs.
Status printMetrics(const datapath::MetricsMap& map, bool json, std::ostream& out);

using PolicyOuterMap = bpf::Map<uint32_t, uint32_t>;  // endpoint id -> inner map id
using PolicyInnerMap = bpf::Map<policy_key, policy_entry>;
using InnerMapOpener = std::function<Result<std::unique_ptr<PolicyInnerMap>>(uint32_t map_id)>;
// Labels of an identity for the LABELS column ("reserved:host", "k8s:app=web"); may be empty.
using IdentityLabeler = std::function<std::string(uint32_t identity)>;

// The policy of one endpoint: its entry in the outer map names the inner map. kNotFound when
// the endpoint has no policy map.
Status printPolicy(const PolicyOuterMap& outer, const InnerMapOpener& open_inner,
                   uint32_t endpoint_id, const std::string& outer_path,
                   const IdentityLabeler& labeler, bool json, std::ostream& out);

// Opens an inner map by id (bpf_map_get_fd_by_id).
Result<std::unique_ptr<PolicyInnerMap>> openMapById(uint32_t map_id);

}  // namespace cilium::dbg
