/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark helpers for BPF_PROG_TEST_RUN (bench/datapath_prog_bench):
 *   bench_empty   the cheapest tc program, the baseline
 *   bench_driver  prepares the packet, then tail-calls bench_target[0] (the program measured).
 * BPF_PROG_TEST_RUN repeats a program on one packet and keeps its changes between runs; the
 * driver undoes or varies them: it restores the TTL (IPv6: hop limit) that local delivery
 * decrements, and can advance the ports so that every run is a new connection.
 */
#include "compiler.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
} bench_target SEC(".maps");

/* Set from user space between runs (.bss is mapped). */
volatile __u8 vary_ports;
volatile __u8 reset_ttl;

SEC("tc")
int bench_empty(struct __sk_buff *ctx)
{
	return TC_ACT_OK;
}

SEC("tc")
int bench_driver(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u32 *ports = (void *)(ip + 1);

	if ((void *)(ip6 + 1) > data_end)
		return TC_ACT_SHOT;
	/* IPv6 (no extension headers): the ports after the fixed header, the hop limit. */
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		ports = (void *)(ip6 + 1);
	if ((void *)(ports + 1) > data_end)
		return TC_ACT_SHOT;
	if (vary_ports)
		*ports = bpf_htonl(bpf_ntohl(*ports) + 1);
	if (reset_ttl) {
		if (eth->h_proto == bpf_htons(ETH_P_IPV6))
			ip6->hop_limit = 64;
		else
			ip->ttl = 64;
	}
	bpf_tail_call(ctx, &bench_target, 0);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
