/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service load balancing: the backend of a connection to a frontend, and the DNAT of
 * a pod's packet to it in bpf_lxc, for traffic the socket layer did not translate (a process
 * outside the socket-LB cgroup, a raw packet). NodePort (lib/nodeport.h) picks its backends here
 * too.
 *
 * Egress (from-container), a packet to a frontend:
 *   service entry {client, VIP, cport, vport, CT_KEY_SERVICE} in the conntrack map of the
 *   protocol holds the backend of the connection (ct_entry.lb_id); a new connection picks one
 *   (lib/lb.h) and records it. The packet is DNATed to the backend; the caller then runs
 *   conntrack and policy on the translated tuple and stores the service id in the egress entry
 *   (lb4_ct_mark), so replies find it.
 * The rest of the service path has a header each: replies translated back (lib/lb_reverse.h),
 * a pod reaching itself through a service (lib/lb_hairpin.h), a frontend without active
 * backends refused with TCP RST / ICMP port unreachable (lib/lb_reject.h).
 */
#pragma once

#include "compiler.h"
#include "abi/ct.h"
#include "abi/drop.h"
#include "abi/lb.h"
#include "lib/config.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/lb_xlate.h"
#include "lib/pkt.h"

/* The conntrack map holding the service entries of protocol `proto`. */
static __always_inline void *lb4_ct_map(__u8 proto)
{
	return proto == IPPROTO_TCP_ ? (void *)&cilium_ct4_global : (void *)&cilium_ct_any4_global;
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
	struct ct_entry *e = ct_find(lb4_ct_map(p->t.proto), &p->t, false, dir, now);

	if (e && e->lb_id != rev_nat)
		e->lb_id = rev_nat;
}
