/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking.
 *   cilium_ct4_global  LRU_HASH  ct_key4 -> ct_entry   TCP
 *   cilium_ct_any4_global  LRU_HASH  ct_key4 -> ct_entry   UDP, ICMP and other protocols
 *   cilium_ct6_global  LRU_HASH  ct_key6 -> ct_entry   IPv6 TCP
 *   cilium_ct_any6_global  LRU_HASH  ct_key6 -> ct_entry   IPv6 UDP, ICMPv6 and others
 *
 * IPv6 has maps of its own rather than a widened key: the IPv4 key stays 16 bytes (hashed and
 * compared on every IPv4 packet), the IPv6 one is 40. Both families share ct_entry and the
 * semantics below; ICMPv6 echo (128/129) plays ICMP echo's part, types below 128 are errors.
 *
 * A key is the connection's tuple in its original direction, as seen by the program that created
 * it, plus the processing direction: CT_KEY_EGRESS for entries created while a packet left an
 * endpoint (bpf_lxc from-container), CT_KEY_INGRESS while it entered one. Pod-to-pod traffic on
 * one node therefore has two entries: the client's egress one and the server's ingress one.
 * Lookup of a packet (s, d, sp, dp) processed in direction D:
 *   {s, d, sp, dp, D}                    hit -> CT_ESTABLISHED (or CT_REOPENED)
 *   {d, s, dp, sp, opposite(D)}          hit -> CT_REPLY
 *   ICMP errors: the quoted inner tuple as {inner, opposite(D)} or {reversed inner, D}
 *                                        hit -> CT_RELATED
 *   otherwise                            CT_NEW
 * A TCP SYN without ACK only opens connections: it is never looked up as a reply.
 * ICMP echo uses the identifier as the request's source port (dport 0), and as the reply's
 * destination port, so a reply is the reverse of its request.
 *
 * Expiry: `lifetime` is the monotonic second after which the entry is dead; an expired entry is
 * treated as absent and overwritten. The agent garbage-collects expired entries.
 *
 * Twins: agent/datapath (CtMap), cilium-dbg "bpf ct list".
 */
#pragma once

#include "common.h"

#define CT_KEY_EGRESS 0
#define CT_KEY_INGRESS 1
#define CT_KEY_SERVICE 4 /* client -> frontend: the backend chosen (lib/lb_packet.h) */
/*
 * outside client -> local backend of a NodePort (bpf_host.c): lb_id is the service id; with
 * CT_F_DSR, a connection another node load-balanced to the backend with DSR (lib/nodeport_dsr.h):
 * lb_id is the frontend's address and rev_nat_index its port, both in network byte order.
 */
#define CT_KEY_NODEPORT 8

struct ct_key4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 nexthdr;
	__u8 flags; /* CT_KEY_* */
	__u16 pad;
};

struct ct_key6 {
	union v4v6_addr saddr;
	union v4v6_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 nexthdr;
	__u8 flags; /* CT_KEY_* */
	__u16 pad;
};

enum ct_status {
	CT_NEW = 0,
	CT_ESTABLISHED = 1,
	CT_REPLY = 2,
	CT_RELATED = 3,
	CT_REOPENED = 4,
};

/* ct_entry.flags */
#define CT_F_RX_CLOSING (1 << 0)  /* FIN or RST seen in the reply direction */
#define CT_F_TX_CLOSING (1 << 1)  /* FIN or RST seen in the original direction */
#define CT_F_SEEN_NON_SYN (1 << 4) /* the handshake completed */
#define CT_F_NODE_PORT (1 << 5)
/*
 * A connection of an L7 proxy (abi/proxy.h): redirected to it (proxy_port set), or opened by its
 * own packets. Established packets go to the proxy, replies up the stack to its socket.
 */
#define CT_F_PROXY_REDIRECT (1 << 6)
/* A CT_KEY_NODEPORT entry of a DSR connection: replies leave from lb_id:rev_nat_index. */
#define CT_F_DSR (1 << 7)

struct ct_entry {
	__u64 tx_packets; /* original direction */
	__u64 tx_bytes;
	__u64 rx_packets; /* reply direction */
	__u64 rx_bytes;
	__u32 lifetime;   /* expiry, monotonic seconds */
	__u16 flags;      /* CT_F_* */
	__u16 rev_nat_index; /* CT_F_DSR (CT_KEY_NODEPORT): the frontend's port, network order */
	__u8 tx_flags_seen; /* TCP flags ORed, original direction */
	__u8 rx_flags_seen; /* TCP flags ORed, reply direction */
	__be16 proxy_port;   /* CT_F_PROXY_REDIRECT: the proxy the connection was redirected to */
	__u32 src_sec_id;     /* identity of the remote end when the entry was made */
	__u32 last_tx_report; /* monotonic seconds of the last trace event, original direction */
	__u32 last_rx_report; /* same, reply direction */
	__u32 policy_rev;     /* cilium_runtime_config[RUNTIME_POLICY_REV] when the verdict was taken */
	/*
	 * Service load balancing (abi/lb.h): in a CT_KEY_SERVICE entry the backend id the
	 * connection uses; in the egress entry of a translated connection the service id
	 * (rev-nat index) its replies are translated back with; otherwise 0.
	 */
	__u32 lb_id;
};

/* Timeouts, seconds (Cilium's defaults); overridable through the programs' config. */
#define CT_TIMEOUT_TCP_SYN 60
#define CT_TIMEOUT_TCP_ESTABLISHED 8000
#define CT_TIMEOUT_TCP_CLOSE 10
#define CT_TIMEOUT_NONTCP 60
/* Minimum interval between trace events of one connection direction (monitor aggregation). */
#define CT_REPORT_INTERVAL 5

#define CILIUM_CT_TCP_MAP_SIZE 524288
#define CILIUM_CT_ANY_MAP_SIZE 262144
