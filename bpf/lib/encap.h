/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The VXLAN overlay (routing-mode=tunnel): which packets go through it, and their encapsulation.
 * cilium_vxlan is a collect_md ("external") VXLAN device; a program gives each packet its outer
 * destination and VNI with bpf_skb_set_tunnel_key and redirects it there, and the kernel builds
 * the outer Ethernet/IPv4/UDP/VXLAN headers. The VNI carries the sender's security identity, so
 * the receiving node (bpf_overlay.c) enforces policy on who really sent the packet.
 */
#pragma once

#include "compiler.h"
#include "abi/config.h"
#include "abi/drop.h"
#include "abi/ipcache.h"
#include "lib/config.h"
#include "lib/ipcache.h"

/* Outer TTL of encapsulated packets (the kernel's default for tunnels without one). */
#define ENCAP_TTL 64
/* VXLAN network identifiers are 24 bits: identities above cannot travel in the VNI. */
#define ENCAP_VNI_MAX 0xffffff

/* cilium_vxlan's ifindex, or 0 when the node does not tunnel (abi/config.h). */
static __always_inline __u32 encap_ifindex(void)
{
	__u32 idx = RUNTIME_TUNNEL_IFINDEX;
	__u64 *v = bpf_map_lookup_elem(&cilium_runtime_config, &idx);

	return v ? (__u32)*v : 0;
}

/*
 * `info` when the node tunnels and the entry names an IPv4 tunnel endpoint, else NULL (the
 * destination is reached through the node's stack). The same test for both inner families: the
 * underlay is IPv4 (IPv6 inner over an IPv4 VXLAN underlay, as in Cilium's dual-stack clusters).
 */
static __always_inline const struct remote_endpoint_info *
encap_usable(const struct remote_endpoint_info *info, __u32 tunnel_ifindex)
{
	if (!tunnel_ifindex || !info || !(info->flags & IPCACHE_F_HAS_TUNNEL_EP) ||
	    (info->flags & IPCACHE_F_TUNNEL_EP_IPV6) || !info->tunnel_endpoint.ip4)
		return NULL;
	return info;
}

/* The ipcache entry of IPv4 `daddr` when it is reached through the tunnel, else NULL. */
static __always_inline const struct remote_endpoint_info *encap_lookup4(__be32 daddr,
									__u32 tunnel_ifindex)
{
	if (!tunnel_ifindex)
		return NULL;
	return encap_usable(ipcache_lookup4(daddr), tunnel_ifindex);
}

/* encap_lookup4 for an IPv6 destination (the tunnel endpoint is still IPv4). */
static __always_inline const struct remote_endpoint_info *
encap_lookup6(const union v4v6_addr *daddr, __u32 tunnel_ifindex)
{
	if (!tunnel_ifindex)
		return NULL;
	return encap_usable(ipcache_lookup6(daddr), tunnel_ifindex);
}

/*
 * Encapsulates towards `node` (IPv4, network order) with VNI `src_identity` and redirects to the
 * tunnel device's egress, whatever the inner family. Returns TC_ACT_REDIRECT, or -DROP_x.
 */
static __always_inline int encap_and_redirect4(struct __sk_buff *ctx, __be32 node,
					       __u32 src_identity, __u32 tunnel_ifindex)
{
	struct bpf_tunnel_key key = {
	    .tunnel_id = src_identity,
	    .remote_ipv4 = bpf_ntohl(node), /* the helper takes host order */
	    .tunnel_ttl = ENCAP_TTL,
	};

	if (!src_identity || src_identity > ENCAP_VNI_MAX)
		return -DROP_INVALID_IDENTITY;
	/* UDP checksum 0 is valid over IPv4 and spares checksumming every packet twice. */
	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return -DROP_WRITE_ERROR;
	return bpf_redirect(tunnel_ifindex, 0);
}
