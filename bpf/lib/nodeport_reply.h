/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A local backend's answer on a NodePort / externalIP / LoadBalancer connection (one that
 * nodeport_ingress delivered to it and recorded in a CT_KEY_NODEPORT entry) leaves as from the
 * frontend. Wherever the answer leaves the node: at a native device's egress (bpf_host), or into
 * the VXLAN tunnel when the client is a pod of another node that came in through this node's
 * address (bpf_lxc: the ipcache sends the reply straight to the client's node, past the device).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "abi/lb.h"
#include "lib/conntrack.h"
#include "lib/endpoint.h"
#include "lib/icmp4.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/lb_reverse.h"
#include "lib/pkt.h"

/*
 * A reply of a local backend to a NodePort client: from the frontend (of this node's service, or
 * for a DSR connection the one its option named). Returns 0 or -DROP_x.
 */
static __always_inline int nodeport_egress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	const struct endpoint_info *src;
	struct ct_entry *e;

	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return 0;
	src = endpoint_by_ipv4(p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	e = ct_find(lb4_ct_map(p->t.proto), &p->t, true, CT_KEY_NODEPORT, now);
	if (!e || !e->lb_id)
		return 0;
	lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, true, now);
	if (e->flags & CT_F_DSR) {
		__be32 addr = e->lb_id;
		__be16 port = e->rev_nat_index;
		int ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, addr, p->t.sport, port);

		if (ret < 0)
			return ret;
		p->t.saddr = addr;
		p->t.sport = port;
		return 0;
	}
	return lb4_reverse(ctx, p, e->lb_id);
}

/*
 * An ICMP error a local backend sends to a NodePort client about the connection (quote
 * {C:cp -> B:bp}): as from the frontend, quote {C:cp -> F:fp}. Returns 0 or -DROP_x.
 */
static __always_inline int nodeport_icmp_egress(struct __sk_buff *ctx, const struct pkt4 *p,
						__u32 now)
{
	const struct endpoint_info *src;
	struct lb4_reverse_nat *rn;
	struct ct_entry *e;
	__be32 addr;
	__be16 port;
	__u32 id;

	if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
		return 0;
	src = endpoint_by_ipv4(p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	/* The quote {C:cp -> B:bp} is the connection's own direction. */
	e = ct_find(lb4_ct_map(p->inner.proto), &p->inner, false, CT_KEY_NODEPORT, now);
	if (!e || !e->lb_id)
		return 0;
	if (e->flags & CT_F_DSR) {
		addr = e->lb_id;
		port = e->rev_nat_index;
	} else {
		id = e->lb_id;
		rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &id);
		if (!rn)
			return -DROP_NAT_NO_MAPPING;
		addr = rn->address;
		port = rn->port;
	}
	return icmp4_error_rewrite(ctx, addr, p->t.daddr, p->inner.saddr, p->inner.sport, addr,
				   port);
}

/* Either of the above, by the kind of packet. Returns 0 or -DROP_x. */
static __always_inline int nodeport_reply(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	return p->related ? nodeport_icmp_egress(ctx, p, now) : nodeport_egress(ctx, p, now);
}
