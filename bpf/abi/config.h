/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cilium_runtime_config: ARRAY of __u64 that the agent writes at run time.
 *
 * RUNTIME_POLICY_REV is the datapath policy revision. A conntrack entry caches the revision at
 * which its forward direction was last allowed; while it is current, established packets skip the
 * ipcache and policy lookups. The agent increments it after every change that can change a verdict
 * (a policy map update, an ipcache change), after the change is in the maps, so established
 * connections are re-checked on their next packet: revoking a policy cuts existing connections.
 * Twins: agent/datapath (RuntimeConfig).
 */
#pragma once

#include "common.h"

enum runtime_config_index {
	RUNTIME_POLICY_REV = 0,
	RUNTIME_CONFIG_MAX = 8,
};
