// The service load balancer's configuration keys (devices, bpf-lb-*, the hairpin source
// address): declared here, composed by the agent, read by ServiceComponent and the control plane.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/config/config.h"

namespace cilium::service {

struct Config {
  // Native devices NodePort / externalIPs / LoadBalancer are served on, separated by commas or
  // spaces ("" = none); see devicesList().
  std::string devices;
  // kube-proxy-replacement: NodePort, externalIPs and LoadBalancer frontends in BPF (true), or
  // left to kube-proxy (false, Cilium's default). ClusterIP is served in BPF either way, as
  // Cilium does. On: leftover kube-proxy chains in the node's netns are reported.
  bool kube_proxy_replacement = false;
  uint32_t bpf_lb_map_max = 65536;
  // Source of a pod's packets to itself through a Service (hairpin, docs/services.md).
  std::string ipv4_service_loopback_address = "169.254.42.1";
  std::string ipv6_service_loopback_address = "fe80::1";
  std::string bpf_lb_acceleration = "disabled";  // native | best-effort | disabled: XDP
  std::string bpf_lb_algorithm = "random";       // random | maglev
  bool bpf_lb_algorithm_annotation = false;      // read service.cilium.io/lb-algorithm
  uint32_t bpf_lb_maglev_table_size = 16381;
  // How NodePort / externalIPs / LoadBalancer reach a backend on another node (docs/services.md,
  // "DSR"): snat (the node's address; replies come back through this node), dsr (the client's
  // address kept, the frontend in an IPv4 option; the backend's node answers the client itself;
  // needs routing-mode=native) or hybrid (dsr for TCP, snat for UDP).
  std::string bpf_lb_mode = "snat";
  // How DSR carries the frontend to the backend's node: opt (an IPv4 option), the only one.
  std::string bpf_lb_dsr_dispatch = "opt";
  // Masquerading of pods' traffic to the outside (docs/datapath.md, "BPF masquerade"): in BPF on
  // the `devices` when both are on. Cilium's defaults: IPv4 masquerade on, BPF masquerade off
  // (Cilium then uses iptables, which this agent does not: nothing is masqueraded).
  bool enable_ipv4_masquerade = true;
  // IPv6 likewise (with enable-ipv6; Cilium's default: on).
  bool enable_ipv6_masquerade = true;
  bool enable_bpf_masquerade = false;
  // Destinations never masqueraded ("" = the node's pod CIDR), per family.
  std::string ipv4_native_routing_cidr;
  std::string ipv6_native_routing_cidr;
  // ip-masq-agent's non-masquerade CIDRs (agent/service/ip_masq_agent.h), re-read while running.
  bool enable_ip_masq_agent = false;
  std::string ip_masq_agent_config_path = "/etc/config/ip-masq-agent";

  bool bpfMasquerade() const { return enable_ipv4_masquerade && enable_bpf_masquerade; }
  // IPv6 BPF masquerade, when the agent runs with enable-ipv6 (ComponentOptions::enable_ipv6).
  bool bpfMasquerade6() const { return enable_ipv6_masquerade && enable_bpf_masquerade; }
  bool dsr() const { return bpf_lb_mode != "snat"; }

  // `devices` split on commas and whitespace, empty items dropped.
  std::vector<std::string> devicesList() const;
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::service
