/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 address and port rewrites in an skb, with incremental checksum updates: a TCP/UDP packet
 * or ICMPv6 echo message (l4_rewrite6), and an ICMPv6 error quoting a translated connection
 * (icmp6_error_rewrite). The IPv6 twins of lib/lb_xlate.h and lib/icmp4.h. IPv6 has no header
 * checksum; every L4 checksum, ICMPv6's included, covers a pseudo-header with both addresses, so
 * an address change is folded into the L4 checksum as a 16-byte difference (BPF_F_PSEUDO_HDR).
 * Parsing the quote is pkt6.h's (pkt_parse_icmp6_quote).
 */
#pragma once

#include "compiler.h"
#include "abi/common.h"
#include "abi/drop.h"
#include "lib/ipv6.h"

#define IPV6_OFF_SADDR 8
#define IPV6_OFF_DADDR 24
/*
 * bpf_l4_csum_replace's BPF_F_IPV6 (uapi bpf.h, kernel 6.16+): in a CHECKSUM_COMPLETE skb the
 * new address bytes and the L4 checksum's change cancel out in skb->csum (IPv6 has no header
 * checksum to absorb the address change as IPv4's does), so the helper must leave it alone.
 * Spelled here: vmlinux.h carries it only when the kernel's BTF does.
 */
#define CSUM_F_IPV6 (1ULL << 7)

/* The quoted IPv6 header and the quoted ports, as one 44-byte block (quotes without ext. hdrs). */
struct icmp6_quote {
	struct ipv6hdr ip;
	__be16 sport;
	__be16 dport;
};

/* Offset in ctx of the upper-layer header of the IPv6 packet at ETH_HLEN, or -DROP_x. */
static __always_inline int ipv6_l4_off(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	const __u8 *l4;
	__u8 nh;
	int ret;

	if ((void *)(ip6 + 1) > data_end)
		return -DROP_INVALID;
	ret = ipv6_skip_exthdrs(ip6, data_end, &nh, &l4);
	if (ret < 0)
		return ret;
	return (int)((const void *)l4 - data);
}

/* Folds the change of a 16-byte address `from` -> `to` into the L4 checksum at csum_off. */
static __always_inline int l4_csum_replace_addr6(struct __sk_buff *ctx, __u32 csum_off,
						 const union v4v6_addr *from,
						 const union v4v6_addr *to, __u64 flags)
{
	union v4v6_addr f = *from, t = *to;
	__s64 diff = bpf_csum_diff(f.ip6_words, sizeof(f), t.ip6_words, sizeof(t), 0);

	if (diff < 0)
		return -DROP_CSUM_L4;
	if (bpf_l4_csum_replace(ctx, csum_off, 0, (__u32)diff,
				flags | BPF_F_PSEUDO_HDR | CSUM_F_IPV6) < 0)
		return -DROP_CSUM_L4;
	return 0;
}

/*
 * Rewrites the source (dst = false) or destination address and port of the IPv6 TCP/UDP packet,
 * or of the ICMPv6 echo message (the identifier as port), with incremental checksum updates.
 */
static __always_inline int l4_rewrite6(struct __sk_buff *ctx, __u8 proto, bool dst,
				       const union v4v6_addr *old_addr,
				       const union v4v6_addr *new_addr, __be16 old_port,
				       __be16 new_port)
{
	__u64 l4_flags = proto == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	union v4v6_addr addr = *new_addr;
	__u32 csum_off, port_off;
	int l4_off, ret;

	l4_off = ipv6_l4_off(ctx);
	if (l4_off < 0)
		return l4_off;
	switch (proto) {
	case IPPROTO_TCP_:
		csum_off = l4_off + 16;
		port_off = l4_off + (dst ? 2 : 0);
		break;
	case IPPROTO_UDP_:
		csum_off = l4_off + 6;
		port_off = l4_off + (dst ? 2 : 0);
		break;
	case IPPROTO_ICMPV6_:
		csum_off = l4_off + 2;
		port_off = l4_off + 4; /* the echo identifier, both ways */
		break;
	default:
		return -DROP_NAT_UNSUPP_PROTO;
	}
	ret = l4_csum_replace_addr6(ctx, csum_off, old_addr, &addr, l4_flags);
	if (ret < 0)
		return ret;
	if (old_port != new_port &&
	    bpf_l4_csum_replace(ctx, csum_off, old_port, new_port, l4_flags | sizeof(new_port)) < 0)
		return -DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + (dst ? IPV6_OFF_DADDR : IPV6_OFF_SADDR), &addr,
				sizeof(addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (old_port != new_port &&
	    bpf_skb_store_bytes(ctx, port_off, &new_port, sizeof(new_port), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/*
 * Rewrites the quote of the ICMPv6 error in ctx (outer header without extension headers at
 * ETH_HLEN) to (isaddr:isport -> idaddr:idport), the ICMPv6 checksum following it. The quoted
 * TCP/UDP checksum is left as it was (nobody verifies a quote's). -DROP_INVALID for extension
 * headers in either header, or a quote that is not TCP/UDP.
 */
static __always_inline int icmp6_quote_rewrite(struct __sk_buff *ctx,
					       const union v4v6_addr *isaddr, __be16 isport,
					       const union v4v6_addr *idaddr, __be16 idport)
{
	const __u32 icmp_off = ETH_HLEN + sizeof(struct ipv6hdr);
	const __u32 quote_off = icmp_off + 8;
	struct icmp6_quote old, new;
	__u8 nexthdr;
	__s64 diff;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN + 6, &nexthdr, 1) < 0 ||
	    bpf_skb_load_bytes(ctx, quote_off, &old, sizeof(old)) < 0)
		return -DROP_INVALID;
	if (nexthdr != IPPROTO_ICMPV6_ ||
	    (old.ip.nexthdr != IPPROTO_TCP_ && old.ip.nexthdr != IPPROTO_UDP_))
		return -DROP_INVALID; /* extension headers: left to the stack */
	new = old;
	__builtin_memcpy(&new.ip.saddr, isaddr, 16);
	__builtin_memcpy(&new.ip.daddr, idaddr, 16);
	new.sport = isport;
	new.dport = idport;

	diff = bpf_csum_diff((__be32 *)&old, sizeof(old), (__be32 *)&new, sizeof(new), 0);
	if (diff < 0)
		return -DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, quote_off, &new, sizeof(new), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_l4_csum_replace(ctx, icmp_off + 2, 0, (__u32)diff, 0) < 0)
		return -DROP_CSUM_L4;
	return 0;
}

/*
 * Rewrites the outer destination (`dst`) or source of the ICMPv6 error in ctx to `addr`, through
 * the pseudo-header into the ICMPv6 checksum.
 */
static __always_inline int icmp6_outer_rewrite(struct __sk_buff *ctx, bool dst,
					       const union v4v6_addr *addr)
{
	const __u32 csum_off = ETH_HLEN + sizeof(struct ipv6hdr) + 2;
	const __u32 addr_off = ETH_HLEN + (dst ? IPV6_OFF_DADDR : IPV6_OFF_SADDR);
	union v4v6_addr old_addr, new_addr = *addr;
	int ret;

	if (bpf_skb_load_bytes(ctx, addr_off, &old_addr, sizeof(old_addr)) < 0)
		return -DROP_INVALID;
	ret = l4_csum_replace_addr6(ctx, csum_off, &old_addr, &new_addr, 0);
	if (ret < 0)
		return ret;
	if (bpf_skb_store_bytes(ctx, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/*
 * An ICMPv6 error about a translated connection: the quote (icmp6_quote_rewrite), then the outer
 * destination (outer_dst) or source to `outer`. 0 or -DROP_x.
 */
static __always_inline int icmp6_error_rewrite(struct __sk_buff *ctx, bool outer_dst,
					       const union v4v6_addr *outer,
					       const union v4v6_addr *isaddr, __be16 isport,
					       const union v4v6_addr *idaddr, __be16 idport)
{
	int ret = icmp6_quote_rewrite(ctx, isaddr, isport, idaddr, idport);

	return ret < 0 ? ret : icmp6_outer_rewrite(ctx, outer_dst, outer);
}

/* The same with both outer addresses rewritten, to saddr -> daddr. */
static __always_inline int icmp6_error_rewrite_both(struct __sk_buff *ctx,
						    const union v4v6_addr *saddr,
						    const union v4v6_addr *daddr,
						    const union v4v6_addr *isaddr, __be16 isport,
						    const union v4v6_addr *idaddr, __be16 idport)
{
	int ret = icmp6_quote_rewrite(ctx, isaddr, isport, idaddr, idport);

	if (ret == 0)
		ret = icmp6_outer_rewrite(ctx, false, saddr);
	return ret < 0 ? ret : icmp6_outer_rewrite(ctx, true, daddr);
}
