/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_sock: socket-level service load balancing on the agent's cgroup-v2 root. A connect() or
 * sendmsg() to a service frontend is rewritten to a backend before any packet exists, so the
 * per-packet path never sees the VIP; recvmsg() and getpeername() show the frontend again.
 *   cil_sock4_connect:     cgroup/connect4     pick a backend (or refuse: ECONNREFUSED)
 *   cil_sock4_sendmsg:     cgroup/sendmsg4     same for unconnected UDP
 *   cil_sock4_recvmsg:     cgroup/recvmsg4     backend source -> frontend
 *   cil_sock4_getpeername: cgroup/getpeername4 backend peer -> frontend
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
