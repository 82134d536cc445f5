/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* cilium_metrics: per-CPU counters of forwarded and dropped packets. */
#pragma once

#include "compiler.h"
#include "abi/metrics.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, CILIUM_METRICS_MAP_SIZE);
	__uint(pinning, PIN_BY_NAME);
} cilium_metrics SEC(".maps");

static __always_inline void metrics_account(__u32 bytes, __u8 dir, __u8 reason, __u16 line,
					    __u8 file)
{
	struct metrics_key key = {
	    .reason = reason,
	    .dir = dir,
	    .line = line,
	    .file = file,
	};
	struct metrics_value *v;

	v = bpf_map_lookup_elem(&cilium_metrics, &key);
	if (likely(v)) {
		/* Per-CPU value: no other writer, plain adds suffice. */
		v->count += 1;
		v->bytes += bytes;
		return;
	}
	struct metrics_value init = {.count = 1, .bytes = bytes};
	/* A full map only loses this sample; the packet is unaffected. */
	bpf_map_update_elem(&cilium_metrics, &key, &init, BPF_NOEXIST_);
}
