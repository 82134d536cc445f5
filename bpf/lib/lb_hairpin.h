/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Hairpin in bpf_lxc: a pod whose connection to a frontend the per-packet LB (lib/lb_packet.h,
 * lib/lb6_packet.h) gave to the pod itself. The connection runs through cfg_lb_loopback_ipv4
 * (IPv6: cfg_lb_loopback_ipv6) both ways, with conntrack entries in the pod's name and no policy
 * (Kubernetes lets a pod reach itself).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "lib/config.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/lb6_packet.h"
#include "lib/lb_packet.h"
#include "lib/lb_reverse.h"
#include "lib/lb_xlate.h"
#include "lib/pkt.h"

/* cfg_lb_loopback_ipv6 as an address. */
static __always_inline union v4v6_addr lb_loopback6(void)
{
	union v4v6_addr a;

	a.ip6_words[0] = cfg_lb_loopback_ipv6[0];
	a.ip6_words[1] = cfg_lb_loopback_ipv6[1];
	a.ip6_words[2] = cfg_lb_loopback_ipv6[2];
	a.ip6_words[3] = cfg_lb_loopback_ipv6[3];
	return a;
}

/*
 * Hairpin: a pod whose connection to a frontend was given to the pod itself (lb4_egress left
 * daddr == its own address). A packet from the pod's own address would be a martian in its
 * namespace, so the source becomes cfg_lb_loopback_ipv4 (169.254.42.1 unless configured) and
 * the packet goes straight back into the pod. The pod's ingress entry {loopback, pod} carries
 * the service id, so the pod's replies (to the loopback address) find their way back
 * (lb4_hairpin_reply). Policy does not apply either way: Kubernetes lets a pod reach itself.
 * Returns 0 with the packet ready for local_delivery4 to `ep`, or -DROP_x; `*trace_due` as
 * enforce4 sets it.
 */
static __always_inline int lb4_hairpin(struct __sk_buff *ctx, struct pkt4 *p,
				       const struct endpoint_info *ep, __u32 rev_nat, __u32 now,
				       struct trace_info *ti, bool *trace_due)
{
	struct ct_result ct;
	int ret;

	ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, cfg_lb_loopback_ipv4, p->t.sport,
			  p->t.sport);
	if (ret < 0)
		return ret;
	p->t.saddr = cfg_lb_loopback_ipv4;
	ct_lookup4(p, CT_KEY_INGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_NEW || ct.status == CT_REOPENED) {
		ret = ct_create4(p, CT_KEY_INGRESS, now, ep->sec_id, runtime_policy_rev(), &ct);
		if (ret < 0)
			return ret;
	}
	lb4_ct_mark(p, rev_nat, now, CT_KEY_INGRESS);
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}

/*
 * A pod's reply to cfg_lb_loopback_ipv4: the reply of a hairpin connection. Its destination
 * becomes the pod again and its source the frontend (lb4_reverse). An ICMP error the pod sends
 * about a hairpin connection (quote {loopback:cp -> pod:bp}, a UDP port without a listener, say)
 * reaches the client in the pod as from the frontend, quoting {pod:cp -> frontend:fp}. Returns 0
 * with the packet ready for local_delivery4 to `ep`; -DROP_NAT_NO_MAPPING for anything to the
 * loopback address that answers no hairpin connection.
 */
static __always_inline int lb4_hairpin_reply(struct __sk_buff *ctx, struct pkt4 *p,
					     const struct endpoint_info *ep, __u32 now,
					     struct trace_info *ti, bool *trace_due)
{
	struct ct_result ct;
	__u32 rev_nat;
	int ret;

	if (p->related) {
		if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
			return -DROP_NAT_NO_MAPPING;
	} else if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) {
		return -DROP_NAT_NO_MAPPING;
	}
	ct_lookup4(p, CT_KEY_EGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_RELATED && ct.entry && ct.entry->lb_id &&
	    p->inner.saddr == cfg_lb_loopback_ipv4) {
		ret = lb4_reverse_icmp(ctx, p, ct.entry->lb_id, ep->ipv4);
		if (ret < 0)
			return ret;
		ti->dst_identity = ep->sec_id;
		ti->dst_id = ep->lxc_id;
		return 0;
	}
	if (ct.status != CT_REPLY || !ct.entry || !ct.entry->lb_id)
		return -DROP_NAT_NO_MAPPING;
	rev_nat = ct.entry->lb_id;
	ret = lb4_rewrite(ctx, p->t.proto, true, p->t.daddr, ep->ipv4, p->t.dport, p->t.dport);
	if (ret < 0)
		return ret;
	p->t.daddr = ep->ipv4;
	ret = lb4_reverse(ctx, p, rev_nat);
	if (ret < 0)
		return ret;
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}

/*
 * lb4_hairpin for IPv6: the source becomes cfg_lb_loopback_ipv6 (fe80::1 by default; the pod
 * answers it through its gateway, whose neighbour discovery bpf_lxc answers), the ingress entry
 * {loopback, pod} carries the service id. 0 or -DROP_x; `*trace_due` as enforce6 sets it.
 */
static __always_inline int lb6_hairpin(struct __sk_buff *ctx, struct pkt6 *p,
				       const struct endpoint_info *ep, __u32 rev_nat, __u32 now,
				       struct trace_info *ti, bool *trace_due)
{
	union v4v6_addr loopback = lb_loopback6();
	struct ct_result ct;
	int ret;

	ret = l4_rewrite6(ctx, p->t.proto, false, &p->t.saddr, &loopback, p->t.sport, p->t.sport);
	if (ret < 0)
		return ret;
	p->t.saddr = loopback;
	ct_lookup6(p, CT_KEY_INGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_NEW || ct.status == CT_REOPENED) {
		ret = ct_create6(p, CT_KEY_INGRESS, now, ep->sec_id, runtime_policy_rev(), &ct);
		if (ret < 0)
			return ret;
	}
	lb6_ct_mark(p, rev_nat, now, CT_KEY_INGRESS);
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}

/*
 * lb4_hairpin_reply for IPv6: a pod's reply to cfg_lb_loopback_ipv6 goes back to the pod as
 * from the frontend, and an ICMPv6 error about a hairpin connection (quote {loopback:cp ->
 * pod:bp}) as from the frontend quoting {pod:cp -> frontend:fp}. Anything else to the loopback
 * address: -DROP_NAT_NO_MAPPING.
 */
static __always_inline int lb6_hairpin_reply(struct __sk_buff *ctx, struct pkt6 *p,
					     const struct endpoint_info *ep, __u32 now,
					     struct trace_info *ti, bool *trace_due)
{
	const union v4v6_addr *self = (const union v4v6_addr *)ep->ipv6;
	union v4v6_addr loopback = lb_loopback6();
	struct lb6_reverse_nat *rn;
	struct ct_result ct;
	__u32 rev_nat;
	int ret;

	if (p->related) {
		if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
			return -DROP_NAT_NO_MAPPING;
	} else if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) {
		return -DROP_NAT_NO_MAPPING;
	}
	ct_lookup6(p, CT_KEY_EGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_RELATED && ct.entry && ct.entry->lb_id &&
	    ipv6_addr_equal(&p->inner.saddr, &loopback)) {
		__u32 id = ct.entry->lb_id;

		rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &id);
		if (!rn)
			return -DROP_NAT_NO_MAPPING;
		ret = icmp6_error_rewrite_both(ctx, &rn->address, self, self, p->inner.sport,
					       &rn->address, rn->port);
		if (ret < 0)
			return ret;
		p->t.saddr = rn->address;
		p->t.daddr = *self;
		ti->dst_identity = ep->sec_id;
		ti->dst_id = ep->lxc_id;
		return 0;
	}
	if (ct.status != CT_REPLY || !ct.entry || !ct.entry->lb_id)
		return -DROP_NAT_NO_MAPPING;
	rev_nat = ct.entry->lb_id;
	ret = l4_rewrite6(ctx, p->t.proto, true, &p->t.daddr, self, p->t.dport, p->t.dport);
	if (ret < 0)
		return ret;
	p->t.daddr = *self;
	ret = lb6_reverse(ctx, p, rev_nat);
	if (ret < 0)
		return ret;
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}
