/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cilium_metrics: per-CPU packet and byte counters by (reason, direction).
 * Twins: agent/bpf/abi.h (layout checks), the metrics exporter (cilium_drop_count_total,
 * cilium_forward_count_total). Layout-compatible with Cilium's metrics_key/metrics_value.
 */
#pragma once

#include "common.h"

/* Traffic direction of a metrics entry. */
enum metric_dir {
	METRIC_INGRESS = 1, /* towards an endpoint */
	METRIC_EGRESS = 2,  /* leaving an endpoint */
	METRIC_SERVICE = 3, /* service translation */
};

/* Reasons below 128 are non-drop outcomes; drops use the positive drop code (abi/drop.h). */
#define REASON_FORWARDED 0

struct metrics_key {
	__u8 reason; /* REASON_* or a DROP_* code */
	__u8 dir;    /* enum metric_dir */
	__u16 line;  /* source line of the drop, 0 for forwarded */
	__u8 file;   /* source file id of the drop */
	__u8 reserved[3];
};

struct metrics_value {
	__u64 count;
	__u64 bytes;
};

#define CILIUM_METRICS_MAP_SIZE 65536
