/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source NAT of NodePort / externalIP / LoadBalancer connections forwarded to a backend on
 * another node (bpf_host.c): the client's address and port become the node's, so the backend's
 * replies come back through this node and are translated back.
 *   cilium_snat_v4_external LRU_HASH nat4_key -> nat4_entry
 * Each connection has two entries:
 *   NAT_DIR_EGRESS  {client, backend, cport, bport}     -> {node address, node port}
 *   NAT_DIR_INGRESS {backend, node address, bport, node port} -> {client, cport, service id}
 * BPF masquerade (enable-bpf-masquerade, lib/masquerade.h) shares the map: a pod's connection to
 * the outside leaves the native device from the node's address, and has the same two entries,
 * flagged NAT_F_MASQ:
 *   NAT_DIR_EGRESS  {pod, remote, pport, rport}            -> {node address, node port}
 *   NAT_DIR_INGRESS {remote, node address, rport, node port} -> {pod, pport}
 * ICMP echo uses the identifier as the port (the request's sport, the reply's dport).
 * Node ports are allocated from [NAT_PORT_MIN, NAT_PORT_MAX], above Linux's default ephemeral
 * range so that they do not collide with the node's own connections, and above the NodePort
 * range (30000-32767). A NodePort mapping lives as long as the connection's CT_KEY_SERVICE
 * entry, a masquerade mapping as long as the pod's CT_KEY_EGRESS entry: the agent collects them
 * after that (agent/service/nat_gc.h); the LRU is only the backstop.
 *   cilium_node_dev4 HASH __u32 ifindex -> node_dev4: the address SNAT uses on each device.
 *   cilium_ipmasq_v4 LPM_TRIE ipmasq_key4 -> __u8: destinations never masqueraded (the pod CIDR or
 *   ipv4-native-routing-cidr, and the non-masquerade CIDRs), written by the agent.
 * IPv6 (enable-ipv6-masquerade) has the same maps with IPv6 keys, as Cilium does:
 *   cilium_snat_v6_external LRU_HASH nat6_key -> nat6_entry (masquerade only: no IPv6 NodePort yet)
 *   cilium_node_dev6 HASH __u32 ifindex -> node_dev6
 *   cilium_ipmasq_v6 LPM_TRIE ipmasq_key6 -> __u8 (the IPv6 pod CIDR or ipv6-native-routing-cidr)
 * ICMPv6 echo uses the identifier as the port, as ICMP echo does.
 * Twins: agent/service (HostDatapath, nat_gc), cilium-dbg "bpf nat list", "bpf ipmasq list".
 */
#pragma once

#include "common.h"

#define NAT_DIR_EGRESS	0
#define NAT_DIR_INGRESS 1

struct nat4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* NAT_DIR_* */
	__u16 pad;
};

struct nat4_entry {
	__be32 to_addr; /* egress: node address; ingress: client address */
	__be16 to_port; /* egress: node port; ingress: client port */
	__u16 flags;	/* NAT_F_* */
	__u32 rev_nat_index; /* NodePort ingress: the service whose frontend replies come from */
	__u32 created;	     /* monotonic seconds */
};

struct node_dev4 {
	__be32 address; /* IPv4 address SNAT uses on this device; 0 = none */
	__u32 pad;
};

/* nat4_entry.flags */
#define NAT_F_MASQ 1 /* a masqueraded pod connection (not a NodePort one) */

struct ipmasq_key4 {
	__u32 prefixlen;
	__be32 addr;
};

struct nat6_key {
	union v4v6_addr saddr;
	union v4v6_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* NAT_DIR_* */
	__u16 pad;
};

struct nat6_entry {
	union v4v6_addr to_addr; /* egress: node address; ingress: pod address */
	__be16 to_port;
	__u16 flags; /* NAT_F_* */
	__u32 rev_nat_index;
	__u32 created; /* monotonic seconds */
	__u32 pad;
};

struct node_dev6 {
	union v4v6_addr address; /* IPv6 address SNAT uses on this device; :: = none */
};

struct ipmasq_key6 {
	__u32 prefixlen;
	union v4v6_addr addr;
};

#define NAT_PORT_MIN 61000
#define NAT_PORT_MAX 65535
/* Random tries to find a free node port before giving up on a connection. */
#define NAT_PORT_TRIES 16

#define CILIUM_NAT_MAP_SIZE	 524288
#define CILIUM_NODE_DEV_MAP_SIZE 256
#define CILIUM_IPMASQ_MAP_SIZE	 16384
