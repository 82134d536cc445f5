/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Transparent redirection to the L7 proxies (abi/proxy.h): socket assignment from tc ingress,
 * the hairpin through lo for packets met on tc egress, and the marks of the proxies' packets.
 */
#pragma once

#include "compiler.h"
#include "abi/drop.h"
#include "abi/proxy.h"
#include "lib/eth.h"
#include "lib/pkt.h"
#include "lib/pkt6.h"

/* What enforce4 returns above 0 (0 = pass, < 0 = drop): */
#define ENFORCE_PROXY_PORT_MAX 0xFFFF	/* 1..65535: redirect to this proxy port (host order) */
#define ENFORCE_TO_PROXY_STACK 0x10000 /* a packet of a proxy's connection: up the stack */

#define LOOPBACK_IFINDEX 1

/* The identity a proxy's mark carries; the magic when the packet came from a proxy, else 0. */
static __always_inline __u32 proxy_mark_magic(const struct __sk_buff *ctx)
{
	__u32 magic = ctx_load_u32(ctx, mark) & MARK_MAGIC_HOST_MASK;

	if (magic == MARK_MAGIC_PROXY_INGRESS || magic == MARK_MAGIC_PROXY_EGRESS)
		return magic;
	return 0;
}

static __always_inline void proxy_set_mark(struct __sk_buff *ctx, __u16 proxy_port)
{
	__u32 mark = MARK_MAGIC_TO_PROXY | ((__u32)proxy_port << 16);

	/* One store at a fixed offset (see ctx_load_u32 in compiler.h). */
	asm volatile("*(u32 *)(%0 + %1) = %2" ::"r"(ctx),
		     "i"(__builtin_offsetof(struct __sk_buff, mark)), "r"(mark)
		     : "memory");
}

/* A socket the lookup may hand to a TCP packet of a proxied connection: no listener, no TIME_WAIT. */
static __always_inline bool proxy_tcp_sock_usable(const struct bpf_sock *sk)
{
	return sk->state != BPF_TCP_LISTEN && sk->state != BPF_TCP_TIME_WAIT;
}

/* The tuple's destination becomes the proxy's listening address and port (either family). */
static __always_inline void proxy_listen_tuple(struct bpf_sock_tuple *tuple, bool v6,
					       __u16 proxy_port)
{
	if (v6) {
		tuple->ipv6.daddr[0] = 0;
		tuple->ipv6.daddr[1] = 0;
		tuple->ipv6.daddr[2] = 0;
		tuple->ipv6.daddr[3] = PROXY_LISTEN_ADDR6_LAST;
		tuple->ipv6.dport = bpf_htons(proxy_port);
	} else {
		tuple->ipv4.daddr = PROXY_LISTEN_ADDR;
		tuple->ipv4.dport = bpf_htons(proxy_port);
	}
}

/*
 * Assigns the packet to the proxy's socket: for TCP the proxy's own connection with this tuple
 * when one exists (the stack could find it too, but only the assignment keeps a listener of the
 * node on the original port from taking a SYN), else the listener on the proxy's address
 * (127.0.0.1, or ::1 for IPv6) and `proxy_port`; for UDP always the proxy's socket on that
 * address (a node-local server on the original port must never be picked). Then marks the
 * packet for local delivery. Must run on tc ingress. `tuple` is the packet's (IPv6 when `v6`).
 * Returns 0, or -DROP_PROXY_LOOKUP_FAILED when no proxy listens (not started, crashed: fail
 * closed), -DROP_PROXY_SET_FAILED, -DROP_PROXY_UNKNOWN_PROTO.
 */
static __always_inline int proxy_assign(struct __sk_buff *ctx, struct bpf_sock_tuple *tuple,
					bool v6, __u8 proto, __u16 proxy_port)
{
	__u32 size = v6 ? sizeof(tuple->ipv6) : sizeof(tuple->ipv4);
	struct bpf_sock *sk;
	long ret;

	if (proto == IPPROTO_TCP_) {
		sk = bpf_skc_lookup_tcp(ctx, tuple, size, BPF_F_CURRENT_NETNS, 0);
		if (sk) {
			if (proxy_tcp_sock_usable(sk))
				goto assign;
			bpf_sk_release(sk);
		}
		proxy_listen_tuple(tuple, v6, proxy_port);
		sk = bpf_skc_lookup_tcp(ctx, tuple, size, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return -DROP_PROXY_LOOKUP_FAILED;
		if (sk->state != BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			return -DROP_PROXY_LOOKUP_FAILED;
		}
	} else if (proto == IPPROTO_UDP_) {
		proxy_listen_tuple(tuple, v6, proxy_port);
		sk = bpf_sk_lookup_udp(ctx, tuple, size, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return -DROP_PROXY_LOOKUP_FAILED;
	} else {
		return -DROP_PROXY_UNKNOWN_PROTO;
	}
assign:
	ret = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (ret)
		return -DROP_PROXY_SET_FAILED;
	proxy_set_mark(ctx, proxy_port);
	return 0;
}

static __always_inline int proxy_assign4(struct __sk_buff *ctx, const struct pkt4 *p,
					 __u16 proxy_port)
{
	struct bpf_sock_tuple tuple = {};

	tuple.ipv4.saddr = p->t.saddr;
	tuple.ipv4.daddr = p->t.daddr;
	tuple.ipv4.sport = p->t.sport;
	tuple.ipv4.dport = p->t.dport;
	return proxy_assign(ctx, &tuple, false, p->t.proto, proxy_port);
}

static __always_inline int proxy_assign6(struct __sk_buff *ctx, const struct pkt6 *p,
					 __u16 proxy_port)
{
	struct bpf_sock_tuple tuple = {};

	__builtin_memcpy(tuple.ipv6.saddr, p->t.saddr.ip6_words, 16);
	__builtin_memcpy(tuple.ipv6.daddr, p->t.daddr.ip6_words, 16);
	tuple.ipv6.sport = p->t.sport;
	tuple.ipv6.dport = p->t.dport;
	return proxy_assign(ctx, &tuple, true, p->t.proto, proxy_port);
}

/*
 * Whether a packet met on tc egress with enforce verdict `verdict` goes to a proxy (through lo).
 * A RST the stack sends for a proxy's connection without a socket (the proxy is gone) does not:
 * it is the pod's to see.
 */
static __always_inline bool proxy_hairpin_due(int verdict, __u8 proto, __u8 tcp_flags)
{
	return verdict > 0 && !(verdict == ENFORCE_TO_PROXY_STACK && proto == IPPROTO_TCP_ &&
				(tcp_flags & TCP_FLAG_RST));
}

/*
 * A packet met on tc egress (where sockets cannot be assigned) that belongs to a proxy: sent
 * back in through lo's ingress, where cil_to_proxy assigns it (proxy_port != 0) or the stack
 * demultiplexes it (0). lo's address is all zeros; the packet must carry it to be taken as the
 * device's own. Either family. Returns TC_ACT_REDIRECT or -DROP_x.
 */
static __always_inline int proxy_hairpin(struct __sk_buff *ctx, __u16 proxy_port)
{
	static const __u8 zero_mac[ETH_ALEN] __attribute__((aligned(4))) = {};
	struct ethhdr *eth;

	if (!eth_ok(ctx, &eth))
		return -DROP_INVALID;
	eth_copy_mac(eth->h_dest, zero_mac);
	proxy_set_mark(ctx, proxy_port);
	return bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
}
