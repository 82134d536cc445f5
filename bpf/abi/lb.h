/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing, IPv4 and IPv6. Design and limits: docs/services.md.
 *   cilium_lb4_services    HASH     lb4_key (VIP, port, proto, scope) -> lb4_service (frontend)
 *   cilium_lb4_slots       HASH     lb4_slot_key (service id, generation, slot) -> backend id
 *   cilium_lb4_backends    HASH     backend id -> lb4_backend (IP, port, state)
 *   cilium_lb4_reverse_nat HASH     __u32 service id (rev-nat index) -> lb4_reverse_nat (VIP, port)
 *   cilium_lb4_affinity    LRU_HASH lb4_affinity_key (client, service id) -> lb4_affinity_val
 *   cilium_lb4_reverse_sk  LRU_HASH lb4_reverse_sk_key (socket cookie, backend) -> VIP, port
 *   cilium_lb4_maglev      HASH     lb4_maglev_key (service id, generation, chunk) -> table chunk
 *
 * A frontend names the generation of its slots. Replacing a service's backends writes the new
 * slots under the other generation, then flips the frontend (count and generation) with one map
 * update, then deletes the old slots: a lookup sees either the old frontend with the old slots or
 * the new one with the new slots, never no backend or a mix. A program that read the old
 * frontend just before the flip and finds its slot already deleted reads the frontend again.
 *
 * Slots are numbered 1..count and hold active backends only; terminating backends stay in
 * cilium_lb4_backends (state LB_BACKEND_TERMINATING) so connections already pinned to them keep
 * working, but new connections never pick them.
 *
 * IPv6 (docs/services.md, "IPv6"): service ids (rev-nat indexes) and backend ids come from one
 * id space for both families, so the maps that hold only ids serve both: cilium_lb4_slots and
 * cilium_lb4_maglev hold the slots and tables of IPv6 frontends too, and an IPv6 frontend's
 * value is a struct lb4_service like any other. Only the maps keyed or valued by an address
 * have an IPv6 twin:
 *   cilium_lb6_services    HASH     lb6_key (16-byte VIP, port, proto, scope) -> lb4_service
 *   cilium_lb6_backends    HASH     backend id -> lb6_backend
 *   cilium_lb6_reverse_nat HASH     __u32 service id -> lb6_reverse_nat
 *   cilium_lb6_affinity    LRU_HASH lb6_affinity_key (client IPv6 or cookie, service id)
 *                                   -> lb4_affinity_val
 *   cilium_lb6_reverse_sk  LRU_HASH lb6_reverse_sk_key (socket cookie, backend) -> VIP, port
 * The family of a frontend's map says which backends map its slots' ids name: an IPv4 frontend
 * only ever has IPv4 backends and an IPv6 one IPv6 backends (the agent refuses a mix).
 *
 * Twins: agent/service (ServiceMaps, ServiceMaps6), cilium-dbg "bpf lb list".
 */
#pragma once

#include "common.h"

/* lb4_service.flags: the kind of frontend. ClusterIP has none of the type bits. */
#define SVC_F_EXTERNAL_IP  (1 << 0)
#define SVC_F_NODEPORT	   (1 << 1)
#define SVC_F_EXT_LOCAL	   (1 << 2) /* externalTrafficPolicy=Local */
#define SVC_F_AFFINITY	   (1 << 4) /* sessionAffinity=ClientIP, timeout in affinity_timeout */
#define SVC_F_LOADBALANCER (1 << 5)

/*
 * lb4_service.flags2. A NodePort / externalIP / LoadBalancer frontend with
 * externalTrafficPolicy=Local has two entries: scope EXTERNAL (flag TWO_SCOPES; local backends
 * only, what traffic from outside the cluster gets) and scope INTERNAL (flag SCOPE_INTERNAL;
 * every backend, what pods and the node get). Both share the service id; the internal entry's
 * slots live under generation gen | LB_GEN_INTERNAL.
 */
#define SVC_F2_TWO_SCOPES     (1 << 0)
#define SVC_F2_SCOPE_INTERNAL (1 << 1)
/* Backends are picked from the frontend's Maglev table (cilium_lb4_maglev), not at random. */
#define SVC_F2_MAGLEV (1 << 2)

/* lb4_key.scope */
#define LB_SCOPE_EXTERNAL 0
#define LB_SCOPE_INTERNAL 1

/* Slot generations are 15 bits; the top bit selects the internal scope's slots. */
#define LB_GEN_MASK	0x7fff
#define LB_GEN_INTERNAL 0x8000

struct lb4_key {
	__be32 address; /* frontend IP */
	__be16 dport;	/* frontend port */
	__u8 proto;	/* IPPROTO_TCP / IPPROTO_UDP */
	__u8 scope;	/* LB_SCOPE_* */
};

/*
 * Service ids (rev-nat indexes) are 32-bit, unlike Cilium's 16: a node must hold more than 65535
 * frontends (the benchmarks program 100k Services).
 */
struct lb4_service {
	__u32 affinity_timeout; /* seconds, with SVC_F_AFFINITY */
	__u32 rev_nat_index;	/* the service id: reverse NAT, slots, affinity; never 0 */
	__u16 count;		/* active backend slots 1..count; 0 = no backend (reject) */
	__u16 gen;		/* generation of the slots in cilium_lb4_slots */
	__u8 flags;		/* SVC_F_* */
	__u8 flags2;		/* SVC_F2_* */
	__u16 maglev_size;	/* with SVC_F2_MAGLEV: entries in its table (a prime) */
};

/*
 * Maglev lookup tables (bpf-lb-algorithm=maglev): the table of a frontend's generation, cut in
 * chunks of LB_MAGLEV_CHUNK backend ids; entry i is in chunk i / LB_MAGLEV_CHUNK. A
 * connection's hash picks the entry, so every node picks the same backend for it, and removing a
 * backend moves few connections between the others. Replaced like the slots (new generation
 * first, old one deleted after the flip).
 */
#define LB_MAGLEV_CHUNK 64

struct lb4_maglev_key {
	__u32 rev_nat_index;
	__u16 gen;
	__u16 chunk;
};

struct lb4_maglev_chunk {
	__u32 backend_ids[LB_MAGLEV_CHUNK];
};

struct lb4_slot_key {
	__u32 rev_nat_index;
	__u16 gen;
	__u16 slot; /* 1..count */
};

#define LB_BACKEND_ACTIVE      0
#define LB_BACKEND_TERMINATING 1

struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;
	__u8 state; /* LB_BACKEND_* */
	__u8 cluster_id;
	__u8 pad[3];
};

struct lb4_reverse_nat {
	__be32 address; /* the frontend replies must come from */
	__be16 port;
	__u16 pad;
};

/* Session affinity: the client is its netns cookie (socket LB) or its IPv4 address (packets). */
#define LB_AFFINITY_CLIENT_COOKIE 1
#define LB_AFFINITY_CLIENT_IP	  0

struct lb4_affinity_key {
	__u64 client;
	__u32 rev_nat_index;
	__u8 client_kind; /* LB_AFFINITY_CLIENT_* */
	__u8 pad[3];
};

struct lb4_affinity_val {
	__u32 last_used; /* monotonic seconds */
	__u32 backend_id;
};

/* Socket LB: what recvmsg/getpeername must show for a socket connected to a backend. */
struct lb4_reverse_sk_key {
	__u64 cookie; /* bpf_get_socket_cookie() */
	__be32 address;
	__be16 port;
	__u16 pad;
};

struct lb4_reverse_sk_val {
	__be32 address;
	__be16 port;
	__u16 pad;
	__u32 rev_nat_index;
};

/* IPv6 frontend key: the same fields as lb4_key with a 16-byte address. */
struct lb6_key {
	union v4v6_addr address; /* frontend IPv6 address */
	__be16 dport;
	__u8 proto;
	__u8 scope; /* LB_SCOPE_* */
};

struct lb6_backend {
	union v4v6_addr address;
	__be16 port;
	__u8 proto;
	__u8 state; /* LB_BACKEND_* */
	__u8 cluster_id;
	__u8 pad[3];
};

struct lb6_reverse_nat {
	union v4v6_addr address; /* the frontend replies must come from */
	__be16 port;
	__u16 pad;
};

/* Session affinity of an IPv6 frontend; the value is a struct lb4_affinity_val. */
struct lb6_affinity_key {
	union {
		union v4v6_addr addr; /* LB_AFFINITY_CLIENT_IP: the client's IPv6 address */
		__u64 cookie;	      /* LB_AFFINITY_CLIENT_COOKIE: its netns cookie, rest zero */
	} client;
	__u32 rev_nat_index;
	__u8 client_kind; /* LB_AFFINITY_CLIENT_* */
	__u8 pad[3];
};

/*
 * Socket LB of IPv6 sockets. A socket connected to a v4-mapped address (::ffff:a.b.c.d) of an
 * IPv4 frontend is translated through the IPv4 maps; its entry here holds the v4-mapped backend
 * and frontend, as the socket sees them.
 */
struct lb6_reverse_sk_key {
	__u64 cookie; /* bpf_get_socket_cookie() */
	union v4v6_addr address;
	__be16 port;
	__u16 pad[3];
};

struct lb6_reverse_sk_val {
	union v4v6_addr address;
	__be16 port;
	__u16 pad;
	__u32 rev_nat_index;
};

#define CILIUM_LB_SERVICES_MAP_SIZE   262144
#define CILIUM_LB_SLOTS_MAP_SIZE      1048576
#define CILIUM_LB_BACKENDS_MAP_SIZE   262144
#define CILIUM_LB_REVNAT_MAP_SIZE     262144
#define CILIUM_LB_AFFINITY_MAP_SIZE   65536
#define CILIUM_LB_REVERSE_SK_MAP_SIZE 262144
/* Chunks: 256 per frontend with the default table size 16381, so about 1000 such frontends. */
#define CILIUM_LB_MAGLEV_MAP_SIZE 262144
#define LB_MAGLEV_DEFAULT_SIZE	  16381
/* Largest backend count per service the programs handle (slot numbers are __u16). */
#define LB_MAX_BACKENDS 65535

/*
 * bpf-lb-mode, bpf_host's cfg_lb_mode: how NodePort / externalIPs / LoadBalancer reach a backend
 * on another node (docs/services.md, "DSR"). Twins: agent/service HostOptions.
 */
#define LB_MODE_SNAT   0
#define LB_MODE_DSR    1
#define LB_MODE_HYBRID 2 /* DSR for TCP, SNAT for UDP */

/*
 * The DSR IPv4 option (bpf-lb-dsr-dispatch=opt), Cilium's: copied on fragmentation (0x80),
 * class 0, number 26 (unassigned by IANA), 8 bytes, right after the fixed 20-byte IPv4 header;
 * the frontend the client addressed, in network byte order. The load-balancing node puts it on
 * the first packet of a TCP connection (the SYN) and on every UDP datagram; the backend's node
 * reads it (lib/nodeport_dsr.h).
 */
#define DSR_IPV4_OPT_TYPE (0x80 | 0x1a)

struct dsr_opt4 {
	__u8 type; /* DSR_IPV4_OPT_TYPE */
	__u8 len;  /* sizeof(struct dsr_opt4) */
	__be16 port;
	__be32 addr;
};
