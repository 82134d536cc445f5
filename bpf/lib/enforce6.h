/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Stateful policy enforcement for IPv6 packets: lib/enforce.h's enforce4 on the IPv6 conntrack
 * maps, with the same states and the same policy maps (by identity and port, family-agnostic).
 * Not for IPv6 yet: L7 proxy redirection (a rule that wants a proxy drops, fail closed). A
 * reply of a service connection hands its service id over in ti->rev_nat (lib/lb6_packet.h).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/endpoint.h"
#include "abi/policy.h"
#include "lib/config.h"
#include "lib/conntrack6.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/pkt6.h"
#include "lib/policy.h"

/*
 * Enforces `ep`'s policy on `p`, processed in conntrack direction `ct_dir`. The remote end's
 * identity is `remote_id` when the caller knows it (a local sender), else the ipcache identity
 * of `remote_addr`; it is written to ti with the conntrack state. Returns 0 to pass or -DROP_x.
 */
static __always_inline int enforce6(const struct __sk_buff *ctx, struct pkt6 *p,
				    const struct endpoint_info *ep, __u8 ct_dir, __u32 remote_id,
				    const union v4v6_addr *remote_addr, __u32 now,
				    struct trace_info *ti, bool *trace_due)
{
	__u8 pol_dir = ct_dir == CT_KEY_EGRESS ? POLICY_EGRESS : POLICY_INGRESS;
	__u32 *remote = pol_dir == POLICY_EGRESS ? &ti->dst_identity : &ti->src_identity;
	struct policy_verdict v;
	struct ct_result ct;
	__u32 rev;

	ct_lookup6(p, ct_dir, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_REPLY || ct.status == CT_RELATED) {
		if (ct.entry) {
			*remote = ct.entry->src_sec_id;
			/* A reply of a translated connection: undone by lb6_reverse. */
			if (ct.status == CT_REPLY)
				ti->rev_nat = ct.entry->lb_id;
		}
		return 0;
	}
	rev = runtime_policy_rev();
	if (ct.status == CT_ESTABLISHED && ct.entry && ct.entry->policy_rev == rev) {
		*remote = ct.entry->src_sec_id;
		return 0;
	}

	*remote = remote_id ? remote_id : ipcache_identity6(remote_addr);
	policy_lookup(ep->lxc_id, *remote, pol_dir, p->t.proto,
		      l4_has_ports(p->t.proto) ? p->t.dport : 0, &v);
	if (v.verdict == 0 && v.proxy_port)
		v.verdict = -DROP_PROXY_UNKNOWN_PROTO;
	if (v.verdict < 0 || (ct.status != CT_ESTABLISHED && !v.unenforced))
		emit_policy_verdict6(ctx, p, ti, v.verdict, v.match_type);
	if (v.verdict < 0)
		return v.verdict;

	if (ct.status == CT_ESTABLISHED && ct.entry) {
		ct.entry->policy_rev = rev;
		if (ct.entry->src_sec_id != *remote)
			ct.entry->src_sec_id = *remote;
		return 0;
	}
	return ct_create6(p, ct_dir, now, *remote, rev, &ct);
}
