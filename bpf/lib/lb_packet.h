/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service load balancing in bpf_lxc, for traffic the socket layer did not translate
 * (a process outside the socket-LB cgroup, a raw packet).
 *
 * Egress (from-container), a packet to a frontend:
 *   service entry {client, VIP, cport, vport, CT_KEY_SERVICE} in the conntrack map of the
 *   protocol holds the backend of the connection (ct_entry.lb_id); a new connection picks one
 *   (lib/lb.h) and records it. The packet is DNATed to the backend; the caller then runs
 *   conntrack and policy on the translated tuple and stores the service id in the egress entry
 *   (lb4_ct_mark), so replies find it.
 * Ingress (a reply delivered to the client): the reply hits that egress entry as CT_REPLY and
 *   is SNATed back to the frontend from cilium_lb4_reverse_nat.
 * A frontend without active backends: the caller rejects (TCP RST / ICMP port unreachable).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "lib/config.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/pkt.h"

#define IP_OFF_CHECK 10
#define IP_OFF_SADDR 12
#define IP_OFF_DADDR 16

/*
 * Rewrites the source (dst = false) or destination address and port of the IPv4 TCP/UDP packet,
 * with incremental checksum updates (the L4 one covers the pseudo-header).
 */
static __always_inline int lb4_rewrite(struct __sk_buff *ctx, __u8 proto, bool dst, __be32 old_addr,
				       __be32 new_addr, __be16 old_port, __be16 new_port)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u64 l4_flags = proto == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 l4_off, csum_off;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	l4_off = ETH_HLEN + ipv4_hdrlen(ip);
	csum_off = l4_off + (proto == IPPROTO_TCP_ ? 16 : 6);

	if (bpf_l4_csum_replace(ctx, csum_off, old_addr, new_addr,
				l4_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)) < 0)
		return -DROP_CSUM_L4;
	if (old_port != new_port &&
	    bpf_l4_csum_replace(ctx, csum_off, old_port, new_port, l4_flags | sizeof(new_port)) < 0)
		return -DROP_CSUM_L4;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, old_addr, new_addr,
				sizeof(new_addr)) < 0)
		return -DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + (dst ? IP_OFF_DADDR : IP_OFF_SADDR), &new_addr,
				sizeof(new_addr), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (old_port != new_port &&
	    bpf_skb_store_bytes(ctx, l4_off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/*
 * Accounts a packet of the connection on its CT_KEY_SERVICE entry (`reply`: from the backend, as
 * the NodePort paths see replies; bpf_lxc only sees the client's side): the TCP state advances as
 * in any conntrack entry, so the entry, and the NAT mapping of a NodePort connection that lives
 * as long as it (agent/service/nat_gc.h), ages out in the close timeout once the connection is
 * closed instead of the established one.
 */
static __always_inline void lb4_service_entry_seen(struct ct_entry *e, __u8 proto, __u8 tcp_flags,
						   bool reply, __u32 now)
{
	__u32 lifetime = now + cfg_ct_timeout_nontcp;

	if (proto == IPPROTO_TCP_) {
		__u16 flags = e->flags;

		/* A new SYN over a closed connection's entry starts its state afresh. */
		if (!reply && (flags & CT_F_CLOSING) &&
		    (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
			flags = 0;
		flags = ct_tcp_flags_after(flags, tcp_flags, reply);

		if (flags != e->flags)
			e->flags = flags;
		lifetime = now + ct_lifetime_tcp(flags);
	}
	if (e->lifetime != lifetime)
		e->lifetime = lifetime;
}

/* The backend a connection to the frontend already uses, or a new one; NULL if none. */
static __always_inline struct lb4_backend *
lb4_connection_backend(void *map, struct lb4_service *svc, const struct pkt4 *p, __u32 now)
{
	struct ct_key4 key = {};
	struct ct_entry *e;
	struct lb4_backend *be;
	__u32 id = 0;

	ct_key_fill(&key, &p->t, false, CT_KEY_SERVICE);
	e = bpf_map_lookup_elem(map, &key);
	if (e && ct_alive(e, now)) {
		/* A terminating backend still serves the connections it has. */
		be = lb4_lookup_backend(e->lb_id);
		if (be) {
			lb4_service_entry_seen(e, p->t.proto, p->tcp_flags, false, now);
			return be;
		}
	}
	be = lb4_select_backend(svc, p->t.daddr, p->t.dport, p->t.proto, p->t.saddr,
				LB_AFFINITY_CLIENT_IP, now,
				lb4_tuple_hash(p->t.saddr, p->t.sport, p->t.proto), &id);
	if (!be)
		return NULL;
	{
		struct ct_entry n = {
		    .lb_id = id,
		};

		lb4_service_entry_seen(&n, p->t.proto, p->tcp_flags, false, now);

		/* Without the entry the next packet may pick another backend: fail the packet. */
		if (bpf_map_update_elem(map, &key, &n, BPF_ANY_) < 0)
			return NULL;
	}
	return be;
}

/*
 * Translates a packet leaving a pod towards a frontend. Returns 0 with *rev_nat set to the
 * service id when translated (0 when the packet is not for a service), -DROP_NO_SERVICE when the
 * frontend has no backend, or another -DROP_x.
 */
static __always_inline int lb4_egress(struct __sk_buff *ctx, struct pkt4 *p, __u32 now,
				      __u32 *rev_nat)
{
	struct lb4_service *svc;
	struct lb4_backend *be;
	int ret;

	*rev_nat = 0;
	if ((p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) || p->related)
		return 0;
	svc = lb4_lookup_service(p->t.daddr, p->t.dport, p->t.proto);
	if (!svc)
		return 0;
	if (p->t.proto == IPPROTO_TCP_)
		be = lb4_connection_backend(&cilium_ct4_global, svc, p, now);
	else
		be = lb4_connection_backend(&cilium_ct_any4_global, svc, p, now);
	if (!be)
		return -DROP_NO_SERVICE;
	*rev_nat = svc->rev_nat_index;
	ret = lb4_rewrite(ctx, p->t.proto, true, p->t.daddr, be->address, p->t.dport, be->port);
	if (ret < 0)
		return ret;
	p->t.daddr = be->address;
	p->t.dport = be->port;
	return 0;
}

/*
 * Stores the service id in the entry of the translated connection in direction `dir`: the egress
 * entry after lb4_egress, the ingress entry of a hairpin connection (lb4_hairpin).
 */
static __always_inline void lb4_ct_mark(const struct pkt4 *p, __u32 rev_nat, __u32 now, __u8 dir)
{
	void *map = p->t.proto == IPPROTO_TCP_ ? (void *)&cilium_ct4_global
					       : (void *)&cilium_ct_any4_global;
	struct ct_entry *e = ct_find(map, &p->t, false, dir, now);

	if (e && e->lb_id != rev_nat)
		e->lb_id = rev_nat;
}

/* The quoted IPv4 header and the quoted ports, as one 24-byte block (quotes without options). */
struct icmp_quote4 {
	struct iphdr ip;
	__be16 sport;
	__be16 dport;
};

/*
 * Rewrites the ICMP error in ctx (outer IPv4 header without options at ETH_HLEN): the outer
 * addresses to (osaddr -> odaddr), the quote to (isaddr:isport -> idaddr:idport). The outer and
 * quoted IP checksums and the ICMP checksum are updated; the quoted TCP/UDP checksum is left as
 * it was (nobody verifies a quote's). -DROP_INVALID for headers with options.
 */
static __always_inline int lb4_icmp_rewrite(struct __sk_buff *ctx, __be32 osaddr, __be32 odaddr,
					    __be32 isaddr, __be16 isport, __be32 idaddr,
					    __be16 idport)
{
	const __u32 icmp_off = ETH_HLEN + sizeof(struct iphdr);
	const __u32 quote_off = icmp_off + 8;
	struct icmp_quote4 old, new;
	struct iphdr outer;
	__s64 diff;
	__u32 sum;

	if (bpf_skb_load_bytes(ctx, ETH_HLEN, &outer, sizeof(outer)) < 0 ||
	    bpf_skb_load_bytes(ctx, quote_off, &old, sizeof(old)) < 0)
		return -DROP_INVALID;
	if (outer.ihl != 5 || old.ip.ihl != 5)
		return -DROP_INVALID; /* options: left to the stack */
	new = old;
	new.ip.saddr = isaddr;
	new.ip.daddr = idaddr;
	new.sport = isport;
	new.dport = idport;
	new.ip.check = 0;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&new.ip, sizeof(new.ip), 0);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	new.ip.check = (__u16)~sum;

	diff = bpf_csum_diff((__be32 *)&old, sizeof(old), (__be32 *)&new, sizeof(new), 0);
	if (diff < 0)
		return -DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, quote_off, &new, sizeof(new), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_l4_csum_replace(ctx, icmp_off + 2, 0, (__u32)diff, 0) < 0)
		return -DROP_CSUM_L4;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, outer.saddr, osaddr, 4) < 0 ||
	    bpf_l3_csum_replace(ctx, ETH_HLEN + IP_OFF_CHECK, outer.daddr, odaddr, 4) < 0)
		return -DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + IP_OFF_SADDR, &osaddr, 4, 0) < 0 ||
	    bpf_skb_store_bytes(ctx, ETH_HLEN + IP_OFF_DADDR, &odaddr, 4, 0) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

/*
 * An ICMP error about a translated connection of `client` (quote {x:cp -> backend:bp}, x being
 * the client or, for hairpin, the loopback address) becomes one from the frontend to the
 * client, quoting {client:cp -> frontend:fp}. Returns 0 or -DROP_x.
 */
static __always_inline int lb4_reverse_icmp(struct __sk_buff *ctx, struct pkt4 *p, __u32 rev_nat,
					    __be32 client)
{
	struct lb4_reverse_nat *rn;
	int ret;

	if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	ret = lb4_icmp_rewrite(ctx, rn->address, client, client, p->inner.sport, rn->address,
			       rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.daddr = client;
	p->inner.saddr = client;
	p->inner.daddr = rn->address;
	p->inner.dport = rn->port;
	return 0;
}

/*
 * Reverse translation of a reply whose conntrack entry named service `rev_nat`: the backend's
 * address and port become the frontend's again; in an ICMP error about the connection, the
 * error's source and the quoted destination. Returns 0 or -DROP_x.
 */
static __always_inline int lb4_reverse(struct __sk_buff *ctx, struct pkt4 *p, __u32 rev_nat)
{
	struct lb4_reverse_nat *rn;
	int ret;

	/* An ICMP error from the backend: the quote's source is the client, the error's target. */
	if (p->related)
		return lb4_reverse_icmp(ctx, p, rev_nat, p->t.daddr);
	if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_)
		return 0;
	rn = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);
	if (!rn)
		return -DROP_NAT_NO_MAPPING;
	ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, rn->address, p->t.sport, rn->port);
	if (ret < 0)
		return ret;
	p->t.saddr = rn->address;
	p->t.sport = rn->port;
	return 0;
}

/*
 * Hairpin: a pod whose connection to a frontend was given to the pod itself (lb4_egress left
 * daddr == its own address). A packet from the pod's own address would be a martian in its
 * namespace, so the source becomes cfg_lb_loopback_ipv4 (169.254.42.1 unless configured) and
 * the packet goes straight back into the pod. The pod's ingress entry {loopback, pod} carries
 * the service id, so the pod's replies (to the loopback address) find their way back
 * (lb4_hairpin_reply). Policy does not apply either way: Kubernetes lets a pod reach itself.
 * Returns 0 with the packet ready for local_delivery4 to `ep`, or -DROP_x; `*trace_due` as
 * enforce4 sets it.
 */
static __always_inline int lb4_hairpin(struct __sk_buff *ctx, struct pkt4 *p,
				       const struct endpoint_info *ep, __u32 rev_nat, __u32 now,
				       struct trace_info *ti, bool *trace_due)
{
	struct ct_result ct;
	int ret;

	ret = lb4_rewrite(ctx, p->t.proto, false, p->t.saddr, cfg_lb_loopback_ipv4, p->t.sport,
			  p->t.sport);
	if (ret < 0)
		return ret;
	p->t.saddr = cfg_lb_loopback_ipv4;
	ct_lookup4(p, CT_KEY_INGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_NEW || ct.status == CT_REOPENED) {
		ret = ct_create4(p, CT_KEY_INGRESS, now, ep->sec_id, runtime_policy_rev());
		if (ret < 0)
			return ret;
	}
	lb4_ct_mark(p, rev_nat, now, CT_KEY_INGRESS);
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}

/*
 * A pod's reply to cfg_lb_loopback_ipv4: the reply of a hairpin connection. Its destination
 * becomes the pod again and its source the frontend (lb4_reverse). An ICMP error the pod sends
 * about a hairpin connection (quote {loopback:cp -> pod:bp}, a UDP port without a listener, say)
 * reaches the client in the pod as from the frontend, quoting {pod:cp -> frontend:fp}. Returns 0
 * with the packet ready for local_delivery4 to `ep`; -DROP_NAT_NO_MAPPING for anything to the
 * loopback address that answers no hairpin connection.
 */
static __always_inline int lb4_hairpin_reply(struct __sk_buff *ctx, struct pkt4 *p,
					     const struct endpoint_info *ep, __u32 now,
					     struct trace_info *ti, bool *trace_due)
{
	struct ct_result ct;
	__u32 rev_nat;
	int ret;

	if (p->related) {
		if (p->inner.proto != IPPROTO_TCP_ && p->inner.proto != IPPROTO_UDP_)
			return -DROP_NAT_NO_MAPPING;
	} else if (p->t.proto != IPPROTO_TCP_ && p->t.proto != IPPROTO_UDP_) {
		return -DROP_NAT_NO_MAPPING;
	}
	ct_lookup4(p, CT_KEY_EGRESS, now, &ct);
	ti->ct_state = ct.status;
	*trace_due = ct.monitor;
	if (ct.status == CT_RELATED && ct.entry && ct.entry->lb_id &&
	    p->inner.saddr == cfg_lb_loopback_ipv4) {
		ret = lb4_reverse_icmp(ctx, p, ct.entry->lb_id, ep->ipv4);
		if (ret < 0)
			return ret;
		ti->dst_identity = ep->sec_id;
		ti->dst_id = ep->lxc_id;
		return 0;
	}
	if (ct.status != CT_REPLY || !ct.entry || !ct.entry->lb_id)
		return -DROP_NAT_NO_MAPPING;
	rev_nat = ct.entry->lb_id;
	ret = lb4_rewrite(ctx, p->t.proto, true, p->t.daddr, ep->ipv4, p->t.dport, p->t.dport);
	if (ret < 0)
		return ret;
	p->t.daddr = ep->ipv4;
	ret = lb4_reverse(ctx, p, rev_nat);
	if (ret < 0)
		return ret;
	ti->dst_identity = ep->sec_id;
	ti->dst_id = ep->lxc_id;
	return 0;
}

/* The folded Internet checksum of `sum` (a 32-bit partial sum from bpf_csum_diff). */
static __always_inline __u16 lb_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* A fresh IPv4 header (no options) from `saddr` to `daddr`, checksum included. */
static __always_inline void lb4_fill_iphdr(struct iphdr *ip, __be32 saddr, __be32 daddr, __u8 proto,
					   __u16 tot_len)
{
	ip->ihl = 5;
	ip->version = 4;
	ip->tos = 0;
	ip->tot_len = bpf_htons(tot_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = lb_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
}

/*
 * Turns a TCP segment to a frontend without backends into the RST the frontend would answer
 * with (RFC 793: seq from the segment's ack, or an ack of what it carried), addressed back to
 * the sender with the Ethernet addresses dmac/smac. Returns 0 or -DROP_x; the caller redirects
 * the packet back towards the sender.
 */
static __always_inline int lb4_reject_tcp(struct __sk_buff *ctx, const struct pkt4 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	struct iphdr *ip;
	struct tcphdr *th;
	struct ethhdr *eth;
	__u32 seq, ack_seq, seg_len, plen;
	__u8 flags;
	void *data, *data_end;
	struct {
		__be32 saddr, daddr;
		__u8 zero, proto;
		__be16 len;
	} ph;
	__s64 sum;

	if (p->tcp_flags & TCP_FLAG_RST)
		return -DROP_NO_SERVICE; /* never answer a RST */
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	ip = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(th + 1) > data_end || ipv4_hdrlen(ip) != sizeof(*ip))
		return -DROP_NO_SERVICE;
	flags = ((__u8 *)th)[13];
	plen = bpf_ntohs(ip->tot_len);
	if (plen < sizeof(*ip) + th->doff * 4)
		return -DROP_INVALID;
	seg_len = plen - sizeof(*ip) - th->doff * 4;
	if (flags & TCP_FLAG_SYN)
		seg_len++;
	if (flags & TCP_FLAG_FIN)
		seg_len++;
	seq = bpf_ntohl(th->seq);
	ack_seq = bpf_ntohl(th->ack_seq);

	if (bpf_skb_change_tail(ctx, ETH_HLEN + sizeof(*ip) + sizeof(*th), 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip = data + ETH_HLEN;
	th = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(th + 1) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	lb4_fill_iphdr(ip, p->t.daddr, p->t.saddr, IPPROTO_TCP_, sizeof(*ip) + sizeof(*th));
	th->source = p->t.dport;
	th->dest = p->t.sport;
	if (flags & TCP_FLAG_ACK) {
		th->seq = bpf_htonl(ack_seq);
		th->ack_seq = 0;
		((__u8 *)th)[13] = TCP_FLAG_RST;
	} else {
		th->seq = 0;
		th->ack_seq = bpf_htonl(seq + seg_len);
		((__u8 *)th)[13] = TCP_FLAG_RST | TCP_FLAG_ACK;
	}
	((__u8 *)th)[12] = 5 << 4; /* data offset: no options */
	th->window = 0;
	th->check = 0;
	th->urg_ptr = 0;

	ph.saddr = p->t.daddr;
	ph.daddr = p->t.saddr;
	ph.zero = 0;
	ph.proto = IPPROTO_TCP_;
	ph.len = bpf_htons(sizeof(*th));
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)th, sizeof(*th), (__u32)sum);
	th->check = lb_csum_fold(sum);
	return 0;
}

#define ICMP_PORT_UNREACH 3
#define LB_ICMP_QUOTE	  28 /* the quoted IPv4 header and the first 8 bytes after it */

/*
 * Turns a UDP datagram to a frontend without backends into ICMP port unreachable from the
 * frontend, quoting the datagram's header, addressed back to the sender (dmac/smac).
 */
static __always_inline int lb4_reject_udp(struct __sk_buff *ctx, const struct pkt4 *p,
					  const __u8 *dmac, const __u8 *smac)
{
	const __u32 grow = sizeof(struct iphdr) + 8;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u8 *icmp;
	void *data, *data_end;
	__s64 sum;

	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end || ipv4_hdrlen(ip) != sizeof(*ip))
		return -DROP_NO_SERVICE;
	if (bpf_skb_change_tail(ctx, ETH_HLEN + LB_ICMP_QUOTE, 0) < 0)
		return -DROP_WRITE_ERROR;
	/* Room for the new IPv4 and ICMP headers between Ethernet and the quoted datagram. */
	if (bpf_skb_adjust_room(ctx, grow, BPF_ADJ_ROOM_MAC, 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	ip = data + ETH_HLEN;
	icmp = data + ETH_HLEN + sizeof(*ip);
	if ((void *)(icmp + 8 + LB_ICMP_QUOTE) > data_end)
		return -DROP_INVALID;

	eth_rewrite(eth, dmac, smac);
	lb4_fill_iphdr(ip, p->t.daddr, p->t.saddr, IPPROTO_ICMP_, sizeof(*ip) + 8 + LB_ICMP_QUOTE);
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_PORT_UNREACH;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = 0;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + LB_ICMP_QUOTE, 0);
	*(__u16 *)(icmp + 2) = lb_csum_fold(sum);
	return 0;
}

/* The refusal of a TCP or UDP packet to a frontend without backends; 0 or -DROP_x. */
static __always_inline int lb4_reject_answer(struct __sk_buff *ctx, const struct pkt4 *p,
					     const __u8 *dmac, const __u8 *smac)
{
	if (p->t.proto == IPPROTO_TCP_)
		return lb4_reject_tcp(ctx, p, dmac, smac);
	return lb4_reject_udp(ctx, p, dmac, smac);
}

/*
 * A connection to a frontend without active backends: answers the pod as Kubernetes expects
 * (TCP RST, ICMP port unreachable) instead of dropping silently. Returns the tc verdict
 * (the answer redirected into the pod), or -DROP_x when no answer is possible.
 */
static __always_inline int lb4_reject(struct __sk_buff *ctx, const struct pkt4 *p,
				      const struct endpoint_info *ep)
{
	int ret = lb4_reject_answer(ctx, p, ep->mac, ep->node_mac);

	if (ret < 0)
		return ret;
	/* Into the pod's namespace, as local delivery does. */
	return bpf_redirect_peer(ep->ifindex, 0);
}
