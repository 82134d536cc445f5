/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Compiler shims and constants that vmlinux.h cannot carry (macros are not in BTF). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* tc verdicts (include/uapi/linux/pkt_cls.h) */
#define TC_ACT_UNSPEC	(-1)
#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT 7

/* Ethernet protocol numbers (include/uapi/linux/if_ether.h), host order */
#define ETH_P_IP   0x0800
#define ETH_P_ARP  0x0806
#define ETH_P_IPV6 0x86DD
#define ETH_HLEN   14
#define ETH_ALEN   6

/* IP protocol numbers */
#define IPPROTO_ICMP_	1
#define IPPROTO_TCP_	6
#define IPPROTO_UDP_	17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_	132

/* Flags for bpf_map_update_elem */
#define BPF_ANY_     0
#define BPF_NOEXIST_ 1
#define BPF_EXIST_   2

/* libbpf map pinning (tools/lib/bpf/libbpf.h, LIBBPF_PIN_BY_NAME) */
#define PIN_BY_NAME 1

/*
 * Context fields read with a fixed offset in one instruction. Plain accesses let clang turn them
 * into arithmetic on the context pointer shared between branches, which the verifier rejects.
 */
#define ctx_load_u32(ctx, field)                                                                   \
	({                                                                                         \
		__u64 __v;                                                                         \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                              \
			     : "=r"(__v)                                                           \
			     : "r"(ctx), "i"(__builtin_offsetof(struct __sk_buff, field)));        \
		(__u32) __v;                                                                       \
	})
#define ctx_load_ptr(ctx, field)                                                                   \
	({                                                                                         \
		void *__p;                                                                         \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                              \
			     : "=r"(__p)                                                           \
			     : "r"(ctx), "i"(__builtin_offsetof(struct __sk_buff, field)));        \
		__p;                                                                               \
	})
#define ctx_data(ctx)	  ctx_load_ptr(ctx, data)
#define ctx_data_end(ctx) ctx_load_ptr(ctx, data_end)
