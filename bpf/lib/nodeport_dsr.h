/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NodePort DSR (bpf-lb-mode=dsr|hybrid with bpf-lb-dsr-dispatch=opt, routing-mode=native): a
 * connection from outside to a NodePort / externalIP / LoadBalancer whose backend is a pod of
 * another node keeps the client's address. The load-balancing node DNATs it and carries the
 * frontend to the backend's node in an IPv4 option (abi/lb.h, struct dsr_opt4) on the packets
 * that open the connection; the backend's node records the frontend in a CT_KEY_NODEPORT entry
 * flagged CT_F_DSR, and its cil_to_netdev sends the pod's replies from the frontend, straight to
 * the client: they never pass the load-balancing node again. docs/services.md, "DSR".
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/endpoint.h"
#include "abi/identity.h"
#include "abi/lb.h"
#include "lib/conntrack.h"
#include "lib/endpoint.h"
#include "lib/ipcache.h"
#include "lib/ipv4.h"
#include "lib/lb_packet.h"
#include "lib/pkt.h"

#define BPF_ADJ_ROOM_NET_	      0
#define BPF_F_ADJ_ROOM_NO_CSUM_RESET_ (1ULL << 5)

/* LB_MODE_* (bpf-lb-mode), set by the agent before load. */
const volatile __u8 cfg_lb_mode = LB_MODE_SNAT;

/* Whether connections of protocol `proto` to a remote backend use DSR (the load-balancing side). */
static __always_inline bool nodeport_uses_dsr(__u8 proto)
{
	if (cfg_lb_mode == LB_MODE_DSR)
		return true;
	return cfg_lb_mode == LB_MODE_HYBRID && proto == IPPROTO_TCP_;
}

/*
 * Whether the connection to `backend` goes DSR: not to a host-network backend (a node's address),
 * whose node's stack would answer from its own address. Decided by the backend alone, so every
 * packet of a connection takes the same way.
 */
static __always_inline bool nodeport_dsr_backend(__be32 backend, __u8 proto)
{
	__u32 id;

	if (!nodeport_uses_dsr(proto))
		return false;
	id = ipcache_identity4(backend);
	return id != IDENTITY_HOST && id != IDENTITY_REMOTE_NODE;
}

/*
 * The packets that carry the option: a TCP SYN opens the backend node's entry, which the rest of
 * the connection then finds by its tuple; UDP has no opening packet, so every datagram carries it
 * (and refreshes the entry).
 */
static __always_inline bool dsr_needs_opt(const struct pkt4 *p)
{
	if (p->t.proto == IPPROTO_TCP_)
		return (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	return true;
}

/*
 * Inserts the option naming frontend addr:port after the fixed IPv4 header of the (DNATed)
 * packet, which leaves by device `oif`: IHL grows by 2 words, tot_len by 8, the header checksum
 * follows; the L4 checksum does not change (its pseudo-header has no options). Returns 0, or
 * -DROP_FRAG_NEEDED when the packet would exceed the MTU of `oif`, -DROP_CT_INVALID_HDR when the
 * header has no room left (options of its own), -DROP_x when the packet cannot be changed.
 */
static __always_inline int dsr_set_opt4(struct __sk_buff *ctx, __be32 addr, __be16 port, __u32 oif)
{
	struct dsr_opt4 opt = {
	    .type = DSR_IPV4_OPT_TYPE,
	    .len = sizeof(opt),
	    .port = port,
	    .addr = addr,
	};
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u32 mtu = 0;
	__be32 old_word, new_word;
	__s64 sum;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	/* 15 words at most: the option must fit besides the client's own. */
	if (ip->ihl + sizeof(opt) / 4 > 15)
		return -DROP_CT_INVALID_HDR;
	/* The kernel's MTU check of the way out, GSO-aware (a SYN or datagram grown by 8). */
	if (bpf_check_mtu(ctx, oif, &mtu, sizeof(opt), 0) != 0)
		return -DROP_FRAG_NEEDED;
	old_word = *(__be32 *)ip;
	ip->ihl += sizeof(opt) / 4;
	ip->tot_len = bpf_htons(bpf_ntohs(ip->tot_len) + sizeof(opt));
	new_word = *(__be32 *)ip;
	sum = bpf_csum_diff(&old_word, 4, &new_word, 4, 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&opt, sizeof(opt), sum);
	if (sum < 0)
		return -DROP_CSUM_L3;
	/*
	 * Room right after the fixed 20-byte header (BPF_ADJ_ROOM_NET inserts there): the headers
	 * before it move, the L4 header stays where it was, so a partial checksum's offsets stay
	 * true and its state is kept.
	 */
	if (bpf_skb_adjust_room(ctx, sizeof(opt), BPF_ADJ_ROOM_NET_, BPF_F_ADJ_ROOM_NO_CSUM_RESET_))
		return -DROP_INVALID;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + sizeof(struct iphdr), &opt, sizeof(opt), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, 0, sum, 0) < 0)
		return -DROP_CSUM_L3;
	return 0;
}

/*
 * The DSR option of a packet from a native device: 1 with *opt filled when the first option is
 * Cilium's DSR option, 0 when there is none, -DROP_INVALID when it is malformed (a length other
 * than 8, or not inside the header): such a packet is dropped, never delivered half-understood.
 */
static __always_inline int dsr_get_opt4(struct __sk_buff *ctx, struct dsr_opt4 *opt)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u8 *o = (__u8 *)(ip + 1);

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	if (ip->ihl <= 5)
		return 0;
	if ((void *)(o + 2) > data_end)
		return -DROP_INVALID;
	if (o[0] != DSR_IPV4_OPT_TYPE)
		return 0;
	if (o[1] != sizeof(*opt) || ip->ihl < 5 + sizeof(*opt) / 4)
		return -DROP_INVALID;
	if ((void *)(o + sizeof(*opt)) > data_end)
		return -DROP_INVALID;
	__builtin_memcpy(opt, o, sizeof(*opt));
	return 1;
}

/*
 * The backend's side: a TCP/UDP packet from a native device to a local pod. With the option it
 * records (or refreshes) the frontend in the connection's CT_KEY_NODEPORT entry; without it, it
 * refreshes the entry of a DSR connection, or forgets one that a new SYN replaces. The packet
 * itself goes on to the pod as any packet from outside: through the stack to bpf_lxc, which
 * enforces the pod's ingress policy on the client's identity. Returns 0 or -DROP_x.
 */
static __always_inline int nodeport_dsr_ingress(struct __sk_buff *ctx, const struct pkt4 *p,
						__u32 now)
{
	const struct endpoint_info *dst;
	struct dsr_opt4 opt = {};
	struct ct_key4 key = {};
	struct ct_entry *e;
	void *map;
	int ret;

	if (cfg_lb_mode == LB_MODE_SNAT || p->related ||
	    (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_))
		return 0;
	dst = endpoint_by_ipv4(p->t.daddr);
	if (!dst || (dst->flags & ENDPOINT_F_HOST))
		return 0;
	ret = dsr_get_opt4(ctx, &opt);
	if (ret < 0)
		return ret;
	map = lb4_ct_map(p->t.proto);
	ct_key_fill(&key, &p->t, false, CT_KEY_NODEPORT);
	e = bpf_map_lookup_elem(map, &key);
	if (ret == 1) {
		/* A retransmitted SYN or the next datagram of the same frontend: refresh. */
		if (e && (e->flags & CT_F_DSR) && e->lb_id == opt.addr && e->rev_nat_index == opt.port &&
		    p->t.proto != IPPROTO_TCP_) {
			lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
			return 0;
		}
		{
			struct ct_entry n = {
			    .flags = CT_F_DSR,
			    .lb_id = opt.addr,
			    .rev_nat_index = opt.port,
			};

			lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);
			if (bpf_map_update_elem(map, &key, &n, BPF_ANY_) < 0)
				return -DROP_CT_CREATE_FAILED;
		}
		return 0;
	}
	if (!e || !(e->flags & CT_F_DSR))
		return 0;
	/* A new connection on the tuple that came without the option is no DSR connection. */
	if (p->t.proto == IPPROTO_TCP_ &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
		bpf_map_delete_elem(map, &key);
		return 0;
	}
	lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
	return 0;
}
