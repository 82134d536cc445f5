/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Datapath events (abi/events.h): drop, trace and policy verdict records in the cilium_events ring
 * buffer. Emission never affects the packet: a full ring or an empty rate-limit bucket only
 * counts in cilium_event_stats.
 */
#pragma once

#include "compiler.h"
#include "abi/endpoint.h"
#include "abi/events.h"
#include "lib/config.h"
#include "lib/pkt.h"
#include "lib/pkt6.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CILIUM_EVENTS_RING_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct event_stats);
	__uint(max_entries, 1);
	__uint(pinning, PIN_BY_NAME);
} cilium_event_stats SEC(".maps");

/* Per-CPU token bucket; tokens are kept in nanoseconds' worth of rate (1e9 per event). */
struct event_bucket {
	__u64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct event_bucket);
	__uint(max_entries, 1);
} cilium_event_bucket SEC(".maps");

/* What the program knows about the packet's endpoints when it reports it. */
struct trace_info {
	__u32 src_identity;
	__u32 dst_identity;
	__u16 source; /* endpoint id the program runs for */
	__u16 dst_id; /* destination endpoint id on local delivery */
	__u8 dir;     /* METRIC_INGRESS / METRIC_EGRESS relative to `source` */
	__u8 ct_state;
	__u32 rev_nat; /* set by enforce4 on a reply of a translated service connection */
};

#define EVENT_TOKEN NSEC_PER_SEC
/* Refill is computed over at most this long, which also bounds the arithmetic. */
#define EVENT_MAX_REFILL_NS (10 * NSEC_PER_SEC)

static __always_inline bool event_bucket_take(void)
{
	__u32 zero = 0;
	struct event_bucket *b = bpf_map_lookup_elem(&cilium_event_bucket, &zero);
	__u64 now, elapsed, cap;

	if (!b)
		return false;
	/* The coarse clock is cheap and precise enough to refill a bucket. */
	now = bpf_ktime_get_coarse_ns();
	elapsed = now - b->last_ns;
	if (elapsed > EVENT_MAX_REFILL_NS)
		elapsed = EVENT_MAX_REFILL_NS;
	b->last_ns = now;
	cap = (__u64)(cfg_events_burst ? cfg_events_burst : 1) * EVENT_TOKEN;
	b->tokens += elapsed * cfg_events_rate;
	if (b->tokens > cap)
		b->tokens = cap;
	if (b->tokens < EVENT_TOKEN)
		return false;
	b->tokens -= EVENT_TOKEN;
	return true;
}

/* Reserves a record, or returns NULL (counted) when rate limited or the ring is full. */
static __always_inline struct cilium_event *event_reserve(void)
{
	__u32 zero = 0;
	struct event_stats *st = bpf_map_lookup_elem(&cilium_event_stats, &zero);
	struct cilium_event *ev;

	if (cfg_events_rate && !event_bucket_take()) {
		if (st)
			st->rate_limited++;
		return NULL;
	}
	ev = bpf_ringbuf_reserve(&cilium_events, sizeof(*ev), 0);
	if (!ev) {
		if (st)
			st->lost++;
		return NULL;
	}
	if (st)
		st->emitted++;
	return ev;
}

/* A record's room in the ring: the record and the ring's 8-byte header, rounded up to 8. */
#define EVENT_RING_RECORD_BYTES ((sizeof(struct cilium_event) + 8 + 7) & ~7)

/*
 * Commits a record, waking readers only when it carries the bytes waiting in the ring across a
 * multiple of cfg_events_wakeup_bytes: one wakeup per threshold's worth of records. Waking on
 * every record above the threshold instead (until the woken reader gets to run and drain) cost
 * an IRQ work interrupt per record, several per wakeup under load. A crossing can go unseen when
 * another CPU reserves between this record's reserve and its query; the next crossing, or the
 * reader's timed poll, collects the records then.
 */
static __always_inline void event_submit(struct cilium_event *ev)
{
	/* Includes this record: it is reserved, and no reader consumes past it. */
	__u64 waiting = bpf_ringbuf_query(&cilium_events, BPF_RB_AVAIL_DATA);
	__u64 step = cfg_events_wakeup_bytes ? cfg_events_wakeup_bytes : 1;
	bool crossed = waiting >= EVENT_RING_RECORD_BYTES &&
		       (waiting - EVENT_RING_RECORD_BYTES) / step != waiting / step;

	bpf_ringbuf_submit(ev, crossed ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* Everything but the tuple; `event_ns` is the packet's (pkt4/pkt6 event_ns). */
static __always_inline void event_fill_meta(struct cilium_event *ev, const struct __sk_buff *ctx,
					    __u64 *event_ns, __u32 len, const struct trace_info *ti,
					    __u8 type, __u8 subtype)
{
	/* One clock read per packet, however many events it raises. */
	if (!*event_ns)
		*event_ns = bpf_ktime_get_ns();
	ev->ktime_ns = *event_ns;
	ev->type = type;
	ev->subtype = subtype;
	ev->source = ti->source;
	ev->ifindex = ctx_load_u32(ctx, ifindex);
	ev->len_orig = len;
	ev->src_identity = ti->src_identity;
	ev->dst_identity = ti->dst_identity;
	ev->dst_id = ti->dst_id;
	ev->ct_state = ti->ct_state;
	ev->dir = ti->dir;
	ev->verdict = 0;
	ev->match_type = 0;
	ev->audited = 0;
	ev->line = 0;
	ev->file = 0;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
}

static __always_inline void event_fill(struct cilium_event *ev, const struct __sk_buff *ctx,
				       struct pkt4 *p, const struct trace_info *ti, __u8 type,
				       __u8 subtype)
{
	event_fill_meta(ev, ctx, &p->event_ns, p->len, ti, type, subtype);
	__builtin_memset(&ev->tuple, 0, sizeof(ev->tuple));
	ev->tuple.saddr.ip4 = p->t.saddr;
	ev->tuple.daddr.ip4 = p->t.daddr;
	ev->tuple.sport = p->t.sport;
	ev->tuple.dport = p->t.dport;
	ev->tuple.proto = p->t.proto;
	ev->tuple.family = ENDPOINT_KEY_IPV4;
	ev->tuple.tcp_flags = p->tcp_flags;
	ev->tuple.icmp_type = p->icmp_type;
	ev->tuple.icmp_code = p->icmp_code;
}

/*
 * The tuple of a packet the IPv4 parser did not read (its ethertype is not IPv4): an IPv6 packet
 * gets its addresses, next header, ports (TCP/UDP/SCTP right after the fixed header) or ICMPv6
 * type and code; anything else is reported without L3 (family 0), never as 0.0.0.0.
 */
static __always_inline void event_fill_not_ip4(struct cilium_event *ev, struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	const struct ethhdr *eth = data;
	const struct ipv6hdr *ip6;
	const __u8 *l4;

	__builtin_memset(&ev->tuple, 0, sizeof(ev->tuple));
	if ((const void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return;
	ip6 = (const void *)(eth + 1);
	if ((const void *)(ip6 + 1) > data_end)
		return;
	__builtin_memcpy(ev->tuple.saddr.ip6, &ip6->saddr, 16);
	__builtin_memcpy(ev->tuple.daddr.ip6, &ip6->daddr, 16);
	ev->tuple.family = ENDPOINT_KEY_IPV6;
	ev->tuple.proto = ip6->nexthdr;
	l4 = (const __u8 *)(ip6 + 1);
	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		if ((const void *)(l4 + 2) <= data_end) {
			ev->tuple.icmp_type = l4[0];
			ev->tuple.icmp_code = l4[1];
		}
	} else if (l4_has_ports(ip6->nexthdr) && (const void *)(l4 + 4) <= data_end) {
		ev->tuple.sport = *(const __be16 *)l4;
		ev->tuple.dport = *(const __be16 *)(l4 + 2);
		if (ip6->nexthdr == IPPROTO_TCP_ && (const void *)(l4 + 14) <= data_end)
			ev->tuple.tcp_flags = l4[13];
	}
}

static __always_inline void emit_drop(const struct __sk_buff *ctx, struct pkt4 *p,
				      const struct trace_info *ti, __u8 reason, __u16 line,
				      __u8 file)
{
	struct cilium_event *ev = event_reserve();

	if (!ev)
		return;
	event_fill(ev, ctx, p, ti, EVENT_DROP, reason);
	ev->verdict = -(int)reason;
	ev->line = line;
	ev->file = file;
	event_submit(ev);
}

/* A drop of a packet that is not IPv4 (event_fill_not_ip4). */
static __always_inline void emit_drop_not_ip4(struct __sk_buff *ctx, struct pkt4 *p,
					      const struct trace_info *ti, __u8 reason, __u16 line,
					      __u8 file)
{
	struct cilium_event *ev = event_reserve();

	if (!ev)
		return;
	event_fill(ev, ctx, p, ti, EVENT_DROP, reason);
	event_fill_not_ip4(ev, ctx);
	ev->verdict = -(int)reason;
	ev->line = line;
	ev->file = file;
	event_submit(ev);
}

static __always_inline bool trace_point_is_from(__u8 point)
{
	return point == TRACE_FROM_LXC || point == TRACE_FROM_PROXY || point == TRACE_FROM_HOST ||
	       point == TRACE_FROM_STACK || point == TRACE_FROM_OVERLAY ||
	       point == TRACE_FROM_NETWORK;
}

/*
 * A trace at `point`. Medium aggregation, as Cilium's: no FROM_* points (each packet is reported
 * where it goes, not also where it came from), and TO_* only when conntrack says one is due.
 */
static __always_inline void emit_trace(const struct __sk_buff *ctx, struct pkt4 *p,
				       const struct trace_info *ti, __u8 point, bool due)
{
	struct cilium_event *ev;

	if (cfg_monitor_aggregation != MONITOR_AGGREGATION_NONE &&
	    (!due || trace_point_is_from(point)))
		return;
	ev = event_reserve();
	if (!ev)
		return;
	event_fill(ev, ctx, p, ti, EVENT_TRACE, point);
	event_submit(ev);
}

static __always_inline void emit_policy_verdict(const struct __sk_buff *ctx, struct pkt4 *p,
						const struct trace_info *ti, int verdict,
						__u8 match_type)
{
	struct cilium_event *ev = event_reserve();

	if (!ev)
		return;
	event_fill(ev, ctx, p, ti, EVENT_POLICY_VERDICT, 0);
	ev->verdict = verdict;
	ev->match_type = match_type;
	event_submit(ev);
}

/* IPv6 (struct pkt6) twins of event_fill and the emitters above. */
static __always_inline void event_fill6(struct cilium_event *ev, const struct __sk_buff *ctx,
					struct pkt6 *p, const struct trace_info *ti, __u8 type,
					__u8 subtype)
{
	event_fill_meta(ev, ctx, &p->event_ns, p->len, ti, type, subtype);
	ev->tuple.saddr = p->t.saddr;
	ev->tuple.daddr = p->t.daddr;
	ev->tuple.sport = p->t.sport;
	ev->tuple.dport = p->t.dport;
	ev->tuple.proto = p->t.proto;
	ev->tuple.family = ENDPOINT_KEY_IPV6;
	ev->tuple.tcp_flags = p->tcp_flags;
	ev->tuple.icmp_type = p->icmp_type;
	ev->tuple.icmp_code = p->icmp_code;
	__builtin_memset(ev->tuple.pad, 0, sizeof(ev->tuple.pad));
}

static __always_inline void emit_drop6(const struct __sk_buff *ctx, struct pkt6 *p,
				       const struct trace_info *ti, __u8 reason, __u16 line,
				       __u8 file)
{
	struct cilium_event *ev = event_reserve();

	if (!ev)
		return;
	event_fill6(ev, ctx, p, ti, EVENT_DROP, reason);
	ev->verdict = -(int)reason;
	ev->line = line;
	ev->file = file;
	event_submit(ev);
}

static __always_inline void emit_trace6(const struct __sk_buff *ctx, struct pkt6 *p,
					const struct trace_info *ti, __u8 point, bool due)
{
	struct cilium_event *ev;

	if (cfg_monitor_aggregation != MONITOR_AGGREGATION_NONE &&
	    (!due || trace_point_is_from(point)))
		return;
	ev = event_reserve();
	if (!ev)
		return;
	event_fill6(ev, ctx, p, ti, EVENT_TRACE, point);
	event_submit(ev);
}

static __always_inline void emit_policy_verdict6(const struct __sk_buff *ctx, struct pkt6 *p,
						 const struct trace_info *ti, int verdict,
						 __u8 match_type)
{
	struct cilium_event *ev = event_reserve();

	if (!ev)
		return;
	event_fill6(ev, ctx, p, ti, EVENT_POLICY_VERDICT, 0);
	ev->verdict = verdict;
	ev->match_type = match_type;
	event_submit(ev);
}
