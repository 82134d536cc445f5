/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 NodePort, externalIPs and LoadBalancer IPs on the node's native devices (bpf_host.c):
 * lib/nodeport.h's paths on the IPv6 maps (cilium_lb6_*, cilium_ct6_*, cilium_snat_v6_external,
 * cilium_node_dev6), with the same rules:
 *   - local backend: DNAT, a CT_KEY_NODEPORT entry {client, backend} naming the service, then
 *     the egress of the pod's veth (bpf_lxc enforces the pod's ingress policy); the client's
 *     address is kept, and the pod's replies are translated back at the device's egress
 *     (nodeport_egress6);
 *   - remote backend: SNAT to the IPv6 address of the device the FIB picks towards the backend
 *     with a node port from the allocator IPv6 masquerade uses (nat6_snat_port), then out that
 *     device; the backend's replies at the node port go back to the client from the frontend;
 *   - a frontend without an active backend answers TCP with the frontend's RST and UDP with
 *     ICMPv6 port unreachable, back out of the device.
 * ICMPv6 errors about these connections are translated like them (nodeport_icmp_ingress6,
 * nodeport_icmp_egress6; lib/nodeport_icmp.h's rules).
 * Not for IPv6 (docs/services.md, limits): DSR (an IPv6 connection to a remote backend is SNATed
 * in every mode). The XDP fast path is lib/nodeport_xdp.h's nodeport_xdp6.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/conntrack6.h"
#include "lib/endpoint.h"
#include "lib/eth.h"
#include "lib/lb.h"
#include "lib/lb6_packet.h"
#include "lib/nat6_xlate.h"
#include "lib/nodeport_fwd.h"
#include "lib/nodeport_snat.h"
#include "lib/pkt6.h"

#define AF_INET6_ 10

/* nodeport_ct_local for IPv6: the connection client -> local backend belongs to service `id`. */
static __always_inline int nodeport_ct_local6(const struct pkt6 *p, __u32 id, __u32 now)
{
	void *map = lb6_ct_map(p->t.proto);
	struct ct_key6 key = {};
	struct ct_entry *e;

	ct_key6_fill(&key, &p->t, false, CT_KEY_NODEPORT);
	e = bpf_map_lookup_elem(map, &key);
	if (e && e->lb_id == id) {
		lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
		return 0;
	}
	{
		struct ct_entry n = {
		    .lb_id = id,
		};

		lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);
		if (bpf_map_update_elem(map, &key, &n, BPF_ANY_) < 0)
			return -DROP_CT_CREATE_FAILED;
	}
	return 0;
}

/* nodeport_fib_lookup for IPv6 (the ingress device must forward IPv6 for the lookup to work). */
static __always_inline int nodeport_fib_lookup6(struct __sk_buff *ctx, const struct pkt6 *p,
						const union v4v6_addr *saddr,
						struct bpf_fib_lookup *fib)
{
	long rc;

	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	fib->l4_protocol = p->t.proto;
	fib->sport = p->t.sport;
	fib->dport = p->t.dport;
	fib->tot_len = 0; /* as for IPv4: the kernel checks the skb against the MTU */
	fib->ifindex = ctx_load_u32(ctx, ifindex);
	__builtin_memcpy(fib->ipv6_src, saddr, sizeof(fib->ipv6_src));
	__builtin_memcpy(fib->ipv6_dst, &p->t.daddr, sizeof(fib->ipv6_dst));
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 1;
	return -DROP_NO_FIB;
}

/* nodeport_snat_entry for IPv6: the node port of client -> remote backend leaving from node_addr. */
static __always_inline int nodeport_snat_entry6(const struct pkt6 *p,
						const union v4v6_addr *node_addr, __u32 svc_id,
						__u32 now, __be16 *node_port)
{
	struct nat6_key fwd = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_EGRESS,
	};
	struct nat6_key rev = {
	    .saddr = p->t.daddr,
	    .daddr = *node_addr,
	    .sport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	struct nat6_entry back = {
	    .to_addr = p->t.saddr,
	    .to_port = p->t.sport,
	    .rev_nat_index = svc_id,
	    .created = now,
	};
	struct nat6_entry out = {
	    .to_addr = *node_addr,
	    .rev_nat_index = svc_id,
	    .created = now,
	};
	bool established = p->t.proto == IPPROTO_TCP_ &&
			   (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;

	return nat6_snat_port(&fwd, &rev, &back, &out, established, now, node_port);
}

/* nodeport_service_reply_seen for IPv6: the client's CT_KEY_SERVICE entry lives as long as the
 * connection, both ways. */
static __always_inline void nodeport_service_reply_seen6(const union v4v6_addr *client,
							 __be16 client_port,
							 const union v4v6_addr *frontend,
							 __be16 frontend_port, __u8 proto,
							 __u8 tcp_flags, __u32 now)
{
	struct ct_key6 key = {
	    .saddr = *client,
	    .daddr = *frontend,
	    .sport = client_port,
	    .dport = frontend_port,
	    .nexthdr = proto,
	    .flags = CT_KEY_SERVICE,
	};
	struct ct_entry *e = bpf_map_lookup_elem(lb6_ct_map(proto), &key);

	if (e)
		lb4_service_entry_seen(e, proto, tcp_flags, true, now);
}

/* nodeport_reply_nat4 for IPv6. */
static __always_inline struct nat6_entry *nodeport_reply_nat6(const struct pkt6 *p)
{
	struct nat6_key key = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};

	if (bpf_ntohs(p->t.dport) < NAT_PORT_MIN)
		return NULL;
	return bpf_map_lookup_elem(&cilium_snat_v6_external, &key);
}

/* A reply of a remote backend to a node port (nodeport_rev_snat for IPv6). */
static __always_inline int nodeport_rev_snat6(struct __sk_buff *ctx, struct pkt6 *p, __u32 now)
{
	struct bpf_fib_lookup fib;
	struct lb6_reverse_nat *rn;
	struct nat6_entry *e;
	union v4v6_addr to_addr;
	__be16 to_port;
	__u32 svc_id;
	int ret;

	e = nodeport_reply_nat6(p);
	if (!e || (e->flags & NAT_F_MASQ))
		return TC_ACT_OK;
	to_addr = e->to_addr;
	to_port = e->to_port;
	svc_id = e->rev_nat_index;
	rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &svc_id);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	nodeport_service_reply_seen6(&to_addr, to_port, &rn->address, rn->port, p->t.proto,
				     p->tcp_flags, now);
	ret = l4_rewrite6(ctx, p->t.proto, true, &p->t.daddr, &to_addr, p->t.dport, to_port);
	if (ret < 0)
		return ret;
	p->t.daddr = to_addr;
	p->t.dport = to_port;
	ret = l4_rewrite6(ctx, p->t.proto, false, &p->t.saddr, &rn->address, p->t.sport, rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.sport = rn->port;
	ret = nodeport_fib_lookup6(ctx, p, &p->t.saddr, &fib);
	if (ret < 0)
		return ret;
	return nodeport_redirect6(ctx, &fib, ret);
}

/* Refuses a connection to a frontend without backends, back out of the device. */
static __always_inline int nodeport_reject6(struct __sk_buff *ctx, const struct pkt6 *p)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	__u8 peer[8] __attribute__((aligned(8))) = {};
	__u8 self[8] __attribute__((aligned(8))) = {};
	int ret;

	if ((void *)(eth + 1) > data_end)
		return -DROP_INVALID;
	eth_copy_mac(peer, eth->h_source);
	eth_copy_mac(self, eth->h_dest);
	ret = lb6_reject_answer(ctx, p, peer, self);
	if (ret < 0)
		return ret;
	return bpf_redirect(ctx_load_u32(ctx, ifindex), 0);
}

/*
 * Ingress of a native device, IPv6 (nodeport_ingress's twin). Returns the tc verdict (TC_ACT_OK
 * for anything that is neither an outside frontend nor a reply to a node port), or -DROP_x;
 * *rejected says a refusal was sent.
 */
static __always_inline int nodeport_ingress6(struct __sk_buff *ctx, struct pkt6 *p, __u32 now,
					     bool *rejected)
{
	const struct endpoint_info *dst;
	const struct node_dev6 *dev;
	struct bpf_fib_lookup fib;
	struct lb4_service *svc;
	struct lb6_backend *be;
	__be16 node_port = 0;
	__u32 svc_id, oif;
	int ret;

	*rejected = false;
	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return TC_ACT_OK;
	ret = nodeport_rev_snat6(ctx, p, now);
	if (ret != TC_ACT_OK)
		return ret;
	svc = lb6_lookup_external(&p->t.daddr, p->t.dport, p->t.proto);
	if (!svc || !(svc->flags & SVC_F_FROM_OUTSIDE))
		return TC_ACT_OK;
	svc_id = svc->rev_nat_index;
	be = lb6_connection_backend(svc, p, now);
	if (!be) {
		ret = nodeport_reject6(ctx, p);
		*rejected = ret >= 0;
		return ret;
	}
	ret = l4_rewrite6(ctx, p->t.proto, true, &p->t.daddr, &be->address, p->t.dport, be->port);
	if (ret < 0)
		return ret;
	p->t.daddr = be->address;
	p->t.dport = be->port;

	dst = endpoint_by_ipv6(&p->t.daddr);
	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		ret = nodeport_ct_local6(p, svc_id, now);
		if (ret < 0)
			return ret;
		return nodeport_deliver_local6(ctx, dst);
	}

	ret = nodeport_fib_lookup6(ctx, p, &p->t.saddr, &fib);
	if (ret < 0)
		return ret;
	oif = fib.ifindex;
	dev = bpf_map_lookup_elem(&cilium_node_dev6, &oif);
	if (!dev || ipv6_addr_is_zero(&dev->address))
		return -DROP_NAT_NO_MAPPING;
	{
		union v4v6_addr node_addr = dev->address;
		int resolved = ret;

		ret = nodeport_snat_entry6(p, &node_addr, svc_id, now, &node_port);
		if (ret < 0)
			return ret;
		ret = l4_rewrite6(ctx, p->t.proto, false, &p->t.saddr, &node_addr, p->t.sport,
				  node_port);
		if (ret < 0)
			return ret;
		p->t.saddr = node_addr;
		p->t.sport = node_port;
		return nodeport_redirect6(ctx, &fib, resolved);
	}
}

/*
 * A reply of a local backend to an outside client of an IPv6 NodePort connection, at the
 * device's egress: from the frontend (nodeport_egress for IPv6). Returns 0 or -DROP_x.
 */
static __always_inline int nodeport_egress6(struct __sk_buff *ctx, struct pkt6 *p, __u32 now)
{
	const struct endpoint_info *src;
	struct ct_entry *e;

	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return 0;
	src = endpoint_by_ipv6(&p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	e = ct_find6(lb6_ct_map(p->t.proto), &p->t, true, CT_KEY_NODEPORT, now);
	if (!e || !e->lb_id)
		return 0;
	lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, true, now);
	return lb6_reverse(ctx, p, e->lb_id);
}

/*
 * ICMPv6 errors about IPv6 NodePort connections, translated like the connection they quote
 * (lib/nodeport_icmp.h's rules; the rewrites are nat6_xlate.h's).
 */

/* Routes the translated error from `saddr` towards `daddr` and sends it. */
static __always_inline int nodeport_icmp_forward6(struct __sk_buff *ctx, struct pkt6 *p,
						  const union v4v6_addr *saddr,
						  const union v4v6_addr *daddr)
{
	struct bpf_fib_lookup fib;
	int ret;

	p->t.saddr = *saddr;
	p->t.daddr = *daddr;
	p->t.sport = 0;
	p->t.dport = 0;
	ret = nodeport_fib_lookup6(ctx, p, saddr, &fib);
	if (ret < 0)
		return ret;
	return nodeport_redirect6(ctx, &fib, ret);
}

/*
 * Ingress of a native device: an ICMPv6 error (p->related) about an IPv6 NodePort connection.
 * Returns the tc verdict, TC_ACT_OK for an error about anything else, or -DROP_x.
 */
static __always_inline int nodeport_icmp_ingress6(struct __sk_buff *ctx, struct pkt6 *p,
						  __u32 now)
{
	const struct tuple6 q = p->inner;
	struct nat6_key nk = {
	    .proto = q.proto,
	};
	struct ct_key6 ck = {
	    .nexthdr = q.proto,
	    .flags = CT_KEY_SERVICE,
	};
	const struct endpoint_info *dst;
	struct lb6_reverse_nat *rn;
	struct lb6_backend *be;
	struct nat6_entry *n;
	struct ct_entry *e;
	union v4v6_addr client, frontend, backend, node_addr;
	__be16 client_port, frontend_port, backend_port, node_port;
	__u32 id;
	int ret;

	if (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_)
		return TC_ACT_OK;

	/* From the backend's side: the quote {N:np -> B:bp} is a packet the node sent. */
	if (bpf_ntohs(q.sport) >= NAT_PORT_MIN) {
		nk.saddr = q.daddr;
		nk.daddr = q.saddr;
		nk.sport = q.dport;
		nk.dport = q.sport;
		nk.dir = NAT_DIR_INGRESS;
		n = bpf_map_lookup_elem(&cilium_snat_v6_external, &nk);
		if (n && !(n->flags & NAT_F_MASQ)) {
			client = n->to_addr;
			client_port = n->to_port;
			id = n->rev_nat_index;
			rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &id);
			if (!rn)
				return -DROP_NAT_NO_MAPPING;
			frontend = rn->address;
			frontend_port = rn->port;
			/* To the client, from the frontend, quote {C:cp -> F:fp}. */
			ret = icmp6_error_rewrite_both(ctx, &frontend, &client, &client,
						       client_port, &frontend, frontend_port);
			if (ret < 0)
				return ret;
			return nodeport_icmp_forward6(ctx, p, &frontend, &client);
		}
	}

	/* From the client's side: the quote {F:fp -> C:cp} is a packet the frontend sent. */
	ck.saddr = q.daddr;
	ck.daddr = q.saddr;
	ck.sport = q.dport;
	ck.dport = q.sport;
	e = bpf_map_lookup_elem(lb6_ct_map(q.proto), &ck);
	if (!e || !ct_alive(e, now))
		return TC_ACT_OK;
	be = lb6_lookup_backend(e->lb_id);
	if (!be)
		return TC_ACT_OK;
	client = q.daddr;
	client_port = q.dport;
	backend = be->address;
	backend_port = be->port;
	dst = endpoint_by_ipv6(&backend);
	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		/* To the local backend, quote {B:bp -> C:cp}; bpf_lxc lets it in as related. */
		ret = icmp6_error_rewrite(ctx, true, &backend, &backend, backend_port, &client,
					  client_port);
		if (ret < 0)
			return ret;
		return nodeport_deliver_local6(ctx, dst);
	}
	nk.saddr = client;
	nk.daddr = backend;
	nk.sport = client_port;
	nk.dport = backend_port;
	nk.dir = NAT_DIR_EGRESS;
	n = bpf_map_lookup_elem(&cilium_snat_v6_external, &nk);
	if (!n)
		return TC_ACT_OK;
	node_addr = n->to_addr;
	node_port = n->to_port;
	/* To the remote backend, from the node, as the SNATed connection: quote {B:bp -> N:np}. */
	ret = icmp6_error_rewrite_both(ctx, &node_addr, &backend, &backend, backend_port,
				       &node_addr, node_port);
	if (ret < 0)
		return ret;
	return nodeport_icmp_forward6(ctx, p, &node_addr, &backend);
}

/*
 * An ICMPv6 error a local backend sends to a NodePort client about the connection (quote
 * {C:cp -> B:bp}), at the device's egress: from the frontend, quote {C:cp -> F:fp}. 0 or -DROP_x.
 */
static __always_inline int nodeport_icmp_egress6(struct __sk_buff *ctx, struct pkt6 *p,
						 __u32 now)
{
	const struct endpoint_info *src;
	struct ct_entry *e;

	if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
		return 0;
	src = endpoint_by_ipv6(&p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	/* The quote {C:cp -> B:bp} is the connection's own direction. */
	e = ct_find6(lb6_ct_map(p->inner.proto), &p->inner, false, CT_KEY_NODEPORT, now);
	if (!e || !e->lb_id)
		return 0;
	/* As the pod's per-packet LB undoes a backend's error: from the frontend, quoting it. */
	return lb6_reverse_icmp(ctx, p, e->lb_id);
}
