/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the BPF programs (C, after vmlinux.h) and the agent (C++). Every struct
 * in bpf/abi/ is checked for size and field offsets in agent/bpf/abi.h; change both together.
 *
 * Address family convention (docs/datapath.md): maps keyed by an address that both families
 * share (endpoints, ipcache) carry a 16-byte address and a family byte; per-packet state
 * (conntrack, NAT, services) has separate ...4 / ...6 maps, as Cilium does.
 */
#pragma once

#ifndef __bpf__
#include <linux/types.h>
#endif

#define ENDPOINT_KEY_IPV4 1
#define ENDPOINT_KEY_IPV6 2

/* An IPv4 or IPv6 address; IPv4 uses the first 4 bytes (network order), the rest zero. */
union v4v6_addr {
	__be32 ip4;
	__u8 ip6[16];
	__u32 ip6_words[4];
};
