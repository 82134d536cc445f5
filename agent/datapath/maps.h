// The datapath's maps as the control plane sees them: typed interfaces with kernel and fake
// implementations. Control-plane code (endpoint manager, ipcache, policy) takes a `Maps` and never
// knows whether the kernel is behind it. Layouts and semantics: bpf/abi/*.h, docs/datapath.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::datapath {

using EndpointMap = bpf::Map<endpoint_key, endpoint_info>;  // cilium_lxc: address -> endpoint
using EndpointIfMap = bpf::Map<uint32_t, endpoint_info>;    // cilium_lxc_if: ifindex -> endpoint
using IpcacheMap = bpf::Map<ipcache_key, remote_endpoint_info>;
using CtMap = bpf::Map<ct_key4, ct_entry>;
using Ct6Map = bpf::Map<ct_key6, ct_entry>;
using MetricsMap = bpf::Map<metrics_key, bpf::PerCpu<metrics_value>>;
using RuntimeConfigMap = bpf::Map<uint32_t, uint64_t>;  // cilium_runtime_config
using EventStatsMap = bpf::Map<uint32_t, bpf::PerCpu<::event_stats>>;

struct PolicyEntry {
  policy_key key{};
  policy_entry value{};
};

// One endpoint's complete policy, for PolicyMaps::replaceMany().
struct PolicyReplacement {
  uint16_t endpoint_id = 0;
  std::span<const PolicyEntry> entries;
};

// What replace() and replaceMany() of a PolicyMaps did so far, counted per endpoint policy.
struct PolicyMapCounters {
  uint64_t unchanged = 0;     // the map already held the set: nothing written
  uint64_t patched = 0;       // changed in place
  uint64_t swapped = 0;       // a new inner map installed (new endpoints included)
  uint64_t outer_writes = 0;  // outer-map update calls (replace and remove): one grace period each
};

// Per-endpoint policy maps (cilium_policy_v2 and its inner maps).
//
// replace() moves an endpoint's map to a new complete set so that no packet is ever allowed that
// neither the old nor the new set allows: an unchanged set writes nothing; a changed one is
// patched in place in the order of planPolicyPatch() (policy_patch.h) when such an order exists,
// else a complete new inner map is swapped in with one update of the outer map, which makes the
// kernel wait for an RCU grace period (milliseconds on some machines; bench/policy_map_swap_bench).
// replaceMany() does the same for many endpoints and installs all their new inner maps with
// batched outer-map updates, so they share grace periods.
class PolicyMaps {
 public:
  virtual ~PolicyMaps() = default;
  // Replaces the complete policy of `endpoint_id` (see above). Creates the endpoint's map when it
  // has none. A set that fails validation or does not fit changes nothing. A kernel error in the
  // middle of an in-place patch falls back to the swap; if that fails too, the map holds a state
  // between the two sets (never allowing what neither allows) and the error is returned.
  virtual Status replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) = 0;
  // replace() for each endpoint, one Status per element of `changes`, in order. Endpoints must be
  // distinct.
  virtual std::vector<Status> replaceMany(std::span<const PolicyReplacement> changes) = 0;
  // Changes the current map in place: each entry changes atomically, the set does not. For small
  // incremental changes (an identity appearing). kNotFound when the endpoint has no map.
  virtual Status update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                        std::span<const policy_key> deletes) = 0;
  // Removes the endpoint's map: its packets that need a verdict then drop with
  // DROP_EP_NOT_READY (new connections at once, established ones after the next
  // bumpPolicyRevision). Absent is fine.
  virtual Status remove(uint16_t endpoint_id) = 0;
  // remove() for many endpoints, sharing the kernel's grace periods.
  virtual Status removeMany(std::span<const uint16_t> endpoint_ids) = 0;
  virtual Result<std::vector<PolicyEntry>> dump(uint16_t endpoint_id) const = 0;
  // Endpoint ids that have a policy map, ascending.
  virtual Result<std::vector<uint16_t>> endpoints() const = 0;
};

// Every map the control plane reads or writes. Non-owning; whoever built it keeps them alive.
struct Maps {
  EndpointMap* endpoints = nullptr;
  EndpointIfMap* endpoints_by_ifindex = nullptr;
  IpcacheMap* ipcache = nullptr;
  PolicyMaps* policy = nullptr;
  CtMap* ct_tcp = nullptr;
  CtMap* ct_any = nullptr;
  MetricsMap* metrics = nullptr;
  RuntimeConfigMap* runtime_config = nullptr;
  EventStatsMap* event_stats = nullptr;
  Ct6Map* ct6_tcp = nullptr;  // cilium_ct6_global
  Ct6Map* ct6_any = nullptr;  // cilium_ct_any6_global
};

// Increments RUNTIME_POLICY_REV: established connections re-check policy on their next packet.
// Call after every map change that can change a verdict (policy, ipcache).
Status bumpPolicyRevision(RuntimeConfigMap& runtime);

// --- Keys and values -------------------------------------------------------------------------

// Parses a dotted IPv4 address into network byte order.
Result<uint32_t> parseIpv4(const std::string& dotted);
std::string formatIpv4(uint32_t network_order);

endpoint_key endpointKeyV4(uint32_t ip_be);
// The cilium_lxc key of either family.
endpoint_key endpointKey(const IpAddr& ip);
// prefix_len 0..32; host bits of `ip_be` beyond the prefix are cleared.
ipcache_key ipcacheKeyV4(uint32_t ip_be, uint8_t prefix_len);
// The ipcache key of a prefix of either family.
ipcache_key ipcacheKey(const IpPrefix& prefix);
// The tunnel endpoint of an ipcache value in its own family (IPCACHE_F_TUNNEL_EP_IPV6, not the
// key's: IPv6 pod CIDRs tunnel over the IPv4 underlay); nullopt without IPCACHE_F_HAS_TUNNEL_EP.
std::optional<IpAddr> ipcacheTunnelEndpoint(const remote_endpoint_info& v);

// A policy key for `identity` (0 = any) in one direction (POLICY_INGRESS/POLICY_EGRESS).
// proto 0 = any protocol; port 0 with port_prefix_bits 0 = any port; a port range is expressed
// as an aligned block: `port` with the low (16 - port_prefix_bits) bits clear.
policy_key policyKey(uint32_t identity, uint8_t direction, uint8_t proto, uint16_t port,
                     uint8_t port_prefix_bits);

// Checks a policy entry the way the datapath reads it: prefix length between
// POLICY_PREFIX_ANY_PROTO and POLICY_PREFIX_FULL, direction POLICY_INGRESS/POLICY_EGRESS, no
// protocol or port bits beyond the prefix, a protocol when the prefix covers it, no proxy port on
// a deny. kInvalidArgument names what is wrong. Both PolicyMaps implementations reject what this
// rejects, and store value.prefix_len = key.prefixlen (normalizePolicyEntry).
Status validatePolicyEntry(const PolicyEntry& entry);
PolicyEntry normalizePolicyEntry(PolicyEntry entry);

// Splits the inclusive port range [first, last] into the fewest aligned power-of-two blocks,
// each given as (start port, prefix bits over the 16-bit port).
std::vector<std::pair<uint16_t, uint8_t>> portRangeBlocks(uint16_t first, uint16_t last);

}  // namespace cilium::datapath
