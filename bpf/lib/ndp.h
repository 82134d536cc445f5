/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Neighbour discovery responder, ARP responder's (lib/arp.h) IPv6 twin: a pod's neighbour
 * solicitations are answered in BPF with the host-side veth MAC, whatever address they ask for
 * (the node routes everything the pod sends), so the pod's gateway needs no address on the node.
 */
#pragma once

#include "compiler.h"
#include "abi/endpoint.h"
#include "lib/csum.h"
#include "lib/eth.h"
#include "lib/ipv6.h"
#include "lib/pkt6.h"

#define ND_OPT_TARGET_LL_ADDR 2
/* Router | Solicited | Override, the first word of an advertisement after its checksum. */
#define ND_NA_FLAGS bpf_htonl(0xe0000000)

/* A neighbour advertisement with a target link-layer address option. */
struct nd_advert {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be32 flags;
	union v4v6_addr target;
	__u8 opt_type;
	__u8 opt_len; /* units of 8 bytes */
	__u8 opt_mac[6];
};

/* The ICMPv6 checksum's pseudo-header, followed by the message it covers. */
struct nd_advert_csum {
	union v4v6_addr saddr;
	union v4v6_addr daddr;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
	struct nd_advert msg;
};

enum nd_action {
	ND_PASS,    /* not for the responder: hand to the stack */
	ND_REPLIED, /* rewritten into the advertisement; send it back out of the device */
};

/*
 * Turns a neighbour solicitation from the pod into the advertisement, in place (the packet is
 * resized to the advertisement's length). Duplicate address detection (unspecified source) and
 * solicitations for the pod's own address get no answer. Invalidates packet pointers.
 */
static __always_inline enum nd_action ndp_respond(struct __sk_buff *ctx,
						  const struct endpoint_info *ep)
{
	const __u32 want = ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct nd_advert);
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u8 *icmp = (__u8 *)(ip6 + 1);
	struct nd_advert_csum a = {};
	__u8 pod_mac[8] = {};

	/* Type, code, checksum, reserved and the target: 24 bytes. */
	if ((void *)(icmp + 24) > data_end)
		return ND_PASS;
	if (ip6->nexthdr != IPPROTO_ICMPV6_ || ip6->hop_limit != 255 ||
	    icmp[0] != ICMPV6_NEIGH_SOLICIT || icmp[1] != 0)
		return ND_PASS;
	ipv6_addr_copy(&a.daddr, &ip6->saddr);
	ipv6_addr_copy(&a.saddr, icmp + 8);
	if (ipv6_addr_is_zero(&a.daddr) || ipv6_addr_equal(&a.saddr, &a.daddr) ||
	    ipv6_addr_equal(&a.saddr, (const union v4v6_addr *)ep->ipv6))
		return ND_PASS;
	eth_copy_mac(pod_mac, eth->h_source);

	a.len = bpf_htonl(sizeof(struct nd_advert));
	a.nexthdr = IPPROTO_ICMPV6_;
	a.msg.type = ICMPV6_NEIGH_ADVERT;
	a.msg.flags = ND_NA_FLAGS;
	a.msg.target = a.saddr;
	a.msg.opt_type = ND_OPT_TARGET_LL_ADDR;
	a.msg.opt_len = 1;
	__builtin_memcpy(a.msg.opt_mac, ep->node_mac, ETH_ALEN);
	a.msg.csum = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&a, sizeof(a), 0));

	if (ctx_load_u32(ctx, len) != want && bpf_skb_change_tail(ctx, want, 0) < 0)
		return ND_PASS;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) + sizeof(struct nd_advert) > data_end)
		return ND_PASS;
	eth_rewrite(eth, pod_mac, ep->node_mac);
	ip6->payload_len = bpf_htons(sizeof(struct nd_advert));
	ip6->hop_limit = 255;
	__builtin_memcpy(&ip6->saddr, &a.saddr, 16);
	__builtin_memcpy(&ip6->daddr, &a.daddr, 16);
	__builtin_memcpy(ip6 + 1, &a.msg, sizeof(a.msg));
	return ND_REPLIED;
}
