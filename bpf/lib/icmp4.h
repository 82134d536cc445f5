/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMPv4 errors that quote a translated connection: the quote's layout and its rewrite, shared by
 * the per-packet LB (lib/lb_reverse.h), NodePort (lib/nodeport_icmp.h) and the port unreachable
 * that refuses a UDP datagram (lib/lb_reject.h). Parsing the quote is pkt.h's
 * (pkt_parse_icmp_quote), as part of every packet's facts.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/ipv4.h"

#define ICMP_PORT_UNREACH 3
#define ICMP4_QUOTE_LEN	  28 /* the quoted IPv4 header and the first 8 bytes after it */

/* The quoted IPv4 header and the quoted ports, as one 24-byte block (quotes without options). */
struct icmp_quote4 {
	struct iphdr ip;
	__be16 sport;
	__be16 dport;
};

/*
 * Rewrites the ICMP error in ctx (outer IPv4 header without options at ETH_HLEN): the outer
 * addresses to (osaddr -> odaddr), the quote to (isaddr:isport -> idaddr:idport). The outer and
 * quoted IP checksums and the ICMP checksum are updated; the quoted TCP/UDP checksum is left as
 * it was (nobody verifies a quote's). -DROP_INVALID for headers with options.
 */
static __always_inline int icmp4_error_rewrite(struct __sk_buff *ctx, __be32 osaddr, __be32 odaddr,
					       __be32 isaddr, __be16 isport, __be32 idaddr,
					       __be16 idport)
{
	const __u32 icmp_off = ETH_HLEN + sizeof(struct iphdr);
	const __u32 quote_off = icmp_off + 8;
	struct icmp_quote4 old, new;
	struct iphdr outer;
	__s64 diff;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN, &outer, sizeof(outer)) < 0 ||
	    bpf_skb_load_bytes(ctx, quote_off, &old, sizeof(old)) < 0)
		return -DROP_INVALID;
	if (outer.ihl != 5 || old.ip.ihl != 5)
		return -DROP_INVALID; /* options: left to the stack */
	new = old;
	new.ip.saddr = isaddr;
	new.ip.daddr = idaddr;
	new.sport = isport;
	new.dport = idport;
	new.ip.check = 0;
	new.ip.check = ipv4_hdr_csum(&new.ip);

	diff = bpf_csum_diff((__be32 *)&old, sizeof(old), (__be32 *)&new, sizeof(new), 0);
	if (diff < 0)
		return -DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, quote_off, &new, sizeof(new), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_l4_csum_replace(ctx, icmp_off + 2, 0, (__u32)diff, 0) < 0)
		return -DROP_CSUM_L4;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, outer.saddr, osaddr, 4) < 0 ||
	    bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, outer.daddr, odaddr, 4) < 0)
		return -DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + IP_OFF_SADDR, &osaddr, 4, 0) < 0 ||
	    bpf_skb_store_bytes(ctx, ETH_HLEN + IP_OFF_DADDR, &odaddr, 4, 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}
