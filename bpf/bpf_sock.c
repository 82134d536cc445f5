/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_sock: socket-level service load balancing on the agent's cgroup-v2 root. A connect() or
 * sendmsg() to a service frontend is rewritten to a backend before any packet exists, so the
 * per-packet path never sees the VIP; recvmsg() and getpeername() show the frontend again.
 *   cil_sock4_connect:     cgroup/connect4     pick a backend (or refuse: ECONNREFUSED)
 *   cil_sock4_sendmsg:     cgroup/sendmsg4     same for unconnected UDP
 *   cil_sock4_recvmsg:     cgroup/recvmsg4     backend source -> frontend
 *   cil_sock4_getpeername: cgroup/getpeername4 backend peer -> frontend
 *   cil_sock6_*:           the same for IPv6 sockets (connect6, sendmsg6, recvmsg6,
 *                          getpeername6); a v4-mapped destination (::ffff:a.b.c.d) is balanced
 *                          through the IPv4 frontend, as an IPv4 socket's would be
 */
#include "compiler.h"
#include "abi/lb.h"
#include "lib/lb.h"

#define ECONNREFUSED_ 111

/* Socket cookie and backend -> the frontend the application asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_reverse_sk_key);
	__type(value, struct lb4_reverse_sk_val);
	__uint(max_entries, CILIUM_LB_REVERSE_SK_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_reverse_sk SEC(".maps");

/* The same for IPv6 sockets (v4-mapped backends included). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_reverse_sk_key);
	__type(value, struct lb6_reverse_sk_val);
	__uint(max_entries, CILIUM_LB_REVERSE_SK_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb6_reverse_sk SEC(".maps");

/* Connections are translated for TCP and UDP only; other sockets pass untouched. */
static __always_inline bool sock_proto_ok(__u8 proto)
{
	return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_;
}

/*
 * Translates the destination of ctx to a backend. Returns 1 to let the call proceed, 0 with the
 * error set to ECONNREFUSED when the frontend has no active backend.
 */
static __always_inline int sock4_translate(struct bpf_sock_addr *ctx)
{
	__be32 vip = ctx->user_ip4;
	__be16 vport = (__be16)ctx->user_port;
	__u8 proto = (__u8)ctx->protocol;
	struct lb4_reverse_sk_key rkey = {};
	struct lb4_reverse_sk_val rval = {};
	struct lb4_backend *be;
	struct lb4_service *svc;
	__u32 backend_id = 0;

	if (!sock_proto_ok(proto))
		return 1;
	svc = lb4_lookup_service(vip, vport, proto);
	if (!svc)
		return 1;
	/* The source port is not chosen yet: Maglev hashes the socket instead. */
	be = lb4_select_backend(svc, vip, vport, proto, bpf_get_netns_cookie(ctx),
				LB_AFFINITY_CLIENT_COOKIE, lb_now_sec(),
				(__u32)bpf_get_socket_cookie(ctx), &backend_id);
	if (!be) {
		bpf_set_retval(-ECONNREFUSED_);
		return 0;
	}

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = be->address;
	rkey.port = be->port;
	rval.address = vip;
	rval.port = vport;
	rval.rev_nat_index = svc->rev_nat_index;
	/* A failed insert only costs the VIP in recvmsg/getpeername; the connection still works. */
	bpf_map_update_elem(&cilium_lb4_reverse_sk, &rkey, &rval, BPF_ANY_);

	ctx->user_ip4 = be->address;
	ctx->user_port = (__u32)be->port;
	return 1;
}

/* Shows the frontend instead of the backend the socket talks to. */
static __always_inline void sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct lb4_reverse_sk_key key = {};
	struct lb4_reverse_sk_val *val;

	if (!sock_proto_ok((__u8)ctx->protocol))
		return;
	key.cookie = bpf_get_socket_cookie(ctx);
	key.address = ctx->user_ip4;
	key.port = (__be16)ctx->user_port;
	val = bpf_map_lookup_elem(&cilium_lb4_reverse_sk, &key);
	if (!val)
		return;
	ctx->user_ip4 = val->address;
	ctx->user_port = (__u32)val->port;
}

static __always_inline void sock6_load_ip(const struct bpf_sock_addr *ctx, union v4v6_addr *a)
{
	/* The context allows 4-byte loads of user_ip6 only. */
	a->ip6_words[0] = ctx->user_ip6[0];
	a->ip6_words[1] = ctx->user_ip6[1];
	a->ip6_words[2] = ctx->user_ip6[2];
	a->ip6_words[3] = ctx->user_ip6[3];
}

static __always_inline void sock6_store_ip(struct bpf_sock_addr *ctx, const union v4v6_addr *a)
{
	ctx->user_ip6[0] = a->ip6_words[0];
	ctx->user_ip6[1] = a->ip6_words[1];
	ctx->user_ip6[2] = a->ip6_words[2];
	ctx->user_ip6[3] = a->ip6_words[3];
}

/* ::ffff:a.b.c.d: an IPv6 socket talking IPv4. */
static __always_inline bool ipv6_is_v4mapped(const union v4v6_addr *a)
{
	return a->ip6_words[0] == 0 && a->ip6_words[1] == 0 &&
	       a->ip6_words[2] == bpf_htonl(0x0000ffff);
}

/*
 * The backend of a new connection of an IPv6 socket to `vip` (IPv6 or v4-mapped): written into
 * *be (v4-mapped for an IPv4 frontend) with its port, *rev_nat set to the service id. Returns
 * 1 when `vip` is no frontend, 0 when it is one with a backend, -1 when it has none.
 */
static __always_inline int sock6_select(struct bpf_sock_addr *ctx, const union v4v6_addr *vip,
					__be16 vport, __u8 proto, union v4v6_addr *be,
					__be16 *be_port, __u32 *rev_nat)
{
	struct lb4_service *svc;
	__u32 backend_id = 0;

	if (ipv6_is_v4mapped(vip)) {
		struct lb4_backend *be4;

		svc = lb4_lookup_service(vip->ip6_words[3], vport, proto);
		if (!svc)
			return 1;
		/* The source port is not chosen yet: Maglev hashes the socket instead. */
		be4 = lb4_select_backend(svc, vip->ip6_words[3], vport, proto,
					 bpf_get_netns_cookie(ctx), LB_AFFINITY_CLIENT_COOKIE,
					 lb_now_sec(), (__u32)bpf_get_socket_cookie(ctx),
					 &backend_id);
		if (!be4)
			return -1;
		be->ip6_words[0] = 0;
		be->ip6_words[1] = 0;
		be->ip6_words[2] = bpf_htonl(0x0000ffff);
		be->ip6_words[3] = be4->address;
		*be_port = be4->port;
	} else {
		struct lb6_backend *be6;

		svc = lb6_lookup_service(vip, vport, proto);
		if (!svc)
			return 1;
		be6 = lb6_select_backend(svc, vip, vport, proto, NULL, bpf_get_netns_cookie(ctx),
					 lb_now_sec(), (__u32)bpf_get_socket_cookie(ctx),
					 &backend_id);
		if (!be6)
			return -1;
		*be = be6->address;
		*be_port = be6->port;
	}
	*rev_nat = svc->rev_nat_index;
	return 0;
}

/* sock4_translate for IPv6 sockets. */
static __always_inline int sock6_translate(struct bpf_sock_addr *ctx)
{
	__be16 vport = (__be16)ctx->user_port;
	__u8 proto = (__u8)ctx->protocol;
	struct lb6_reverse_sk_key rkey = {};
	struct lb6_reverse_sk_val rval = {};
	union v4v6_addr vip, be;
	__be16 be_port = 0;
	__u32 rev_nat = 0;
	int ret;

	if (!sock_proto_ok(proto))
		return 1;
	sock6_load_ip(ctx, &vip);
	ret = sock6_select(ctx, &vip, vport, proto, &be, &be_port, &rev_nat);
	if (ret > 0)
		return 1;
	if (ret < 0) {
		bpf_set_retval(-ECONNREFUSED_);
		return 0;
	}

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = be;
	rkey.port = be_port;
	rval.address = vip;
	rval.port = vport;
	rval.rev_nat_index = rev_nat;
	bpf_map_update_elem(&cilium_lb6_reverse_sk, &rkey, &rval, BPF_ANY_);

	sock6_store_ip(ctx, &be);
	ctx->user_port = (__u32)be_port;
	return 1;
}

static __always_inline void sock6_reverse(struct bpf_sock_addr *ctx)
{
	struct lb6_reverse_sk_key key = {};
	struct lb6_reverse_sk_val *val;

	if (!sock_proto_ok((__u8)ctx->protocol))
		return;
	key.cookie = bpf_get_socket_cookie(ctx);
	sock6_load_ip(ctx, &key.address);
	key.port = (__be16)ctx->user_port;
	val = bpf_map_lookup_elem(&cilium_lb6_reverse_sk, &key);
	if (!val)
		return;
	sock6_store_ip(ctx, &val->address);
	ctx->user_port = (__u32)val->port;
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx);
}

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx);
}

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	sock4_reverse(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	sock4_reverse(ctx);
	return 1;
}

SEC("cgroup/connect6")
int cil_sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock6_translate(ctx);
}

SEC("cgroup/sendmsg6")
int cil_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock6_translate(ctx);
}

SEC("cgroup/recvmsg6")
int cil_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	sock6_reverse(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int cil_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	sock6_reverse(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
