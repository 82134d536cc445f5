/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Node ports of SNAT: the node address of each native device (cilium_node_dev4) and the node
 * ports of cilium_snat_v4_external (abi/nat.h), allocated at random and taken over from
 * connections that are over, for NodePort connections to a remote backend and for masqueraded
 * pod connections (lib/masquerade.h) alike. The forward entry names the node address and port,
 * the reverse entry {remote -> node:port} the original source (and for NodePort the service);
 * agent/service/nat_gc.h removes the mappings of connections that are gone.
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "abi/nat.h"
#include "lib/conntrack.h"
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

/*
 * Whether the connection owning the node port of reverse entry `rev` is over, so that the port
 * may serve a new connection at once rather than after the NAT GC's next run: under churn to
 * one remote, 4535 node ports last only seconds otherwise.
 */
static __always_inline bool nat_mapping_over(const struct nat4_key *rev,
					     const struct nat4_entry *owner, __u32 now)
{
	if (owner->flags & NAT_F_MASQ)
		return masq_mapping_over(rev, owner, now);
	return nodeport_mapping_over(owner, rev->proto, now);
}

/*
 * The node port of the connection `fwd` (its NAT_DIR_EGRESS key), as it leaves from node address
 * out->to_addr: the existing mapping, or a new one. `rev` is the reverse key without its node
 * port; `back` and `out` are the entries to write (reverse and forward) without the port.
 * `established` says a TCP packet of an open connection (not a SYN), which trusts its mapping.
 * Returns 0 with *node_port set, or -DROP_NAT_NO_MAPPING when no port is free (fail closed).
 */
static __always_inline int nat4_snat_port(const struct nat4_key *fwd, struct nat4_key *rev,
					  const struct nat4_entry *back, struct nat4_entry *out,
					  bool established, __u32 now, __be16 *node_port)
{
	struct nat4_entry *e = bpf_map_lookup_elem(&cilium_snat_v4_external, fwd);
	struct nat4_entry *owner;
	__u32 range = NAT_PORT_MAX - NAT_PORT_MIN + 1;
	int i;

	if (e && e->to_addr == out->to_addr) {
		/*
		 * Packets of an established connection trust their mapping. A new one (a SYN, or
		 * any UDP or ICMP packet) checks that the port is still this tuple's: after the
		 * tuple's previous connection ended, its port may have gone to another connection.
		 */
		if (established) {
			*node_port = e->to_port;
			return 0;
		}
		rev->dport = e->to_port;
		owner = bpf_map_lookup_elem(&cilium_snat_v4_external, rev);
		if (owner && owner->to_addr == back->to_addr && owner->to_port == back->to_port) {
			*node_port = e->to_port;
			return 0;
		}
	}
	/* Random ports: a collision costs another try, never a wrong mapping (NOEXIST). */
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__u16 port = NAT_PORT_MIN + (bpf_get_prandom_u32() % range);

		rev->dport = bpf_htons(port);
		if (bpf_map_update_elem(&cilium_snat_v4_external, rev, back, BPF_NOEXIST_) != 0) {
			/*
			 * Taken. A finished connection's port is taken over; delete-then-NOEXIST
			 * lets one of two CPUs racing for it win, never both.
			 */
			owner = bpf_map_lookup_elem(&cilium_snat_v4_external, rev);
			if (!owner || !nat_mapping_over(rev, owner, now))
				continue;
			bpf_map_delete_elem(&cilium_snat_v4_external, rev);
			if (bpf_map_update_elem(&cilium_snat_v4_external, rev, back,
						BPF_NOEXIST_) != 0)
				continue;
		}
		out->to_port = rev->dport;
		if (bpf_map_update_elem(&cilium_snat_v4_external, fwd, out, BPF_ANY_) < 0) {
			bpf_map_delete_elem(&cilium_snat_v4_external, rev);
			return -DROP_NAT_NO_MAPPING;
		}
		*node_port = rev->dport;
		return 0;
	}
	return -DROP_NAT_NO_MAPPING;
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
