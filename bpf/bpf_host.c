/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_host: the programs on the node's native devices (config key `devices`), attached by the
 * service load balancer (agent/service HostDatapath).
 *   cil_from_netdev: tcx ingress  (NodePort / externalIPs / LoadBalancer from outside, replies
 *                    of remote backends to SNATed connections, replies to masqueraded pods,
 *                    IPv4 and IPv6)
 *   cil_to_netdev:   tcx egress   (replies of local backends to outside clients, BPF masquerade
 *                    of pods' connections to the outside, IPv4 and IPv6)
 *   cil_xdp_entry:   XDP, with bpf-lb-acceleration=native (the remote-backend path, earlier)
 * Everything else passes untouched: the node's own traffic is not this program's business.
 * Paths: lib/nodeport.h, lib/masquerade.h, docs/services.md, docs/datapath.md.
 */
#define DROP_FILE DROP_FILE_BPF_HOST

#include "compiler.h"
#include "lib/config.h"
#include "lib/drop.h"
#include "lib/eth.h"
#include "lib/events.h"
#include "lib/masquerade.h"
#include "lib/metrics.h"
#include "lib/nodeport.h"
#include "lib/nodeport6.h"
#include "lib/nodeport_icmp.h"
#include "lib/nodeport_xdp.h"
#include "lib/pkt.h"
#include "lib/pkt6.h"

/*
 * The packet's IPv4 facts: 0, or 1 for anything that is not IPv4, or -DROP_x for fragments and
 * malformed packets (p holds the addresses when the IPv4 header was readable). The entry point
 * has made the headers linear (pkt_pull).
 */
static __always_inline int host_parse(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	p->len = ctx_load_u32(ctx, len);
	if (!eth_ok(ctx, &eth) || eth->h_proto != bpf_htons(ETH_P_IP))
		return 1;
	return pkt_parse4(ctx, p, &ip);
}

/* Whether the packet is IPv6 (after pkt_pull has made its headers linear). */
static __always_inline bool host_is_ipv6(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;

	return (void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6);
}

/*
 * IPv6 from outside: replies and ICMPv6 errors of pods' masqueraded connections go back to the
 * pods, NodePort / externalIP / LoadBalancer frontends to their backends, remote backends'
 * replies back to their clients (lib/nodeport6.h); anything else, and what does not parse, is
 * the stack's. A function of its own (a BPF-to-BPF call) with its struct pkt6 off the stack: the
 * IPv4 and IPv6 paths do not fit together in one 512-byte frame.
 */
static __noinline int from_netdev6(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	struct pkt6 *p = pkt6_scratch();
	bool rejected = false;
	int ret;

	if (!p || pkt_parse6(ctx, p) != 0)
		return TC_ACT_OK;
	ret = p->related ? masq_icmp_ingress6(ctx, p) : masq_ingress6(ctx, p);
	if (ret == TC_ACT_OK) {
		if (p->related)
			ret = nodeport_icmp_ingress6(ctx, p, mono_now_sec());
		else
			ret = nodeport_ingress6(ctx, p, mono_now_sec(), &rejected);
	}
	if (rejected) {
		/* Refused, not dropped silently; still reported as NO_SERVICE. */
		send_drop6(ctx, p, &ti, -DROP_NO_SERVICE);
		return ret;
	}
	if (ret < 0)
		return send_drop6(ctx, p, &ti, ret);
	if (ret != TC_ACT_OK)
		count_forwarded(p->len, METRIC_INGRESS);
	return ret;
}

/*
 * IPv6 leaving a native device: local backends' replies to NodePort clients leave from the
 * frontend, pods' connections to the outside are masqueraded. A BPF-to-BPF call, as
 * from_netdev6.
 */
static __noinline int to_netdev6(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_EGRESS};
	struct pkt6 *p = pkt6_scratch();
	int ret;

	if (!p)
		return TC_ACT_OK;
	ret = pkt_parse6(ctx, p);
	if (ret < 0) {
		/* As for IPv4: a pod's fragment bound outside cannot be translated. */
		if (masq_untranslatable6(p))
			return send_drop6(ctx, p, &ti, ret);
		return TC_ACT_OK;
	}
	if (p->related) {
		ret = nodeport_icmp_egress6(ctx, p, mono_now_sec());
		if (ret == 0)
			ret = masq_icmp_egress6(ctx, p);
	} else {
		__u32 now = mono_now_sec();

		ret = nodeport_egress6(ctx, p, now);
		if (ret == 0)
			ret = masq_egress6(ctx, p, now);
	}
	if (ret < 0)
		return send_drop6(ctx, p, &ti, ret);
	return TC_ACT_OK;
}

/* IPv4 (and anything else) from outside; a BPF-to-BPF call as from_netdev6. */
static __noinline int from_netdev4(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_INGRESS};
	struct pkt4 p = {};
	bool rejected;
	int ret;

	/* Fragments and malformed packets are the stack's to judge, not translated. */
	ret = host_parse(ctx, &p);
	if (ret != 0)
		return TC_ACT_OK;
	if (p.related) {
		ret = masq_icmp_ingress(ctx, &p);
		if (ret == TC_ACT_OK)
			ret = nodeport_icmp_ingress(ctx, &p, mono_now_sec());
		if (ret < 0)
			return send_drop(ctx, &p, &ti, ret);
		if (ret != TC_ACT_OK)
			count_forwarded(p.len, METRIC_INGRESS);
		return ret;
	}
	ret = masq_ingress(ctx, &p);
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	if (ret != TC_ACT_OK) {
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

/* IPv4 (and anything else) leaving a native device; a BPF-to-BPF call as to_netdev6. */
static __noinline int to_netdev4(struct __sk_buff *ctx)
{
	struct trace_info ti = {.dir = METRIC_EGRESS};
	struct pkt4 p = {};
	int ret;

	__u32 now;

	ret = host_parse(ctx, &p);
	if (ret != 0) {
		/*
		 * The stack's to judge, except a fragment of a pod's packet that masquerade would
		 * translate: it cannot be (no ports), and must not leave with the pod's address.
		 */
		if (ret < 0 && p.t.saddr && masq_untranslatable(&p))
			return send_drop(ctx, &p, &ti, ret);
		return TC_ACT_OK;
	}
	now = mono_now_sec();
	if (p.related) {
		ret = nodeport_icmp_egress(ctx, &p, now);
		if (ret == 0)
			ret = masq_icmp_egress(ctx, &p);
	} else {
		ret = nodeport_egress(ctx, &p, now);
		if (ret == 0)
			ret = masq_egress(ctx, &p, now);
	}
	if (ret < 0)
		return send_drop(ctx, &p, &ti, ret);
	return TC_ACT_OK;
}

/*
 * The entry points only pick the family: each family's path is a function of its own, whose frame
 * (the IPv6 one about 460 bytes) must fit the 512-byte stack with the caller's.
 */
SEC("tc")
int cil_from_netdev(struct __sk_buff *ctx)
{
	pkt_pull(ctx);
	return host_is_ipv6(ctx) ? from_netdev6(ctx) : from_netdev4(ctx);
}

SEC("tc")
int cil_to_netdev(struct __sk_buff *ctx)
{
	pkt_pull(ctx);
	return host_is_ipv6(ctx) ? to_netdev6(ctx) : to_netdev4(ctx);
}

SEC("xdp")
int cil_xdp_entry(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6))
		return nodeport_xdp6(ctx);
	return nodeport_xdp(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
