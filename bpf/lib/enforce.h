/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Stateful policy enforcement for one endpoint in one direction: conntrack lookup, the policy
 * verdict where one is needed, and the conntrack entry of an allowed new connection.
 *
 *   CT_REPLY, CT_RELATED            pass without policy (replies of allowed connections)
 *   CT_ESTABLISHED, current rev     pass (the verdict cached in the entry still holds)
 *   CT_ESTABLISHED, older rev       re-check: drop if now denied, else refresh the cached rev
 *   CT_NEW, CT_REOPENED             check, report the verdict, create the entry
 *
 * L7 redirection (abi/proxy.h): an allow with a proxy port, or a connection of a proxy, is told
 * to the caller through the return value (ENFORCE_*, lib/proxy.h), which sends the packet there.
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
#include "lib/proxy.h"

/*
 * Where an established packet of a proxy's connection goes: to the proxy it was redirected to,
 * or (a connection a proxy's own packets opened, met without the proxy's mark) up the stack.
 * Packets of the ingress proxy itself pass: the policy was enforced when it was redirected.
 */
static __always_inline int enforce_proxy_established(const struct ct_entry *e, __u32 from_proxy)
{
	if (from_proxy == MARK_MAGIC_PROXY_INGRESS || !(e->flags & CT_F_PROXY_REDIRECT))
		return 0;
	if (e->proxy_port)
		return bpf_ntohs(e->proxy_port);
	return from_proxy ? 0 : ENFORCE_TO_PROXY_STACK;
}

/* A reply of a connection a proxy's socket opened (its upstream), not sent by a proxy: up the
 * stack. */
static __always_inline bool enforce_proxy_reply(const struct ct_entry *e, __u8 ct_status,
						__u32 from_proxy)
{
	return ct_status == CT_REPLY && !from_proxy && (e->flags & CT_F_PROXY_REDIRECT);
}

/*
 * The policy now wants a proxy port for an established connection: a connection opened past
 * the proxy (before its L7 rule existed) must not go on at L4 (fail closed).
 */
static __always_inline bool enforce_proxy_bypassed(const struct ct_entry *e, __be16 proxy_port)
{
	return proxy_port && !(e->flags & CT_F_PROXY_REDIRECT);
}

/*
 * Enforces `ep`'s policy on `p`, processed in conntrack direction `ct_dir`. The remote end's
 * identity is `remote_id` when the caller knows it (a local sender, or the identity a proxy's
 * mark carries), else the ipcache identity of `remote_addr`; it is written to ti (dst_identity
 * for egress, src_identity for ingress), with the conntrack state. `from_proxy` is the mark magic
 * of a packet an L7 proxy sent (MARK_MAGIC_PROXY_*), else 0. `*trace_due` tells whether medium
 * aggregation reports this packet.
 * Returns 0 to pass, -DROP_x to drop, 1..65535 to redirect to that proxy port, or
 * ENFORCE_TO_PROXY_STACK for a reply (or an established packet) that belongs to a proxy's socket.
 */
static __always_inline int enforce4(const struct __sk_buff *ctx, struct pkt4 *p,
				    const struct endpoint_info *ep, __u8 ct_dir, __u32 remote_id,
				    __be32 remote_addr, __u32 now, struct trace_info *ti,
				    bool *trace_due, __u32 from_proxy)
{
	__u8 pol_dir = ct_dir == CT_KEY_EGRESS ? POLICY_EGRESS : POLICY_INGRESS;
	__u32 *remote = pol_dir == POLICY_EGRESS ? &ti->dst_identity : &ti->src_identity;
	struct policy_verdict v;
	struct ct_result ct;
	__be16 proxy_port;
	__u32 rev;
	int ret;

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
			/* A reply to a proxy's socket (its upstream connection): up the stack. */
			if (enforce_proxy_reply(ct.entry, ct.status, from_proxy))
				return ENFORCE_TO_PROXY_STACK;
		}
		return 0;
	}
	/* Read before the lookup: a policy change racing with it bumps past this value. */
	rev = runtime_policy_rev();
	if (ct.status == CT_ESTABLISHED && ct.entry && ct.entry->policy_rev == rev) {
		*remote = ct.entry->src_sec_id;
		return enforce_proxy_established(ct.entry, from_proxy);
	}

	*remote = remote_id ? remote_id : ipcache_identity4(remote_addr);
	if (from_proxy == MARK_MAGIC_PROXY_INGRESS) {
		/*
		 * The ingress proxy forwarding what it allowed: the policy was enforced at the
		 * redirect. Its connection gets an entry so that the replies reach its socket.
		 */
		if (ct.status == CT_ESTABLISHED && ct.entry) {
			ct.entry->policy_rev = rev;
			return 0;
		}
		return ct_create4_flags(p, ct_dir, now, *remote, rev, &ct, CT_F_PROXY_REDIRECT, 0);
	}
	policy_lookup(ep->lxc_id, *remote, pol_dir, p->t.proto, pkt_policy_dport(p), &v);
	/*
	 * A verdict is reported where policy is enforced: every deny, and the allow of a new
	 * connection unless only the default allow of an unenforced direction let it in. A redirect
	 * is reported as its proxy port, as Cilium does (Hubble: REDIRECTED).
	 */
	if (v.verdict < 0 || (ct.status != CT_ESTABLISHED && !v.unenforced))
		emit_policy_verdict(ctx, p, ti, v.verdict ? v.verdict : bpf_ntohs(v.proxy_port),
				    v.match_type);
	if (v.verdict < 0)
		return v.verdict;

	if (ct.status == CT_ESTABLISHED && ct.entry) {
		if (enforce_proxy_bypassed(ct.entry, v.proxy_port))
			return -DROP_POLICY;
		ct.entry->policy_rev = rev;
		if (ct.entry->src_sec_id != *remote)
			ct.entry->src_sec_id = *remote;
		return enforce_proxy_established(ct.entry, from_proxy);
	}
	proxy_port = v.proxy_port;
	if (proxy_port && !l4_has_ports(p->t.proto))
		return -DROP_PROXY_UNKNOWN_PROTO;
	ret = ct_create4_flags(p, ct_dir, now, *remote, rev, &ct,
			       proxy_port || from_proxy ? CT_F_PROXY_REDIRECT : 0, proxy_port);
	if (ret < 0)
		return ret;
	return proxy_port ? bpf_ntohs(proxy_port) : 0;
}
