/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-endpoint policy (abi/policy.h): the outer map gives an endpoint's LPM trie; two lookups,
 * one with the remote identity and one with identity 0 (any), decide. Deny from either wins.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/events.h"
#include "abi/policy.h"

/* Sizes rather than types: clang 14 emits only forward declarations for an inner map's types. */
struct policy_inner_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(key_size, sizeof(struct policy_key));
	__uint(value_size, sizeof(struct policy_entry));
	__uint(max_entries, CILIUM_POLICY_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, CILIUM_POLICY_OUTER_SIZE);
	__uint(pinning, PIN_BY_NAME);
	__array(values, struct policy_inner_map);
} cilium_policy_v2 SEC(".maps");

struct policy_verdict {
	int verdict;	  /* 0 allowed, -DROP_POLICY / -DROP_POLICY_DENY / -DROP_EP_NOT_READY */
	__u16 proxy_port; /* network order; non-zero: redirect to that L7 proxy (abi/proxy.h) */
	__u8 match_type;  /* enum policy_match */
	__u8 unenforced;  /* allowed by the default allow of a direction no policy enforces */
};

static __always_inline __u8 policy_match_type(const struct policy_entry *e, bool by_identity)
{
	if (e->prefix_len <= POLICY_PREFIX_ANY_PROTO)
		return by_identity ? POLICY_MATCH_L3_ONLY : POLICY_MATCH_ALL;
	if (e->prefix_len <= POLICY_PREFIX_ANY_PORT)
		return by_identity ? POLICY_MATCH_L3_PROTO : POLICY_MATCH_PROTO_ONLY;
	return by_identity ? POLICY_MATCH_L3_L4 : POLICY_MATCH_L4_ONLY;
}

/*
 * The verdict of endpoint `ep_id`'s policy for traffic with `remote_id` in direction `dir`
 * (POLICY_INGRESS / POLICY_EGRESS) to protocol `proto`, port `dport` (network order, 0 for
 * port-less protocols). An endpoint without a policy map is not ready: it fails closed.
 */
static __always_inline void policy_lookup(__u16 ep_id, __u32 remote_id, __u8 dir, __u8 proto,
					  __be16 dport, struct policy_verdict *v)
{
	__u32 outer_key = ep_id;
	struct policy_key key = {
	    .prefixlen = POLICY_PREFIX_FULL,
	    .sec_label = remote_id,
	    .egress = dir,
	    .protocol = proto,
	    .dport = dport,
	};
	const struct policy_entry *l3, *l4;
	void *inner;

	v->proxy_port = 0;
	v->match_type = POLICY_MATCH_NONE;
	v->unenforced = 0;
	inner = bpf_map_lookup_elem(&cilium_policy_v2, &outer_key);
	if (!inner) {
		v->verdict = -DROP_EP_NOT_READY;
		return;
	}
	l3 = bpf_map_lookup_elem(inner, &key);
	if (l3 && (l3->flags & POLICY_F_DENY)) {
		v->verdict = -DROP_POLICY_DENY;
		v->match_type = policy_match_type(l3, true);
		return;
	}
	key.sec_label = 0;
	l4 = remote_id ? bpf_map_lookup_elem(inner, &key) : NULL;
	if (l4 && (l4->flags & POLICY_F_DENY)) {
		v->verdict = -DROP_POLICY_DENY;
		v->match_type = policy_match_type(l4, false);
		return;
	}
	/* An allow from either; the more specific match names the proxy port and match type. */
	if (l3 && (!l4 || l3->prefix_len >= l4->prefix_len)) {
		v->verdict = 0;
		v->proxy_port = l3->proxy_port;
		v->match_type = policy_match_type(l3, true);
		/* Remote identity 0: the first lookup already was the one with identity 0. */
		v->unenforced = (l3->flags & POLICY_F_UNENFORCED) != 0;
		return;
	}
	if (l4) {
		v->verdict = 0;
		v->proxy_port = l4->proxy_port;
		v->match_type = policy_match_type(l4, false);
		v->unenforced = (l4->flags & POLICY_F_UNENFORCED) != 0;
		return;
	}
	v->verdict = -DROP_POLICY;
}
