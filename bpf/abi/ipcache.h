/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cilium_ipcache: LPM_TRIE (no prealloc), address prefix -> security identity of the remote end.
 * A miss means world. Key prefixlen counts the bits after the prefixlen field:
 * IPCACHE_PREFIX_BASE (cluster_id, pad, family) + the IP prefix length.
 * Twins: agent/datapath (IpcacheMap), agent/ipcache, cilium-dbg "bpf ipcache list".
 */
#pragma once

#include "common.h"

#define IPCACHE_PREFIX_BASE 32

struct ipcache_key {
	__u32 prefixlen;
	__u16 cluster_id;
	__u8 pad1;
	__u8 family; /* ENDPOINT_KEY_IPV4 / ENDPOINT_KEY_IPV6 */
	union v4v6_addr ip;
};

#define IPCACHE_F_HAS_TUNNEL_EP 1 /* tunnel_endpoint is set: reach this prefix through VXLAN */
/*
 * tunnel_endpoint is an IPv6 address (else IPv4, whatever the key's family: an IPv6 pod CIDR is
 * reached over the node's IPv4 underlay, as Cilium does in dual-stack clusters). The datapath
 * encapsulates over IPv4 only; an entry with an IPv6 tunnel endpoint is not tunnelled.
 */
#define IPCACHE_F_TUNNEL_EP_IPV6 2

struct remote_endpoint_info {
	__u32 sec_identity;
	union v4v6_addr tunnel_endpoint; /* the node's underlay address */
	__u16 node_id;
	__u8 key;   /* encryption key index (later) */
	__u8 flags; /* IPCACHE_F_* */
};

#define CILIUM_IPCACHE_MAP_SIZE 512000
