/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Security identities with a fixed meaning (Cilium's numbers, so Hubble and policy tools agree).
 * Twins: agent/identity (reserved labels), proto/flow.proto consumers.
 */
#pragma once

#define IDENTITY_UNKNOWN 0
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2
#define IDENTITY_UNMANAGED 3
#define IDENTITY_HEALTH 4
#define IDENTITY_INIT 5
#define IDENTITY_REMOTE_NODE 6
#define IDENTITY_KUBE_APISERVER 7
#define IDENTITY_INGRESS 8
#define IDENTITY_WORLD_IPV4 9
#define IDENTITY_WORLD_IPV6 10
/* First identity allocated from labels (cluster-local, cluster id 0). */
#define IDENTITY_MIN_CLUSTER 256
/* Node-local identities (CIDR selectors) have this bit set. */
#define IDENTITY_LOCAL_FLAG (1U << 24)
