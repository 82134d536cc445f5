/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental Internet checksum updates (RFC 1624), done inline rather than by helper call. */
#pragma once

#include "compiler.h"

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
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
	*sum = (__u16)~csum_fold32(s);
}
