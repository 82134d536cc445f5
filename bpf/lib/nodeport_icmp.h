/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors about NodePort / externalIP / LoadBalancer connections (bpf_host.c), translated
 * like the connection they quote so that path MTU discovery and unreachables work through the
 * node (a "fragmentation needed" lost here is a connection that hangs on its first full-size
 * segment):
 *   from outside, about a packet the frontend sent to the client (quote {F:fp -> C:cp}): to the
 *     backend the connection's CT_KEY_SERVICE entry names. A local one gets quote {B:bp -> C:cp}
 *     through bpf_lxc (a related packet of its connection); a remote one gets it as the SNATed
 *     connection looks to it: quote {B:bp -> N:np}, from the node N.
 *   from a remote backend's side, about a packet the node sent it (quote {N:np -> B:bp}): to the
 *     client, as from the frontend: quote {C:cp -> F:fp}.
 *   from a local backend towards an outside client (quote {C:cp -> B:bp}), at the device's egress:
 *     as from the frontend, quote {C:cp -> F:fp}.
 * The rewrite itself is lib/icmp4.h's.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/conntrack.h"
#include "lib/endpoint.h"
#include "lib/icmp4.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/nodeport_fwd.h"
#include "lib/nodeport_reply.h"
#include "lib/nodeport_snat.h"
#include "lib/pkt.h"

/* Routes the translated error towards `daddr` (from `saddr`) and sends it, as nodeport_ingress. */
static __always_inline int nodeport_icmp_forward(struct __sk_buff *ctx, struct pkt4 *p,
						 __be32 saddr, __be32 daddr)
{
	struct bpf_fib_lookup fib;
	int ret;

	p->t.saddr = saddr;
	p->t.daddr = daddr;
	p->t.sport = 0;
	p->t.dport = 0;
	ret = nodeport_fib_lookup(ctx, p, saddr, &fib);
	if (ret < 0)
		return ret;
	return nodeport_redirect(ctx, &fib, ret);
}

/*
 * Ingress of a native device: an ICMP error (p->related) about a NodePort connection. Returns the
 * tc verdict, TC_ACT_OK for an error about anything else, or -DROP_x.
 */
static __always_inline int nodeport_icmp_ingress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	const struct tuple4 q = p->inner;
	struct nat4_key nk = {
	    .proto = q.proto,
	};
	struct ct_key4 ck = {
	    .nexthdr = q.proto,
	    .flags = CT_KEY_SERVICE,
	};
	const struct endpoint_info *dst;
	struct lb4_reverse_nat *rn;
	struct lb4_backend *be;
	struct nat4_entry *n;
	struct ct_entry *e;
	__be32 client, frontend;
	__be16 client_port, frontend_port;
	__u32 id;
	int ret;

	if (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_)
		return TC_ACT_OK;

	/* From the backend's side: the quote is a packet the node sent from a node port. */
	if (bpf_ntohs(q.sport) >= NAT_PORT_MIN) {
		nk.saddr = q.daddr;
		nk.daddr = q.saddr;
		nk.sport = q.dport;
		nk.dport = q.sport;
		nk.dir = NAT_DIR_INGRESS;
		n = bpf_map_lookup_elem(&cilium_snat_v4_external, &nk);
		if (n && !(n->flags & NAT_F_MASQ)) {
			client = n->to_addr;
			client_port = n->to_port;
			id = n->rev_nat_index;
			rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &id);
			if (!rn)
				return -DROP_NAT_NO_MAPPING;
			frontend = rn->address;
			frontend_port = rn->port;
			ret = icmp4_error_rewrite(ctx, frontend, client, client, client_port,
						  frontend, frontend_port);
			if (ret < 0)
				return ret;
			return nodeport_icmp_forward(ctx, p, frontend, client);
		}
	}

	/* From the client's side: the quote is a packet the frontend sent to the client. */
	ck.saddr = q.daddr;
	ck.daddr = q.saddr;
	ck.sport = q.dport;
	ck.dport = q.sport;
	e = bpf_map_lookup_elem(lb4_ct_map(q.proto), &ck);
	if (!e || !ct_alive(e, now))
		return TC_ACT_OK;
	be = lb4_lookup_backend(e->lb_id);
	if (!be)
		return TC_ACT_OK;
	client = q.daddr;
	client_port = q.dport;
	dst = endpoint_by_ipv4(be->address);
	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		ret = icmp4_error_rewrite(ctx, p->t.saddr, be->address, be->address, be->port,
					  client, client_port);
		if (ret < 0)
			return ret;
		return nodeport_deliver_local(ctx, dst);
	}
	nk.saddr = client;
	nk.daddr = be->address;
	nk.sport = client_port;
	nk.dport = be->port;
	nk.dir = NAT_DIR_EGRESS;
	n = bpf_map_lookup_elem(&cilium_snat_v4_external, &nk);
	if (!n)
		return TC_ACT_OK;
	{
		__be32 node_addr = n->to_addr;
		__be16 node_port = n->to_port;
		__be32 backend = be->address;

		ret = icmp4_error_rewrite(ctx, node_addr, backend, backend, be->port, node_addr,
					  node_port);
		if (ret < 0)
			return ret;
		return nodeport_icmp_forward(ctx, p, node_addr, backend);
	}
}
