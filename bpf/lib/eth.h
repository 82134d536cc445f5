/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ethernet: header access and MAC rewrites. */
#pragma once

#include "compiler.h"

static __always_inline bool eth_ok(struct __sk_buff *ctx, struct ethhdr **eth)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);

	if (data + sizeof(struct ethhdr) > data_end)
		return false;
	*eth = data;
	return true;
}

/* Copies a 6-byte MAC as one 4-byte and one 2-byte store. */
static __always_inline void eth_copy_mac(__u8 *dst, const __u8 *src)
{
	*(__u32 *)dst = *(const __u32 *)src;
	*(__u16 *)(dst + 4) = *(const __u16 *)(src + 4);
}

static __always_inline void eth_rewrite(struct ethhdr *eth, const __u8 *dst, const __u8 *src)
{
	eth_copy_mac(eth->h_dest, dst);
	eth_copy_mac(eth->h_source, src);
}

/* Copies a 6-byte MAC as three 2-byte stores, for a MAC only 2-byte aligned (bpf_fib_lookup's). */
static __always_inline void eth_copy_mac16(__u8 *dst, const __u8 *src)
{
	((__u16 *)dst)[0] = ((const __u16 *)src)[0];
	((__u16 *)dst)[1] = ((const __u16 *)src)[1];
	((__u16 *)dst)[2] = ((const __u16 *)src)[2];
}
