/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * XDP acceleration of NodePort (bpf-lb-acceleration=native): the remote-backend path of
 * lib/nodeport.h, run in the device's driver before an skb exists. A new connection to a
 * NodePort / externalIP / LoadBalancer whose backend is on another node reached through the same
 * device is DNATed and SNATed (the same cilium_snat_v4_external entries as tc) and sent back out
 * with XDP_TX; the backend's replies to a node port are translated back the same way.
 * Everything else, and whatever this path cannot finish here (a local backend, no backend, an
 * unresolved neighbour, another way out, IP options, DSR), passes untouched to the tc program,
 * which handles it with the same maps: XDP is an accelerator, never a second policy.
 * IPv6 (nodeport_xdp6): the same on the IPv6 maps (cilium_snat_v6_external, cilium_lb6_*); its
 * packets with extension headers pass to tc.
 */
#pragma once

#include "compiler.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/config.h"
#include "lib/csum.h"
#include "lib/endpoint.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/metrics.h"
#include "lib/nodeport.h"
#include "lib/nodeport6.h"
#include "lib/nodeport_fwd.h"
#include "lib/nodeport_snat.h"
#include "lib/pkt.h"

/*
 * Rewrites both ends of the IPv4 TCP/UDP packet at `ip` (no options) to (saddr, sport) ->
 * (daddr, dport), with incremental checksum updates (a UDP checksum of 0 stays 0).
 */
static __always_inline bool xdp_nat4(struct iphdr *ip, void *data_end, __be32 saddr, __be16 sport,
				     __be32 daddr, __be16 dport)
{
	__u8 *l4 = (__u8 *)(ip + 1);
	__u16 *l4sum;

	if (ip->protocol == IPPROTO_TCP_) {
		if ((void *)(l4 + 20) > data_end)
			return false;
		l4sum = (__u16 *)(l4 + 16);
	} else {
		if ((void *)(l4 + 8) > data_end)
			return false;
		l4sum = (__u16 *)(l4 + 6);
	}
	if (ip->protocol == IPPROTO_TCP_ || *l4sum != 0) {
		csum_replace4(l4sum, ip->saddr, saddr);
		csum_replace4(l4sum, ip->daddr, daddr);
		csum_replace2(l4sum, *(__u16 *)l4, sport);
		csum_replace2(l4sum, *(__u16 *)(l4 + 2), dport);
		if (ip->protocol == IPPROTO_UDP_ && *l4sum == 0)
			*l4sum = 0xffff; /* 0 means "no checksum" in UDP */
	}
	csum_replace4(&ip->check, ip->saddr, saddr);
	csum_replace4(&ip->check, ip->daddr, daddr);
	ip->saddr = saddr;
	ip->daddr = daddr;
	*(__be16 *)l4 = sport;
	*(__be16 *)(l4 + 2) = dport;
	return true;
}

/*
 * The way out for (saddr -> daddr) as if forwarded from the ingress device: true when it is that
 * same device with a resolved neighbour (XDP_TX can send it), MACs in *fib.
 */
static __always_inline bool xdp_fib_same_device(struct xdp_md *ctx, const struct iphdr *ip,
						__be32 saddr, __be32 daddr,
						struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET_;
	fib->l4_protocol = ip->protocol;
	fib->tot_len = bpf_ntohs(ip->tot_len);
	fib->ifindex = ctx->ingress_ifindex;
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;
	if (bpf_fib_lookup(ctx, fib, sizeof(*fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return false;
	return fib->ifindex == ctx->ingress_ifindex;
}

/*
 * Sends the translated packet (TTL or hop limit already lowered) back out of the device it came
 * in on, to the FIB's MACs. Counted as forwarded in the SERVICE direction (the tc path counts
 * INGRESS), so what XDP finished is visible on its own in cilium_forward_count_total and
 * `cilium-dbg metrics`.
 */
static __always_inline int xdp_tx(struct xdp_md *ctx, struct ethhdr *eth,
				  const struct bpf_fib_lookup *fib)
{
	eth_copy_mac16(eth->h_dest, fib->dmac);
	eth_copy_mac16(eth->h_source, fib->smac);
	metrics_account(ctx->data_end - ctx->data, METRIC_SERVICE, REASON_FORWARDED, 0, 0);
	return XDP_TX;
}

static __always_inline int xdp_send_back(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
					 const struct bpf_fib_lookup *fib)
{
	if (ip->ttl <= 1)
		return XDP_PASS; /* tc reports the drop */
	ipv4_dec_ttl(ip);
	return xdp_tx(ctx, eth, fib);
}

static __noinline int nodeport_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct bpf_fib_lookup fib;
	struct pkt4 p = {};
	struct nat4_entry *e;
	struct lb4_service *svc;
	struct lb4_backend *be;
	const struct node_dev4 *dev;
	__u8 *l4;
	__u32 now = mono_now_sec();

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->ihl != 5 || ipv4_is_fragment(ip) ||
	    (ip->protocol != IPPROTO_TCP_ && ip->protocol != IPPROTO_UDP_))
		return XDP_PASS;
	l4 = (__u8 *)(ip + 1);
	p.t.proto = ip->protocol;
	/* Each bound checked right before its reads: the verifier tracks one range per pointer. */
	if (p.t.proto == IPPROTO_TCP_) {
		if ((void *)(l4 + 20) > data_end)
			return XDP_PASS;
		p.tcp_flags = l4[13];
	}
	if ((void *)(l4 + 8) > data_end)
		return XDP_PASS;
	p.t.saddr = ip->saddr;
	p.t.daddr = ip->daddr;
	p.t.sport = *(__be16 *)l4;
	p.t.dport = *(__be16 *)(l4 + 2);

	/* A remote backend's reply to a node port. */
	e = nodeport_reply_nat4(&p);
	if (e && (e->flags & NAT_F_MASQ))
		return XDP_PASS; /* a masqueraded pod connection: tc's (lib/masquerade.h) */
	if (e) {
		__be32 to_addr = e->to_addr;
		__be16 to_port = e->to_port;
		__u32 svc_id = e->rev_nat_index;
		struct lb4_reverse_nat *rn;

		rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &svc_id);
		if (!rn || !xdp_fib_same_device(ctx, ip, rn->address, to_addr, &fib))
			return XDP_PASS;
		nodeport_service_reply_seen(to_addr, to_port, rn->address, rn->port, p.t.proto,
					    p.tcp_flags, now);
		if (!xdp_nat4(ip, data_end, rn->address, rn->port, to_addr, to_port))
			return XDP_PASS;
		return xdp_send_back(ctx, eth, ip, &fib);
	}

	svc = lb4_lookup_external(p.t.daddr, p.t.dport, p.t.proto);
	if (!svc || !(svc->flags & SVC_F_FROM_OUTSIDE) || svc->count == 0)
		return XDP_PASS;
	/* DSR connections are tc's: the option needs an skb (lib/nodeport_dsr.h). */
	if (nodeport_uses_dsr(p.t.proto))
		return XDP_PASS;
	{
		__u32 svc_id = svc->rev_nat_index;
		__be16 node_port = 0;
		__be32 node_addr;
		__be32 backend;
		__be16 bport;
		__u32 oif;

		be = lb4_connection_backend(lb4_ct_map(p.t.proto), svc, &p, now);
		if (!be)
			return XDP_PASS;
		backend = be->address;
		bport = be->port;
		if (endpoint_by_ipv4(backend))
			return XDP_PASS; /* local backends: tc delivers them through bpf_lxc's
					    policy */
		oif = ctx->ingress_ifindex;
		dev = bpf_map_lookup_elem(&cilium_node_dev4, &oif);
		if (!dev || !dev->address)
			return XDP_PASS;
		node_addr = dev->address;
		if (!xdp_fib_same_device(ctx, ip, node_addr, backend, &fib))
			return XDP_PASS;
		p.t.daddr = backend;
		p.t.dport = bport;
		if (nodeport_snat_entry(&p, node_addr, svc_id, now, &node_port) < 0)
			return XDP_PASS;
		if (!xdp_nat4(ip, data_end, node_addr, node_port, backend, bport))
			return XDP_PASS;
		return xdp_send_back(ctx, eth, ip, &fib);
	}
}

/*
 * xdp_nat4 for IPv6 (no extension headers): both ends to (saddr, sport) -> (daddr, dport), the
 * TCP/UDP checksum updated word by word (IPv6 has no header checksum; a UDP checksum is
 * mandatory over IPv6, so 0 never stands for "none").
 */
static __always_inline bool xdp_nat6(struct ipv6hdr *ip6, void *data_end,
				     const union v4v6_addr *saddr, __be16 sport,
				     const union v4v6_addr *daddr, __be16 dport)
{
	__u8 *l4 = (__u8 *)(ip6 + 1);
	union v4v6_addr *old_s = (union v4v6_addr *)&ip6->saddr;
	union v4v6_addr *old_d = (union v4v6_addr *)&ip6->daddr;
	__u16 *l4sum;
	int i;

	if (ip6->nexthdr == IPPROTO_TCP_) {
		if ((void *)(l4 + 20) > data_end)
			return false;
		l4sum = (__u16 *)(l4 + 16);
	} else {
		if ((void *)(l4 + 8) > data_end)
			return false;
		l4sum = (__u16 *)(l4 + 6);
	}
#pragma unroll
	for (i = 0; i < 4; i++) {
		csum_replace4(l4sum, old_s->ip6_words[i], saddr->ip6_words[i]);
		csum_replace4(l4sum, old_d->ip6_words[i], daddr->ip6_words[i]);
	}
	csum_replace2(l4sum, *(__u16 *)l4, sport);
	csum_replace2(l4sum, *(__u16 *)(l4 + 2), dport);
	if (ip6->nexthdr == IPPROTO_UDP_ && *l4sum == 0)
		*l4sum = 0xffff;
	*old_s = *saddr;
	*old_d = *daddr;
	*(__be16 *)l4 = sport;
	*(__be16 *)(l4 + 2) = dport;
	return true;
}

/* xdp_fib_same_device for IPv6. */
static __always_inline bool xdp_fib_same_device6(struct xdp_md *ctx, const struct ipv6hdr *ip6,
						 const union v4v6_addr *saddr,
						 const union v4v6_addr *daddr,
						 struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	fib->l4_protocol = ip6->nexthdr;
	fib->tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	fib->ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(fib->ipv6_src, saddr, sizeof(fib->ipv6_src));
	__builtin_memcpy(fib->ipv6_dst, daddr, sizeof(fib->ipv6_dst));
	if (bpf_fib_lookup(ctx, fib, sizeof(*fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return false;
	return fib->ifindex == ctx->ingress_ifindex;
}

/* xdp_send_back for IPv6: the hop limit instead of the TTL. */
static __always_inline int xdp_send_back6(struct xdp_md *ctx, struct ethhdr *eth,
					  struct ipv6hdr *ip6, const struct bpf_fib_lookup *fib)
{
	if (!ipv6_dec_hop_limit(ip6))
		return XDP_PASS; /* tc reports the drop */
	return xdp_tx(ctx, eth, fib);
}

/*
 * nodeport_xdp for IPv6: a remote backend's reply to a node port goes back to the client, a new
 * connection to an outside frontend with a remote backend behind the same device is DNATed and
 * SNATed; XDP_PASS for everything else. Its struct pkt6 comes from the per-CPU scratch map.
 */
static __noinline int nodeport_xdp6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct pkt6 *p = pkt6_scratch();
	struct bpf_fib_lookup fib;
	const struct node_dev6 *dev;
	struct nat6_entry *e;
	struct lb4_service *svc;
	struct lb6_backend *be;
	__u32 now = mono_now_sec();
	__u8 *l4;

	if (!p || (void *)(ip6 + 1) > data_end)
		return XDP_PASS;
	if (ip6->nexthdr != IPPROTO_TCP_ && ip6->nexthdr != IPPROTO_UDP_)
		return XDP_PASS; /* extension headers, ICMPv6: tc's */
	__builtin_memset(p, 0, sizeof(*p));
	l4 = (__u8 *)(ip6 + 1);
	p->t.proto = ip6->nexthdr;
	if (p->t.proto == IPPROTO_TCP_) {
		if ((void *)(l4 + 20) > data_end)
			return XDP_PASS;
		p->tcp_flags = l4[13];
	}
	if ((void *)(l4 + 8) > data_end)
		return XDP_PASS;
	__builtin_memcpy(&p->t.saddr, &ip6->saddr, sizeof(p->t.saddr));
	__builtin_memcpy(&p->t.daddr, &ip6->daddr, sizeof(p->t.daddr));
	p->t.sport = *(__be16 *)l4;
	p->t.dport = *(__be16 *)(l4 + 2);

	/* A remote backend's reply to a node port. */
	e = nodeport_reply_nat6(p);
	if (e && (e->flags & NAT_F_MASQ))
		return XDP_PASS; /* a masqueraded pod connection: tc's (lib/masquerade.h) */
	if (e) {
		union v4v6_addr to_addr = e->to_addr;
		__be16 to_port = e->to_port;
		__u32 svc_id = e->rev_nat_index;
		struct lb6_reverse_nat *rn;

		rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &svc_id);
		if (!rn || !xdp_fib_same_device6(ctx, ip6, &rn->address, &to_addr, &fib))
			return XDP_PASS;
		nodeport_service_reply_seen6(&to_addr, to_port, &rn->address, rn->port, p->t.proto,
					     p->tcp_flags, now);
		if (!xdp_nat6(ip6, data_end, &rn->address, rn->port, &to_addr, to_port))
			return XDP_PASS;
		return xdp_send_back6(ctx, eth, ip6, &fib);
	}

	svc = lb6_lookup_external(&p->t.daddr, p->t.dport, p->t.proto);
	if (!svc || !(svc->flags & SVC_F_FROM_OUTSIDE) || svc->count == 0)
		return XDP_PASS;
	{
		__u32 svc_id = svc->rev_nat_index;
		union v4v6_addr node_addr, backend;
		__be16 node_port = 0;
		__be16 bport;
		__u32 oif;

		be = lb6_connection_backend(svc, p, now);
		if (!be)
			return XDP_PASS;
		backend = be->address;
		bport = be->port;
		if (endpoint_by_ipv6(&backend))
			return XDP_PASS; /* local backends: tc delivers them through bpf_lxc's
					    policy */
		oif = ctx->ingress_ifindex;
		dev = bpf_map_lookup_elem(&cilium_node_dev6, &oif);
		if (!dev || ipv6_addr_is_zero(&dev->address))
			return XDP_PASS;
		node_addr = dev->address;
		if (!xdp_fib_same_device6(ctx, ip6, &node_addr, &backend, &fib))
			return XDP_PASS;
		p->t.daddr = backend;
		p->t.dport = bport;
		if (nodeport_snat_entry6(p, &node_addr, svc_id, now, &node_port) < 0)
			return XDP_PASS;
		if (!xdp_nat6(ip6, data_end, &node_addr, node_port, &backend, bport))
			return XDP_PASS;
		return xdp_send_back6(ctx, eth, ip6, &fib);
	}
}
