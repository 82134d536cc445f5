/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking (semantics in abi/ct.h): lookup of a packet in one processing direction,
 * TCP state transitions, per-direction counters, and entry creation.
 *
 * Writes to a shared entry are limited to what changed: counters, flags and TCP
 * flags when new ones appear, the lifetime when it moves (at most once per second), and the
 * report timestamp when a trace event is due.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "lib/config.h"
#include "lib/pkt.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key4);
	__type(value, struct ct_entry);
	__uint(max_entries, CILIUM_CT_TCP_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_ct4_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key4);
	__type(value, struct ct_entry);
	__uint(max_entries, CILIUM_CT_ANY_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_ct_any4_global SEC(".maps");

#define CT_F_CLOSING (CT_F_RX_CLOSING | CT_F_TX_CLOSING)

struct ct_result {
	struct ct_entry *entry; /* the entry hit; NULL for CT_NEW */
	__u8 status;		/* enum ct_status */
	bool monitor;		/* a trace event is due under MONITOR_AGGREGATION_MEDIUM */
};

static __always_inline __u8 ct_opposite(__u8 dir)
{
	return dir == CT_KEY_EGRESS ? CT_KEY_INGRESS : CT_KEY_EGRESS;
}

static __always_inline void ct_key_fill(struct ct_key4 *key, const struct tuple4 *t, bool reverse,
					__u8 dir)
{
	key->saddr = reverse ? t->daddr : t->saddr;
	key->daddr = reverse ? t->saddr : t->daddr;
	key->sport = reverse ? t->dport : t->sport;
	key->dport = reverse ? t->sport : t->dport;
	key->nexthdr = t->proto;
	key->flags = dir;
}

static __always_inline bool ct_alive(const struct ct_entry *e, __u32 now)
{
	return e->lifetime >= now;
}

static __always_inline __u32 ct_lifetime_tcp(__u16 flags)
{
	if ((flags & CT_F_CLOSING) == CT_F_CLOSING)
		return cfg_ct_timeout_tcp_close;
	if (flags & CT_F_SEEN_NON_SYN)
		return cfg_ct_timeout_tcp_established;
	return cfg_ct_timeout_tcp_syn;
}

/* TCP connection flags after a packet with `tcp_flags` in the given direction. */
static __always_inline __u16 ct_tcp_flags_after(__u16 flags, __u8 tcp_flags, bool reply)
{
	if (tcp_flags & TCP_FLAG_RST)
		flags |= CT_F_CLOSING; /* RST closes the connection in both directions */
	else if (tcp_flags & TCP_FLAG_FIN)
		flags |= reply ? CT_F_RX_CLOSING : CT_F_TX_CLOSING;
	if (!(tcp_flags & TCP_FLAG_SYN))
		flags |= CT_F_SEEN_NON_SYN;
	return flags;
}

/*
 * Accounts a packet (`proto`, `tcp_flags`, `len`, of either family) on an entry it hit and
 * advances the TCP state. Returns the ct_status.
 */
static __always_inline __u8 __ct_entry_update(struct ct_entry *e, __u8 proto, __u8 tcp_flags,
					      __u32 len, bool reply, __u32 now, bool *monitor)
{
	__u32 lifetime = cfg_ct_timeout_nontcp;
	__u32 *last_report;

	if (proto == IPPROTO_TCP_) {
		__u8 flags = tcp_flags;
		__u8 *seen = reply ? &e->rx_flags_seen : &e->tx_flags_seen;
		__u16 cflags;

		/* A new SYN on a closing connection opens a new one over the old entry. */
		if (!reply && (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
		    (e->flags & CT_F_CLOSING))
			return CT_REOPENED;
		if (flags & ~*seen) {
			*seen |= flags;
			*monitor = true;
		}
		cflags = ct_tcp_flags_after(e->flags, flags, reply);
		if (cflags != e->flags)
			e->flags = cflags;
		lifetime = ct_lifetime_tcp(cflags);
	}
	lifetime += now;
	if (e->lifetime != lifetime)
		e->lifetime = lifetime;

	/*
	 * Plain adds, not atomics: a locked add per counter costs the established path more than
	 * anything else it does. Packets of one flow direction run on one CPU at a time in
	 * practice; when they do not, an increment can be lost. No decision reads these counters.
	 */
	if (reply) {
		e->rx_packets += 1;
		e->rx_bytes += len;
		last_report = &e->last_rx_report;
	} else {
		e->tx_packets += 1;
		e->tx_bytes += len;
		last_report = &e->last_tx_report;
	}
	if (*monitor || now - *last_report >= cfg_ct_report_interval) {
		*monitor = true;
		if (*last_report != now)
			*last_report = now;
	}
	return reply ? CT_REPLY : CT_ESTABLISHED;
}

static __always_inline __u8 ct_entry_update(struct ct_entry *e, const struct pkt4 *p, bool reply,
					    __u32 now, bool *monitor)
{
	return __ct_entry_update(e, p->t.proto, p->tcp_flags, p->len, reply, now, monitor);
}

static __always_inline struct ct_entry *ct_find(void *map, const struct tuple4 *t, bool reverse,
						__u8 dir, __u32 now)
{
	struct ct_key4 key = {};
	struct ct_entry *e;

	ct_key_fill(&key, t, reverse, dir);
	e = bpf_map_lookup_elem(map, &key);
	if (e && ct_alive(e, now))
		return e;
	return NULL; /* absent or expired: an expired entry is overwritten on create */
}

static __always_inline void __ct_lookup4(void *map, const struct pkt4 *p, __u8 dir, __u32 now,
					 struct ct_result *res)
{
	struct ct_entry *e;

	res->monitor = false;
	if (p->related) {
		/* An ICMP error travels against the connection it quotes. */
		e = ct_find(map, &p->inner, false, ct_opposite(dir), now);
		if (!e)
			e = ct_find(map, &p->inner, true, dir, now);
		res->entry = e;
		res->status = e ? CT_RELATED : CT_NEW;
		res->monitor = true;
		return;
	}
	e = ct_find(map, &p->t, false, dir, now);
	if (e) {
		res->entry = e;
		res->status = ct_entry_update(e, p, false, now, &res->monitor);
		return;
	}
	/*
	 * A SYN without ACK opens a connection; it never answers one. Not looking it up as a reply
	 * keeps a peer from passing SYNs off as replies of a mirrored connection, and spares new
	 * connections a lookup.
	 */
	if (p->t.proto == IPPROTO_TCP_ &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		goto new;
	e = ct_find(map, &p->t, true, ct_opposite(dir), now);
	if (e) {
		res->entry = e;
		res->status = ct_entry_update(e, p, true, now, &res->monitor);
		return;
	}
	new : res->entry = NULL;
	res->status = CT_NEW;
	res->monitor = true;
}

/* The protocol that selects the map: the quoted one for ICMP errors. */
static __always_inline bool ct_is_tcp(const struct pkt4 *p)
{
	return (p->related ? p->inner.proto : p->t.proto) == IPPROTO_TCP_;
}

/*
 * Looks up the packet processed in direction `dir` (CT_KEY_EGRESS / CT_KEY_INGRESS). Each map
 * has its own call site so the verifier can inline the lookups.
 */
static __always_inline void ct_lookup4(const struct pkt4 *p, __u8 dir, __u32 now,
				       struct ct_result *res)
{
	if (ct_is_tcp(p))
		__ct_lookup4(&cilium_ct4_global, p, dir, now, res);
	else
		__ct_lookup4(&cilium_ct_any4_global, p, dir, now, res);
}

/* Stray RSTs and ICMP errors that quote no known connection open nothing. */
static __always_inline bool ct_should_create(const struct pkt4 *p)
{
	if (p->t.proto == IPPROTO_TCP_)
		return !(p->tcp_flags & TCP_FLAG_RST);
	if (p->t.proto == IPPROTO_ICMP_)
		return !icmp_is_error(p->icmp_type);
	return true;
}

/* The TCP state and lifetime of a new entry, from its first packet (either family). */
static __always_inline void ct_entry_init_state(struct ct_entry *e, __u8 proto, __u8 tcp_flags,
						__u16 flags, __u32 now)
{
	if (proto == IPPROTO_TCP_) {
		e->tx_flags_seen = tcp_flags;
		e->flags = ct_tcp_flags_after(flags, tcp_flags, false);
		e->lifetime = now + ct_lifetime_tcp(e->flags);
	} else {
		e->lifetime = now + cfg_ct_timeout_nontcp;
	}
}

static __always_inline int __ct_create4(void *map, const struct pkt4 *p, __u8 dir, __u32 now,
					__u32 remote_id, __u32 policy_rev, __u16 flags,
					__be16 proxy_port, struct ct_entry *reopened)
{
	struct ct_key4 key = {};
	struct ct_entry e = {
	    .tx_packets = 1,
	    .tx_bytes = p->len,
	    .flags = flags,
	    .proxy_port = proxy_port,
	    .src_sec_id = remote_id,
	    .last_tx_report = now,
	    .policy_rev = policy_rev,
	};

	ct_entry_init_state(&e, p->t.proto, p->tcp_flags, flags, now);
	if (reopened) {
		/*
		 * The closing entry this SYN hit, under the same key: overwritten in place. A map
		 * update would take a fresh element from the LRU and give the old one back, the
		 * LRU's global lists and lock twice per connection (clients that reuse ports, with
		 * tcp_tw_reuse, reopen most of their connections this way). The lookup marked the
		 * element referenced, so eviction passes it by; like every other write through a
		 * looked-up entry, a packet of this tuple on another CPU may see it half written.
		 */
		*reopened = e;
		return 0;
	}
	ct_key_fill(&key, &p->t, false, dir);
	/* BPF_ANY: overwrites an expired entry. */
	if (bpf_map_update_elem(map, &key, &e, BPF_ANY) < 0)
		return -DROP_CT_CREATE_FAILED;
	return 0;
}

/*
 * Creates the entry of a new (or reopened) connection allowed in direction `dir`; `ct` is the
 * packet's lookup in that direction. `flags` and `proxy_port` mark the connections of an L7
 * proxy (CT_F_PROXY_REDIRECT, abi/proxy.h).
 */
static __always_inline int ct_create4_flags(const struct pkt4 *p, __u8 dir, __u32 now,
					    __u32 remote_id, __u32 policy_rev,
					    const struct ct_result *ct, __u16 flags,
					    __be16 proxy_port)
{
	struct ct_entry *reopened = ct->status == CT_REOPENED ? ct->entry : NULL;

	if (!ct_should_create(p))
		return 0;
	if (p->t.proto == IPPROTO_TCP_)
		return __ct_create4(&cilium_ct4_global, p, dir, now, remote_id, policy_rev, flags,
				    proxy_port, reopened);
	return __ct_create4(&cilium_ct_any4_global, p, dir, now, remote_id, policy_rev, flags,
			    proxy_port, reopened);
}

static __always_inline int ct_create4(const struct pkt4 *p, __u8 dir, __u32 now, __u32 remote_id,
				      __u32 policy_rev, const struct ct_result *ct)
{
	return ct_create4_flags(p, dir, now, remote_id, policy_rev, ct, 0, 0);
}
