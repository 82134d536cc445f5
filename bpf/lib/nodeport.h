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
 *     where cil_to_netdev translates them back from that entry (lib/nodeport_reply.h; bpf_lxc
 *     does it for a client pod of another node, whose replies go into the tunnel).
 *   - remote backend: SNAT to the address of the device the FIB picks towards the backend, with
 *     a node port (lib/nodeport_snat.h), then out that device (lib/nodeport_fwd.h). The
 *     backend's replies arrive at the node port and are translated back (client as destination,
 *     frontend as source) and sent back towards the client.
 *     With bpf-lb-mode=dsr (hybrid: TCP only) the client's address stays, the frontend goes
 *     along in an IPv4 option, and the backend's node answers the client (lib/nodeport_dsr.h).
 * A frontend without an active backend answers TCP with RST and UDP with ICMP port
 * unreachable (lib/lb_reject.h), back out of the device the packet came in on.
 * ICMP errors about these connections: lib/nodeport_icmp.h; the XDP fast path of the
 * remote-backend case: lib/nodeport_xdp.h.
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
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/lb_reject.h"
#include "lib/lb_reverse.h"
#include "lib/lb_xlate.h"
#include "lib/nodeport_dsr.h"
#include "lib/nodeport_fwd.h"
#include "lib/nodeport_reply.h"
#include "lib/nodeport_snat.h"
#include "lib/pkt.h"

#define SVC_F_FROM_OUTSIDE (SVC_F_NODEPORT | SVC_F_EXTERNAL_IP | SVC_F_LOADBALANCER)

/* Records (or refreshes) that the connection client -> local backend belongs to service `id`. */
static __always_inline int nodeport_ct_local(const struct pkt4 *p, __u32 id, __u32 now)
{
	struct ct_key4 key = {};
	struct ct_entry *e;

	ct_key_fill(&key, &p->t, false, CT_KEY_NODEPORT);
	e = bpf_map_lookup_elem(lb4_ct_map(p->t.proto), &key);
	if (e && e->lb_id == id) {
		lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
		return 0;
	}
	{
		struct ct_entry n = {
		    .lb_id = id,
		};

		lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);
		if (bpf_map_update_elem(lb4_ct_map(p->t.proto), &key, &n, BPF_ANY_) < 0)
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
	struct ct_entry *e = bpf_map_lookup_elem(lb4_ct_map(proto), &key);

	if (e)
		lb4_service_entry_seen(e, proto, tcp_flags, true, now);
}

/*
 * The reverse SNAT entry a packet to a node port (>= NAT_PORT_MIN) hits, NULL for any other
 * packet: a remote backend's reply (NAT_F_MASQ clear) or a masqueraded connection's (set).
 * tc and XDP look it up alike.
 */
static __always_inline struct nat4_entry *nodeport_reply_nat4(const struct pkt4 *p)
{
	struct nat4_key key = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};

	if (bpf_ntohs(p->t.dport) < NAT_PORT_MIN)
		return NULL;
	return bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
}

/*
 * A reply of a remote backend to a node port: back to the client, from the frontend. Returns the
 * tc verdict, TC_ACT_OK when the packet is not such a reply, or -DROP_x.
 */
static __always_inline int nodeport_rev_snat(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	struct bpf_fib_lookup fib;
	struct lb4_reverse_nat *rn;
	struct nat4_entry *e;
	__be32 to_addr;
	__be16 to_port;
	__u32 svc_id;
	int ret;

	e = nodeport_reply_nat4(p);
	if (!e || (e->flags & NAT_F_MASQ))
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
 * frontend of a NodePort / externalIP / LoadBalancer, nor a reply to a node port: a packet of a
 * DSR connection to a local pod is recorded on its way), or -DROP_x.
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
	__be32 frontend = p->t.daddr;
	__be16 frontend_port = p->t.dport;
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
	if (!svc || !(svc->flags & SVC_F_FROM_OUTSIDE)) {
		ret = nodeport_dsr_ingress(ctx, p, now);
		return ret < 0 ? ret : TC_ACT_OK;
	}
	svc_id = svc->rev_nat_index;
	be = lb4_connection_backend(lb4_ct_map(p->t.proto), svc, p, now);
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
	if (nodeport_dsr_backend(p->t.daddr, p->t.proto)) {
		int resolved = ret;

		if (dsr_needs_opt(p)) {
			ret = dsr_set_opt4(ctx, frontend, frontend_port, fib.ifindex);
			if (ret < 0)
				return ret;
		}
		return nodeport_redirect(ctx, &fib, resolved);
	}
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
