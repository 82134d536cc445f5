/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing shared by the socket programs (bpf_sock.c) and the per-packet path:
 * frontend lookup, backend selection (random slot, or session affinity), reverse NAT lookup.
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

/* The backend id in the Maglev table of the frontend's current generation; 0 when absent. */
static __always_inline __u32 lb4_maglev_backend(const struct lb4_service *svc, __u32 hash)
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

/* The frontend as traffic from outside the cluster sees it (bpf_host). */
static __always_inline struct lb4_service *lb4_lookup_external(__be32 addr, __be16 port, __u8 proto)
{
	return lb4_lookup_scope(addr, port, proto, LB_SCOPE_EXTERNAL);
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

static __always_inline struct lb4_backend *lb4_lookup_backend(__u32 backend_id)
{
	return bpf_map_lookup_elem(&cilium_lb4_backends, &backend_id);
}

/* The backend id in `slot` of the frontend's current generation; 0 when absent. */
static __always_inline __u32 lb4_slot_backend(const struct lb4_service *svc, __u16 slot)
{
	struct lb4_slot_key key = {
	    .rev_nat_index = svc->rev_nat_index,
	    .gen = svc->gen,
	    .slot = slot,
	};
	__u32 *id = bpf_map_lookup_elem(&cilium_lb4_slots, &key);

	return id ? *id : 0;
}

/*
 * An active backend of the frontend at `key` (from its Maglev table with `hash`, else a random
 * slot); 0 when the service has none. Reads the frontend again when the slot or table entry it
 * read was deleted by a concurrent backend replacement (abi/lb.h) and retries once.
 */
static __always_inline __u32 lb4_pick(const struct lb4_service *svc, __u32 hash)
{
	if (svc->flags2 & SVC_F2_MAGLEV)
		return lb4_maglev_backend(svc, hash);
	return lb4_slot_backend(svc, (__u16)(bpf_get_prandom_u32() % svc->count) + 1);
}

static __always_inline __u32 lb4_pick_slot(struct lb4_service *svc, __be32 addr, __be16 port,
					   __u8 proto, __u32 hash)
{
	__u32 id;

	if (svc->count == 0)
		return 0;
	id = lb4_pick(svc, hash);
	if (id)
		return id;
	svc = lb4_lookup_scope(addr, port, proto,
			       (svc->flags2 & SVC_F2_SCOPE_INTERNAL) ? LB_SCOPE_INTERNAL
								     : LB_SCOPE_EXTERNAL);
	if (!svc || svc->count == 0)
		return 0;
	return lb4_pick(svc, hash);
}

/*
 * Session affinity (sessionAffinity: ClientIP): the backend this client used last for this
 * service, if it was used within the timeout and is still active. 0 otherwise.
 */
static __always_inline __u32 lb4_affinity_backend(const struct lb4_service *svc, __u64 client,
						  __u8 kind, __u32 now)
{
	struct lb4_affinity_key key = {
	    .client = client,
	    .rev_nat_index = svc->rev_nat_index,
	    .client_kind = kind,
	};
	struct lb4_affinity_val *val = bpf_map_lookup_elem(&cilium_lb4_affinity, &key);
	struct lb4_backend *be;

	if (!val || now - val->last_used > svc->affinity_timeout)
		return 0;
	be = lb4_lookup_backend(val->backend_id);
	if (!be || be->state != LB_BACKEND_ACTIVE)
		return 0;
	return val->backend_id;
}

static __always_inline void lb4_affinity_record(const struct lb4_service *svc, __u64 client,
						__u8 kind, __u32 backend_id, __u32 now)
{
	struct lb4_affinity_key key = {
	    .client = client,
	    .rev_nat_index = svc->rev_nat_index,
	    .client_kind = kind,
	};
	struct lb4_affinity_val val = {
	    .last_used = now,
	    .backend_id = backend_id,
	};

	bpf_map_update_elem(&cilium_lb4_affinity, &key, &val, BPF_ANY_);
}

/*
 * Chooses the backend for a new connection to the frontend (addr, port, proto) whose entry is
 * `svc`; `hash` identifies the connection for Maglev. Returns the backend and sets *backend_id,
 * or NULL when the service has no active backend (the caller rejects the connection).
 */
static __always_inline struct lb4_backend *lb4_select_backend(struct lb4_service *svc, __be32 addr,
							      __be16 port, __u8 proto, __u64 client,
							      __u8 kind, __u32 now, __u32 hash,
							      __u32 *backend_id)
{
	struct lb4_backend *be;
	__u32 id = 0;

	if (svc->flags & SVC_F_AFFINITY)
		id = lb4_affinity_backend(svc, client, kind, now);
	if (!id)
		id = lb4_pick_slot(svc, addr, port, proto, hash);
	if (!id)
		return NULL;
	be = lb4_lookup_backend(id);
	if (!be)
		return NULL;
	if (svc->flags & SVC_F_AFFINITY)
		lb4_affinity_record(svc, client, kind, id, now);
	*backend_id = id;
	return be;
}
