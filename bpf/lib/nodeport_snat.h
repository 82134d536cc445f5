/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Node ports of SNAT: the node address of each native device (cilium_node_dev4) and the node
 * ports of cilium_snat_v4_external (abi/nat.h), allocated at random and taken over from
 * connections that are over, for NodePort connections to a remote backend and for masqueraded
 * pod connections (lib/masquerade.h) alike. The forward entry names the node address and port,
 * the reverse entry {remote -> node:port} the original source (and for NodePort the service);
 * agent/service/nat_gc.h removes the mappings of connections that are gone. IPv6 masquerade has
 * the same maps with IPv6 keys (cilium_snat_v6_external, cilium_node_dev6) and the same allocator
 * (nat_snat_port, generic over the two layouts).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/conntrack.h"
#include "lib/conntrack6.h"
#include "lib/ipv6.h"
#include "lib/lb.h"
#include "lib/lb_packet.h"
#include "lib/pkt.h"

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

/* IPv6 (lib/masquerade.h, lib/nodeport6.h): the same layout with IPv6 addresses. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat6_key);
	__type(value, struct nat6_entry);
	__uint(max_entries, CILIUM_NAT_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_snat_v6_external SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct node_dev6);
	__uint(max_entries, CILIUM_NODE_DEV_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_node_dev6 SEC(".maps");

/*
 * Whether the NodePort connection owning the reverse mapping `owner` (of protocol `proto`) is
 * over: its CT_KEY_SERVICE entry is gone, expired, or closed both ways (FIN each way, or an RST).
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
	e = bpf_map_lookup_elem(lb4_ct_map(proto), &key);
	if (!e || !ct_alive(e, now))
		return true;
	return proto == IPPROTO_TCP_ && (e->flags & CT_F_CLOSING) == CT_F_CLOSING;
}

/*
 * Whether the IPv6 NodePort connection owning the reverse mapping `owner` is over
 * (nodeport_mapping_over for IPv6): its CT_KEY_SERVICE entry is gone, expired or closed.
 */
static __always_inline bool nodeport_mapping_over6(const struct nat6_entry *owner, __u8 proto,
						   __u32 now)
{
	struct ct_key6 key = {
	    .saddr = owner->to_addr,
	    .sport = owner->to_port,
	    .nexthdr = proto,
	    .flags = CT_KEY_SERVICE,
	};
	void *map = proto == IPPROTO_TCP_ ? (void *)&cilium_ct6_global : (void *)&cilium_ct_any6_global;
	__u32 id = owner->rev_nat_index;
	struct lb6_reverse_nat *rn = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &id);
	struct ct_entry *e;

	if (!rn)
		return true;
	key.daddr = rn->address;
	key.dport = rn->port;
	e = bpf_map_lookup_elem(map, &key);
	if (!e || !ct_alive(e, now))
		return true;
	return proto == IPPROTO_TCP_ && (e->flags & CT_F_CLOSING) == CT_F_CLOSING;
}

/*
 * Whether the masqueraded pod connection owning the reverse mapping (`rev`, `owner`) is over:
 * the pod's CT_KEY_EGRESS entry {pod -> remote} is gone, expired, or closed both ways.
 */
static __always_inline bool masq_mapping_over(const struct nat4_key *rev,
					      const struct nat4_entry *owner, __u32 now)
{
	struct ct_key4 key = {
	    .saddr = owner->to_addr,
	    .daddr = rev->saddr,
	    .sport = owner->to_port,
	    .dport = rev->sport,
	    .nexthdr = rev->proto,
	    .flags = CT_KEY_EGRESS,
	};
	struct ct_entry *e = bpf_map_lookup_elem(lb4_ct_map(rev->proto), &key);

	if (!e || !ct_alive(e, now))
		return true;
	return rev->proto == IPPROTO_TCP_ && (e->flags & CT_F_CLOSING) == CT_F_CLOSING;
}

/* masq_mapping_over() of an IPv6 mapping: the pod's CT_KEY_EGRESS entry in the ct6 maps. */
static __always_inline bool masq_mapping_over6(const struct nat6_key *rev,
					       const struct nat6_entry *owner, __u32 now)
{
	struct ct_key6 key = {
	    .saddr = owner->to_addr,
	    .daddr = rev->saddr,
	    .sport = owner->to_port,
	    .dport = rev->sport,
	    .nexthdr = rev->proto,
	    .flags = CT_KEY_EGRESS,
	};
	void *map = rev->proto == IPPROTO_TCP_ ? (void *)&cilium_ct6_global
					       : (void *)&cilium_ct_any6_global;
	struct ct_entry *e = bpf_map_lookup_elem(map, &key);

	if (!e || !ct_alive(e, now))
		return true;
	return rev->proto == IPPROTO_TCP_ && (e->flags & CT_F_CLOSING) == CT_F_CLOSING;
}

/*
 * Whether the connection owning the node port of reverse entry `rev` (a nat6_key when v6, else
 * a nat4_key; `owner` likewise) is over, so that the port may serve a new connection at once
 * rather than after the NAT GC's next run: under churn to one remote, 4535 node ports last only
 * seconds otherwise.
 */
static __always_inline bool nat_mapping_over(bool v6, const void *rev, const void *owner, __u32 now)
{
	if (v6) {
		if (((const struct nat6_entry *)owner)->flags & NAT_F_MASQ)
			return masq_mapping_over6(rev, owner, now);
		return nodeport_mapping_over6(owner, ((const struct nat6_key *)rev)->proto, now);
	}
	if (((const struct nat4_entry *)owner)->flags & NAT_F_MASQ)
		return masq_mapping_over(rev, owner, now);
	return nodeport_mapping_over(owner, ((const struct nat4_key *)rev)->proto, now);
}

/*
 * The family-specific parts of nat_snat_port(), on keys and entries of either layout: `v6` is a
 * constant at every call site, so each inlined copy keeps one branch.
 */
static __always_inline void *nat_map(bool v6)
{
	return v6 ? (void *)&cilium_snat_v6_external : (void *)&cilium_snat_v4_external;
}

static __always_inline __be16 nat_entry_port(bool v6, const void *e)
{
	return v6 ? ((const struct nat6_entry *)e)->to_port : ((const struct nat4_entry *)e)->to_port;
}

static __always_inline void nat_entry_set_port(bool v6, void *e, __be16 port)
{
	if (v6)
		((struct nat6_entry *)e)->to_port = port;
	else
		((struct nat4_entry *)e)->to_port = port;
}

/* Whether entries `a` and `b` translate to the same address and port. */
static __always_inline bool nat_entry_same(bool v6, const void *a, const void *b)
{
	if (nat_entry_port(v6, a) != nat_entry_port(v6, b))
		return false;
	if (v6)
		return ipv6_addr_equal(&((const struct nat6_entry *)a)->to_addr,
				       &((const struct nat6_entry *)b)->to_addr);
	return ((const struct nat4_entry *)a)->to_addr == ((const struct nat4_entry *)b)->to_addr;
}

static __always_inline bool nat_entry_same_addr(bool v6, const void *a, const void *b)
{
	if (v6)
		return ipv6_addr_equal(&((const struct nat6_entry *)a)->to_addr,
				       &((const struct nat6_entry *)b)->to_addr);
	return ((const struct nat4_entry *)a)->to_addr == ((const struct nat4_entry *)b)->to_addr;
}

static __always_inline void nat_key_set_dport(bool v6, void *k, __be16 port)
{
	if (v6)
		((struct nat6_key *)k)->dport = port;
	else
		((struct nat4_key *)k)->dport = port;
}

/*
 * The node port of the connection `fwd` (its NAT_DIR_EGRESS key), as it leaves from node address
 * out->to_addr: the existing mapping, or a new one. `rev` is the reverse key without its node
 * port; `back` and `out` are the entries to write (reverse and forward) without the port. Keys
 * and entries are the nat6_* layouts when `v6`, else nat4_*. `established` says a TCP packet of
 * an open connection (not a SYN), which trusts its mapping. Returns 0 with *node_port set, or
 * -DROP_NAT_NO_MAPPING when no port is free (fail closed).
 */
static __always_inline int nat_snat_port(bool v6, const void *fwd, void *rev, const void *back,
					 void *out, bool established, __u32 now, __be16 *node_port)
{
	void *map = nat_map(v6);
	void *e = bpf_map_lookup_elem(map, fwd);
	void *owner;
	__u32 range = NAT_PORT_MAX - NAT_PORT_MIN + 1;
	int i;

	if (e && nat_entry_same_addr(v6, e, out)) {
		/*
		 * Packets of an established connection trust their mapping. A new one (a SYN, or
		 * any UDP or ICMP packet) checks that the port is still this tuple's: after the
		 * tuple's previous connection ended, its port may have gone to another connection.
		 */
		if (established) {
			*node_port = nat_entry_port(v6, e);
			return 0;
		}
		nat_key_set_dport(v6, rev, nat_entry_port(v6, e));
		owner = bpf_map_lookup_elem(map, rev);
		if (owner && nat_entry_same(v6, owner, back)) {
			*node_port = nat_entry_port(v6, e);
			return 0;
		}
	}
	/* Random ports: a collision costs another try, never a wrong mapping (NOEXIST). */
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = bpf_htons(NAT_PORT_MIN + (bpf_get_prandom_u32() % range));

		nat_key_set_dport(v6, rev, port);
		if (bpf_map_update_elem(map, rev, back, BPF_NOEXIST_) != 0) {
			/*
			 * Taken. A finished connection's port is taken over; delete-then-NOEXIST
			 * lets one of two CPUs racing for it win, never both.
			 */
			owner = bpf_map_lookup_elem(map, rev);
			if (!owner || !nat_mapping_over(v6, rev, owner, now))
				continue;
			bpf_map_delete_elem(map, rev);
			if (bpf_map_update_elem(map, rev, back, BPF_NOEXIST_) != 0)
				continue;
		}
		nat_entry_set_port(v6, out, port);
		if (bpf_map_update_elem(map, fwd, out, BPF_ANY_) < 0) {
			bpf_map_delete_elem(map, rev);
			return -DROP_NAT_NO_MAPPING;
		}
		*node_port = port;
		return 0;
	}
	return -DROP_NAT_NO_MAPPING;
}

static __always_inline int nat4_snat_port(const struct nat4_key *fwd, struct nat4_key *rev,
					  const struct nat4_entry *back, struct nat4_entry *out,
					  bool established, __u32 now, __be16 *node_port)
{
	return nat_snat_port(false, fwd, rev, back, out, established, now, node_port);
}

static __always_inline int nat6_snat_port(const struct nat6_key *fwd, struct nat6_key *rev,
					  const struct nat6_entry *back, struct nat6_entry *out,
					  bool established, __u32 now, __be16 *node_port)
{
	return nat_snat_port(true, fwd, rev, back, out, established, now, node_port);
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
	bool established = p->t.proto == IPPROTO_TCP_ &&
			   (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;

	return nat4_snat_port(&fwd, &rev, &back, &out, established, now, node_port);
}
