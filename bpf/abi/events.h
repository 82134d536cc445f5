/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Datapath events: cilium_events, a BPF ring buffer of fixed-size cilium_event records.
 *   EVENT_DROP             a packet was dropped (subtype = drop reason)
 *   EVENT_TRACE            a packet passed an observation point (subtype = TRACE_*); aggregated
 *                          (MONITOR_AGGREGATION_* below)
 *   EVENT_POLICY_VERDICT   a policy decision: every deny, and the allow of a new connection
 * Emission is rate limited per CPU (token bucket from the program config) and never blocks: a full
 * ring or an empty bucket only increments cilium_event_stats.
 * Twins: agent/hubble decoder (flow.proto), cilium-dbg monitor.
 */
#pragma once

#include "common.h"

enum event_type {
	EVENT_DROP = 1,
	EVENT_DEBUG = 2,
	EVENT_TRACE = 4,
	EVENT_POLICY_VERDICT = 5,
};

/* Observation points (trace subtype); numbers as Cilium's / flow.proto TraceObservationPoint. */
enum trace_point {
	TRACE_TO_LXC = 0,
	TRACE_TO_PROXY = 1,
	TRACE_TO_HOST = 2,
	TRACE_TO_STACK = 3,
	TRACE_TO_OVERLAY = 4,
	TRACE_FROM_LXC = 5,
	TRACE_FROM_PROXY = 6,
	TRACE_FROM_HOST = 7,
	TRACE_FROM_STACK = 8,
	TRACE_FROM_OVERLAY = 9,
	TRACE_FROM_NETWORK = 10,
	TRACE_TO_NETWORK = 11,
};

/*
 * Trace aggregation levels (program configuration, Cilium's numbers):
 *   NONE    a trace event for every packet at every observation point
 *   MEDIUM  as Cilium's: no FROM_* observation points; TO_* ones only for new connections, TCP
 *           flags not seen before in that direction, or once per CT_REPORT_INTERVAL per
 *           connection direction
 */
#define MONITOR_AGGREGATION_NONE   0
#define MONITOR_AGGREGATION_MEDIUM 2

/* Policy verdict match type (flow.proto policy_match_type). */
enum policy_match {
	POLICY_MATCH_NONE = 0,
	POLICY_MATCH_L3_ONLY = 1,
	POLICY_MATCH_L3_L4 = 2,
	POLICY_MATCH_L4_ONLY = 3,
	POLICY_MATCH_ALL = 4,
	POLICY_MATCH_L3_PROTO = 5,
	POLICY_MATCH_PROTO_ONLY = 6,
};

struct event_tuple {
	union v4v6_addr saddr;
	union v4v6_addr daddr;
	__be16 sport; /* TCP/UDP ports; ICMP echo id for requests */
	__be16 dport;
	__u8 proto;
	__u8 family;	/* ENDPOINT_KEY_IPV4 / ENDPOINT_KEY_IPV6 */
	__u8 tcp_flags; /* the packet's TCP flags byte */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad[3];
};

struct cilium_event {
	__u64 ktime_ns; /* bpf_ktime_get_ns() */
	__u8 type;	/* enum event_type */
	__u8 subtype;	/* DROP: reason; TRACE: enum trace_point; VERDICT: 0 */
	__u16 source;	/* endpoint id on whose behalf the program ran */
	__u32 ifindex;	/* device the packet was seen on */
	__u32 len_orig; /* packet length */
	__u32 src_identity;
	__u32 dst_identity;
	__u16 dst_id;	 /* destination endpoint id on local delivery, else 0 */
	__u8 ct_state;	 /* enum ct_status */
	__u8 dir;	 /* METRIC_INGRESS / METRIC_EGRESS, relative to `source` */
	__s32 verdict;	 /* VERDICT: 0 allowed, -DROP_x denied, >0 proxy port */
	__u8 match_type; /* VERDICT: enum policy_match */
	__u8 audited;
	__u16 line; /* DROP: source line */
	__u8 file;  /* DROP: DROP_FILE_* */
	__u8 pad[3];
	struct event_tuple tuple;
};

/* cilium_event_stats: PERCPU_ARRAY[1] of event_stats. */
struct event_stats {
	__u64 emitted;
	__u64 lost;	    /* the ring was full */
	__u64 rate_limited; /* the per-CPU token bucket was empty */
};

#define CILIUM_EVENTS_RING_SIZE (1 << 22) /* bytes */
