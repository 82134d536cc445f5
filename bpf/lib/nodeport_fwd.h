/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How NodePort sends a translated packet on from a native device (bpf_host): the TTL, the FIB
 * route as if the node forwarded it, then either the device towards a remote backend or client
 * (MACs from the FIB, or bpf_redirect_neigh while the neighbour is unresolved), or the egress of
 * a local backend's veth, where bpf_lxc enforces the pod's ingress policy.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/ipv6.h"
#include "lib/pkt.h"

#define AF_INET_ 2

/* Decrements the TTL of the (possibly rewritten) packet; false when it must not be forwarded. */
static __always_inline bool nodeport_dec_ttl(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return false;
	return ipv4_dec_ttl(ip);
}

/*
 * The route of the translated packet, looked up as if it were forwarded from the device it came
 * in on: 0 with the neighbour's MAC in *fib, 1 when the neighbour is not resolved yet (fib->ifindex
 * is still the way out), or -DROP_NO_FIB.
 */
static __always_inline int nodeport_fib_lookup(struct __sk_buff *ctx, const struct pkt4 *p,
					       __be32 saddr, struct bpf_fib_lookup *fib)
{
	long rc;

	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET_;
	fib->l4_protocol = p->t.proto;
	fib->sport = p->t.sport;
	fib->dport = p->t.dport;
	/*
	 * tot_len 0: the kernel checks the skb against the MTU itself, which understands GRO'd
	 * packets; the IP header's length of one would exceed the MTU and fail the lookup.
	 */
	fib->tot_len = 0;
	fib->ifindex = ctx_load_u32(ctx, ifindex);
	fib->ipv4_src = saddr;
	fib->ipv4_dst = p->t.daddr;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 1;
	return -DROP_NO_FIB;
}

/* Decrements the hop limit of the (possibly rewritten) IPv6 packet; false when it must not be
 * forwarded. */
static __always_inline bool nodeport_dec_hop_limit(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;

	if ((void *)(ip6 + 1) > data_end)
		return false;
	return ipv6_dec_hop_limit(ip6);
}

/*
 * Delivers the (translated) packet to local pod `dst`: TTL (hop limit when `v6`), MACs, then the
 * egress of the pod's veth, not its peer, so that bpf_lxc enforces the pod's ingress policy (or
 * lets a related ICMP error of the pod's connection in).
 */
static __always_inline int __nodeport_deliver_local(struct __sk_buff *ctx,
						    const struct endpoint_info *dst, bool v6)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (!(v6 ? nodeport_dec_hop_limit(ctx) : nodeport_dec_ttl(ctx)))
		return -DROP_TTL_EXCEEDED;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -DROP_INVALID;
	eth_rewrite(eth, dst->mac, dst->node_mac);
	return bpf_redirect(dst->ifindex, 0);
}

static __always_inline int nodeport_deliver_local(struct __sk_buff *ctx,
						  const struct endpoint_info *dst)
{
	return __nodeport_deliver_local(ctx, dst, false);
}

static __always_inline int nodeport_deliver_local6(struct __sk_buff *ctx,
						   const struct endpoint_info *dst)
{
	return __nodeport_deliver_local(ctx, dst, true);
}

/*
 * Sends the packet out as nodeport_fib_lookup() (nodeport_fib_lookup6() when `v6`) said
 * (`resolved` is its result), after the TTL (hop limit).
 */
static __always_inline int __nodeport_redirect(struct __sk_buff *ctx, struct bpf_fib_lookup *fib,
					       int resolved, bool v6)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (!(v6 ? nodeport_dec_hop_limit(ctx) : nodeport_dec_ttl(ctx)))
		return -DROP_TTL_EXCEEDED;
	if (resolved != 0)
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -DROP_INVALID;
	/* The FIB's MACs are only 2-byte aligned on the stack. */
	eth_copy_mac16(eth->h_dest, fib->dmac);
	eth_copy_mac16(eth->h_source, fib->smac);
	return bpf_redirect(fib->ifindex, 0);
}

static __always_inline int nodeport_redirect(struct __sk_buff *ctx, struct bpf_fib_lookup *fib,
					     int resolved)
{
	return __nodeport_redirect(ctx, fib, resolved, false);
}

static __always_inline int nodeport_redirect6(struct __sk_buff *ctx, struct bpf_fib_lookup *fib,
					      int resolved)
{
	return __nodeport_redirect(ctx, fib, resolved, true);
}
