/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Transparent redirection to L7 proxies (docs/l7.md): what the datapath, the node's routing and
 * the proxies agree on.
 *
 * A policy entry (abi/policy.h) with a non-zero proxy_port sends the connections it allows to the
 * proxy listening on 127.0.0.1:<proxy_port> (IP_TRANSPARENT, TCP; or a transparent UDP socket on
 * the same address for a DNS proxy), IPv6 ones to [::1]:<proxy_port>. The datapath assigns the
 * packet to that socket (bpf_sk_assign) and hands it to the node's stack with skb->mark =
 * MARK_MAGIC_TO_PROXY | proxy_port << 16; the agent's routing rule (fwmark
 * MARK_MAGIC_TO_PROXY/MARK_MAGIC_HOST_MASK -> table PROXY_ROUTE_TABLE, which routes everything to
 * `local`) delivers it locally with the original destination kept. Packets of the proxy's
 * connections that the stack must demultiplex (replies to a proxy's upstream socket) carry the same
 * mark with port 0.
 *
 * Packets the proxies send carry a mark of their own (SO_MARK on every proxy socket):
 *   MARK_MAGIC_PROXY_INGRESS  the proxy of an ingress redirect: the destination endpoint's
 *                             ingress policy was enforced at the redirect; not checked again
 *   MARK_MAGIC_PROXY_EGRESS   the proxy of an egress redirect: the destination's ingress policy
 *                             applies as for any sender, with the identity from the mark
 * with the source identity in the other bits (proxy_mark_identity()); listening sockets carry
 * identity 0.
 *
 * Conntrack entries of redirected connections, and those the proxies' own packets create, have
 * CT_F_PROXY_REDIRECT (abi/ct.h; proxy_port in the entry): their established packets go to the
 * proxy again, their replies up the stack to the proxy's socket.
 *
 * Twins: agent/proxy (ports, marks on its sockets), agent/datapath (routing rule, the lo program).
 */
#pragma once

#include "common.h"

#define MARK_MAGIC_HOST_MASK 0x0F00
#define MARK_MAGIC_TO_PROXY 0x0200
#define MARK_MAGIC_PROXY_INGRESS 0x0A00
#define MARK_MAGIC_PROXY_EGRESS 0x0B00

/* The routing table of the fwmark rule, and the rule's priority (Cilium's numbers). */
#define PROXY_ROUTE_TABLE 2004
#define PROXY_RULE_PRIORITY 9

/* 127.0.0.1 in network order on a little-endian machine: where proxies listen. */
#define PROXY_LISTEN_ADDR 0x0100007f
/*
 * IPv6 (dual-stack endpoints): proxies listen on [::1]:<proxy_port> too (IPV6_TRANSPARENT,
 * IPV6_V6ONLY); the last 32-bit word of ::1 in network order on a little-endian machine. The
 * routing rule and the local route of PROXY_ROUTE_TABLE exist for IPv6 as well.
 */
#define PROXY_LISTEN_ADDR6_LAST 0x01000000

/*
 * Identity in a proxy mark, as Cilium encodes it: bits 16-31 carry identity bits 0-15, bits 0-7
 * identity bits 16-23; bits 8-11 are the magic.
 */
static inline __u32 proxy_mark(__u32 magic, __u32 identity)
{
	return magic | ((identity & 0xFFFF) << 16) | ((identity >> 16) & 0xFF);
}

static inline __u32 proxy_mark_identity(__u32 mark)
{
	return (mark >> 16) | ((mark & 0xFF) << 16);
}
