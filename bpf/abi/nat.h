/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source NAT of NodePort / externalIP / LoadBalancer connections forwarded to a backend on
 * another node (bpf_host.c): the client's address and port become the node's, so the backend's
 * replies come back through this node and are translated back.
 *   cilium_snat_v4_external LRU_HASH nat4_key -> nat4_entry
 * Each connection has two entries:
 *   NAT_DIR_EGRESS  {client, backend, cport, bport}     -> {node address, node port}
 *   NAT_DIR_INGRESS {backend, node address, bport, node port} -> {client, cport, service id}
 * Node ports are allocated from [NAT_PORT_MIN, NAT_PORT_MAX], above Linux's default ephemeral
 * range so that they do not collide with the node's own connections. A mapping lives as long
 * as the connection's CT_KEY_SERVICE entry: the agent collects it after that (agent/service/
 * nat_gc.h); the LRU is only the backstop.
 *   cilium_node_dev4 HASH __u32 ifindex -> node_dev4: the address SNAT uses on each device.
 * Twins: agent/service (HostDatapath).
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
	__u16 pad;
	__u32 rev_nat_index; /* ingress: the service whose frontend replies come from */
	__u32 created;	     /* monotonic seconds */
};

struct node_dev4 {
	__be32 address; /* IPv4 address SNAT uses on this device; 0 = none */
	__u32 pad;
};

#define NAT_PORT_MIN 61000
#define NAT_PORT_MAX 65535
/* Random tries to find a free node port before giving up on a connection. */
#define NAT_PORT_TRIES 16

#define CILIUM_NAT_MAP_SIZE	 524288
#define CILIUM_NODE_DEV_MAP_SIZE 256
