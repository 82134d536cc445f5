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
 * Sends the translated packet back out of the device it came in on. Counted as forwarded in the
 * SERVICE direction (the tc path counts INGRESS), so what XDP finished is visible on its own in
 * cilium_forward_count_total and `cilium-dbg metrics`.
 */
static __always_inline int xdp_send_back(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
					 const struct bpf_fib_lookup *fib)
{
	__u8 ttl = ip->ttl;

	if (ttl <= 1)
		return XDP_PASS; /* tc reports the drop */
	ipv4_dec_ttl(ip);
	eth_copy_mac16(eth->h_dest, fib->dmac);
	eth_copy_mac16(eth->h_source, fib->smac);
	metrics_account(ctx->data_end - ctx->data, METRIC_SERVICE, REASON_FORWARDED, 0, 0);
	return XDP_TX;
}

static __always_inline int nodeport_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct bpf_fib_lookup fib;
	struct pkt4 p = {};
	struct nat4_key key = {};
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
	if (bpf_ntohs(p.t.dport) >= NAT_PORT_MIN) {
		struct lb4_reverse_nat *rn;
		__u32 svc_id;

		key.saddr = p.t.saddr;
		key.daddr = p.t.daddr;
		key.sport = p.t.sport;
		key.dport = p.t.dport;
		key.proto = p.t.proto;
		key.dir = NAT_DIR_INGRESS;
		e = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
		if (e && (e->flags & NAT_F_MASQ))
			return XDP_PASS; /* a masqueraded pod connection: tc's (lib/masquerade.h) */
		if (e) {
			__be32 to_addr = e->to_addr;
			__be16 to_port = e->to_port;

			svc_id = e->rev_nat_index;
			rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &svc_id);
			if (!rn || !xdp_fib_same_device(ctx, ip, rn->address, to_addr, &fib))
				return XDP_PASS;
			nodeport_service_reply_seen(to_addr, to_port, rn->address, rn->port,
						    p.t.proto, p.tcp_flags, now);
			if (!xdp_nat4(ip, data_end, rn->address, rn->port, to_addr, to_port))
				return XDP_PASS;
			return xdp_send_back(ctx, eth, ip, &fib);
		}
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
