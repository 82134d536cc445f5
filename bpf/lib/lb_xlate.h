/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewrites of a TCP/UDP packet in an skb, with incremental checksum updates:
 * the one translation step under every DNAT and SNAT of the per-packet LB, hairpin and NodePort.
 * IPv4 (lb4_rewrite); IPv6's is lib/nat6_xlate.h's l4_rewrite6 (no header checksum, a 16-byte
 * address under the L4 pseudo-header), shared with masquerade.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/ipv4.h"

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
