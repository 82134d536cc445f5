/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service load balancing for IPv6 in bpf_lxc: lib/lb_packet.h's DNAT of a pod's
 * packet to a frontend, the reverse translation of the replies, and the refusal when the
 * frontend has no active backend, on the IPv6 maps (cilium_lb6_*, cilium_ct6_*). Backend
 * selection is lib/lb.h's, shared with IPv4; the service entry's aging is lb_packet.h's.
 *
 *   egress:  service entry {client, VIP, cport, vport, CT_KEY_SERVICE} in the ct6 map of the
 *            protocol holds the connection's backend id; the packet is DNATed to it, and the
 *            caller stores the service id in the egress entry (lb6_ct_mark) after policy.
 *   replies: enforce6 hands the entry's service id over (trace_info.rev_nat); lb6_reverse
 *            SNATs the backend back to the frontend.
 *   reject:  a TCP segment to a frontend without active backends becomes the frontend's RST
 *            (lib/lb_reject.h's, as for IPv4), a UDP datagram an ICMPv6 destination
 *            unreachable (port unreachable) from the frontend; both go back into the pod (its
 *            socket sees ECONNREFUSED).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "abi/lb.h"
#include "lib/conntrack6.h"
#include "lib/csum.h"
#include "lib/eth.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/lb_reject.h"
#include "lib/nat6_xlate.h"
#include "lib/pkt6.h"

#define ICMPV6_PORT_UNREACH 4
/* The quoted datagram of the refusal: its IPv6 header and the first 8 bytes of L4. */
#define ICMP6_QUOTE_LEN 48

static __always_inline void *lb6_ct_map(__u8 proto)
{
	return proto == IPPROTO_TCP_ ? (void *)&cilium_ct6_global : (void *)&cilium_ct_any6_global;
}

/* lb4_connection_backend for IPv6: the connection's backend, or a new one; NULL if none. */
static __always_inline struct lb6_backend *lb6_connection_backend(struct lb4_service *svc,
								  const struct pkt6 *p, __u32 now)
{
	void *map = lb6_ct_map(p->t.proto);
	struct ct_key6 key = {};
	struct ct_entry *e;
	struct lb6_backend *be;
	__u32 id = 0;

	ct_key6_fill(&key, &p->t, false, CT_KEY_SERVICE);
	e = bpf_map_lookup_elem(map, &key);
	if (e && ct_alive(e, now)) {
		be = lb6_lookup_backend(e->lb_id);
		if (be) {
			lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
			return be;
		}
	}
	be = lb6_select_backend(svc, &p->t.daddr, p->t.dport, p->t.proto, &p->t.saddr, 0, now,
				lb6_tuple_hash(&p->t.saddr, p->t.sport, p->t.proto), &id);
	if (!be)
		return NULL;
	{
		struct ct_entry n = {
		    .lb_id = id,
		};

		lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);
		if (bpf_map_update_elem(map, &key, &n, BPF_ANY_) < 0)
			return NULL;
	}
	return be;
}

/*
 * lb4_egress for IPv6: 0 with *rev_nat the service id when translated (0: not a frontend),
 * -DROP_NO_SERVICE when the frontend has no backend, or another -DROP_x.
 */
static __always_inline int lb6_egress(struct __sk_buff *ctx, struct pkt6 *p, __u32 now,
				      __u32 *rev_nat)
{
	struct lb4_service *svc;
	struct lb6_backend *be;
	int ret;

	*rev_nat = 0;
	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return 0;
	svc = lb6_lookup_service(&p->t.daddr, p->t.dport, p->t.proto);
	if (!svc)
		return 0;
	be = lb6_connection_backend(svc, p, now);
	if (!be)
		return -DROP_NO_SERVICE;
	*rev_nat = svc->rev_nat_index;
	ret = l4_rewrite6(ctx, p->t.proto, true, &p->t.daddr, &be->address, p->t.dport, be->port);
	if (ret < 0)
		return ret;
	p->t.daddr = be->address;
	p->t.dport = be->port;
	return 0;
}

/* lb4_ct_mark for IPv6. */
static __always_inline void lb6_ct_mark(const struct pkt6 *p, __u32 rev_nat, __u32 now, __u8 dir)
{
	struct ct_entry *e = ct_find6(lb6_ct_map(p->t.proto), &p->t, false, dir, now);

	if (e && e->lb_id != rev_nat)
		e->lb_id = rev_nat;
}

/*
 * An ICMPv6 error about a translated connection of the client (quote {client:cp -> backend:bp})
 * becomes one from the frontend, quoting {client:cp -> frontend:fp} (lb4_reverse_icmp for IPv6).
 * 0 or -DROP_x.
 */
static __always_inline int lb6_reverse_icmp(struct __sk_buff *ctx, struct pkt6 *p, __u32 rev_nat)
{
	struct lb6_reverse_nat *rn;
	union v4v6_addr frontend;
	int ret;

	if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	frontend = rn->address;
	ret = icmp6_error_rewrite(ctx, false, &frontend, &p->inner.saddr, p->inner.sport, &frontend,
				  rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = frontend;
	p->inner.daddr = frontend;
	p->inner.dport = rn->port;
	return 0;
}

/*
 * A reply whose conntrack entry named service `rev_nat`: from the frontend again; an ICMPv6 error
 * about the connection, as lb6_reverse_icmp says. 0 or -DROP_x.
 */
static __always_inline int lb6_reverse(struct __sk_buff *ctx, struct pkt6 *p, __u32 rev_nat)
{
	struct lb6_reverse_nat *rn;
	int ret;

	if (p->related)
		return lb6_reverse_icmp(ctx, p, rev_nat);
	if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	ret = l4_rewrite6(ctx, p->t.proto, false, &p->t.saddr, &rn->address, p->t.sport, rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.sport = rn->port;
	return 0;
}

/* The upper-layer checksum's pseudo-header after the two addresses (RFC 8200 8.1). */
struct ipv6_pseudo_tail {
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

/*
 * The RST of a TCP segment to a frontend without backends (lb4_reject_tcp for IPv6), in place,
 * with Ethernet addresses `dmac` and `smac`.
 */
static __always_inline int lb6_reject_tcp(struct __sk_buff *ctx, const struct pkt6 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	struct ipv6_pseudo_tail tail = {
	    .len = bpf_htonl(sizeof(struct tcphdr)),
	    .nexthdr = IPPROTO_TCP_,
	};
	struct ipv6hdr *ip6;
	struct tcphdr *th;
	struct ethhdr *eth;
	struct tcp_rst r;
	void *data, *data_end;
	__s64 sum;
	int ret;

	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	ip6 = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip6);
	/* Extension headers before TCP: dropped unanswered (NO_SERVICE all the same). */
	if ((void *)(th + 1) > data_end || ip6->nexthdr != IPPROTO_TCP_)
		return -DROP_NO_SERVICE;
	ret = tcp_rst_for(th, bpf_ntohs(ip6->payload_len), &r);
	if (ret < 0)
		return ret;

	if (bpf_skb_change_tail(ctx, ETH_HLEN + sizeof(*ip6) + sizeof(*th), 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip6 = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip6);
	if ((void *)(th + 1) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no traffic class, no flow label */
	ip6->payload_len = bpf_htons(sizeof(*th));
	ip6->hop_limit = 64;
	ipv6_addr_copy((union v4v6_addr *)&ip6->saddr, &p->t.daddr);
	ipv6_addr_copy((union v4v6_addr *)&ip6->daddr, &p->t.saddr);
	tcp_rst_write(th, p->t.dport, p->t.sport, &r);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&tail, sizeof(tail), (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)th, sizeof(*th), (__u32)sum);
	th->check = csum_fold(sum);
	return 0;
}

/*
 * A UDP datagram to a frontend without active backends, turned in place into ICMPv6 port
 * unreachable from the frontend quoting the datagram's first 48 bytes (Ethernet addresses as
 * lb6_reject_tcp's).
 */
static __always_inline int lb6_reject_udp(struct __sk_buff *ctx, const struct pkt6 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	const __u32 grow = sizeof(struct ipv6hdr) + 8;
	struct ipv6_pseudo_tail tail = {
	    .len = bpf_htonl(8 + ICMP6_QUOTE_LEN),
	    .nexthdr = IPPROTO_ICMPV6_,
	};
	struct ipv6hdr *ip6;
	struct ethhdr *eth;
	void *data, *data_end;
	__u8 *icmp;
	__s64 sum;

	if (ctx_load_u32(ctx, len) < ETH_HLEN + ICMP6_QUOTE_LEN)
		return -DROP_NO_SERVICE;
	if (bpf_skb_change_tail(ctx, ETH_HLEN + ICMP6_QUOTE_LEN, 0) < 0)
		return -DROP_WRITE_ERROR;
	/* Room for the new IPv6 and ICMPv6 headers between Ethernet and the quoted packet. */
	if (bpf_skb_adjust_room(ctx, grow, BPF_ADJ_ROOM_MAC, 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip6 = data + ETH_HLEN;
	icmp = data + ETH_HLEN + sizeof(*ip6);
	if ((void *)(icmp + 8 + ICMP6_QUOTE_LEN) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no traffic class, no flow label */
	ip6->payload_len = bpf_htons(8 + ICMP6_QUOTE_LEN);
	ip6->nexthdr = IPPROTO_ICMPV6_;
	ip6->hop_limit = 64;
	/* p is the parsed copy on the stack: still the refused packet's addresses. */
	ipv6_addr_copy((union v4v6_addr *)&ip6->saddr, &p->t.daddr);
	ipv6_addr_copy((union v4v6_addr *)&ip6->daddr, &p->t.saddr);
	icmp[0] = ICMPV6_DEST_UNREACH;
	icmp[1] = ICMPV6_PORT_UNREACH;
	*(__be16 *)(icmp + 2) = 0;
	*(__be32 *)(icmp + 4) = 0;
	/* Pseudo-header (the addresses just written, then length and next header) and message. */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&tail, sizeof(tail), (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + ICMP6_QUOTE_LEN, (__u32)sum);
	*(__be16 *)(icmp + 2) = csum_fold(sum);
	return 0;
}

/* The refusal of a TCP or UDP packet to a frontend without backends, in place. 0 or -DROP_x. */
static __always_inline int lb6_reject_answer(struct __sk_buff *ctx, const struct pkt6 *p,
					     const __u8 *dmac, const __u8 *smac)
{
	return p->t.proto == IPPROTO_TCP_ ? lb6_reject_tcp(ctx, p, dmac, smac)
					  : lb6_reject_udp(ctx, p, dmac, smac);
}

/*
 * A connection to a frontend without active backends, refused into the pod `ep` (lb4_reject
 * for IPv6). Returns the tc verdict, or -DROP_x when no answer is possible.
 */
static __always_inline int lb6_reject(struct __sk_buff *ctx, const struct pkt6 *p,
				      const struct endpoint_info *ep)
{
	int ret = lb6_reject_answer(ctx, p, ep->mac, ep->node_mac);

	if (ret < 0)
		return ret;
	/* Into the pod's namespace, as local delivery does. */
	return bpf_redirect_peer(ep->ifindex, 0);
}
