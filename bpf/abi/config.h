/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cilium_runtime_config: ARRAY of __u64 that the agent writes at run time.
 *
 * RUNTIME_POLICY_REV is the datapath policy revision. A conntrack entry caches the revision at
 * which its forward direction was last allowed; while it is current, established packets skip the
 * ipcache and policy lookups. The agent increments it after every change that can change a verdict
 * (a policy map update, an ipcache change), after the change is in the maps, so established
 * connections are re-checked on their next packet: revoking a policy cuts existing connections.
 *
 * RUNTIME_TUNNEL_IFINDEX is the ifindex of cilium_vxlan in routing-mode=tunnel, 0 otherwise. With
 * it set, a pod's packet to a prefix whose ipcache entry has a tunnel endpoint is encapsulated
 * towards that node (lib/encap.h); without it such packets go to the node's stack (native routing).
 * The agent writes it when it attaches bpf_overlay to the device (Datapath::attachOverlay).
 * Twins: agent/datapath (RuntimeConfig).
 */
#pragma once

#include "common.h"

enum runtime_config_index {
	RUNTIME_POLICY_REV = 0,
	RUNTIME_TUNNEL_IFINDEX = 1,
	RUNTIME_CONFIG_MAX = 8,
};
