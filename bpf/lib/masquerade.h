/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * BPF masquerade (enable-bpf-masquerade) on the native devices (bpf_host.c): a local pod's
 * connection to a destination outside the cluster leaves with the device's address
 * (cilium_node_dev4) and a node port, and its replies are translated back before they reach
 * the stack or the pod.
 *
 * Egress (cil_to_netdev), a packet whose source is a local pod is masqueraded unless
 *   - its destination is in cilium_ipmasq_v4 (the pod CIDR or ipv4-native-routing-cidr, and the
 *     non-masquerade CIDRs the agent writes there),
 *   - its destination is a local endpoint or, in native routing, a remote node,
 *   - it answers a connection from outside (the pod's CT_KEY_INGRESS entry of the reverse tuple).
 * TCP, UDP and ICMP echo (the identifier as the port) are translated; any other protocol that
 * needs masquerading drops with DROP_NAT_UNSUPP_PROTO, and a connection without a free node port
 * with DROP_NAT_NO_MAPPING: a pod's address never leaves untranslated by accident.
 * Ingress (cil_from_netdev): a packet to a node port whose reverse entry is NAT_F_MASQ gets the
 * pod's address and port back and goes to the egress of the pod's veth, where bpf_lxc sees the
 * reply of the pod's connection. ICMP errors quoting a masqueraded connection are translated both
 * ways (lib/icmp4.h), so path MTU discovery and unreachables work.
 * IPv6 (enable-ipv6-masquerade, cfg_enable_bpf_masquerade6) has the same stages on its own maps
 * (cilium_ipmasq_v6, cilium_snat_v6_external, cilium_node_dev6) at the end of this file, sharing
 * the protocol decisions and the node-port allocator with IPv4; its rewrites are
 * lib/nat6_xlate.h's.
 * Node ports and their lifetime: lib/nodeport_snat.h, abi/nat.h.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/identity.h"
#include "abi/nat.h"
#include "lib/config.h"
#include "lib/conntrack.h"
#include "lib/conntrack6.h"
#include "lib/encap.h"
#include "lib/endpoint.h"
#include "lib/icmp4.h"
#include "lib/ipcache.h"
#include "lib/ipv4.h"
#include "lib/lb_xlate.h"
#include "lib/nat6_xlate.h"
#include "lib/nodeport_fwd.h"
#include "lib/nodeport_snat.h"
#include "lib/pkt.h"
#include "lib/pkt6.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipmasq_key4);
	__type(value, __u8);
	__uint(max_entries, CILIUM_IPMASQ_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_ipmasq_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipmasq_key6);
	__type(value, __u8);
	__uint(max_entries, CILIUM_IPMASQ_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_ipmasq_v6 SEC(".maps");

/*
 * What masquerade does with a pod's packet to the outside, by protocol, for both families (the
 * ICMP protocol and its echo types are the family's): 1 translate, 0 leave (an echo reply
 * answers a ping from outside), -DROP_NAT_UNSUPP_PROTO for anything it cannot translate.
 */
static __always_inline int masq_egress_verdict(__u8 proto, __u8 icmp_type, __u8 icmp_proto,
					       __u8 echo_request, __u8 echo_reply)
{
	if (proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_)
		return 1;
	if (proto == icmp_proto && icmp_type == echo_reply)
		return 0;
	if (proto == icmp_proto && icmp_type == echo_request)
		return 1;
	return -DROP_NAT_UNSUPP_PROTO;
}

/* Whether a packet from outside may be the reply of a masqueraded connection, by protocol. */
static __always_inline bool masq_ingress_candidate(__u8 proto, __u8 icmp_type, __u8 icmp_proto,
						   __u8 echo_reply, __be16 dport)
{
	if (proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_ &&
	    !(proto == icmp_proto && icmp_type == echo_reply))
		return false;
	return bpf_ntohs(dport) >= NAT_PORT_MIN;
}

/*
 * Rewrites the source (dst = false) or destination address and the identifier of an ICMP echo
 * message. The ICMP checksum covers no pseudo-header: only the identifier changes it.
 */
static __always_inline int masq_icmp_echo_rewrite(struct __sk_buff *ctx, bool dst, __be32 old_addr,
						  __be32 new_addr, __be16 old_id, __be16 new_id)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u32 icmp_off;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	icmp_off = ETH_HLEN + ipv4_hdrlen(ip);
	if (old_id != new_id) {
		if (bpf_l4_csum_replace(ctx, icmp_off + 2, old_id, new_id, sizeof(new_id)) < 0)
			return -DROP_CSUM_L4;
		if (bpf_skb_store_bytes(ctx, icmp_off + 4, &new_id, sizeof(new_id), 0) < 0)
			return -DROP_WRITE_ERROR;
	}
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, old_addr, new_addr,
				sizeof(new_addr)) < 0)
		return -DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + (dst ? IP_OFF_DADDR : IP_OFF_SADDR), &new_addr,
				sizeof(new_addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/* The source or destination rewrite of a masqueraded TCP/UDP packet or ICMP echo message. */
static __always_inline int masq_rewrite(struct __sk_buff *ctx, __u8 proto, bool dst,
					__be32 old_addr, __be32 new_addr, __be16 old_port,
					__be16 new_port)
{
	if (proto == IPPROTO_ICMP_)
		return masq_icmp_echo_rewrite(ctx, dst, old_addr, new_addr, old_port, new_port);
	return lb4_rewrite(ctx, proto, dst, old_addr, new_addr, old_port, new_port);
}

/* Whether destination `daddr` is outside the non-masquerade set and the cluster. */
static __always_inline bool masq_destination_outside(__be32 daddr)
{
	struct ipmasq_key4 key = {
	    .prefixlen = 32,
	    .addr = daddr,
	};
	const struct remote_endpoint_info *info;

	if (bpf_map_lookup_elem(&cilium_ipmasq_v4, &key))
		return false;
	if (endpoint_by_ipv4(daddr))
		return false;
	info = ipcache_lookup4(daddr);
	/*
	 * In native routing a remote node takes the pod's address as it is (Cilium's rule); in
	 * tunnel mode a packet to a node leaves unencapsulated and is masqueraded.
	 */
	if (info && info->sec_identity == IDENTITY_REMOTE_NODE && !encap_ifindex())
		return false;
	return true;
}

/* Whether a packet bpf_host cannot parse (a fragment) is a pod's that needs masquerading. */
static __always_inline bool masq_untranslatable(const struct pkt4 *p)
{
	const struct endpoint_info *src;

	if (!cfg_enable_bpf_masquerade)
		return false;
	src = endpoint_by_ipv4(p->t.saddr);
	return src && !(src->flags & ENDPOINT_F_HOST) && masq_destination_outside(p->t.daddr);
}

/*
 * Egress of a native device: masquerades a local pod's packet to the outside (not an ICMP error;
 * masq_icmp_egress). Returns 0 (translated or left alone) or -DROP_x.
 */
static __always_inline int masq_egress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now)
{
	const struct endpoint_info *src;
	const struct node_dev4 *dev;
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
	    .sport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	struct nat4_entry back = {
	    .to_addr = p->t.saddr,
	    .to_port = p->t.sport,
	    .flags = NAT_F_MASQ,
	    .created = now,
	};
	struct nat4_entry out = {
	    .flags = NAT_F_MASQ,
	    .created = now,
	};
	__be16 node_port = 0;
	__u32 ifindex;
	bool established;
	int ret;

	if (!cfg_enable_bpf_masquerade)
		return 0;
	src = endpoint_by_ipv4(p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	if (!masq_destination_outside(p->t.daddr))
		return 0;
	/* A reply to a connection from outside keeps the pod's address (it was reached by it). */
	if (ct_find(lb4_ct_map(p->t.proto), &p->t, true, CT_KEY_INGRESS, now))
		return 0;
	ret = masq_egress_verdict(p->t.proto, p->icmp_type, IPPROTO_ICMP_, ICMP_ECHO,
				  ICMP_ECHOREPLY);
	if (ret <= 0)
		return ret;

	ifindex = ctx_load_u32(ctx, ifindex);
	dev = bpf_map_lookup_elem(&cilium_node_dev4, &ifindex);
	if (!dev || !dev->address)
		return -DROP_NAT_NO_MAPPING;
	out.to_addr = dev->address;
	rev.daddr = dev->address;
	established = p->t.proto == IPPROTO_TCP_ &&
		      (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;
	ret = nat4_snat_port(&fwd, &rev, &back, &out, established, now, &node_port);
	if (ret < 0)
		return ret;
	ret = masq_rewrite(ctx, p->t.proto, false, p->t.saddr, out.to_addr, p->t.sport, node_port);
	if (ret < 0)
		return ret;
	p->t.saddr = out.to_addr;
	p->t.sport = node_port;
	return 0;
}

/*
 * Ingress of a native device: a reply to a masqueraded connection goes back to the pod. Returns
 * the tc verdict (a redirect), TC_ACT_OK when the packet is no such reply, or -DROP_x.
 */
static __always_inline int masq_ingress(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct nat4_key key = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	const struct endpoint_info *dst;
	struct nat4_entry *e;
	__be32 to_addr;
	__be16 to_port;
	int ret;

	if (!masq_ingress_candidate(p->t.proto, p->icmp_type, IPPROTO_ICMP_, ICMP_ECHOREPLY,
				    p->t.dport))
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return TC_ACT_OK;
	to_addr = e->to_addr;
	to_port = e->to_port;
	dst = endpoint_by_ipv4(to_addr);
	if (!dst || (dst->flags & ENDPOINT_F_HOST))
		return -DROP_NAT_NO_MAPPING; /* the pod is gone */
	ret = masq_rewrite(ctx, p->t.proto, true, p->t.daddr, to_addr, p->t.dport, to_port);
	if (ret < 0)
		return ret;
	p->t.daddr = to_addr;
	p->t.dport = to_port;
	return nodeport_deliver_local(ctx, dst);
}

/*
 * Ingress of a native device: an ICMP error (p->related) about a masqueraded connection, whose
 * quote is the packet the node sent {node:np -> remote:rp}, goes to the pod with quote
 * {pod:pp -> remote:rp}. Returns the tc verdict, TC_ACT_OK for another error, or -DROP_x.
 */
static __always_inline int masq_icmp_ingress(struct __sk_buff *ctx, struct pkt4 *p)
{
	const struct tuple4 q = p->inner;
	struct nat4_key key = {
	    .saddr = q.daddr,
	    .daddr = q.saddr,
	    .sport = q.dport,
	    .dport = q.sport,
	    .proto = q.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	const struct endpoint_info *dst;
	struct nat4_entry *e;
	__be32 pod;
	__be16 pod_port;
	int ret;

	if (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_)
		return TC_ACT_OK;
	if (bpf_ntohs(q.sport) < NAT_PORT_MIN)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return TC_ACT_OK;
	pod = e->to_addr;
	pod_port = e->to_port;
	dst = endpoint_by_ipv4(pod);
	if (!dst || (dst->flags & ENDPOINT_F_HOST))
		return -DROP_NAT_NO_MAPPING;
	ret = icmp4_error_rewrite(ctx, p->t.saddr, pod, pod, pod_port, q.daddr, q.dport);
	if (ret < 0)
		return ret;
	p->t.daddr = pod;
	return nodeport_deliver_local(ctx, dst);
}

/*
 * Egress of a native device: an ICMP error a local pod sends about a masqueraded connection
 * (quote {remote:rp -> pod:pp}) leaves from the node, quoting {remote:rp -> node:np}. Returns 0
 * or -DROP_x.
 */
static __always_inline int masq_icmp_egress(struct __sk_buff *ctx, struct pkt4 *p)
{
	const struct tuple4 q = p->inner;
	struct nat4_key key = {
	    .saddr = q.daddr,
	    .daddr = q.saddr,
	    .sport = q.dport,
	    .dport = q.sport,
	    .proto = q.proto,
	    .dir = NAT_DIR_EGRESS,
	};
	struct nat4_entry *e;
	__be32 node_addr;
	int ret;

	if (!cfg_enable_bpf_masquerade || (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_))
		return 0;
	e = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return 0;
	node_addr = e->to_addr;
	ret = icmp4_error_rewrite(ctx, node_addr, p->t.daddr, q.saddr, q.sport, node_addr,
				  e->to_port);
	if (ret < 0)
		return ret;
	p->t.saddr = node_addr;
	return 0;
}

/*
 * IPv6 (enable-ipv6-masquerade): the same stages on cilium_snat_v6_external, cilium_node_dev6 and
 * cilium_ipmasq_v6, ICMPv6 echo with the identifier as the port, ICMPv6 errors (destination
 * unreachable, packet too big, time exceeded, parameter problem) about a masqueraded TCP/UDP
 * connection translated both ways (lib/nat6_xlate.h).
 */

/* masq_destination_outside() for IPv6. */
static __always_inline bool masq_destination_outside6(const union v4v6_addr *daddr)
{
	struct ipmasq_key6 key = {
	    .prefixlen = 128,
	    .addr = *daddr,
	};
	const struct remote_endpoint_info *info;

	if (bpf_map_lookup_elem(&cilium_ipmasq_v6, &key))
		return false;
	if (endpoint_by_ipv6(daddr))
		return false;
	info = ipcache_lookup6(daddr);
	if (info && info->sec_identity == IDENTITY_REMOTE_NODE && !encap_ifindex())
		return false;
	return true;
}

/* masq_untranslatable() for IPv6: a pod's fragment (or unparsable packet) bound outside. */
static __always_inline bool masq_untranslatable6(const struct pkt6 *p)
{
	const struct endpoint_info *src;

	if (!cfg_enable_bpf_masquerade6)
		return false;
	src = endpoint_by_ipv6(&p->t.saddr);
	return src && !(src->flags & ENDPOINT_F_HOST) && masq_destination_outside6(&p->t.daddr);
}

/* masq_egress() for IPv6. */
static __always_inline int masq_egress6(struct __sk_buff *ctx, struct pkt6 *p, __u32 now)
{
	const struct endpoint_info *src;
	const struct node_dev6 *dev;
	struct nat6_key fwd = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_EGRESS,
	};
	struct nat6_key rev = {
	    .saddr = p->t.daddr,
	    .sport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	struct nat6_entry back = {
	    .to_addr = p->t.saddr,
	    .to_port = p->t.sport,
	    .flags = NAT_F_MASQ,
	    .created = now,
	};
	struct nat6_entry out = {
	    .flags = NAT_F_MASQ,
	    .created = now,
	};
	void *ct_map = p->t.proto == IPPROTO_TCP_ ? (void *)&cilium_ct6_global
						  : (void *)&cilium_ct_any6_global;
	__be16 node_port = 0;
	__u32 ifindex;
	bool established;
	int ret;

	if (!cfg_enable_bpf_masquerade6)
		return 0;
	src = endpoint_by_ipv6(&p->t.saddr);
	if (!src || (src->flags & ENDPOINT_F_HOST))
		return 0;
	if (!masq_destination_outside6(&p->t.daddr))
		return 0;
	if (ct_find6(ct_map, &p->t, true, CT_KEY_INGRESS, now))
		return 0;
	ret = masq_egress_verdict(p->t.proto, p->icmp_type, IPPROTO_ICMPV6_, ICMPV6_ECHO_REQUEST,
				  ICMPV6_ECHO_REPLY);
	if (ret <= 0)
		return ret;

	ifindex = ctx_load_u32(ctx, ifindex);
	dev = bpf_map_lookup_elem(&cilium_node_dev6, &ifindex);
	if (!dev || ipv6_addr_is_zero(&dev->address))
		return -DROP_NAT_NO_MAPPING;
	out.to_addr = dev->address;
	rev.daddr = dev->address;
	established = p->t.proto == IPPROTO_TCP_ &&
		      (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;
	ret = nat6_snat_port(&fwd, &rev, &back, &out, established, now, &node_port);
	if (ret < 0)
		return ret;
	ret = l4_rewrite6(ctx, p->t.proto, false, &p->t.saddr, &out.to_addr, p->t.sport,
			  node_port);
	if (ret < 0)
		return ret;
	p->t.saddr = out.to_addr;
	p->t.sport = node_port;
	return 0;
}

/* masq_ingress() for IPv6. */
static __always_inline int masq_ingress6(struct __sk_buff *ctx, struct pkt6 *p)
{
	struct nat6_key key = {
	    .saddr = p->t.saddr,
	    .daddr = p->t.daddr,
	    .sport = p->t.sport,
	    .dport = p->t.dport,
	    .proto = p->t.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	const struct endpoint_info *dst;
	struct nat6_entry *e;
	union v4v6_addr to_addr;
	__be16 to_port;
	int ret;

	if (!masq_ingress_candidate(p->t.proto, p->icmp_type, IPPROTO_ICMPV6_, ICMPV6_ECHO_REPLY,
				    p->t.dport))
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&cilium_snat_v6_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return TC_ACT_OK;
	to_addr = e->to_addr;
	to_port = e->to_port;
	dst = endpoint_by_ipv6(&to_addr);
	if (!dst || (dst->flags & ENDPOINT_F_HOST))
		return -DROP_NAT_NO_MAPPING; /* the pod is gone */
	ret = l4_rewrite6(ctx, p->t.proto, true, &p->t.daddr, &to_addr, p->t.dport, to_port);
	if (ret < 0)
		return ret;
	p->t.daddr = to_addr;
	p->t.dport = to_port;
	return nodeport_deliver_local6(ctx, dst);
}

/*
 * masq_icmp_ingress() for IPv6: an ICMPv6 error quoting {node:np -> remote:rp} of a masqueraded
 * connection goes to the pod, quoting {pod:pp -> remote:rp}.
 */
static __always_inline int masq_icmp_ingress6(struct __sk_buff *ctx, struct pkt6 *p)
{
	const struct tuple6 q = p->inner;
	struct nat6_key key = {
	    .saddr = q.daddr,
	    .daddr = q.saddr,
	    .sport = q.dport,
	    .dport = q.sport,
	    .proto = q.proto,
	    .dir = NAT_DIR_INGRESS,
	};
	const struct endpoint_info *dst;
	struct nat6_entry *e;
	union v4v6_addr pod;
	__be16 pod_port;
	int ret;

	if (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_)
		return TC_ACT_OK;
	if (bpf_ntohs(q.sport) < NAT_PORT_MIN)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&cilium_snat_v6_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return TC_ACT_OK;
	pod = e->to_addr;
	pod_port = e->to_port;
	dst = endpoint_by_ipv6(&pod);
	if (!dst || (dst->flags & ENDPOINT_F_HOST))
		return -DROP_NAT_NO_MAPPING;
	ret = icmp6_error_rewrite(ctx, true, &pod, &pod, pod_port, &q.daddr, q.dport);
	if (ret < 0)
		return ret;
	p->t.daddr = pod;
	return nodeport_deliver_local6(ctx, dst);
}

/*
 * masq_icmp_egress() for IPv6: a pod's ICMPv6 error about a reply it got (quote {remote:rp ->
 * pod:pp}) leaves from the node, quoting {remote:rp -> node:np}.
 */
static __always_inline int masq_icmp_egress6(struct __sk_buff *ctx, struct pkt6 *p)
{
	const struct tuple6 q = p->inner;
	struct nat6_key key = {
	    .saddr = q.daddr,
	    .daddr = q.saddr,
	    .sport = q.dport,
	    .dport = q.sport,
	    .proto = q.proto,
	    .dir = NAT_DIR_EGRESS,
	};
	struct nat6_entry *e;
	union v4v6_addr node_addr;
	__be16 node_port;
	int ret;

	if (!cfg_enable_bpf_masquerade6 || (q.proto != IPPROTO_TCP_ && q.proto != IPPROTO_UDP_))
		return 0;
	e = bpf_map_lookup_elem(&cilium_snat_v6_external, &key);
	if (!e || !(e->flags & NAT_F_MASQ))
		return 0;
	node_addr = e->to_addr;
	node_port = e->to_port;
	ret = icmp6_error_rewrite(ctx, false, &node_addr, &q.saddr, q.sport, &node_addr, node_port);
	if (ret < 0)
		return ret;
	p->t.saddr = node_addr;
	return 0;
}
