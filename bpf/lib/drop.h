/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Dropping a packet: counted in cilium_metrics, reported as a drop event, then TC_ACT_SHOT. */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "lib/events.h"
#include "lib/metrics.h"

#ifndef DROP_FILE
#error "define DROP_FILE (a DROP_FILE_* id) before including lib/drop.h"
#endif

static __always_inline int __send_drop(const struct __sk_buff *ctx, struct pkt4 *p,
				       const struct trace_info *ti, int ret, __u16 line)
{
	/* ret is -DROP_x; the wire and the metrics use the positive code. */
	__u8 reason = (__u8)(-ret);

	metrics_account(p->len, ti->dir, reason, line, DROP_FILE);
	emit_drop(ctx, p, ti, reason, line, DROP_FILE);
	return TC_ACT_SHOT;
}

/* Drops with `ret` (-DROP_x) and records the calling line. */
#define send_drop(ctx, p, ti, ret) __send_drop(ctx, p, ti, ret, __LINE__)

static __always_inline int __send_drop_not_ip4(struct __sk_buff *ctx, struct pkt4 *p,
					       const struct trace_info *ti, int ret, __u16 line)
{
	__u8 reason = (__u8)(-ret);

	metrics_account(p->len, ti->dir, reason, line, DROP_FILE);
	emit_drop_not_ip4(ctx, p, ti, reason, line, DROP_FILE);
	return TC_ACT_SHOT;
}

/* send_drop() for a packet whose ethertype is not IPv4: the event carries the IPv6 tuple (or no
 * L3), not the empty IPv4 one. */
#define send_drop_not_ip4(ctx, p, ti, ret) __send_drop_not_ip4(ctx, p, ti, ret, __LINE__)

static __always_inline int __send_drop6(const struct __sk_buff *ctx, struct pkt6 *p,
					const struct trace_info *ti, int ret, __u16 line)
{
	__u8 reason = (__u8)(-ret);

	metrics_account(p->len, ti->dir, reason, line, DROP_FILE);
	emit_drop6(ctx, p, ti, reason, line, DROP_FILE);
	return TC_ACT_SHOT;
}

/* send_drop() for a parsed IPv6 packet (struct pkt6). */
#define send_drop6(ctx, p, ti, ret) __send_drop6(ctx, p, ti, ret, __LINE__)

static __always_inline void count_forwarded(__u32 len, __u8 dir)
{
	metrics_account(len, dir, REASON_FORWARDED, 0, 0);
}
