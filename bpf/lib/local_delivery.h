/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Delivery to a pod on this node straight from the sender's program: L2 rewrite, TTL, and
 * bpf_redirect_peer into the destination pod's namespace (skipping the node's stack and the
 * destination veth's own hooks, which is why the destination's ingress policy runs before).
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/ipv6.h"

/* Returns TC_ACT_REDIRECT, or -DROP_x when the packet cannot be delivered. */
static __always_inline int local_delivery4(struct __sk_buff *ctx, const struct endpoint_info *dst)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	if (!ipv4_dec_ttl(ip))
		return -DROP_TTL_EXCEEDED;
	eth_rewrite(eth, dst->mac, dst->node_mac);
	/* redirect_peer needs tc ingress, which is where the sender's program runs. */
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* local_delivery4 for IPv6: the hop limit instead of the TTL (no header checksum). */
static __always_inline int local_delivery6(struct __sk_buff *ctx, const struct endpoint_info *dst)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_HLEN;

	if ((void *)(ip6 + 1) > data_end)
		return -DROP_INVALID;
	if (!ipv6_dec_hop_limit(ip6))
		return -DROP_TTL_EXCEEDED;
	eth_rewrite(eth, dst->mac, dst->node_mac);
	return bpf_redirect_peer(dst->ifindex, 0);
}
