/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 headers: address tests and copies, extension headers, hop limit. */
#pragma once

#include "compiler.h"
#include "abi/common.h"
#include "abi/drop.h"

#define NEXTHDR_HOP	 0
#define NEXTHDR_ROUTING	 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST	 60
#define NEXTHDR_NONE	 59

/* Extension headers walked before the upper layer; more is refused (DROP_INVALID_EXTHDR). */
#define IPV6_MAX_EXTHDRS 4

static __always_inline bool ipv6_addr_equal(const union v4v6_addr *a, const union v4v6_addr *b)
{
	return ((a->ip6_words[0] ^ b->ip6_words[0]) | (a->ip6_words[1] ^ b->ip6_words[1]) |
		(a->ip6_words[2] ^ b->ip6_words[2]) | (a->ip6_words[3] ^ b->ip6_words[3])) == 0;
}

static __always_inline bool ipv6_addr_is_zero(const union v4v6_addr *a)
{
	return (a->ip6_words[0] | a->ip6_words[1] | a->ip6_words[2] | a->ip6_words[3]) == 0;
}

/* Copies an address out of (or into) a packet as four 4-byte words. */
static __always_inline void ipv6_addr_copy(union v4v6_addr *dst, const void *src)
{
	const __u32 *s = src;

	dst->ip6_words[0] = s[0];
	dst->ip6_words[1] = s[1];
	dst->ip6_words[2] = s[2];
	dst->ip6_words[3] = s[3];
}

/* fe80::/10 */
static __always_inline bool ipv6_addr_is_link_local(const union v4v6_addr *a)
{
	return a->ip6[0] == 0xfe && (a->ip6[1] & 0xc0) == 0x80;
}

/*
 * Walks the extension headers after the fixed header at `ip6`: on success `*nexthdr` is the
 * upper-layer protocol and `*l4` points at its header. Fragments are refused
 * (-DROP_FRAG_NOSUPPORT), as IPv4 fragments are; so are chains longer than IPV6_MAX_EXTHDRS
 * and truncated ones (-DROP_INVALID_EXTHDR).
 */
static __always_inline int ipv6_skip_exthdrs(const struct ipv6hdr *ip6, const void *data_end,
					     __u8 *nexthdr, const __u8 **l4)
{
	const __u8 *p = (const __u8 *)(ip6 + 1);
	__u8 nh = ip6->nexthdr;
	int i;

#pragma unroll
	for (i = 0; i < IPV6_MAX_EXTHDRS; i++) {
		switch (nh) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
			if ((const void *)(p + 2) > data_end)
				return -DROP_INVALID_EXTHDR;
			nh = p[0];
			p += ((__u32)p[1] + 1) * 8;
			break;
		case NEXTHDR_FRAGMENT:
			return -DROP_FRAG_NOSUPPORT;
		default:
			*nexthdr = nh;
			*l4 = p;
			return 0;
		}
	}
	return -DROP_INVALID_EXTHDR;
}

/* Decrements the hop limit (IPv6 has no header checksum). False when it would reach zero. */
static __always_inline bool ipv6_dec_hop_limit(struct ipv6hdr *ip6)
{
	if (ip6->hop_limit <= 1)
		return false;
	ip6->hop_limit--;
	return true;
}
