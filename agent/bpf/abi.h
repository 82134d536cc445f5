// The C++ view of bpf/abi/: includes every shared layout and checks its size and offsets, so a
// change on one side without the other fails the build.
#pragma once

#include <cstddef>

extern "C" {
#include "bpf/abi/config.h"
#include "bpf/abi/ct.h"
#include "bpf/abi/drop.h"
#include "bpf/abi/endpoint.h"
#include "bpf/abi/events.h"
#include "bpf/abi/identity.h"
#include "bpf/abi/ipcache.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"
#include "bpf/abi/nat.h"
#include "bpf/abi/policy.h"
#include "bpf/abi/proxy.h"
}

namespace cilium::bpf {

#define CILIUM_CHECK_FIELD(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), #type "." #field " moved")

static_assert(sizeof(v4v6_addr) == 16);

static_assert(sizeof(metrics_key) == 8);
CILIUM_CHECK_FIELD(metrics_key, reason, 0);
CILIUM_CHECK_FIELD(metrics_key, dir, 1);
CILIUM_CHECK_FIELD(metrics_key, line, 2);
CILIUM_CHECK_FIELD(metrics_key, file, 4);
static_assert(sizeof(metrics_value) == 16);
CILIUM_CHECK_FIELD(metrics_value, bytes, 8);

static_assert(sizeof(endpoint_key) == 20);
CILIUM_CHECK_FIELD(endpoint_key, family, 16);
CILIUM_CHECK_FIELD(endpoint_key, cluster_id, 18);
static_assert(sizeof(endpoint_info) == 56);
CILIUM_CHECK_FIELD(endpoint_info, lxc_id, 6);
CILIUM_CHECK_FIELD(endpoint_info, flags, 8);
CILIUM_CHECK_FIELD(endpoint_info, sec_id, 12);
CILIUM_CHECK_FIELD(endpoint_info, mac, 16);
CILIUM_CHECK_FIELD(endpoint_info, node_mac, 24);
CILIUM_CHECK_FIELD(endpoint_info, ipv4, 32);
CILIUM_CHECK_FIELD(endpoint_info, ipv6, 40);

static_assert(sizeof(ipcache_key) == 24);
CILIUM_CHECK_FIELD(ipcache_key, cluster_id, 4);
CILIUM_CHECK_FIELD(ipcache_key, family, 7);
CILIUM_CHECK_FIELD(ipcache_key, ip, 8);
static_assert(sizeof(remote_endpoint_info) == 24);
CILIUM_CHECK_FIELD(remote_endpoint_info, tunnel_endpoint, 4);
CILIUM_CHECK_FIELD(remote_endpoint_info, node_id, 20);
CILIUM_CHECK_FIELD(remote_endpoint_info, flags, 23);

static_assert(sizeof(policy_key) == 12);
CILIUM_CHECK_FIELD(policy_key, sec_label, 4);
CILIUM_CHECK_FIELD(policy_key, egress, 8);
CILIUM_CHECK_FIELD(policy_key, protocol, 9);
CILIUM_CHECK_FIELD(policy_key, dport, 10);
static_assert(sizeof(policy_entry) == 8);
CILIUM_CHECK_FIELD(policy_entry, flags, 2);
CILIUM_CHECK_FIELD(policy_entry, prefix_len, 4);

static_assert(sizeof(ct_key4) == 16);
CILIUM_CHECK_FIELD(ct_key4, sport, 8);
CILIUM_CHECK_FIELD(ct_key4, nexthdr, 12);
CILIUM_CHECK_FIELD(ct_key4, flags, 13);
static_assert(sizeof(ct_key6) == 40);
CILIUM_CHECK_FIELD(ct_key6, daddr, 16);
CILIUM_CHECK_FIELD(ct_key6, sport, 32);
CILIUM_CHECK_FIELD(ct_key6, nexthdr, 36);
CILIUM_CHECK_FIELD(ct_key6, flags, 37);
static_assert(sizeof(ct_entry) == 64);
CILIUM_CHECK_FIELD(ct_entry, lifetime, 32);
CILIUM_CHECK_FIELD(ct_entry, flags, 36);
CILIUM_CHECK_FIELD(ct_entry, rev_nat_index, 38);
CILIUM_CHECK_FIELD(ct_entry, tx_flags_seen, 40);
CILIUM_CHECK_FIELD(ct_entry, proxy_port, 42);
CILIUM_CHECK_FIELD(ct_entry, src_sec_id, 44);
CILIUM_CHECK_FIELD(ct_entry, policy_rev, 56);
CILIUM_CHECK_FIELD(ct_entry, lb_id, 60);

static_assert(sizeof(event_tuple) == 44);
CILIUM_CHECK_FIELD(event_tuple, daddr, 16);
CILIUM_CHECK_FIELD(event_tuple, sport, 32);
CILIUM_CHECK_FIELD(event_tuple, proto, 36);
CILIUM_CHECK_FIELD(event_tuple, icmp_code, 40);
static_assert(sizeof(cilium_event) == 88);
CILIUM_CHECK_FIELD(cilium_event, type, 8);
CILIUM_CHECK_FIELD(cilium_event, source, 10);
CILIUM_CHECK_FIELD(cilium_event, ifindex, 12);
CILIUM_CHECK_FIELD(cilium_event, src_identity, 20);
CILIUM_CHECK_FIELD(cilium_event, dst_id, 28);
CILIUM_CHECK_FIELD(cilium_event, verdict, 32);
CILIUM_CHECK_FIELD(cilium_event, line, 38);
CILIUM_CHECK_FIELD(cilium_event, tuple, 44);
static_assert(sizeof(event_stats) == 24);

static_assert(sizeof(lb4_key) == 8);
CILIUM_CHECK_FIELD(lb4_key, dport, 4);
CILIUM_CHECK_FIELD(lb4_key, proto, 6);
CILIUM_CHECK_FIELD(lb4_key, scope, 7);
static_assert(sizeof(lb4_service) == 16);
CILIUM_CHECK_FIELD(lb4_service, rev_nat_index, 4);
CILIUM_CHECK_FIELD(lb4_service, count, 8);
CILIUM_CHECK_FIELD(lb4_service, gen, 10);
CILIUM_CHECK_FIELD(lb4_service, flags, 12);
CILIUM_CHECK_FIELD(lb4_service, flags2, 13);
static_assert(sizeof(lb4_slot_key) == 8);
CILIUM_CHECK_FIELD(lb4_slot_key, gen, 4);
CILIUM_CHECK_FIELD(lb4_slot_key, slot, 6);
static_assert(sizeof(lb4_backend) == 12);
CILIUM_CHECK_FIELD(lb4_backend, port, 4);
CILIUM_CHECK_FIELD(lb4_backend, proto, 6);
CILIUM_CHECK_FIELD(lb4_backend, state, 7);
CILIUM_CHECK_FIELD(lb4_backend, cluster_id, 8);
static_assert(sizeof(lb4_reverse_nat) == 8);
CILIUM_CHECK_FIELD(lb4_reverse_nat, port, 4);
static_assert(sizeof(dsr_opt4) == 8);
CILIUM_CHECK_FIELD(dsr_opt4, port, 2);
CILIUM_CHECK_FIELD(dsr_opt4, addr, 4);
static_assert(sizeof(lb4_affinity_key) == 16);
CILIUM_CHECK_FIELD(lb4_affinity_key, rev_nat_index, 8);
CILIUM_CHECK_FIELD(lb4_affinity_key, client_kind, 12);
static_assert(sizeof(lb4_affinity_val) == 8);
CILIUM_CHECK_FIELD(lb4_affinity_val, backend_id, 4);
static_assert(sizeof(lb4_reverse_sk_key) == 16);
CILIUM_CHECK_FIELD(lb4_reverse_sk_key, address, 8);
CILIUM_CHECK_FIELD(lb4_reverse_sk_key, port, 12);
static_assert(sizeof(lb4_reverse_sk_val) == 12);
CILIUM_CHECK_FIELD(lb4_reverse_sk_val, port, 4);
CILIUM_CHECK_FIELD(lb4_reverse_sk_val, rev_nat_index, 8);

static_assert(sizeof(lb6_key) == 20);
CILIUM_CHECK_FIELD(lb6_key, dport, 16);
CILIUM_CHECK_FIELD(lb6_key, proto, 18);
CILIUM_CHECK_FIELD(lb6_key, scope, 19);
static_assert(sizeof(lb6_backend) == 24);
CILIUM_CHECK_FIELD(lb6_backend, port, 16);
CILIUM_CHECK_FIELD(lb6_backend, proto, 18);
CILIUM_CHECK_FIELD(lb6_backend, state, 19);
CILIUM_CHECK_FIELD(lb6_backend, cluster_id, 20);
static_assert(sizeof(lb6_reverse_nat) == 20);
CILIUM_CHECK_FIELD(lb6_reverse_nat, port, 16);
static_assert(sizeof(lb6_affinity_key) == 24);
CILIUM_CHECK_FIELD(lb6_affinity_key, rev_nat_index, 16);
CILIUM_CHECK_FIELD(lb6_affinity_key, client_kind, 20);
static_assert(sizeof(lb6_reverse_sk_key) == 32);
CILIUM_CHECK_FIELD(lb6_reverse_sk_key, address, 8);
CILIUM_CHECK_FIELD(lb6_reverse_sk_key, port, 24);
static_assert(sizeof(lb6_reverse_sk_val) == 24);
CILIUM_CHECK_FIELD(lb6_reverse_sk_val, port, 16);
CILIUM_CHECK_FIELD(lb6_reverse_sk_val, rev_nat_index, 20);

static_assert(sizeof(nat4_key) == 16);
CILIUM_CHECK_FIELD(nat4_key, sport, 8);
CILIUM_CHECK_FIELD(nat4_key, proto, 12);
CILIUM_CHECK_FIELD(nat4_key, dir, 13);
static_assert(sizeof(nat4_entry) == 16);
CILIUM_CHECK_FIELD(nat4_entry, to_port, 4);
CILIUM_CHECK_FIELD(nat4_entry, flags, 6);
CILIUM_CHECK_FIELD(nat4_entry, rev_nat_index, 8);
CILIUM_CHECK_FIELD(nat4_entry, created, 12);
static_assert(sizeof(node_dev4) == 8);
static_assert(sizeof(ipmasq_key4) == 8);
CILIUM_CHECK_FIELD(ipmasq_key4, addr, 4);
static_assert(sizeof(nat6_key) == 40);
CILIUM_CHECK_FIELD(nat6_key, daddr, 16);
CILIUM_CHECK_FIELD(nat6_key, sport, 32);
CILIUM_CHECK_FIELD(nat6_key, proto, 36);
CILIUM_CHECK_FIELD(nat6_key, dir, 37);
static_assert(sizeof(nat6_entry) == 32);
CILIUM_CHECK_FIELD(nat6_entry, to_port, 16);
CILIUM_CHECK_FIELD(nat6_entry, flags, 18);
CILIUM_CHECK_FIELD(nat6_entry, rev_nat_index, 20);
CILIUM_CHECK_FIELD(nat6_entry, created, 24);
static_assert(sizeof(node_dev6) == 16);
static_assert(sizeof(ipmasq_key6) == 20);
CILIUM_CHECK_FIELD(ipmasq_key6, addr, 4);

#undef CILIUM_CHECK_FIELD

}  // namespace cilium::bpf
