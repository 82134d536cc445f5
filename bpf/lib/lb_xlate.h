/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewrites of a TCP/UDP packet in an skb, with incremental checksum updates:
 * the one translation step under every DNAT and SNAT of the per-packet LB, hairpin and NodePort.
 * IPv4 (lb4_rewrite) and IPv6 (lb6_rewrite: no header checksum, a 16-byte address under the
 * L4 pseudo-header).
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/ipv4.h"
#include "lib/ipv6.h"

/*
 * Rewrites the source (dst = false) or destination address and port of the IPv4 TCP/UDP packet,
 * with incremental checksum updates (the L4 one covers the pseudo-header).
 */
static __always_inline int lb4_rewrite(struct __sk_buff *ctx, __u8 proto, bool dst, __be32 old_addr,
				       __be32 new_addr, __be16 old_port, __be16 new_port)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u64 l4_flags = proto == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 l4_off, csum_off;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	l4_off = ETH_HLEN + ipv4_hdrlen(ip);
	csum_off = l4_off + (proto == IPPROTO_TCP_ ? 16 : 6);

	if (bpf_l4_csum_replace(ctx, csum_off, old_addr, new_addr,
				l4_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)) < 0)
		return -DROP_CSUM_L4;
	if (old_port != new_port &&
	    bpf_l4_csum_replace(ctx, csum_off, old_port, new_port, l4_flags | sizeof(new_port)) < 0)
		return -DROP_CSUM_L4;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, old_addr, new_addr,
				sizeof(new_addr)) < 0)
		return -DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + (dst ? IP_OFF_DADDR : IP_OFF_SADDR), &new_addr,
				sizeof(new_addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (old_port != new_port &&
	    bpf_skb_store_bytes(ctx, l4_off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/* Offsets of the IPv6 header's addresses. */
#define IPV6_OFF_SADDR 8
#define IPV6_OFF_DADDR 24

/*
 * lb4_rewrite for an IPv6 TCP/UDP packet (its extension headers walked again to find the L4
 * header): only the L4 checksum changes, by the difference of the addresses.
 */
static __always_inline int lb6_rewrite(struct __sk_buff *ctx, __u8 proto, bool dst,
				       const union v4v6_addr *old_addr,
				       const union v4v6_addr *new_addr, __be16 old_port,
				       __be16 new_port)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u64 l4_flags = proto == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	const __u8 *l4;
	__u32 l4_off, csum_off;
	__s64 diff;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return -DROP_INVALID;
	if (ipv6_skip_exthdrs(ip6, data_end, &nh, &l4) < 0 || nh != proto)
		return -DROP_INVALID;
	l4_off = (__u32)(l4 - (const __u8 *)data);
	csum_off = l4_off + (proto == IPPROTO_TCP_ ? 16 : 6);

	/* Straight from the callers' copies (stack or map value): no stack of its own. */
	diff = bpf_csum_diff((__be32 *)old_addr, sizeof(*old_addr), (__be32 *)new_addr,
			     sizeof(*new_addr), 0);
	if (bpf_l4_csum_replace(ctx, csum_off, 0, (__u32)diff, l4_flags | BPF_F_PSEUDO_HDR) < 0)
		return -DROP_CSUM_L4;
	if (old_port != new_port &&
	    bpf_l4_csum_replace(ctx, csum_off, old_port, new_port, l4_flags | sizeof(new_port)) < 0)
		return -DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + (dst ? IPV6_OFF_DADDR : IPV6_OFF_SADDR), new_addr,
				sizeof(*new_addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (old_port != new_port &&
	    bpf_skb_store_bytes(ctx, l4_off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}
