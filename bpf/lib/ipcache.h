/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* cilium_ipcache: the security identity behind an address (a miss means world). */
#pragma once

#include "compiler.h"
#include "abi/identity.h"
#include "abi/ipcache.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, CILIUM_IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_ipcache SEC(".maps");

/* The longest prefix holding `addr`, or NULL (world). */
static __always_inline const struct remote_endpoint_info *ipcache_lookup4(__be32 addr)
{
	struct ipcache_key key = {
	    .prefixlen = IPCACHE_PREFIX_BASE + 32,
	    .family = ENDPOINT_KEY_IPV4,
	    .ip.ip4 = addr,
	};

	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

static __always_inline __u32 ipcache_identity4(__be32 addr)
{
	const struct remote_endpoint_info *info = ipcache_lookup4(addr);

	return info ? info->sec_identity : IDENTITY_WORLD;
}

static __always_inline const struct remote_endpoint_info *
ipcache_lookup6(const union v4v6_addr *addr)
{
	struct ipcache_key key = {
	    .prefixlen = IPCACHE_PREFIX_BASE + 128,
	    .family = ENDPOINT_KEY_IPV6,
	    .ip = *addr,
	};

	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

static __always_inline __u32 ipcache_identity6(const union v4v6_addr *addr)
{
	const struct remote_endpoint_info *info = ipcache_lookup6(addr);

	return info ? info->sec_identity : IDENTITY_WORLD;
}
