/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_overlay: the program on cilium_vxlan, the node's collect_md VXLAN device in
 * routing-mode=tunnel, loaded once per node with bpf_lxc's maps.
 *   cil_from_overlay: tcx ingress (packets other nodes sent here, decapsulated)
 *   cil_from_host:    tcx egress of cilium_host (the node's own IPv4 and IPv6 packets to other
 *                     nodes' pods, routed there by the agent; encapsulated as bpf_lxc does)
 * The VNI is the sender's security identity (lib/encap.h), the outer source the sending node. The
 * inner packet is IPv4 or IPv6 (the outer is IPv4). The destination endpoint's ingress policy
 * runs with that identity, then the packet is delivered
 * straight into the pod as bpf_lxc delivers local traffic. A sending node's host is remote-node
 * here, never host: only this node is host. Packet walk: docs/datapath.md.
 */
#define DROP_FILE DROP_FILE_BPF_OVERLAY

#include "compiler.h"
#include "abi/identity.h"
#include "lib/config.h"
#include "lib/drop.h"
#include "lib/encap.h"
#include "lib/endpoint.h"
#include "lib/enforce.h"
#include "lib/enforce6.h"
#include "lib/eth.h"
#include "lib/events.h"
#include "lib/lb6_packet.h"
#include "lib/lb_reverse.h"
#include "lib/local_delivery.h"
#include "lib/metrics.h"
#include "lib/pkt.h"
#include "lib/pkt6.h"
#include "lib/proxy.h"

/* A decapsulated IPv4 packet from identity `src_identity`: the destination's ingress side. */
static __always_inline int from_overlay_ipv4(struct __sk_buff *ctx, struct pkt4 *p,
					     __u32 src_identity, struct trace_info *ti)
{
	const struct endpoint_info *dst = endpoint_by_ipv4(p->t.daddr);
	bool due;
	int ret;

	if (!dst)
		return send_drop(ctx, p, ti, -DROP_NO_LXC);
	ti->dst_identity = dst->sec_id;
	if (dst->flags & ENDPOINT_F_HOST) {
		/*
		 * The node itself (the reply to its own packet through the tunnel): its stack's
		 * business, as for local pods' traffic to it. The inner frame is addressed to the
		 * sender's idea of a MAC: make the stack take it.
		 */
		bpf_skb_change_type(ctx, 0 /* PACKET_HOST */);
		count_forwarded(p->len, METRIC_INGRESS);
		emit_trace(ctx, p, ti, TRACE_TO_STACK, false);
		return TC_ACT_OK;
	}
	ti->source = dst->lxc_id;
	ti->dst_id = dst->lxc_id;
	ret = enforce4(ctx, p, dst, CT_KEY_INGRESS, src_identity, 0, mono_now_sec(), ti, &due, 0);
	if (ret < 0)
		return send_drop(ctx, p, ti, ret);
	if (ret > 0) {
		/*
		 * An L7 rule: the proxy on this node takes the connection, as for a local sender
		 * (socket assignment works on tc ingress; no listener drops, fail closed). Its
		 * replies go back through the node's stack.
		 */
		/* The inner frame is addressed to another MAC: make the stack take it. */
		bpf_skb_change_type(ctx, 0 /* PACKET_HOST */);
		if (ret == ENFORCE_TO_PROXY_STACK) {
			proxy_set_mark(ctx, 0);
		} else {
			ret = proxy_assign4(ctx, p, (__u16)ret);
			if (ret < 0)
				return send_drop(ctx, p, ti, ret);
		}
		count_forwarded(p->len, METRIC_INGRESS);
		emit_trace(ctx, p, ti, TRACE_TO_PROXY, due);
		return TC_ACT_OK;
	}
	if (ti->rev_nat) {
		/* A reply from a remote backend of a service this pod connected to. */
		ret = lb4_reverse(ctx, p, ti->rev_nat);
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
	}
	ret = local_delivery4(ctx, dst);
	if (ret < 0)
		return send_drop(ctx, p, ti, ret);
	count_forwarded(p->len, METRIC_INGRESS);
	emit_trace(ctx, p, ti, TRACE_TO_LXC, due);
	return ret;
}

/*
 * from_overlay_ipv4 for a decapsulated IPv6 packet (the outer headers stay IPv4): the same
 * ingress enforcement with the VNI identity, the L7 proxy redirect, the reverse translation of
 * a remote service backend's reply, and delivery.
 */
static __always_inline int from_overlay_ipv6(struct __sk_buff *ctx, struct pkt6 *p,
					     __u32 src_identity, struct trace_info *ti)
{
	const struct endpoint_info *dst = endpoint_by_ipv6(&p->t.daddr);
	bool due;
	int ret;

	if (!dst)
		return send_drop6(ctx, p, ti, -DROP_NO_LXC);
	ti->dst_identity = dst->sec_id;
	if (dst->flags & ENDPOINT_F_HOST) {
		bpf_skb_change_type(ctx, 0 /* PACKET_HOST */);
		count_forwarded(p->len, METRIC_INGRESS);
		emit_trace6(ctx, p, ti, TRACE_TO_STACK, false);
		return TC_ACT_OK;
	}
	ti->source = dst->lxc_id;
	ti->dst_id = dst->lxc_id;
	ret = enforce6(ctx, p, dst, CT_KEY_INGRESS, src_identity, &p->t.saddr, mono_now_sec(), ti,
		       &due, 0);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	if (ret > 0) {
		/* An L7 rule: this node's proxy takes the connection, as from_overlay_ipv4. */
		bpf_skb_change_type(ctx, 0 /* PACKET_HOST */);
		if (ret == ENFORCE_TO_PROXY_STACK) {
			proxy_set_mark(ctx, 0);
		} else {
			ret = proxy_assign6(ctx, p, (__u16)ret);
			if (ret < 0)
				return send_drop6(ctx, p, ti, ret);
		}
		count_forwarded(p->len, METRIC_INGRESS);
		emit_trace6(ctx, p, ti, TRACE_TO_PROXY, due);
		return TC_ACT_OK;
	}
	if (ti->rev_nat) {
		/* A reply from a remote backend of an IPv6 service this pod connected to. */
		ret = lb6_reverse(ctx, p, ti->rev_nat);
		if (ret < 0)
			return send_drop6(ctx, p, ti, ret);
	}
	ret = local_delivery6(ctx, dst);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	count_forwarded(p->len, METRIC_INGRESS);
	emit_trace6(ctx, p, ti, TRACE_TO_LXC, due);
	return ret;
}

/*
 * The sender's identity from VNI `vni`, for both families: 0 when it is nobody's (never let it
 * reach the policy as "any"); another node's host is remote-node, "host" is this node only.
 */
static __always_inline __u32 overlay_identity(__u32 vni)
{
	if (vni == IDENTITY_HOST)
		return IDENTITY_REMOTE_NODE;
	return vni;
}

/*
 * An IPv6 frame from the overlay with VNI `vni`. A function of its own (a BPF-to-BPF call) with
 * its struct pkt6 off the stack (lib/pkt6.h): the IPv6 path does not fit in one 512-byte frame
 * with the IPv4 one.
 */
static __noinline int from_overlay6(struct __sk_buff *ctx, __u32 vni, struct trace_info *ti)
{
	struct pkt6 *p = pkt6_scratch();
	int ret;

	if (!p)
		return TC_ACT_SHOT; /* index 0 of an array: never */
	ret = pkt_parse6(ctx, p);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	ti->src_identity = overlay_identity(vni);
	if (ti->src_identity == IDENTITY_UNKNOWN)
		return send_drop6(ctx, p, ti, -DROP_INVALID_IDENTITY);
	return from_overlay_ipv6(ctx, p, ti->src_identity, ti);
}

/* An IPv4 (or unknown) frame from the overlay with VNI `vni`; a BPF-to-BPF call as from_overlay6. */
static __noinline int from_overlay4(struct __sk_buff *ctx, __u32 vni, struct trace_info *ti)
{
	struct pkt4 p = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	int ret;

	p.len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth))
		return send_drop(ctx, &p, ti, -DROP_INVALID);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		/* Unenforced traffic never passes. */
		return send_drop(ctx, &p, ti, -DROP_UNKNOWN_L3);
	ret = pkt_parse4(ctx, &p, &ip);
	if (ret < 0)
		return send_drop(ctx, &p, ti, ret);
	ti->src_identity = overlay_identity(vni);
	if (ti->src_identity == IDENTITY_UNKNOWN)
		return send_drop(ctx, &p, ti, -DROP_INVALID_IDENTITY);
	return from_overlay_ipv4(ctx, &p, ti->src_identity, ti);
}

/* The entry point only reads the VNI and picks the family: each path has a frame of its own. */
SEC("tc")
int cil_from_overlay(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	struct bpf_tunnel_key key = {};
	struct ethhdr *eth;

	pkt_pull(ctx);
	/* Without the VNI there is no sender identity to enforce policy with. */
	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) < 0) {
		struct pkt4 p = {.len = ctx_load_u32(ctx, len)};

		return send_drop(ctx, &p, &ti, -DROP_NO_TUNNEL_KEY);
	}
	ti.src_identity = key.tunnel_id;
	if (eth_ok(ctx, &eth) && eth->h_proto == bpf_htons(ETH_P_IPV6))
		return from_overlay6(ctx, key.tunnel_id, &ti);
	return from_overlay4(ctx, key.tunnel_id, &ti);
}

/*
 * The node's own packets to other nodes' pods: the agent routes each remote pod CIDR through
 * cilium_host (docs/datapath.md), and here they are encapsulated towards the node the ipcache
 * names, as bpf_lxc does for pods. The VNI is host, or the identity of the local pod whose address
 * the packet carries (the L7 proxy sends on a pod's behalf with the pod's address). Anything
 * without a tunnel endpoint goes on to cilium_net, where nothing listens: the agent routes only
 * remote pod CIDRs here. One function per family, as cil_from_overlay.
 */
static __noinline int from_host4(struct __sk_buff *ctx, struct trace_info *ti)
{
	const struct remote_endpoint_info *tunnel;
	const struct endpoint_info *src;
	struct pkt4 p = {.len = ctx_load_u32(ctx, len)};
	struct iphdr *ip;
	__u32 tunnel_ifindex;
	int ret;

	ret = pkt_parse4(ctx, &p, &ip);
	if (ret < 0)
		return send_drop(ctx, &p, ti, ret);
	tunnel_ifindex = encap_ifindex();
	tunnel = encap_lookup4(p.t.daddr, tunnel_ifindex);
	if (!tunnel)
		return TC_ACT_OK;
	src = endpoint_by_ipv4(p.t.saddr);
	if (src && !(src->flags & ENDPOINT_F_HOST) && src->sec_id)
		ti->src_identity = src->sec_id;
	ti->dst_identity = tunnel->sec_identity;
	ret = encap_and_redirect4(ctx, tunnel->tunnel_endpoint.ip4, ti->src_identity, tunnel_ifindex);
	if (ret < 0)
		return send_drop(ctx, &p, ti, ret);
	count_forwarded(p.len, METRIC_EGRESS);
	emit_trace(ctx, &p, ti, TRACE_TO_OVERLAY, false);
	return ret;
}

/* from_host4 for IPv6 (inner IPv6 over the IPv4 underlay), its struct pkt6 off the stack. */
static __noinline int from_host6(struct __sk_buff *ctx, struct trace_info *ti)
{
	const struct remote_endpoint_info *tunnel;
	const struct endpoint_info *src;
	struct pkt6 *p = pkt6_scratch();
	__u32 tunnel_ifindex;
	int ret;

	if (!p)
		return TC_ACT_SHOT; /* index 0 of an array: never */
	ret = pkt_parse6(ctx, p);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	tunnel_ifindex = encap_ifindex();
	tunnel = encap_lookup6(&p->t.daddr, tunnel_ifindex);
	if (!tunnel)
		return TC_ACT_OK;
	src = endpoint_by_ipv6(&p->t.saddr);
	if (src && !(src->flags & ENDPOINT_F_HOST) && src->sec_id)
		ti->src_identity = src->sec_id;
	ti->dst_identity = tunnel->sec_identity;
	ret = encap_and_redirect4(ctx, tunnel->tunnel_endpoint.ip4, ti->src_identity, tunnel_ifindex);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	count_forwarded(p->len, METRIC_EGRESS);
	emit_trace6(ctx, p, ti, TRACE_TO_OVERLAY, false);
	return ret;
}

SEC("tc")
int cil_from_host(struct __sk_buff *ctx)
{
	struct trace_info ti = {.src_identity = IDENTITY_HOST, .dir = METRIC_EGRESS};
	struct ethhdr *eth;

	pkt_pull(ctx);
	if (!eth_ok(ctx, &eth))
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return from_host4(ctx, &ti);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return from_host6(ctx, &ti);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
