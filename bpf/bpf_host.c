/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_host: the programs on the node's native devices (config key `devices`), attached by the
 * service load balancer (agent/service HostDatapath).
 *   cil_from_netdev: tcx ingress  (NodePort / externalIPs / LoadBalancer from outside, replies
 *                    of remote backends to SNATed connections)
 *   cil_to_netdev:   tcx egress   (replies of local backends to outside clients)
 *   cil_xdp_entry:   XDP, with bpf-lb-acceleration=native (the remote-backend path, earlier)
 * Everything else passes untouched: the node's own traffic is not this program's business.
 * Paths: lib/nodeport.h, docs/services.md.
 */
#define DROP_FILE DROP_FILE_BPF_HOST

#include "compiler.h"
#include "lib/config.h"
#include "lib/drop.h"
#include "lib/eth.h"
#include "lib/events.h"
#include "lib/metrics.h"
#include "lib/nodeport.h"
#include "lib/nodeport_icmp.h"
#include "lib/nodeport_xdp.h"
#include "lib/pkt.h"

/* The packet's IPv4 facts, or false for anything bpf_host leaves to the stack. */
static __always_inline bool host_parse(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	pkt_pull(ctx);
	p->len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth) || eth->h_proto != bpf_htons(ETH_P_IP))
		return false;
	/* Fragments and malformed packets are the stack's to judge, not translated. */
	return pkt_parse4(ctx, p, &ip) == 0;
}

SEC("tc")
int cil_from_netdev(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	struct pkt4 p = {};
	bool rejected;
	int ret;

	if (!host_parse(ctx, &p))
		return TC_ACT_OK;
	if (p.related) {
		ret = nodeport_icmp_ingress(ctx, &p, mono_now_sec());
		if (ret < 0)
			return send_drop(ctx, &p, &ti, ret);
		if (ret != TC_ACT_OK)
			count_forwarded(p.len, METRIC_INGRESS);
		return ret;
	}
	ret = nodeport_ingress(ctx, &p, mono_now_sec(), &rejected);
	if (rejected) {
		/* Refused, not dropped silently; still reported as NO_SERVICE. */
		send_drop(ctx, &p, &ti, -DROP_NO_SERVICE);
		return ret;
	}
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	if (ret != TC_ACT_OK)
		count_forwarded(p.len, METRIC_INGRESS);
	return ret;
}

SEC("tc")
int cil_to_netdev(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_EGRESS};
	struct pkt4 p = {};
	int ret;

	if (!host_parse(ctx, &p))
		return TC_ACT_OK;
	if (p.related)
		ret = nodeport_icmp_egress(ctx, &p, mono_now_sec());
	else
		ret = nodeport_egress(ctx, &p, mono_now_sec());
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	return TC_ACT_OK;
}

SEC("xdp")
int cil_xdp_entry(struct xdp_md *ctx)
{
	return nodeport_xdp(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
