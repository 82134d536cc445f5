/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Refusals of connections to a frontend without active backends, as Kubernetes expects them
 * instead of a silent drop: a TCP segment becomes the RST the frontend would answer with, a UDP
 * datagram an ICMP port unreachable from the frontend. Both are built in place from the refused
 * packet and sent back to the sender: into the pod from bpf_lxc (lb4_reject; lb6_reject in
 * lib/lb6_packet.h shares the RST), back out of the device from bpf_host (nodeport_reject,
 * lib/nodeport.h).
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "lib/csum.h"
#include "lib/eth.h"
#include "lib/icmp4.h"
#include "lib/ipv4.h"
#include "lib/pkt.h"

/* What a RST answering a TCP segment carries (RFC 9293 3.10.7.1), network byte order. */
struct tcp_rst {
	__be32 seq;
	__be32 ack_seq;
	__u8 flags;
};

/*
 * The RST that answers segment `th` of `tcp_len` bytes (header and payload): it acknowledges
 * what the segment occupied when it had no ACK, else takes the segment's ACK as its sequence.
 * A RST is never answered (-DROP_NO_SERVICE).
 */
static __always_inline int tcp_rst_for(const struct tcphdr *th, __u32 tcp_len, struct tcp_rst *r)
{
	__u8 flags = ((const __u8 *)th)[13];
	__u32 seg_len;

	if (flags & TCP_FLAG_RST)
		return -DROP_NO_SERVICE;
	if (tcp_len < th->doff * 4)
		return -DROP_INVALID;
	seg_len = tcp_len - th->doff * 4;
	if (flags & TCP_FLAG_SYN)
		seg_len++;
	if (flags & TCP_FLAG_FIN)
		seg_len++;
	if (flags & TCP_FLAG_ACK) {
		r->seq = th->ack_seq;
		r->ack_seq = 0;
		r->flags = TCP_FLAG_RST;
	} else {
		r->seq = 0;
		r->ack_seq = bpf_htonl(bpf_ntohl(th->seq) + seg_len);
		r->flags = TCP_FLAG_RST | TCP_FLAG_ACK;
	}
	return 0;
}

/* Writes RST `r` over `th` (20 bytes, no options, checksum left 0 for the caller). */
static __always_inline void tcp_rst_write(struct tcphdr *th, __be16 sport, __be16 dport,
					  const struct tcp_rst *r)
{
	th->source = sport;
	th->dest = dport;
	th->seq = r->seq;
	th->ack_seq = r->ack_seq;
	((__u8 *)th)[12] = 5 << 4; /* data offset: no options */
	((__u8 *)th)[13] = r->flags;
	th->window = 0;
	th->check = 0;
	th->urg_ptr = 0;
}

/*
 * Turns a TCP segment to a frontend without backends into the RST the frontend would answer
 * with (tcp_rst_for), addressed back to the sender with the Ethernet addresses dmac/smac.
 * Returns 0 or -DROP_x; the caller redirects the packet back towards the sender.
 */
static __always_inline int lb4_reject_tcp(struct __sk_buff *ctx, const struct pkt4 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	struct iphdr *ip;
	struct tcphdr *th;
	struct ethhdr *eth;
	struct tcp_rst r;
	void *data, *data_end;
	struct {
		__be32 saddr, daddr;
		__u8 zero, proto;
		__be16 len;
	} ph;
	__s64 sum;
	int ret;

	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	ip = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(th + 1) > data_end || ipv4_hdrlen(ip) != sizeof(*ip))
		return -DROP_NO_SERVICE;
	if (bpf_ntohs(ip->tot_len) < sizeof(*ip))
		return -DROP_INVALID;
	ret = tcp_rst_for(th, bpf_ntohs(ip->tot_len) - sizeof(*ip), &r);
	if (ret < 0)
		return ret;

	if (bpf_skb_change_tail(ctx, ETH_HLEN + sizeof(*ip) + sizeof(*th), 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(th + 1) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	ipv4_fill_hdr(ip, p->t.daddr, p->t.saddr, IPPROTO_TCP_, sizeof(*ip) + sizeof(*th));
	tcp_rst_write(th, p->t.dport, p->t.sport, &r);

	ph.saddr = p->t.daddr;
	ph.daddr = p->t.saddr;
	ph.zero = 0;
	ph.proto = IPPROTO_TCP_;
	ph.len = bpf_htons(sizeof(*th));
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)th, sizeof(*th), (__u32)sum);
	th->check = csum_fold(sum);
	return 0;
}

static __always_inline int lb4_reject_udp(struct __sk_buff *ctx, const struct pkt4 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	const __u32 grow = sizeof(struct iphdr) + 8;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u8 *icmp;
	void *data, *data_end;
	__s64 sum;

	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end || ipv4_hdrlen(ip) != sizeof(*ip))
		return -DROP_NO_SERVICE;
	if (bpf_skb_change_tail(ctx, ETH_HLEN + ICMP4_QUOTE_LEN, 0) < 0)
		return -DROP_WRITE_ERROR;
	/* Room for the new IPv4 and ICMP headers between Ethernet and the quoted datagram. */
	if (bpf_skb_adjust_room(ctx, grow, BPF_ADJ_ROOM_MAC, 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip = data + ETH_HLEN;
	icmp = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(icmp + 8 + ICMP4_QUOTE_LEN) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	ipv4_fill_hdr(ip, p->t.daddr, p->t.saddr, IPPROTO_ICMP_, sizeof(*ip) + 8 + ICMP4_QUOTE_LEN);
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_PORT_UNREACH;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = 0;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + ICMP4_QUOTE_LEN, 0);
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	return 0;
}

/* The refusal of a TCP or UDP packet to a frontend without backends; 0 or -DROP_x. */
static __always_inline int lb4_reject_answer(struct __sk_buff *ctx, const struct pkt4 *p,
					     const __u8 *dmac, const __u8 *smac)
{
	if (p->t.proto == IPPROTO_TCP_)
		return lb4_reject_tcp(ctx, p, dmac, smac);
	return lb4_reject_udp(ctx, p, dmac, smac);
}

/*
 * A connection to a frontend without active backends: answers the pod as Kubernetes expects
 * (TCP RST, ICMP port unreachable) instead of dropping silently. Returns the tc verdict
 * (the answer redirected into the pod), or -DROP_x when no answer is possible.
 */
static __always_inline int lb4_reject(struct __sk_buff *ctx, const struct pkt4 *p,
				      const struct endpoint_info *ep)
{
	int ret = lb4_reject_answer(ctx, p, ep->mac, ep->node_mac);

	if (ret < 0)
		return ret;
	/* Into the pod's namespace, as local delivery does. */
	return bpf_redirect_peer(ep->ifindex, 0);
}
