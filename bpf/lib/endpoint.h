/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Local endpoints: who the program runs for (by ifindex) and where a destination lives (by IP). */
#pragma once

#include "compiler.h"
#include "abi/endpoint.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, CILIUM_LXC_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(max_entries, CILIUM_LXC_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, PIN_BY_NAME);
} cilium_lxc_if SEC(".maps");

static __always_inline const struct endpoint_info *endpoint_by_ifindex(__u32 ifindex)
{
	return bpf_map_lookup_elem(&cilium_lxc_if, &ifindex);
}

static __always_inline const struct endpoint_info *endpoint_by_ipv4(__be32 addr)
{
	struct endpoint_key key = {
	    .ip.ip4 = addr,
	    .family = ENDPOINT_KEY_IPV4,
	};

	return bpf_map_lookup_elem(&cilium_lxc, &key);
}

static __always_inline const struct endpoint_info *endpoint_by_ipv6(const union v4v6_addr *addr)
{
	struct endpoint_key key = {
	    .ip = *addr,
	    .family = ENDPOINT_KEY_IPV6,
	};

	return bpf_map_lookup_elem(&cilium_lxc, &key);
}
