/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 header checks and rewrites. */
#pragma once

#include "compiler.h"
#include "lib/csum.h"

#define IP_MF	  0x2000
#define IP_OFFSET 0x1fff

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
