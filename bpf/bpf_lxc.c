/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_lxc: programs on the host side of each pod's veth.
 *   cil_from_container: tc ingress of lxc* (packets leaving the pod)
 *   cil_to_container:   tc egress of lxc*  (packets entering the pod)
 */
#include "compiler.h"
#include "lib/metrics.h"

SEC("tc")
int cil_from_container(struct __sk_buff *ctx)
{
	metrics_account(ctx->len, METRIC_EGRESS, REASON_FORWARDED, 0, 0);
	return TC_ACT_OK;
}

SEC("tc")
int cil_to_container(struct __sk_buff *ctx)
{
	metrics_account(ctx->len, METRIC_INGRESS, REASON_FORWARDED, 0, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
