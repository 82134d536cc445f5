/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-endpoint policy.
 *
 *   cilium_policy_v2  HASH_OF_MAPS  __u32 endpoint id -> inner LPM_TRIE (no prealloc)
 *                     inner: policy_key -> policy_entry, both directions of one endpoint
 *
 * A policy change of one endpoint never lets a packet through that neither the old nor the new
 * policy allows: the agent changes the inner map in place, entry by entry, in an order that
 * keeps this (new denies, new allows, old allows, old denies; agent/datapath/policy_patch.h), or,
 * when no such order exists, builds a complete new inner map and swaps it into the outer map
 * with one update (each such update makes the kernel wait for an RCU grace period).
 *
 * Lookup (per packet that needs a verdict; see docs/datapath.md): two longest-prefix lookups,
 * one with the remote identity and one with identity 0 (= any identity), each with the full
 * (direction, protocol, port). Prefix lengths express wildcards:
 *   POLICY_PREFIX_ANY_PROTO  (identity + direction)          any protocol, any port
 *   POLICY_PREFIX_ANY_PORT   (+ protocol)                    one protocol, any port
 *   POLICY_PREFIX_FULL       (+ port)                        one protocol, one port
 *   in between                                              a power-of-two aligned port range
 * Verdict: a deny from either lookup -> DROP_POLICY_DENY; else an allow from either -> allowed
 * (proxy port from the longer match); else DROP_POLICY.
 * The agent keeps the map state such that within one lookup the longest match is right: an allow
 * narrower than a deny of the same identity is never inserted.
 * An endpoint whose policy does not select it in a direction gets one entry
 * {identity 0, direction, prefix POLICY_PREFIX_ANY_PROTO} allow with POLICY_F_UNENFORCED (default
 * allow).
 * An endpoint with no inner map at all is not ready: its packets drop with DROP_EP_NOT_READY.
 *
 * Twins: agent/datapath (PolicyMaps), agent/policy (map state computation),
 * cilium-dbg "bpf policy get".
 */
#pragma once

#include "common.h"

#define POLICY_INGRESS 0
#define POLICY_EGRESS 1

/* Bits after the prefixlen field that are significant. */
#define POLICY_PREFIX_IDENTITY 32
#define POLICY_PREFIX_ANY_PROTO 40 /* identity + direction */
#define POLICY_PREFIX_ANY_PORT 48  /* + protocol */
#define POLICY_PREFIX_FULL 64      /* + 16 bits of port */

struct policy_key {
	__u32 prefixlen;
	__u32 sec_label; /* remote identity; 0 = any (host byte order: always fully matched) */
	__u8 egress;     /* POLICY_INGRESS / POLICY_EGRESS */
	__u8 protocol;   /* IPPROTO_*; 0 = any (use POLICY_PREFIX_ANY_PROTO) */
	__be16 dport;    /* network order so that port-range prefixes match high bits first */
};

#define POLICY_F_DENY 1
/* The default allow of a direction no policy enforces: no policy-verdict event (as Cilium,
 * which reports verdicts only where policy is enforced). */
#define POLICY_F_UNENFORCED 2

struct policy_entry {
	__be16 proxy_port; /* non-zero: redirect what this allows to that L7 proxy (abi/proxy.h) */
	__u8 flags;        /* POLICY_F_* */
	__u8 auth_type;    /* reserved */
	__u8 prefix_len;   /* copy of the key's prefixlen, to compare the two lookups' specificity */
	__u8 pad[3];
};

#define CILIUM_POLICY_MAP_SIZE 16384   /* entries per endpoint (inner map) */
#define CILIUM_POLICY_OUTER_SIZE 65535 /* endpoints */
