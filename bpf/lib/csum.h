/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Internet checksum math (RFC 1071, RFC 1624): folding a partial sum, and incremental updates
 * done inline rather than by helper call. The one place that folds; headers that build or
 * rewrite packets use these.
 */
#pragma once

#include "compiler.h"

/*
 * The checksum field for the 32-bit one's complement partial sum `s` (bpf_csum_diff()'s result,
 * truncated to 32 bits): folded to 16 bits and complemented.
 */
static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/*
 * Replaces the 16-bit word `old` by `new` under checksum `*sum`. One's complement arithmetic does
 * not care about byte order as long as all three values use the same one.
 */
static __always_inline void csum_replace2(__u16 *sum, __u16 old, __u16 new)
{
	__u32 s = (__u16) ~*sum;

	s += (__u16)~old;
	s += new;
	*sum = csum_fold(s);
}

/* Replaces the 32-bit word `from` by `to` under checksum `*sum`, as two 16-bit words. */
static __always_inline void csum_replace4(__u16 *sum, __be32 from, __be32 to)
{
	csum_replace2(sum, ((__u16 *)&from)[0], ((__u16 *)&to)[0]);
	csum_replace2(sum, ((__u16 *)&from)[1], ((__u16 *)&to)[1]);
}
