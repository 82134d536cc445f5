/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 headers: checks, offsets, TTL, checksum, and building a fresh header. */
#pragma once

#include "compiler.h"
#include "lib/csum.h"

#define IP_MF	  0x2000
#define IP_OFFSET 0x1fff

/* Offsets of header fields from the start of the IPv4 header, for the skb store helpers. */
#define IP_OFF_CHECK 10
#define IP_OFF_SADDR 12
#define IP_OFF_DADDR 16

/* A fragment other than a whole datagram: more fragments follow, or this is not the first. */
static __always_inline bool ipv4_is_fragment(const struct iphdr *ip)
{
	return ip->frag_off & bpf_htons(IP_MF | IP_OFFSET);
}

static __always_inline __u32 ipv4_hdrlen(const struct iphdr *ip)
{
	return (__u32)ip->ihl * 4;
}

/*
 * Decrements the TTL and fixes the header checksum. Returns false when the packet must not be
 * forwarded (TTL would reach zero).
 */
static __always_inline bool ipv4_dec_ttl(struct iphdr *ip)
{
	__u8 ttl = ip->ttl;

	if (ttl <= 1)
		return false;
	ip->ttl = ttl - 1;
	/* ttl and protocol form one 16-bit word of the header checksum. */
	csum_replace2(&ip->check, bpf_htons((__u16)ttl << 8 | ip->protocol),
		      bpf_htons((__u16)(ttl - 1) << 8 | ip->protocol));
	return true;
}

/*
 * The header checksum of `ip` (no options; in the packet or on the stack), to store in its check
 * field, which must be 0 while it is computed.
 */
static __always_inline __u16 ipv4_hdr_csum(const struct iphdr *ip)
{
	return csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
}

/* A fresh IPv4 header (no options) from `saddr` to `daddr`, checksum included. */
static __always_inline void ipv4_fill_hdr(struct iphdr *ip, __be32 saddr, __be32 daddr, __u8 proto,
					  __u16 tot_len)
{
	ip->ihl = 5;
	ip->version = 4;
	ip->tos = 0;
	ip->tot_len = bpf_htons(tot_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = ipv4_hdr_csum(ip);
}
