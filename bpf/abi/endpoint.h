/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Local endpoints.
 *   cilium_lxc        HASH  endpoint_key (address)  -> endpoint_info   local delivery by destination
 *   cilium_lxc_if     HASH  __u32 host-side ifindex -> endpoint_info   "who am I" for bpf_lxc
 * Both maps hold the same endpoint_info for a pod; the agent writes both (ifindex first on add,
 * last on delete). Host addresses are in cilium_lxc with ENDPOINT_F_HOST: traffic to them goes
 * up the node's stack.
 * Twins: agent/datapath (EndpointMap, EndpointIfMap), cilium-dbg "bpf endpoint list".
 */
#pragma once

#include "common.h"

#define ENDPOINT_F_HOST 1 /* a local host address, not a pod */

struct endpoint_key {
	union v4v6_addr ip;
	__u8 family; /* ENDPOINT_KEY_IPV4 / ENDPOINT_KEY_IPV6 */
	__u8 pad1;
	__u16 cluster_id;
};

struct endpoint_info {
	__u32 ifindex; /* host-side veth */
	__u16 unused;
	__u16 lxc_id;   /* endpoint id (1..65535) */
	__u32 flags;    /* ENDPOINT_F_* */
	__u32 sec_id;   /* security identity */
	__u8 mac[8];    /* pod-side MAC (6 bytes used) */
	__u8 node_mac[8]; /* host-side veth MAC (6 bytes used) */
	__be32 ipv4;    /* the endpoint's IPv4 address, for source verification */
	__u32 pad;
	__u8 ipv6[16];  /* the endpoint's IPv6 address (unused until IPv6 lands) */
};

#define CILIUM_LXC_MAP_SIZE 65535
