/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 connection tracking: lib/conntrack.h's lookup and creation on the ct_key6 maps (semantics
 * in abi/ct.h). Entry accounting and TCP state are shared with IPv4.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "lib/conntrack.h"
#include "lib/pkt6.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key6);
	__type(value, struct ct_entry);
	__uint(max_entries, CILIUM_CT_TCP_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_ct6_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key6);
	__type(value, struct ct_entry);
	__uint(max_entries, CILIUM_CT_ANY_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_ct_any6_global SEC(".maps");

static __always_inline void ct_key6_fill(struct ct_key6 *key, const struct tuple6 *t, bool reverse,
					 __u8 dir)
{
	key->saddr = reverse ? t->daddr : t->saddr;
	key->daddr = reverse ? t->saddr : t->daddr;
	key->sport = reverse ? t->dport : t->sport;
	key->dport = reverse ? t->sport : t->dport;
	key->nexthdr = t->proto;
	key->flags = dir;
}

static __always_inline struct ct_entry *ct_find6(void *map, const struct tuple6 *t, bool reverse,
						 __u8 dir, __u32 now)
{
	struct ct_key6 key = {};
	struct ct_entry *e;

	ct_key6_fill(&key, t, reverse, dir);
	e = bpf_map_lookup_elem(map, &key);
	if (e && ct_alive(e, now))
		return e;
	return NULL;
}

static __always_inline void __ct_lookup6(void *map, const struct pkt6 *p, __u8 dir, __u32 now,
					 struct ct_result *res)
{
	struct ct_entry *e;

	res->monitor = false;
	if (p->related) {
		e = ct_find6(map, &p->inner, false, ct_opposite(dir), now);
		if (!e)
			e = ct_find6(map, &p->inner, true, dir, now);
		res->entry = e;
		res->status = e ? CT_RELATED : CT_NEW;
		res->monitor = true;
		return;
	}
	e = ct_find6(map, &p->t, false, dir, now);
	if (e) {
		res->entry = e;
		res->status = __ct_entry_update(e, p->t.proto, p->tcp_flags, p->len, false, now,
						&res->monitor);
		return;
	}
	/* A SYN without ACK never answers a connection (lib/conntrack.h). */
	if (p->t.proto == IPPROTO_TCP_ &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		goto new;
	e = ct_find6(map, &p->t, true, ct_opposite(dir), now);
	if (e) {
		res->entry = e;
		res->status = __ct_entry_update(e, p->t.proto, p->tcp_flags, p->len, true, now,
						&res->monitor);
		return;
	}
	new : res->entry = NULL;
	res->status = CT_NEW;
	res->monitor = true;
}

/* Looks up the packet processed in direction `dir`; TCP (also quoted) and the rest apart. */
static __always_inline void ct_lookup6(const struct pkt6 *p, __u8 dir, __u32 now,
				       struct ct_result *res)
{
	if ((p->related ? p->inner.proto : p->t.proto) == IPPROTO_TCP_)
		__ct_lookup6(&cilium_ct6_global, p, dir, now, res);
	else
		__ct_lookup6(&cilium_ct_any6_global, p, dir, now, res);
}

static __always_inline int __ct_create6(void *map, const struct pkt6 *p, __u8 dir, __u32 now,
					__u32 remote_id, __u32 policy_rev, __u16 flags,
					__be16 proxy_port, struct ct_entry *reopened)
{
	struct ct_key6 key = {};
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
		/* Overwritten in place, as __ct_create4 does. */
		*reopened = e;
		return 0;
	}
	ct_key6_fill(&key, &p->t, false, dir);
	if (bpf_map_update_elem(map, &key, &e, BPF_ANY) < 0)
		return -DROP_CT_CREATE_FAILED;
	return 0;
}

/*
 * Creates the entry of a new (or reopened) connection allowed in direction `dir`; `ct` is the
 * packet's lookup. Stray RSTs and ICMPv6 errors open nothing. `flags` (CT_F_PROXY_REDIRECT) and
 * `proxy_port` as in ct_create4_flags.
 */
static __always_inline int ct_create6_flags(const struct pkt6 *p, __u8 dir, __u32 now,
					    __u32 remote_id, __u32 policy_rev,
					    const struct ct_result *ct, __u16 flags,
					    __be16 proxy_port)
{
	struct ct_entry *reopened = ct->status == CT_REOPENED ? ct->entry : NULL;
	void *map = &cilium_ct_any6_global;

	if (p->t.proto == IPPROTO_TCP_) {
		if (p->tcp_flags & TCP_FLAG_RST)
			return 0;
		map = &cilium_ct6_global;
	} else if (p->t.proto == IPPROTO_ICMPV6_ && icmp6_is_error(p->icmp_type)) {
		return 0;
	}
	/* One call site: it is inlined, with its entry and key on the stack. */
	return __ct_create6(map, p, dir, now, remote_id, policy_rev, flags, proxy_port, reopened);
}

static __always_inline int ct_create6(const struct pkt6 *p, __u8 dir, __u32 now, __u32 remote_id,
				      __u32 policy_rev, const struct ct_result *ct)
{
	return ct_create6_flags(p, dir, now, remote_id, policy_rev, ct, 0, 0);
}
