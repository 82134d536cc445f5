/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NodePort, externalIPs and LoadBalancer IPs on the node's native devices (bpf_host.c).
 *
 * Ingress, a packet from outside to such a frontend (scope EXTERNAL: with
 * externalTrafficPolicy=Local its slots hold local backends only):
 *   the backend of the connection comes from its CT_KEY_SERVICE entry (lib/lb_packet.h), the
 *   packet is DNATed, then
 *   - local backend: a CT_KEY_NODEPORT entry {client, backend} records the service, and the
 *     packet goes to the egress of the pod's veth, where bpf_lxc's cil_to_container enforces
 *     the pod's ingress policy against the client's identity (world for outside addresses);
 *     the client address is kept. The pod's replies go up the node's stack and out the device,
 *     where cil_to_netdev translates them back from that entry.
 *   - remote backend: SNAT to the address of the device the FIB picks towards the backend, with
 *     a node port from cilium_snat_v4_external (abi/nat.h), then out that device. The backend's
 *     replies arrive at the node port and are translated back (client as destination, frontend
 *     as source) and sent back towards the client.
 * A frontend without an active backend answers TCP with RST and UDP with ICMP port
 * unreachable, back out of the device the packet came in on.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/conntrack.h"
#include "lib/endpoint.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/pkt.h"

#define AF_INET_ 2

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat4_key);
	__type(value, struct nat4_entry);
	__uint(max_entries, CILIUM_NAT_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_snat_v4_external SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct node_dev4);
	__uint(max_entries, CILIUM_NODE_DEV_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_node_dev4 SEC(".maps");

#define SVC_F_FROM_OUTSIDE (SVC_F_NODEPORT | SVC_F_EXTERNAL_IP | SVC_F_LOADBALANCER)

static __always_inline void *nodeport_ct_map(__u8 proto)
{
	return proto == IPPROTO_TCP_ ? (void *)&cilium_ct4_global : (void *)&cilium_ct_any4_global;
}

/* Records (or refreshes) that the connection client -> local backend belongs to service `id`. */
static __always_inline int nodeport_ct_local(const struct pkt4 *p, __u32 id, __u32 now)
{
	struct ct_key4 key = {};
	struct ct_entry *e;

	ct_key_fill(&key, &p->t, false, CT_KEY_NODEPORT);
	e = bpf_map_lookup_elem(nodeport_ct_map(p->t.proto), &key);
	if (e && e->lb_id == id) {
		lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
		return 0;
	}
	{
		struct ct_entry n = {
		    .lb_id = id,
		};

		lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);
		if (bpf_map_update_elem(nodeport_ct_map(p->t.proto), &key, &n, BPF_ANY_) < 0)
			return -DROP_CT_CREATE_FAILED;
	}
	return 0;
}

/*
 * A reply of the connection client -> frontend, seen on its way back: advances the state of its
 * CT_KEY_SERVICE entry (which the client's packets refresh in lb4_connection_backend), so the
 * entry and the connection's NAT mapping live as long as the connection, in both directions.
 */
static __always_inline void nodeport_service_reply_seen(__be32 client, __be16 client_port,
							__be32 frontend, __be16 frontend_port,
							__u8 proto, __u8 tcp_flags, __u32 now)
{
	struct ct_key4 key = {
	    .saddr = client,
	    .daddr = frontend,
	    .sport = client_port,
	    .dport = frontend_port,
	    .nexthdr = proto,
	    .flags = CT_KEY_SERVICE,
	};
	struct ct_entry *e = bpf_map_lookup_elem(nodeport_ct_map(proto), &key);

	if (e)
		lb4_service_entry_seen(e, proto, tcp_flags, true, now);
}

/* Decrements the TTL of the (possibly rewritten) packet; false when it must not be forwarded. */
static __always_inline bool nodeport_dec_ttl(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return false;
	return ipv4_dec_ttl(ip);
}

/*
 * The route of the translated packet, looked up as if it were forwarded from the device it came
 * in on: 0 with the neighbour's MAC in *fib, 1 when the neighbour is not resolved yet (fib->ifindex
 * is still the way out), or -DROP_NO_FIB.
 */
static __always_inline int nodeport_fib_lookup(struct __sk_buff *ctx, const struct pkt4 *p,
					       __be32 saddr, struct bpf_fib_lookup *fib)
{
	long rc;

	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET_;
	fib->l4_protocol = p->t.proto;
	fib->sport = p->t.sport;
	fib->dport = p->t.dport;
	/*
	 * tot_len 0: the kernel checks the skb against the MTU itself, which understands GRO'd
	 * packets; the IP header's length of one would exceed the MTU and fail the lookup.
	 */
	fib->tot_len = 0;
	fib->ifindex = ctx_load_u32(ctx, ifindex);
	fib->ipv4_src = saddr;
	fib->ipv4_dst = p->t.daddr;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 1;
	return -DROP_NO_FIB;
}

static __always_inline void nodeport_copy_mac16(__u8 *dst, const __u8 *src)
{
	((__u16 *)dst)[0] = ((const __u16 *)src)[0];
	((__u16 *)dst)[1] = ((const __u16 *)src)[1];
	((__u16 *)dst)[2] = ((const __u16 *)src)[2];
}

/*
 * Delivers the (translated) packet to local pod `dst`: TTL, MACs, then the egress of the pod's
 * veth, not its peer, so that bpf_lxc enforces the pod's ingress policy (or lets a related ICMP
 * error of the pod's connection in).
 */
static __always_inline int nodeport_deliver_local(struct __sk_buff *ctx,
						  const struct endpoint_info *dst)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (!nodeport_dec_ttl(ctx))
		return -DROP_TTL_EXCEEDED;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -DROP_INVALID;
	eth_rewrite(eth, dst->mac, dst->node_mac);
	return bpf_redirect(dst->ifindex, 0);
}

/* Sends the packet out as nodeport_fib_lookup() said (`resolved` is its result). */
static __always_inline int nodeport_redirect(struct __sk_buff *ctx, struct bpf_fib_lookup *fib,
					     int resolved)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;

	if (!nodeport_dec_ttl(ctx))
		return -DROP_TTL_EXCEEDED;
	if (resolved == 0) {
		data = ctx_data(ctx);
		data_end = ctx_data_end(ctx);
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return -DROP_INVALID;
		/* The FIB's MACs are only 2-byte aligned on the stack. */
		nodeport_copy_mac16(eth->h_dest, fib->dmac);
		nodeport_copy_mac16(eth->h_source, fib->smac);
		return bpf_redirect(fib->ifindex, 0);
	}
	return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
}

/*
 * Whether the connection owning the reverse mapping `owner` (of protocol `proto`) is over: its
 * CT_KEY_SERVICE entry is gone, expired, or closed both ways (FIN each way, or an RST). Its node
 * port may then serve a new connection at once rather than after the NAT GC's next run: under
 * churn to one backend, 4535 node ports last only seconds otherwise.
 */
static __always_inline bool nodeport_mapping_over(const struct nat4_entry *owner, __u8 proto,
						  __u32 now)
{
	struct ct_key4 key = {
	    .saddr = owner->to_addr,
	    .sport = owner->to_port,
	    .nexthdr = proto,
	    .flags = CT_KEY_SERVICE,
	};
	__u32 id = owner->rev_nat_index;
	struct lb4_reverse_nat *rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &id);
	struct ct_entry *e;

	if (!rn)
		return true;
	key.daddr = rn->address;
	key.dport = rn->port;
	e = bpf_map_lookup_elem(nodeport_ct_map(proto), &key);
	if (!e || !ct_alive(e, now))
		return true;
	return proto == IPPROTO_TCP_ && (e->flags & CT_F_CLOSING) == CT_F_CLOSING;
}

/*
 * The node-side address and port of a connection from the client to a remote backend, as it
 * leaves by the device whose SNAT address is `node_addr`: the existing mapping, or a new one.
 */
static __always_inline int nodeport_snat_entry(const struct pkt4 *p, __be32 node_addr, __u32 svc_id,
					       __u32 now, __be16 *node_port)
{
	struct nat4_key fwd = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_EGRESS,
	};
	struct nat4_key rev = {
	    .saddr = p->t.daddr,
	    .daddr = node_addr,
	    .sport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	struct nat4_entry back = {
	    .to_addr = p->t.saddr,
	    .to_port = p->t.sport,
	    .rev_nat_index = svc_id,
	    .created = now,
	};
	struct nat4_entry out = {
	    .to_addr = node_addr,
	    .rev_nat_index = svc_id,
	    .created = now,
	};
	struct nat4_entry *e = bpf_map_lookup_elem(&cilium_snat_v4_external, &fwd);
	struct nat4_entry *owner;
	__u32 range = NAT_PORT_MAX - NAT_PORT_MIN + 1;
	int i;

	if (e && e->to_addr == node_addr) {
		/*
		 * Packets of an established connection trust their mapping. A new one (a SYN, or
		 * any UDP packet) checks that the port is still this tuple's: after the tuple's
		 * previous connection ended, its port may have gone to another connection.
		 */
		if (p->t.proto == IPPROTO_TCP_ &&
		    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN) {
			*node_port = e->to_port;
			return 0;
		}
		rev.dport = e->to_port;
		owner = bpf_map_lookup_elem(&cilium_snat_v4_external, &rev);
		if (owner && owner->to_addr == p->t.saddr && owner->to_port == p->t.sport) {
			*node_port = e->to_port;
			return 0;
		}
	}
	/* Random ports: a collision costs another try, never a wrong mapping (NOEXIST). */
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__u16 port = NAT_PORT_MIN + (bpf_get_prandom_u32() % range);

		rev.dport = bpf_htons(port);
		if (bpf_map_update_elem(&cilium_snat_v4_external, &rev, &back, BPF_NOEXIST_) != 0) {
			/*
			 * Taken. A finished connection's port is taken over; delete-then-NOEXIST
			 * lets one of two CPUs racing for it win, never both.
			 */
			owner = bpf_map_lookup_elem(&cilium_snat_v4_external, &rev);
			if (!owner || !nodeport_mapping_over(owner, p->t.proto, now))
				continue;
			bpf_map_delete_elem(&cilium_snat_v4_external, &rev);
			if (bpf_map_update_elem(&cilium_snat_v4_external, &rev, &back,
						BPF_NOEXIST_) != 0)
				continue;
		}
		out.to_port = rev.dport;
		if (bpf_map_update_elem(&cilium_snat_v4_external, &fwd, &out, BPF_ANY_) < 0) {
			bpf_map_delete_elem(&cilium_snat_v4_external, &rev);
			return -DROP_NAT_NO_MAPPING;
		}
		*node_port = rev.dport;
		return 0;
	}
	return -DROP_NAT_NO_MAPPING;
}

/*
 * A reply of a remote backend to a node port: back to the client, from the frontend. Returns the
 * tc verdict, TC_ACT_OK when the packet is not such a reply, or -DROP_x.
 */
static __always_inline int nodeport_rev_snat(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	struct nat4_key key = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	struct bpf_fib_lookup fib;
	struct lb4_reverse_nat *rn;
	struct nat4_entry *e;
	__be32 to_addr;
	__be16 to_port;
	__u32 svc_id;
	int ret;

	if (bpf_ntohs(p->t.dport) < NAT_PORT_MIN)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (!e)
		return TC_ACT_OK;
	to_addr = e->to_addr;
	to_port = e->to_port;
	svc_id = e->rev_nat_index;
	rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &svc_id);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	nodeport_service_reply_seen(to_addr, to_port, rn->address, rn->port, p->t.proto,
				    p->tcp_flags, now);
	ret = lb4_rewrite(ctx, p->t.proto, true, p->t.daddr, to_addr, p->t.dport, to_port);
	if (ret < 0)
		return ret;
	p->t.daddr = to_addr;
	p->t.dport = to_port;
	ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, rn->address, p->t.sport, rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.sport = rn->port;
	ret = nodeport_fib_lookup(ctx, p, p->t.saddr, &fib);
	if (ret < 0)
		return ret;
	return nodeport_redirect(ctx, &fib, ret);
}

/* Refuses a connection to a frontend without backends, back out of the device. */
static __always_inline int nodeport_reject(struct __sk_buff *ctx, const struct pkt4 *p)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	__u8 peer[8] __attribute__((aligned(8))) = {};
	__u8 self[8] __attribute__((aligned(8))) = {};
	int ret;

	if ((void *)(eth + 1) > data_end)
		return -DROP_INVALID;
	eth_copy_mac(peer, eth->h_source);
	eth_copy_mac(self, eth->h_dest);
	ret = lb4_reject_answer(ctx, p, peer, self);
	if (ret < 0)
		return ret;
	return bpf_redirect(ctx_load_u32(ctx, ifindex), 0);
}

/*
 * Ingress of a native device. Returns the tc verdict (TC_ACT_OK for anything that is not a
 * frontend of a NodePort / externalIP / LoadBalancer, nor a reply to a node port), or -DROP_x.
 * *rejected tells the caller a refusal was sent (to report the drop of the original packet).
 */
static __always_inline int nodeport_ingress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now,
					    bool *rejected)
{
	const struct endpoint_info *dst;
	struct bpf_fib_lookup fib;
	struct lb4_service *svc;
	struct lb4_backend *be;
	const struct node_dev4 *dev;
	__be32 client = p->t.saddr;
	__be16 node_port = 0;
	__u32 svc_id;
	int ret;

	*rejected = false;
	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return TC_ACT_OK;
	ret = nodeport_rev_snat(ctx, p, now);
	if (ret != TC_ACT_OK)
		return ret;
	svc = lb4_lookup_external(p->t.daddr, p->t.dport, p->t.proto);
	if (!svc || !(svc->flags & SVC_F_FROM_OUTSIDE))
		return TC_ACT_OK;
	svc_id = svc->rev_nat_index;
	be = lb4_connection_backend(nodeport_ct_map(p->t.proto), svc, p, now);
	if (!be) {
		ret = nodeport_reject(ctx, p);
		*rejected = ret >= 0;
		return ret;
	}
	ret = lb4_rewrite(ctx, p->t.proto, true, p->t.daddr, be->address, p->t.dport, be->port);
	if (ret < 0)
		return ret;
	p->t.daddr = be->address;
	p->t.dport = be->port;

	dst = endpoint_by_ipv4(p->t.daddr);
	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		ret = nodeport_ct_local(p, svc_id, now);
		if (ret < 0)
			return ret;
		return nodeport_deliver_local(ctx, dst);
	}

	ret = nodeport_fib_lookup(ctx, p, client, &fib);
	if (ret < 0)
		return ret;
	{
		__u32 oif = fib.ifindex;

		dev = bpf_map_lookup_elem(&cilium_node_dev4, &oif);
	}
	if (!dev || !dev->address)
		return -DROP_NAT_NO_MAPPING;
	{
		__be32 node_addr = dev->address;
		int resolved = ret;

		ret = nodeport_snat_entry(p, node_addr, svc_id, now, &node_port);
		if (ret < 0)
			return ret;
		ret = lb4_rewrite(ctx, p->t.proto, false, client, node_addr, p->t.sport, node_port);
		if (ret < 0)
			return ret;
		p->t.saddr = node_addr;
		p->t.sport = node_port;
		return nodeport_redirect(ctx, &fib, resolved);
	}
}

/*
 * Egress of a native device: a reply of a local backend to an outside client of a NodePort
 * leaves with the frontend as its source. Returns 0 or -DROP_x.
 */
static __always_inline int nodeport_egress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	const struct endpoint_info *src;
	struct ct_entry *e;

	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return 0;
	src = endpoint_by_ipv4(p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	e = ct_find(nodeport_ct_map(p->t.proto), &p->t, true, CT_KEY_NODEPORT, now);
	if (!e || !e->lb_id)
		return 0;
	lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, true, now);
	return lb4_reverse(ctx, p, e->lb_id);
}
