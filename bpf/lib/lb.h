/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing shared by the socket programs (bpf_sock.c) and the per-packet path:
 * frontend lookup, backend selection (random slot, Maglev, or session affinity), for IPv4
 * (lb4_*) and IPv6 (lb6_*). The selection itself is family-agnostic (lb_*): slots and Maglev
 * tables hold backend ids of one id space; only the frontend, backend and affinity maps differ.
 * Map semantics and the atomic backend replacement: abi/lb.h, docs/services.md.
 */
#pragma once

#include "compiler.h"
#include "abi/lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, CILIUM_LB_SERVICES_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_slot_key);
	__type(value, __u32);
	__uint(max_entries, CILIUM_LB_SLOTS_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, CILIUM_LB_BACKENDS_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, CILIUM_LB_REVNAT_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb4_affinity_val);
	__uint(max_entries, CILIUM_LB_AFFINITY_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_maglev_key);
	__type(value, struct lb4_maglev_chunk);
	__uint(max_entries, CILIUM_LB_MAGLEV_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb4_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb4_service);
	__uint(max_entries, CILIUM_LB_SERVICES_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb6_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb6_backend);
	__uint(max_entries, CILIUM_LB_BACKENDS_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb6_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb6_reverse_nat);
	__uint(max_entries, CILIUM_LB_REVNAT_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb6_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_affinity_key);
	__type(value, struct lb4_affinity_val);
	__uint(max_entries, CILIUM_LB_AFFINITY_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_lb6_affinity SEC(".maps");

/*
 * The hash that picks a connection's Maglev entry: the client's address, port and protocol
 * (the frontend is fixed per table), mixed with murmur3's 64-bit finalizer. Twin:
 * service::lbTupleHash().
 */
static __always_inline __u32 lb4_tuple_hash(__be32 saddr, __be16 sport, __u8 proto)
{
	__u64 h = ((__u64)bpf_ntohl(saddr) << 32) | ((__u32)bpf_ntohs(sport) << 16) | proto;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (__u32)h;
}

/* IPv6: the four words of the address folded by XOR, then as IPv4. */
static __always_inline __u32 lb6_tuple_hash(const union v4v6_addr *saddr, __be16 sport, __u8 proto)
{
	return lb4_tuple_hash(saddr->ip6_words[0] ^ saddr->ip6_words[1] ^ saddr->ip6_words[2] ^
				  saddr->ip6_words[3],
			      sport, proto);
}

/* The backend id in the Maglev table of the frontend's current generation; 0 when absent. */
static __always_inline __u32 lb_maglev_backend(const struct lb4_service *svc, __u32 hash)
{
	struct lb4_maglev_key key = {
	    .rev_nat_index = svc->rev_nat_index,
	    .gen = svc->gen,
	};
	struct lb4_maglev_chunk *chunk;
	__u32 idx;

	if (svc->maglev_size == 0)
		return 0;
	idx = hash % svc->maglev_size;
	key.chunk = (__u16)(idx / LB_MAGLEV_CHUNK);
	chunk = bpf_map_lookup_elem(&cilium_lb4_maglev, &key);
	if (!chunk)
		return 0;
	return chunk->backend_ids[idx % LB_MAGLEV_CHUNK];
}

/* Monotonic seconds, the clock of lb4_affinity_val.last_used (the agent reads the same one). */
static __always_inline __u32 lb_now_sec(void)
{
	return (__u32)(bpf_ktime_get_coarse_ns() / 1000000000ULL);
}

static __always_inline struct lb4_service *lb4_lookup_scope(__be32 addr, __be16 port, __u8 proto,
							    __u8 scope)
{
	struct lb4_key key = {
	    .address = addr,
	    .dport = port,
	    .proto = proto,
	    .scope = scope,
	};

	return bpf_map_lookup_elem(&cilium_lb4_services, &key);
}

static __always_inline struct lb4_service *lb6_lookup_scope(const union v4v6_addr *addr,
							    __be16 port, __u8 proto, __u8 scope)
{
	struct lb6_key key = {
	    .dport = port,
	    .proto = proto,
	    .scope = scope,
	};

	key.address = *addr;
	return bpf_map_lookup_elem(&cilium_lb6_services, &key);
}

/* The frontend as traffic from outside the cluster sees it (bpf_host). */
static __always_inline struct lb4_service *lb4_lookup_external(__be32 addr, __be16 port, __u8 proto)
{
	return lb4_lookup_scope(addr, port, proto, LB_SCOPE_EXTERNAL);
}

static __always_inline struct lb4_service *lb6_lookup_external(const union v4v6_addr *addr,
							       __be16 port, __u8 proto)
{
	return lb6_lookup_scope(addr, port, proto, LB_SCOPE_EXTERNAL);
}

/*
 * The frontend as pods and the node see it: the internal scope of an externalTrafficPolicy=Local
 * frontend (every backend), else the only entry.
 */
static __always_inline struct lb4_service *lb4_lookup_service(__be32 addr, __be16 port, __u8 proto)
{
	struct lb4_service *svc = lb4_lookup_external(addr, port, proto);
	struct lb4_service *internal;

	if (!svc || !(svc->flags2 & SVC_F2_TWO_SCOPES))
		return svc;
	internal = lb4_lookup_scope(addr, port, proto, LB_SCOPE_INTERNAL);
	return internal ? internal : svc;
}

static __always_inline struct lb4_service *lb6_lookup_service(const union v4v6_addr *addr,
							      __be16 port, __u8 proto)
{
	struct lb4_service *svc = lb6_lookup_external(addr, port, proto);
	struct lb4_service *internal;

	if (!svc || !(svc->flags2 & SVC_F2_TWO_SCOPES))
		return svc;
	internal = lb6_lookup_scope(addr, port, proto, LB_SCOPE_INTERNAL);
	return internal ? internal : svc;
}

static __always_inline struct lb4_backend *lb4_lookup_backend(__u32 backend_id)
{
	return bpf_map_lookup_elem(&cilium_lb4_backends, &backend_id);
}

static __always_inline struct lb6_backend *lb6_lookup_backend(__u32 backend_id)
{
	return bpf_map_lookup_elem(&cilium_lb6_backends, &backend_id);
}

/* The backend id in `slot` of the frontend's current generation; 0 when absent. */
static __always_inline __u32 lb_slot_backend(const struct lb4_service *svc, __u16 slot)
{
	struct lb4_slot_key key = {
	    .rev_nat_index = svc->rev_nat_index,
	    .gen = svc->gen,
	    .slot = slot,
	};
	__u32 *id = bpf_map_lookup_elem(&cilium_lb4_slots, &key);

	return id ? *id : 0;
}

/* A backend id of the frontend: from its Maglev table with `hash`, else a random slot. */
static __always_inline __u32 lb_pick(const struct lb4_service *svc, __u32 hash)
{
	if (svc->flags2 & SVC_F2_MAGLEV)
		return lb_maglev_backend(svc, hash);
	return lb_slot_backend(svc, (__u16)(bpf_get_prandom_u32() % svc->count) + 1);
}

/*
 * The family-specific parts of a backend selection: the frontend's map and key (its scope is
 * set here for the re-read), the backends map (whose values hold the state at `state_off`),
 * the affinity map and the key of this client (its service id filled in here).
 */
struct lb_select_ctx {
	void *services;
	void *svc_key;
	__u8 *svc_key_scope;
	void *backends;
	__u32 state_off;
	void *affinity;
	void *aff_key;
	__u32 *aff_key_rev_nat;
};

/*
 * An active backend id of frontend `svc`; 0 when the service has none. Reads the frontend again
 * when the slot or table entry it read was deleted by a concurrent backend replacement
 * (abi/lb.h) and retries once.
 */
static __always_inline __u32 lb_pick_slot(struct lb4_service *svc, const struct lb_select_ctx *c,
					  __u32 hash)
{
	__u32 id;

	if (svc->count == 0)
		return 0;
	id = lb_pick(svc, hash);
	if (id)
		return id;
	*c->svc_key_scope =
	    (svc->flags2 & SVC_F2_SCOPE_INTERNAL) ? LB_SCOPE_INTERNAL : LB_SCOPE_EXTERNAL;
	svc = bpf_map_lookup_elem(c->services, c->svc_key);
	if (!svc || svc->count == 0)
		return 0;
	return lb_pick(svc, hash);
}

/* Whether backend `id` exists and is active (not terminating). */
static __always_inline bool lb_backend_active(void *backends, __u32 id, __u32 state_off)
{
	__u8 *be = bpf_map_lookup_elem(backends, &id);

	return be && be[state_off] == LB_BACKEND_ACTIVE;
}

/*
 * Chooses the backend id for a new connection to frontend `svc` (session affinity first: the
 * backend this client used last, if within the timeout and still active); `hash` identifies the
 * connection for Maglev. 0 when the service has no active backend (the caller rejects).
 */
static __always_inline __u32 lb_select_id(struct lb4_service *svc, const struct lb_select_ctx *c,
					  __u32 now, __u32 hash)
{
	struct lb4_affinity_val *val;
	__u32 id = 0;

	if (svc->flags & SVC_F_AFFINITY) {
		*c->aff_key_rev_nat = svc->rev_nat_index;
		val = bpf_map_lookup_elem(c->affinity, c->aff_key);
		if (val && now - val->last_used <= svc->affinity_timeout &&
		    lb_backend_active(c->backends, val->backend_id, c->state_off))
			id = val->backend_id;
	}
	if (!id)
		id = lb_pick_slot(svc, c, hash);
	if (!id)
		return 0;
	if (svc->flags & SVC_F_AFFINITY) {
		struct lb4_affinity_val n = {
		    .last_used = now,
		    .backend_id = id,
		};

		/* svc may have been re-read: the key still names the same service id. */
		bpf_map_update_elem(c->affinity, c->aff_key, &n, BPF_ANY_);
	}
	return id;
}

/*
 * Chooses the backend for a new connection to the IPv4 frontend (addr, port, proto) whose entry
 * is `svc`; the client is `client` of `kind` for affinity, `hash` identifies the connection for
 * Maglev. Returns the backend and sets *backend_id, or NULL when the service has no active
 * backend (the caller rejects the connection).
 */
static __always_inline struct lb4_backend *lb4_select_backend(struct lb4_service *svc, __be32 addr,
							      __be16 port, __u8 proto, __u64 client,
							      __u8 kind, __u32 now, __u32 hash,
							      __u32 *backend_id)
{
	struct lb4_key key = {
	    .address = addr,
	    .dport = port,
	    .proto = proto,
	};
	struct lb4_affinity_key akey = {
	    .client = client,
	    .client_kind = kind,
	};
	struct lb_select_ctx c = {
	    .services = &cilium_lb4_services,
	    .svc_key = &key,
	    .svc_key_scope = &key.scope,
	    .backends = &cilium_lb4_backends,
	    .state_off = __builtin_offsetof(struct lb4_backend, state),
	    .affinity = &cilium_lb4_affinity,
	    .aff_key = &akey,
	    .aff_key_rev_nat = &akey.rev_nat_index,
	};
	__u32 id = lb_select_id(svc, &c, now, hash);

	if (!id)
		return NULL;
	*backend_id = id;
	return lb4_lookup_backend(id);
}

/*
 * The same for an IPv6 frontend; the client is an IPv6 address (LB_AFFINITY_CLIENT_IP) or a
 * netns cookie (LB_AFFINITY_CLIENT_COOKIE, `client` NULL).
 */
static __always_inline struct lb6_backend *
lb6_select_backend(struct lb4_service *svc, const union v4v6_addr *addr, __be16 port, __u8 proto,
		   const union v4v6_addr *client, __u64 cookie, __u32 now, __u32 hash,
		   __u32 *backend_id)
{
	struct lb6_key key = {
	    .dport = port,
	    .proto = proto,
	};
	struct lb6_affinity_key akey = {};
	struct lb_select_ctx c = {
	    .services = &cilium_lb6_services,
	    .svc_key = &key,
	    .svc_key_scope = &key.scope,
	    .backends = &cilium_lb6_backends,
	    .state_off = __builtin_offsetof(struct lb6_backend, state),
	    .affinity = &cilium_lb6_affinity,
	    .aff_key = &akey,
	    .aff_key_rev_nat = &akey.rev_nat_index,
	};
	__u32 id;

	key.address = *addr;
	if (client) {
		akey.client.addr = *client;
		akey.client_kind = LB_AFFINITY_CLIENT_IP;
	} else {
		akey.client.cookie = cookie;
		akey.client_kind = LB_AFFINITY_CLIENT_COOKIE;
	}
	id = lb_select_id(svc, &c, now, hash);
	if (!id)
		return NULL;
	*backend_id = id;
	return lb6_lookup_backend(id);
}
