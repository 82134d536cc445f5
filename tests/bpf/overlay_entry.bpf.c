/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test-only entry into bpf_overlay under BPF_PROG_TEST_RUN, which cannot give a packet tunnel
 * metadata: sets the tunnel key a VXLAN device would have set on receive (VNI from cb[0], the
 * sending node from cb[1], network order), then tail-calls the real cil_from_overlay from
 * overlay_entry[0]. Returns 0xdead only when the tail call fails.
 */
#include "compiler.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} overlay_entry SEC(".maps");

SEC("tc")
int enter_overlay(struct __sk_buff *ctx)
{
	/* On receive the kernel's key has the sender as source, which get_tunnel_key reports as
	 * remote. */
	struct bpf_tunnel_key key = {
	    .tunnel_id = ctx->cb[0],
	    .local_ipv4 = bpf_ntohl(ctx->cb[1]),
	};

	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key), 0) < 0)
		return 0xbad;
	bpf_tail_call(ctx, &overlay_entry, 0);
	return 0xdead;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
