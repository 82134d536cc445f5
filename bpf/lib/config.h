/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Program configuration: load-time constants (const volatile, set by the agent before load and
 * frozen by the verifier), the run-time config map, and the monotonic clock conntrack uses.
 */
#pragma once

#include "compiler.h"
#include "abi/config.h"
#include "abi/ct.h"
#include "abi/events.h"

/* Conntrack timeouts, seconds. */
const volatile __u32 cfg_ct_timeout_tcp_syn = CT_TIMEOUT_TCP_SYN;
const volatile __u32 cfg_ct_timeout_tcp_established = CT_TIMEOUT_TCP_ESTABLISHED;
const volatile __u32 cfg_ct_timeout_tcp_close = CT_TIMEOUT_TCP_CLOSE;
const volatile __u32 cfg_ct_timeout_nontcp = CT_TIMEOUT_NONTCP;
/* Minimum seconds between two trace events of one connection direction. */
const volatile __u32 cfg_ct_report_interval = CT_REPORT_INTERVAL;

/*
 * Source address of a pod's packets to itself through a service (hairpin, lib/lb_hairpin.h), in
 * network byte order: 169.254.42.1 unless the agent's ipv4-service-loopback-address says else.
 */
const volatile __be32 cfg_lb_loopback_ipv4 = bpf_htonl(0xa9fe2a01);
/*
 * Its IPv6 twin: fe80::1 unless ipv6-service-loopback-address says else (Cilium's default), as
 * the four 32-bit words of the address in network order (lb_loopback6() reads it).
 */
const volatile __u32 cfg_lb_loopback_ipv6[4] = {bpf_htonl(0xfe800000), 0, 0, bpf_htonl(1)};

/*
 * BPF masquerade of pods' traffic to the outside on the native devices (enable-bpf-masquerade,
 * lib/masquerade.h). Replies of connections masqueraded earlier are translated back either way.
 */
const volatile __u8 cfg_enable_bpf_masquerade = 0;
/* The same for IPv6 (enable-ipv6-masquerade with enable-ipv6). */
const volatile __u8 cfg_enable_bpf_masquerade6 = 0;

/* Events: per-CPU token bucket (events per second and burst; rate 0 = unlimited). */
const volatile __u32 cfg_events_rate = 0;
const volatile __u32 cfg_events_burst = 0;
/*
 * Readers are woken once this many bytes of events wait in the ring; below that they find the
 * records on their next timed poll. Waking on every record costs the sender an interrupt each.
 */
const volatile __u32 cfg_events_wakeup_bytes = 64 * 1024;
/* MONITOR_AGGREGATION_* (abi/events.h). */
const volatile __u8 cfg_monitor_aggregation = MONITOR_AGGREGATION_MEDIUM;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, RUNTIME_CONFIG_MAX);
	__uint(pinning, PIN_BY_NAME);
} cilium_runtime_config SEC(".maps");

static __always_inline __u32 runtime_policy_rev(void)
{
	__u32 idx = RUNTIME_POLICY_REV;
	__u64 *v = bpf_map_lookup_elem(&cilium_runtime_config, &idx);

	return v ? (__u32)*v : 0;
}

#define NSEC_PER_SEC 1000000000ULL

/*
 * Monotonic seconds (CLOCK_MONOTONIC_COARSE). The agent's conntrack GC reads the same clock
 * (agent/datapath/conntrack.h), so `lifetime` means the same on both sides.
 */
static __always_inline __u32 mono_now_sec(void)
{
	return (__u32)(bpf_ktime_get_coarse_ns() / NSEC_PER_SEC);
}
