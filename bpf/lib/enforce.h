/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Stateful policy enforcement for one endpoint in one direction: conntrack lookup, the policy
 * verdict where one is needed, and the conntrack entry of an allowed new connection.
 *
 *   CT_REPLY, CT_RELATED            pass without policy (replies of allowed connections)
 *   CT_ESTABLISHED, current rev     pass (the verdict cached in the entry still holds)
 *   CT_ESTABLISHED, older rev       re-check: drop if now denied, else refresh the cached rev
 *   CT_NEW, CT_REOPENED             check, report the verdict, create the entry
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/endpoint.h"
#include "abi/policy.h"
#include "lib/config.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/pkt.h"
#include "lib/policy.h"

/*
 * Enforces `ep`'s policy on `p`, processed in conntrack direction `ct_dir`. The remote end's
 * identity is `remote_id` when the caller knows it (a local sender), else the ipcache identity of
 * `remote_addr`; it is written to ti (dst_identity for egress, src_identity for ingress), with
 * the conntrack state. `*trace_due` tells whether medium aggregation reports this packet.
 * Returns 0 to pass, or -DROP_x.
 */
static __always_inline int enforce4(const struct __sk_buff *ctx, struct pkt4 *p,
				    const struct endpoint_info *ep, __u8 ct_dir, __u32 remote_id,
				    __be32 remote_addr, __u32 now, struct trace_info *ti,
				    bool *trace_due)
{
	__u8 pol_dir = ct_dir == CT_KEY_EGRESS ? POLICY_EGRESS : POLICY_INGRESS;
	__u32 *remote = pol_dir == POLICY_EGRESS ? &ti->dst_identity : &ti->src_identity;
	struct policy_verdict v;
	struct ct_result ct;
	__u32 rev;

	ct_lookup4(p, ct_dir, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;

	if (ct.status == CT_REPLY || ct.status == CT_RELATED) {
		if (ct.entry) {
			*remote = ct.entry->src_sec_id;
			/*
			 * A reply of a translated connection, or an ICMP error arriving about
			 * one this endpoint opened (the quote's source is the endpoint): the
			 * translation is undone (lb4_reverse).
			 */
			if (ct.status == CT_REPLY ||
			    (ct_dir == CT_KEY_INGRESS && p->inner.saddr == ep->ipv4))
				ti->rev_nat = ct.entry->lb_id;
		}
		return 0;
	}
	/* Read before the lookup: a policy change racing with it bumps past this value. */
	rev = runtime_policy_rev();
	if (ct.status == CT_ESTABLISHED && ct.entry && ct.entry->policy_rev == rev) {
		*remote = ct.entry->src_sec_id;
		return 0;
	}

	*remote = remote_id ? remote_id : ipcache_identity4(remote_addr);
	policy_lookup(ep->lxc_id, *remote, pol_dir, p->t.proto, pkt_policy_dport(p), &v);
	/* A verdict is reported where policy is enforced: every deny, and the allow of a new
	 * connection unless only the default allow of an unenforced direction let it in. */
	if (v.verdict < 0 || (ct.status != CT_ESTABLISHED && !v.unenforced))
		emit_policy_verdict(ctx, p, ti, v.verdict, v.match_type);
	if (v.verdict < 0)
		return v.verdict;

	if (ct.status == CT_ESTABLISHED && ct.entry) {
		ct.entry->policy_rev = rev;
		if (ct.entry->src_sec_id != *remote)
			ct.entry->src_sec_id = *remote;
		return 0;
	}
	return ct_create4(p, ct_dir, now, *remote, rev, &ct);
}
