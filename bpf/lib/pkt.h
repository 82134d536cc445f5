/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The facts of one IPv4 packet that every stage needs: addresses, the conntrack view of its ports,
 * TCP flags, ICMP type, and for ICMP errors the quoted connection. Parsed once per packet.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/ipv4.h"

#define ICMP_ECHOREPLY	   0
#define ICMP_DEST_UNREACH  3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT	   5
#define ICMP_ECHO	   8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* Ethernet + the longest IPv4 header + ICMP + a quoted IPv4 header + 8 bytes of its payload. */
#define PKT_MAX_PARSE (ETH_HLEN + 60 + 8 + 60 + 8)

struct tuple4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct pkt4 {
	struct tuple4 t; /* conntrack view: ICMP echo id as sport (request) or dport (reply) */
	__u32 len;	 /* skb length, for counters */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 related; /* an ICMP error quoting `inner` */
	struct tuple4 inner;
	__u64 event_ns; /* timestamp of the packet's events, read on the first one */
};

static __always_inline bool l4_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_;
}

static __always_inline bool icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* The destination port a policy lookup uses: ICMP and port-less protocols use 0. */
static __always_inline __be16 pkt_policy_dport(const struct pkt4 *p)
{
	return l4_has_ports(p->t.proto) ? p->t.dport : 0;
}

/*
 * Whether everything pkt_parse4 reads is in the linear area: the IPv4 header and the first 20
 * bytes of TCP, 8 of UDP/SCTP or of an ICMP message other than an error; for IPv6 the same after
 * a fixed header without extension headers. ICMP errors (their quote), other frames and
 * truncated headers answer false.
 */
static __always_inline bool pkt_headers_linear(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u8 *l4;
	__u8 proto;

	if ((void *)(ip6 + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		/* Extension headers (rare) are parsed after a pull. */
		proto = ip6->nexthdr;
		l4 = (__u8 *)(ip6 + 1);
		if (proto == IPPROTO_ICMPV6_)
			return (void *)(l4 + 8) <= data_end && l4[0] >= 128;
		if (proto != IPPROTO_TCP_ && !l4_has_ports(proto))
			return false;
	} else {
		if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
			return false;
		l4 = (__u8 *)ip + ipv4_hdrlen(ip);
		proto = ip->protocol;
	}
	switch (proto) {
	case IPPROTO_TCP_:
		return (void *)(l4 + 20) <= data_end;
	case IPPROTO_ICMP_:
		return (void *)(l4 + 8) <= data_end && !icmp_is_error(l4[0]);
	default:
		return (void *)(l4 + 8) <= data_end;
	}
}

/*
 * Makes the headers this file reads directly accessible. Packets built by the local stack keep
 * their headers in the linear area and often their payload in page fragments; those need no
 * pull, which would copy payload (and, for a cloned TCP skb, its head once more) for nothing.
 * Only packets whose headers are not all linear, and ICMP errors (whose quote is read), are
 * pulled up to PKT_MAX_PARSE bytes. The pull invalidates packet pointers.
 */
static __always_inline void pkt_pull(struct __sk_buff *ctx)
{
	__u32 want =
	    ctx_load_u32(ctx, len) < PKT_MAX_PARSE ? ctx_load_u32(ctx, len) : PKT_MAX_PARSE;

	if (ctx_data(ctx) + want > ctx_data_end(ctx) && !pkt_headers_linear(ctx))
		bpf_skb_pull_data(ctx, want);
}

/* Ports (or echo id) of an ICMP message starting at `icmp`, in conntrack view. */
static __always_inline void icmp_echo_ports(const __u8 *icmp, struct tuple4 *t)
{
	__be16 id = *(const __be16 *)(icmp + 4);

	t->sport = 0;
	t->dport = 0;
	if (icmp[0] == ICMP_ECHO)
		t->sport = id;
	else if (icmp[0] == ICMP_ECHOREPLY)
		t->dport = id;
}

/*
 * Parses the quoted datagram of an ICMP error whose ICMP header starts at `icmp`. Returns false
 * when the quote is too short to name a connection.
 */
static __always_inline bool pkt_parse_icmp_quote(const __u8 *icmp, const void *data_end,
						 struct tuple4 *inner)
{
	const struct iphdr *iip = (const void *)(icmp + 8);
	const __u8 *il4;
	__u32 ihl;

	if ((const void *)(iip + 1) > data_end || iip->version != 4)
		return false;
	ihl = ipv4_hdrlen(iip);
	if (ihl < sizeof(*iip))
		return false;
	il4 = (const __u8 *)iip + ihl;
	if ((const void *)(il4 + 8) > data_end)
		return false;
	inner->saddr = iip->saddr;
	inner->daddr = iip->daddr;
	inner->proto = iip->protocol;
	if (l4_has_ports(iip->protocol)) {
		inner->sport = *(const __be16 *)il4;
		inner->dport = *(const __be16 *)(il4 + 2);
	} else if (iip->protocol == IPPROTO_ICMP_) {
		icmp_echo_ports(il4, inner);
	} else {
		inner->sport = 0;
		inner->dport = 0;
	}
	return true;
}

/*
 * Parses the IPv4 packet after the Ethernet header into `p`; `*ipp` points at its header
 * (valid until the next helper that may move packet data). Returns 0 or -DROP_x.
 */
static __always_inline int pkt_parse4(struct __sk_buff *ctx, struct pkt4 *p, struct iphdr **ipp)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u8 *l4;
	__u32 ihl;

	p->len = ctx_load_u32(ctx, len);
	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	ihl = ipv4_hdrlen(ip);
	if (ip->version != 4 || ihl < sizeof(*ip))
		return -DROP_INVALID;
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.proto = ip->protocol;
	*ipp = ip;
	/* The address fields are valid even for fragments, so drops still carry them. */
	if (ipv4_is_fragment(ip))
		return -DROP_FRAG_NOSUPPORT;

	l4 = (__u8 *)ip + ihl;
	if (l4_has_ports(p->t.proto)) {
		if ((void *)(l4 + 4) > data_end)
			return -DROP_CT_INVALID_HDR;
		p->t.sport = *(__be16 *)l4;
		p->t.dport = *(__be16 *)(l4 + 2);
		if (p->t.proto == IPPROTO_TCP_) {
			if ((void *)(l4 + 20) > data_end)
				return -DROP_CT_INVALID_HDR;
			p->tcp_flags = l4[13];
		}
	} else if (p->t.proto == IPPROTO_ICMP_) {
		if ((void *)(l4 + 8) > data_end)
			return -DROP_CT_INVALID_HDR;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		icmp_echo_ports(l4, &p->t);
		if (icmp_is_error(l4[0]))
			p->related = pkt_parse_icmp_quote(l4, data_end, &p->inner);
	}
	return 0;
}
