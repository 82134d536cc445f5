/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reverse translation of the per-packet LB: a reply of a translated connection leaves the backend
 * as from the frontend (cilium_lb4_reverse_nat, lib/lb.h), and an ICMP error about such a
 * connection becomes one about the connection the client made. bpf_lxc runs it on the replies
 * its conntrack entries name a service for (CT_REPLY, ct_entry.lb_id); NodePort on a local
 * backend's replies (lib/nodeport.h), hairpin on the pod's own (lib/lb_hairpin.h).
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "lib/icmp4.h"
#include "lib/lb.h"
#include "lib/lb_xlate.h"
#include "lib/pkt.h"

/*
 * An ICMP error about a translated connection of `client` (quote {x:cp -> backend:bp}, x being
 * the client or, for hairpin, the loopback address) becomes one from the frontend to the
 * client, quoting {client:cp -> frontend:fp}. Returns 0 or -DROP_x.
 */
static __always_inline int lb4_reverse_icmp(struct __sk_buff *ctx, struct pkt4 *p, __u32 rev_nat,
					    __be32 client)
{
	struct lb4_reverse_nat *rn;
	int ret;

	if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	ret = icmp4_error_rewrite(ctx, rn->address, client, client, p->inner.sport, rn->address,
				  rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.daddr = client;
	p->inner.saddr = client;
	p->inner.daddr = rn->address;
	p->inner.dport = rn->port;
	return 0;
}

/*
 * Reverse translation of a reply whose conntrack entry named service `rev_nat`: the backend's
 * address and port become the frontend's again; in an ICMP error about the connection, the
 * error's source and the quoted destination. Returns 0 or -DROP_x.
 */
static __always_inline int lb4_reverse(struct __sk_buff *ctx, struct pkt4 *p, __u32 rev_nat)
{
	struct lb4_reverse_nat *rn;
	int ret;

	/* An ICMP error from the backend: the quote's source is the client, the error's target. */
	if (p->related)
		return lb4_reverse_icmp(ctx, p, rev_nat, p->t.daddr);
	if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, rn->address, p->t.sport, rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.sport = rn->port;
	return 0;
}
