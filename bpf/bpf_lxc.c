/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_lxc: the programs on the host side of each pod's veth, loaded once per node and shared by
 * every endpoint (each finds its endpoint in cilium_lxc_if by ifindex).
 *   cil_from_container: tcx ingress of lxc* (packets leaving the pod)
 *   cil_to_container:   tcx egress of lxc*  (packets the node's stack routes into the pod)
 *   cil_to_proxy:       tcx ingress of lo   (packets sent back in for an L7 proxy, lib/proxy.h)
 * Pods on other nodes are reached through the VXLAN overlay in tunnel mode (lib/encap.h); what
 * arrives from it is bpf_overlay.c's. IPv6 (dual-stack endpoints): neighbour discovery, policy,
 * per-packet service translation (lib/lb6_packet.h), L7 proxy redirection, delivery between
 * the pods of this node and, in tunnel mode, to other nodes' pods over the IPv4 underlay; other
 * IPv6 destinations go up the node's stack (native routing).
 * Packet walk: docs/datapath.md. This file only wires the stages in lib/ together.
 */
#define DROP_FILE DROP_FILE_BPF_LXC

#include "compiler.h"
#include "lib/arp.h"
#include "lib/config.h"
#include "lib/drop.h"
#include "lib/encap.h"
#include "lib/endpoint.h"
#include "lib/enforce.h"
#include "lib/enforce6.h"
#include "lib/eth.h"
#include "lib/events.h"
#include "lib/lb_hairpin.h"
#include "lib/lb_packet.h"
#include "lib/lb_reject.h"
#include "lib/lb_reverse.h"
#include "lib/lb6_packet.h"
#include "lib/local_delivery.h"
#include "lib/metrics.h"
#include "lib/ndp.h"
#include "lib/nodeport_reply.h"
#include "lib/pkt.h"
#include "lib/proxy.h"

/*
 * Into local pod `dst`, its ingress side done: the packet counts as leaving the sender and
 * entering `dst`. Also a hairpin packet (lib/lb_hairpin.h), back into the pod it came from.
 */
static __always_inline int deliver_to_pod(struct __sk_buff *ctx, struct pkt4 *p,
					  const struct endpoint_info *dst, struct trace_info *ti,
					  bool due)
{
	int ret = local_delivery4(ctx, dst);

	if (ret < 0)
		return send_drop(ctx, p, ti, ret);
	count_forwarded(p->len, METRIC_EGRESS);
	count_forwarded(p->len, METRIC_INGRESS);
	emit_trace(ctx, p, ti, TRACE_TO_LXC, due);
	return ret;
}

/* deliver_to_pod for IPv6. */
static __always_inline int deliver_to_pod6(struct __sk_buff *ctx, struct pkt6 *p,
					   const struct endpoint_info *dst, struct trace_info *ti,
					   bool due)
{
	int ret = local_delivery6(ctx, dst);

	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	count_forwarded(p->len, METRIC_EGRESS);
	count_forwarded(p->len, METRIC_INGRESS);
	emit_trace6(ctx, p, ti, TRACE_TO_LXC, due);
	return ret;
}

/*
 * To an L7 proxy on this node (`verdict` from enforce4: a proxy port, or ENFORCE_TO_PROXY_STACK
 * for a packet of a proxy's own connection): assigned to the proxy's socket and handed to the
 * node's stack, which delivers it locally (abi/proxy.h). Runs on tc ingress.
 */
static __always_inline int to_proxy(struct __sk_buff *ctx, struct pkt4 *p, struct trace_info *ti,
				    int verdict, bool due)
{
	int ret;

	if (verdict == ENFORCE_TO_PROXY_STACK) {
		proxy_set_mark(ctx, 0);
	} else {
		ret = proxy_assign4(ctx, p, (__u16)verdict);
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
	}
	count_forwarded(p->len, ti->dir);
	emit_trace(ctx, p, ti, TRACE_TO_PROXY, due);
	return TC_ACT_OK;
}

/* to_proxy for an IPv6 packet (the listener on [::1]:port). */
static __always_inline int to_proxy6(struct __sk_buff *ctx, struct pkt6 *p, struct trace_info *ti,
				     int verdict, bool due)
{
	int ret;

	if (verdict == ENFORCE_TO_PROXY_STACK) {
		proxy_set_mark(ctx, 0);
	} else {
		ret = proxy_assign6(ctx, p, (__u16)verdict);
		if (ret < 0)
			return send_drop6(ctx, p, ti, ret);
	}
	count_forwarded(p->len, ti->dir);
	emit_trace6(ctx, p, ti, TRACE_TO_PROXY, due);
	return TC_ACT_OK;
}

/*
 * A pod's IPv4 packet, source verified: the sender's egress side, then delivery. Like
 * from_container6, a function of its own: each family's path gets its own frame after
 * cil_from_container's (the verifier sums the frames of a call chain: 512 bytes at most).
 */
static __noinline int from_container_ipv4(struct __sk_buff *ctx,
					       const struct endpoint_info *ep, struct pkt4 *p,
					       struct trace_info *ti)
{
	const struct remote_endpoint_info *tunnel = NULL;
	const struct endpoint_info *dst;
	__u32 now = mono_now_sec();
	__u32 tunnel_ifindex;
	__u32 rev_nat = 0;
	bool due;
	int ret;

	/*
	 * A local destination's identity is in its endpoint entry, which delivery needs anyway:
	 * that spares the ipcache lookup. Others (sec_id 0 included) resolve through the ipcache.
	 * A pod address is never a service frontend, so pod-to-pod traffic skips the service
	 * lookup; anything else may be a frontend the socket layer did not translate.
	 */
	dst = endpoint_by_ipv4(p->t.daddr);
	if (!dst && p->t.daddr == cfg_lb_loopback_ipv4) {
		ret = lb4_hairpin_reply(ctx, p, ep, now, ti, &due);
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
		return deliver_to_pod(ctx, p, ep, ti, due);
	}
	if (!dst) {
		ret = lb4_egress(ctx, p, now, &rev_nat);
		if (ret == -DROP_NO_SERVICE) {
			/* Refused, not dropped silently; still reported as NO_SERVICE. */
			int verdict = lb4_reject(ctx, p, ep);

			send_drop(ctx, p, ti, -DROP_NO_SERVICE);
			return verdict < 0 ? TC_ACT_SHOT : verdict;
		}
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
		if (rev_nat && p->t.daddr == ep->ipv4) {
			ret = lb4_hairpin(ctx, p, ep, rev_nat, now, ti, &due);
			if (ret < 0)
				return send_drop(ctx, p, ti, ret);
			return deliver_to_pod(ctx, p, ep, ti, due);
		}
		if (rev_nat)
			dst = endpoint_by_ipv4(p->t.daddr);
	}
	/*
	 * A pod on another node, in tunnel mode: its ipcache entry (identity and node) decides
	 * both the egress verdict and the encapsulation.
	 */
	tunnel_ifindex = encap_ifindex();
	if (!dst)
		tunnel = encap_lookup4(p->t.daddr, tunnel_ifindex);
	ret = enforce4(ctx, p, ep, CT_KEY_EGRESS,
		       dst ? dst->sec_id : (tunnel ? tunnel->sec_identity : 0), p->t.daddr, now, ti,
		       &due, 0);
	if (ret < 0)
		return send_drop(ctx, p, ti, ret);
	if (rev_nat)
		lb4_ct_mark(p, rev_nat, now, CT_KEY_EGRESS);
	if (ret > 0)
		return to_proxy(ctx, p, ti, ret, due);
	emit_trace(ctx, p, ti, TRACE_FROM_LXC, due);

	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		/* A local pod: its ingress side runs here, on its behalf. */
		struct trace_info dti = {
		    .src_identity = ep->sec_id,
		    .dst_identity = dst->sec_id,
		    .source = dst->lxc_id,
		    .dst_id = dst->lxc_id,
		    .dir = METRIC_INGRESS,
		};

		ret = enforce4(ctx, p, dst, CT_KEY_INGRESS, ep->sec_id, 0, now, &dti, &due, 0);
		if (ret < 0)
			return send_drop(ctx, p, &dti, ret);
		if (ret > 0) {
			/* It left the sender; the proxy stands in for the receiver now. */
			count_forwarded(p->len, METRIC_EGRESS);
			return to_proxy(ctx, p, &dti, ret, due);
		}
		if (dti.rev_nat) {
			ret = lb4_reverse(ctx, p, dti.rev_nat);
			if (ret < 0)
				return send_drop(ctx, p, &dti, ret);
		}
		return deliver_to_pod(ctx, p, dst, &dti, due);
	}

	if (tunnel) {
		/*
		 * A backend's reply to a pod of another node that came through this node's
		 * NodePort: from the frontend, as the device would have sent it.
		 */
		ret = nodeport_reply(ctx, p, now);
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
		/* To the other node, carrying the sender's identity in the VNI. */
		ret = encap_and_redirect4(ctx, tunnel->tunnel_endpoint.ip4, ep->sec_id,
					  tunnel_ifindex);
		if (ret < 0)
			return send_drop(ctx, p, ti, ret);
		count_forwarded(p->len, METRIC_EGRESS);
		emit_trace(ctx, p, ti, TRACE_TO_OVERLAY, due);
		return ret;
	}

	count_forwarded(p->len, METRIC_EGRESS);
	emit_trace(ctx, p, ti, TRACE_TO_STACK, due);
	return TC_ACT_OK;
}

/* A pod's IPv6 packet, source verified: the sender's egress side, then delivery. */
static __always_inline int from_container_ipv6(struct __sk_buff *ctx,
					       const struct endpoint_info *ep, struct pkt6 *p,
					       struct trace_info *ti)
{
	const struct endpoint_info *dst = endpoint_by_ipv6(&p->t.daddr);
	const struct remote_endpoint_info *tunnel = NULL;
	__u32 now = mono_now_sec();
	__u32 rev_nat = 0;
	__u32 tunnel_ifindex;
	bool due;
	int ret;

	/* As for IPv4: a pod address is never a frontend; hairpin through the loopback address. */
	if (!dst) {
		union v4v6_addr loopback = lb_loopback6();

		if (ipv6_addr_equal(&p->t.daddr, &loopback)) {
			ret = lb6_hairpin_reply(ctx, p, ep, now, ti, &due);
			if (ret < 0)
				return send_drop6(ctx, p, ti, ret);
			return deliver_to_pod6(ctx, p, ep, ti, due);
		}
		ret = lb6_egress(ctx, p, now, &rev_nat);
		if (ret == -DROP_NO_SERVICE) {
			/* Refused with ICMPv6 port unreachable; still reported as NO_SERVICE. */
			int verdict = lb6_reject(ctx, p, ep);

			send_drop6(ctx, p, ti, -DROP_NO_SERVICE);
			return verdict < 0 ? TC_ACT_SHOT : verdict;
		}
		if (ret < 0)
			return send_drop6(ctx, p, ti, ret);
		if (rev_nat && ipv6_addr_equal(&p->t.daddr, (const union v4v6_addr *)ep->ipv6)) {
			ret = lb6_hairpin(ctx, p, ep, rev_nat, now, ti, &due);
			if (ret < 0)
				return send_drop6(ctx, p, ti, ret);
			return deliver_to_pod6(ctx, p, ep, ti, due);
		}
		if (rev_nat)
			dst = endpoint_by_ipv6(&p->t.daddr);
	}
	/* A pod on another node, in tunnel mode: as for IPv4, over the IPv4 underlay. */
	tunnel_ifindex = encap_ifindex();
	if (!dst)
		tunnel = encap_lookup6(&p->t.daddr, tunnel_ifindex);
	ret = enforce6(ctx, p, ep, CT_KEY_EGRESS,
		       dst ? dst->sec_id : (tunnel ? tunnel->sec_identity : 0), &p->t.daddr, now,
		       ti, &due, 0);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	if (rev_nat)
		lb6_ct_mark(p, rev_nat, now, CT_KEY_EGRESS);
	if (ret > 0)
		return to_proxy6(ctx, p, ti, ret, due);
	emit_trace6(ctx, p, ti, TRACE_FROM_LXC, due);

	if (dst && !(dst->flags & ENDPOINT_F_HOST)) {
		/* A local pod: its ingress side runs here, on its behalf. */
		struct trace_info dti = {
		    .src_identity = ep->sec_id,
		    .dst_identity = dst->sec_id,
		    .source = dst->lxc_id,
		    .dst_id = dst->lxc_id,
		    .dir = METRIC_INGRESS,
		};

		ret = enforce6(ctx, p, dst, CT_KEY_INGRESS, ep->sec_id, &p->t.saddr, now, &dti,
			       &due, 0);
		if (ret < 0)
			return send_drop6(ctx, p, &dti, ret);
		if (ret > 0) {
			/* It left the sender; the proxy stands in for the receiver now. */
			count_forwarded(p->len, METRIC_EGRESS);
			return to_proxy6(ctx, p, &dti, ret, due);
		}
		if (dti.rev_nat) {
			ret = lb6_reverse(ctx, p, dti.rev_nat);
			if (ret < 0)
				return send_drop6(ctx, p, &dti, ret);
		}
		return deliver_to_pod6(ctx, p, dst, &dti, due);
	}
	if (tunnel) {
		/* To the other node, carrying the sender's identity in the VNI. */
		ret = encap_and_redirect4(ctx, tunnel->tunnel_endpoint.ip4, ep->sec_id,
					  tunnel_ifindex);
		if (ret < 0)
			return send_drop6(ctx, p, ti, ret);
		count_forwarded(p->len, METRIC_EGRESS);
		emit_trace6(ctx, p, ti, TRACE_TO_OVERLAY, due);
		return ret;
	}
	count_forwarded(p->len, METRIC_EGRESS);
	emit_trace6(ctx, p, ti, TRACE_TO_STACK, due);
	return TC_ACT_OK;
}

/*
 * An IPv6 frame from dual-stack endpoint `ep`: neighbour discovery, or a verified packet. A
 * function of its own (a BPF-to-BPF call): the IPv6 path with its service translation and the
 * IPv4 path do not fit together in one 512-byte frame.
 */
static __noinline int from_container6(struct __sk_buff *ctx, const struct endpoint_info *ep,
					   struct trace_info *ti)
{
	/* Off the stack: this program holds both families' paths (lib/pkt6.h). */
	struct pkt6 *p = pkt6_scratch();
	int ret;

	if (!p)
		return TC_ACT_SHOT; /* index 0 of an array: never */
	ret = pkt_parse6(ctx, p);
	if (ret < 0)
		return send_drop6(ctx, p, ti, ret);
	if (p->t.proto == IPPROTO_ICMPV6_ && icmp6_is_pod_link_control(p->icmp_type)) {
		count_forwarded(p->len, METRIC_EGRESS);
		if (p->icmp_type == ICMPV6_NEIGH_SOLICIT && ndp_respond(ctx, ep) == ND_REPLIED)
			return bpf_redirect(ctx_load_u32(ctx, ifindex), 0);
		return TC_ACT_OK;
	}
	if (!ipv6_addr_equal(&p->t.saddr, (const union v4v6_addr *)ep->ipv6))
		return send_drop6(ctx, p, ti, -DROP_INVALID_SIP);
	return from_container_ipv6(ctx, ep, p, ti);
}

/* An IPv6 frame the node's stack routes into dual-stack endpoint `ep`. */
static __always_inline int to_container6(struct __sk_buff *ctx, const struct endpoint_info *ep,
					 struct trace_info *ti)
{
	struct pkt6 p = {};
	__u32 from_proxy;
	bool due;
	int ret;

	ret = pkt_parse6(ctx, &p);
	if (ret < 0)
		return send_drop6(ctx, &p, ti, ret);
	if (p.t.proto == IPPROTO_ICMPV6_ && icmp6_is_link_control(p.icmp_type)) {
		/* The node resolving the pod, and the responder's own advertisements. */
		count_forwarded(p.len, METRIC_INGRESS);
		return TC_ACT_OK;
	}
	/* As cil_to_container for IPv4: the proxies' packets, and those for a proxy (lo hairpin).
	 */
	from_proxy = proxy_mark_magic(ctx);
	ret = enforce6(ctx, &p, ep, CT_KEY_INGRESS,
		       from_proxy ? proxy_mark_identity(ctx_load_u32(ctx, mark)) : 0, &p.t.saddr,
		       mono_now_sec(), ti, &due, from_proxy);
	if (ret < 0)
		return send_drop6(ctx, &p, ti, ret);
	if (proxy_hairpin_due(ret, p.t.proto, p.tcp_flags)) {
		ret = proxy_hairpin(ctx, ret == ENFORCE_TO_PROXY_STACK ? 0 : (__u16)ret);
		if (ret < 0)
			return send_drop6(ctx, &p, ti, ret);
		count_forwarded(p.len, METRIC_INGRESS);
		emit_trace6(ctx, &p, ti, TRACE_TO_PROXY, due);
		return ret;
	}
	if (ti->rev_nat) {
		ret = lb6_reverse(ctx, &p, ti->rev_nat);
		if (ret < 0)
			return send_drop6(ctx, &p, ti, ret);
	}
	count_forwarded(p.len, METRIC_INGRESS);
	emit_trace6(ctx, &p, ti, TRACE_TO_LXC, due);
	return TC_ACT_OK;
}

/* Whether `ep` has an IPv6 address: endpoints of an IPv4-only agent have none. */
static __always_inline bool endpoint_has_ipv6(const struct endpoint_info *ep)
{
	return !ipv6_addr_is_zero((const union v4v6_addr *)ep->ipv6);
}

SEC("tc")
int cil_from_container(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_EGRESS};
	const struct endpoint_info *ep;
	struct pkt4 p = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	int ret;

	pkt_pull(ctx);
	p.len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth))
		return send_drop(ctx, &p, &ti, -DROP_INVALID);
	ep = endpoint_by_ifindex(ctx_load_u32(ctx, ifindex));
	if (ep) {
		ti.source = ep->lxc_id;
		ti.src_identity = ep->sec_id;
	}

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		break;
	case bpf_htons(ETH_P_ARP):
		if (!ep)
			return send_drop(ctx, &p, &ti, -DROP_EP_NOT_READY);
		count_forwarded(p.len, METRIC_EGRESS);
		if (arp_respond(ctx, ep) == ARP_REPLIED)
			return bpf_redirect(ctx_load_u32(ctx, ifindex), 0);
		return TC_ACT_OK;
	case bpf_htons(ETH_P_IPV6):
		if (ep && endpoint_has_ipv6(ep))
			return from_container6(ctx, ep, &ti);
		/* IPv6 from an endpoint without an IPv6 address: never unenforced. */
		return send_drop_not_ip4(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	default:
		return send_drop_not_ip4(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	}

	ret = pkt_parse4(ctx, &p, &ip);
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	if (!ep)
		return send_drop(ctx, &p, &ti, -DROP_EP_NOT_READY);
	/* IPv4 from an endpoint without an IPv4 address (IPv6-only agent): never unenforced. */
	if (!ep->ipv4)
		return send_drop(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	if (p.t.saddr != ep->ipv4)
		return send_drop(ctx, &p, &ti, -DROP_INVALID_SIP);
	return from_container_ipv4(ctx, ep, &p, &ti);
}

SEC("tc")
int cil_to_container(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	const struct endpoint_info *ep;
	struct pkt4 p = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 from_proxy;
	bool due;
	int ret;

	pkt_pull(ctx);
	p.len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth))
		return send_drop(ctx, &p, &ti, -DROP_INVALID);
	ep = endpoint_by_ifindex(ctx_load_u32(ctx, ifindex));
	if (ep) {
		ti.source = ep->lxc_id;
		ti.dst_identity = ep->sec_id;
		ti.dst_id = ep->lxc_id;
	}

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		break;
	case bpf_htons(ETH_P_ARP):
		/* The node resolving the pod, and the responder's own replies. */
		count_forwarded(p.len, METRIC_INGRESS);
		return TC_ACT_OK;
	case bpf_htons(ETH_P_IPV6):
		if (ep && endpoint_has_ipv6(ep))
			return to_container6(ctx, ep, &ti);
		return send_drop_not_ip4(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	default:
		return send_drop_not_ip4(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	}

	ret = pkt_parse4(ctx, &p, &ip);
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	if (!ep)
		return send_drop(ctx, &p, &ti, -DROP_EP_NOT_READY);
	if (!ep->ipv4)
		return send_drop(ctx, &p, &ti, -DROP_UNKNOWN_L3);
	/* Packets of the L7 proxies carry their mark, with the sender's identity (abi/proxy.h). */
	from_proxy = proxy_mark_magic(ctx);
	ret = enforce4(ctx, &p, ep, CT_KEY_INGRESS,
		       from_proxy ? proxy_mark_identity(ctx_load_u32(ctx, mark)) : 0, p.t.saddr,
		       mono_now_sec(), &ti, &due, from_proxy);
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	/*
	 * For a proxy, met on tc egress: back in through lo. A RST the stack sends for a proxy's
	 * connection without a socket (the proxy is gone) is the pod's to see.
	 */
	if (proxy_hairpin_due(ret, p.t.proto, p.tcp_flags)) {
		ret = proxy_hairpin(ctx, ret == ENFORCE_TO_PROXY_STACK ? 0 : (__u16)ret);
		if (ret < 0)
			return send_drop(ctx, &p, &ti, ret);
		count_forwarded(p.len, METRIC_INGRESS);
		emit_trace(ctx, &p, &ti, TRACE_TO_PROXY, due);
		return ret;
	}
	if (ti.rev_nat) {
		ret = lb4_reverse(ctx, &p, ti.rev_nat);
		if (ret < 0)
			return send_drop(ctx, &p, &ti, ret);
	}
	count_forwarded(p.len, METRIC_INGRESS);
	emit_trace(ctx, &p, &ti, TRACE_TO_LXC, due);
	return TC_ACT_OK;
}

/*
 * tcx ingress of lo: packets a cil_to_container hairpinned for an L7 proxy (proxy_hairpin) get
 * their socket here, where assignment is possible, IPv4 or IPv6. Everything else on lo passes
 * untouched.
 */
SEC("tc")
int cil_to_proxy(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	__u32 mark = ctx_load_u32(ctx, mark);
	struct pkt4 p = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	int ret;

	if ((mark & MARK_MAGIC_HOST_MASK) != MARK_MAGIC_TO_PROXY || !(mark >> 16))
		return TC_ACT_OK;
	pkt_pull(ctx);
	p.len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth))
		return send_drop(ctx, &p, &ti, -DROP_INVALID);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct pkt6 p6 = {.len = p.len};

		ret = pkt_parse6(ctx, &p6);
		if (ret == 0)
			ret = proxy_assign6(ctx, &p6, (__u16)(mark >> 16));
		if (ret < 0)
			return send_drop6(ctx, &p6, &ti, ret);
		return TC_ACT_OK;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return send_drop(ctx, &p, &ti, -DROP_INVALID);
	ret = pkt_parse4(ctx, &p, &ip);
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	ret = proxy_assign4(ctx, &p, (__u16)(mark >> 16));
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
