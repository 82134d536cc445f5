/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Stateful policy enforcement for IPv6 packets: lib/enforce.h's enforce4 on the IPv6 conntrack
 * maps, with the same states, the same policy maps (by identity and port, family-agnostic) and
 * the same L7 redirection (the ENFORCE_* return values of lib/proxy.h; the proxy decisions on a
 * conntrack entry are enforce.h's, shared). A reply of a service connection hands its service id
 * over in ti->rev_nat (lib/lb6_packet.h).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/endpoint.h"
#include "abi/policy.h"
#include "lib/config.h"
#include "lib/conntrack6.h"
#include "lib/enforce.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/pkt6.h"
#include "lib/policy.h"
#include "lib/proxy.h"

/*
 * Enforces `ep`'s policy on `p`, processed in conntrack direction `ct_dir`. The remote end's
 * identity is `remote_id` when the caller knows it (a local sender, or the identity a proxy's
 * mark carries), else the ipcache identity of `remote_addr`; it is written to ti with the
 * conntrack state. `from_proxy` is the mark magic of a packet an L7 proxy sent, else 0.
 * Returns what enforce4 returns: 0 to pass, -DROP_x, 1..65535 to redirect to that proxy port, or
 * ENFORCE_TO_PROXY_STACK for a packet that belongs to a proxy's socket.
 */
static __always_inline int enforce6(const struct __sk_buff *ctx, struct pkt6 *p,
				    const struct endpoint_info *ep, __u8 ct_dir, __u32 remote_id,
				    const union v4v6_addr *remote_addr, __u32 now,
				    struct trace_info *ti, bool *trace_due, __u32 from_proxy)
{
	__u8 pol_dir = ct_dir == CT_KEY_EGRESS ? POLICY_EGRESS : POLICY_INGRESS;
	__u32 *remote = pol_dir == POLICY_EGRESS ? &ti->dst_identity : &ti->src_identity;
	struct policy_verdict v;
	struct ct_result ct;
	__be16 proxy_port = 0;
	__u16 ct_flags;
	__u32 rev;
	int ret;

	ct_lookup6(p, ct_dir, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_REPLY || ct.status == CT_RELATED) {
		if (ct.entry) {
			*remote = ct.entry->src_sec_id;
			/*
			 * A reply of a translated connection, or an ICMPv6 error arriving about
			 * one this endpoint opened (the quote's source is the endpoint): undone
			 * by lb6_reverse, as enforce4 does.
			 */
			if (ct.status == CT_REPLY ||
			    (ct_dir == CT_KEY_INGRESS &&
			     ipv6_addr_equal(&p->inner.saddr, (const union v4v6_addr *)ep->ipv6)))
				ti->rev_nat = ct.entry->lb_id;
			if (enforce_proxy_reply(ct.entry, ct.status, from_proxy))
				return ENFORCE_TO_PROXY_STACK;
		}
		return 0;
	}
	rev = runtime_policy_rev();
	if (ct.status == CT_ESTABLISHED && ct.entry && ct.entry->policy_rev == rev) {
		*remote = ct.entry->src_sec_id;
		return enforce_proxy_established(ct.entry, from_proxy);
	}

	*remote = remote_id ? remote_id : ipcache_identity6(remote_addr);
	if (from_proxy == MARK_MAGIC_PROXY_INGRESS) {
		/* The ingress proxy forwarding what it allowed (enforce4). */
		if (ct.status == CT_ESTABLISHED && ct.entry) {
			ct.entry->policy_rev = rev;
			return 0;
		}
		/* One entry-creating call site (each is inlined: the stack is near its limit). */
		ct_flags = CT_F_PROXY_REDIRECT;
		goto create;
	}
	policy_lookup(ep->lxc_id, *remote, pol_dir, p->t.proto,
		      l4_has_ports(p->t.proto) ? p->t.dport : 0, &v);
	if (v.verdict < 0 || (ct.status != CT_ESTABLISHED && !v.unenforced))
		emit_policy_verdict6(ctx, p, ti, v.verdict ? v.verdict : bpf_ntohs(v.proxy_port),
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
	ct_flags = proxy_port || from_proxy ? CT_F_PROXY_REDIRECT : 0;
create:
	ret = ct_create6_flags(p, ct_dir, now, *remote, rev, &ct, ct_flags, proxy_port);
	if (ret < 0)
		return ret;
	return proxy_port ? bpf_ntohs(proxy_port) : 0;
}
