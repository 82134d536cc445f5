/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The facts of one IPv6 packet that every stage needs (lib/pkt.h's pkt4, for IPv6): addresses,
 * the conntrack view of its ports, TCP flags, ICMPv6 type, and for ICMPv6 errors the quoted
 * connection. Parsed once per packet.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/ipv6.h"
#include "lib/pkt.h"

#define ICMPV6_DEST_UNREACH   1
#define ICMPV6_PKT_TOOBIG     2
#define ICMPV6_TIME_EXCEED    3
#define ICMPV6_PARAMPROB      4
#define ICMPV6_ECHO_REQUEST   128
#define ICMPV6_ECHO_REPLY     129
#define ICMPV6_MLD_QUERY      130
#define ICMPV6_MLD_REDUCTION  132
#define ICMPV6_ROUTER_SOLICIT 133
#define ICMPV6_NEIGH_SOLICIT  135
#define ICMPV6_NEIGH_ADVERT   136
#define ICMPV6_NEIGH_REDIRECT 137
#define ICMPV6_MLD2_REPORT    143

struct tuple6 {
	union v4v6_addr saddr;
	union v4v6_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct pkt6 {
	struct tuple6 t; /* conntrack view: ICMPv6 echo id as sport (request) or dport (reply) */
	__u32 len;	 /* skb length, for counters */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 related; /* an ICMPv6 error quoting `inner` */
	struct tuple6 inner;
	__u64 event_ns; /* timestamp of the packet's events, read on the first one */
};

/*
 * Room for one struct pkt6 per CPU, for a program whose stack is full: bpf_lxc's
 * cil_from_container inlines the IPv4 and IPv6 paths into one 512-byte frame. A tc program runs
 * to its end on one CPU (its redirects take effect after it returns), so one slot per CPU is
 * enough. Not pinned: each object has its own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct pkt6);
	__uint(max_entries, 1);
} cilium_pkt6_scratch SEC(".maps");

/* This CPU's scratch pkt6, zeroed; NULL never happens (an array's slot 0 always exists). */
static __always_inline struct pkt6 *pkt6_scratch(void)
{
	__u32 zero = 0;
	struct pkt6 *p = bpf_map_lookup_elem(&cilium_pkt6_scratch, &zero);

	if (p)
		__builtin_memset(p, 0, sizeof(*p));
	return p;
}

/* ICMPv6 errors are the types below 128 (RFC 4443). */
static __always_inline bool icmp6_is_error(__u8 type)
{
	return type < 128;
}

/*
 * Link-scoped ICMPv6 control a pod may send: MLD (130..132, 143), router and neighbour
 * solicitations and neighbour advertisements (133, 135, 136). The kernel never forwards it;
 * bpf_lxc lets it through like ARP (and answers the pod's neighbour solicitations). Router
 * advertisements and redirects (134, 137) are not in the list: a pod is no router, and the
 * node must not learn routes from one.
 */
static __always_inline bool icmp6_is_pod_link_control(__u8 type)
{
	return (type >= ICMPV6_MLD_QUERY && type <= ICMPV6_ROUTER_SOLICIT) ||
	       type == ICMPV6_NEIGH_SOLICIT || type == ICMPV6_NEIGH_ADVERT ||
	       type == ICMPV6_MLD2_REPORT;
}

/* What the node sends on a pod's link: the above and router advertisements and redirects. */
static __always_inline bool icmp6_is_link_control(__u8 type)
{
	return (type >= ICMPV6_MLD_QUERY && type <= ICMPV6_NEIGH_REDIRECT) ||
	       type == ICMPV6_MLD2_REPORT;
}

static __always_inline void icmp6_echo_ports(const __u8 *icmp, struct tuple6 *t)
{
	__be16 id = *(const __be16 *)(icmp + 4);

	t->sport = 0;
	t->dport = 0;
	if (icmp[0] == ICMPV6_ECHO_REQUEST)
		t->sport = id;
	else if (icmp[0] == ICMPV6_ECHO_REPLY)
		t->dport = id;
}

/*
 * The quoted datagram of an ICMPv6 error whose header starts at `icmp` (quotes with extension
 * headers are not followed). False when it is too short to name a connection.
 */
static __always_inline bool pkt_parse_icmp6_quote(const __u8 *icmp, const void *data_end,
						  struct tuple6 *inner)
{
	const struct ipv6hdr *iip = (const void *)(icmp + 8);
	const __u8 *il4 = (const __u8 *)(iip + 1);

	if ((const void *)(il4 + 8) > data_end || iip->version != 6)
		return false;
	ipv6_addr_copy(&inner->saddr, &iip->saddr);
	ipv6_addr_copy(&inner->daddr, &iip->daddr);
	inner->proto = iip->nexthdr;
	if (l4_has_ports(iip->nexthdr)) {
		inner->sport = *(const __be16 *)il4;
		inner->dport = *(const __be16 *)(il4 + 2);
	} else if (iip->nexthdr == IPPROTO_ICMPV6_) {
		icmp6_echo_ports(il4, inner);
	} else {
		inner->sport = 0;
		inner->dport = 0;
	}
	return true;
}

/*
 * Parses the IPv6 packet after the Ethernet header into `p`. Returns 0 or -DROP_x; the
 * addresses are filled even on error, so drops carry them.
 */
static __always_inline int pkt_parse6(struct __sk_buff *ctx, struct pkt6 *p)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	const __u8 *l4;
	__u8 nh;
	int ret;

	p->len = ctx_load_u32(ctx, len);
	if ((void *)(ip6 + 1) > data_end)
		return -DROP_INVALID;
	if (ip6->version != 6)
		return -DROP_INVALID;
	ipv6_addr_copy(&p->t.saddr, &ip6->saddr);
	ipv6_addr_copy(&p->t.daddr, &ip6->daddr);
	p->t.proto = ip6->nexthdr;
	ret = ipv6_skip_exthdrs(ip6, data_end, &nh, &l4);
	if (ret < 0)
		return ret;
	p->t.proto = nh;

	if (l4_has_ports(nh)) {
		if ((const void *)(l4 + 4) > data_end)
			return -DROP_CT_INVALID_HDR;
		p->t.sport = *(const __be16 *)l4;
		p->t.dport = *(const __be16 *)(l4 + 2);
		if (nh == IPPROTO_TCP_) {
			if ((const void *)(l4 + 20) > data_end)
				return -DROP_CT_INVALID_HDR;
			p->tcp_flags = l4[13];
		}
	} else if (nh == IPPROTO_ICMPV6_) {
		if ((const void *)(l4 + 8) > data_end)
			return -DROP_CT_INVALID_HDR;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		icmp6_echo_ports(l4, &p->t);
		if (icmp6_is_error(l4[0]))
			p->related = pkt_parse_icmp6_quote(l4, data_end, &p->inner);
	}
	return 0;
}
