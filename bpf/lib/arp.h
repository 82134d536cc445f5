/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ARP responder: a pod's ARP requests are answered in BPF with the host-side veth MAC, whatever
 * address they ask for (the node routes everything the pod sends), so pods need no proxy ARP.
 */
#pragma once

#include "compiler.h"
#include "abi/endpoint.h"
#include "lib/eth.h"

#define ARPHRD_ETHER_  1
#define ARPOP_REQUEST_ 1
#define ARPOP_REPLY_   2

struct arp_eth_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

enum arp_action {
	ARP_PASS,    /* not for the responder: hand to the stack */
	ARP_REPLIED, /* rewritten into the reply; send it back out of the device */
};

/*
 * Turns an ARP request from the pod into the reply, in place. Gratuitous ARP and probes for the
 * pod's own address get no answer (they pass), so duplicate address detection still works.
 */
static __always_inline enum arp_action arp_respond(struct __sk_buff *ctx,
						   const struct endpoint_info *ep)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct arp_eth_ipv4 *arp = data + ETH_HLEN;
	__be32 spa, tpa;

	if ((void *)(arp + 1) > data_end)
		return ARP_PASS;
	if (arp->hrd != bpf_htons(ARPHRD_ETHER_) || arp->pro != bpf_htons(ETH_P_IP) ||
	    arp->hln != ETH_ALEN || arp->pln != 4 || arp->op != bpf_htons(ARPOP_REQUEST_))
		return ARP_PASS;
	spa = arp->spa;
	tpa = arp->tpa;
	if (tpa == spa || tpa == ep->ipv4)
		return ARP_PASS;

	arp->op = bpf_htons(ARPOP_REPLY_);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->sha, ep->node_mac, ETH_ALEN);
	arp->tpa = spa;
	arp->spa = tpa;
	eth_rewrite(eth, arp->tha, ep->node_mac);
	return ARP_REPLIED;
}
