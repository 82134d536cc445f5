// The service load balancer as a part of the agent: loads bpf_sock and the LB maps under the
// agent's pin directory, attaches the socket hooks to its cgroup-v2 root and bpf_host to the
// native `devices` (NodePort, externalIPs, LoadBalancer, BPF masquerade), restores the Manager
// from the pinned maps, and serves /v1/service. The sources (Kubernetes or manifests) feed
// manager() with Services and EndpointSlices; call manager()->pruneRestored() after their first
// full sync.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "agent/component/component.h"
#include "agent/service/config.h"
#include "agent/service/host_datapath.h"
#include "agent/service/lb_datapath.h"
#include "agent/service/service.h"

namespace cilium::service {

struct ComponentOptions {
  // Attach the socket LB to the configured cgroup-root. Without it (or when the directory is
  // missing) only the per-packet LB in bpf_lxc translates.
  bool attach_cgroup = true;
  // Node addresses for NodePort frontends; empty = the IPv4 addresses of the `devices`.
  ManagerConfig manager;
  // How often the SNAT mappings of finished NodePort connections are collected (nat_gc.h).
  std::chrono::seconds nat_gc_interval{30};
  // How often the ip-masq-agent file is checked for changes (enable-ip-masq-agent).
  std::chrono::milliseconds ip_masq_agent_poll{1000};
  // The agent runs with enable-ipv6: IPv6 masquerade (Config::bpfMasquerade6) applies.
  bool enable_ipv6 = false;
};

class ServiceComponent final : public component::Component {
 public:
  explicit ServiceComponent(ComponentOptions opts = {}) : opts_(std::move(opts)) {}
  std::string_view name() const override { return "service"; }
  // Reads its keys (service::Config) and the pin directory and cgroup root
  // (component::NodeConfig) from the configuration.
  Status start(component::Host& d) override;
  void stop() override;

  // Valid after start().
  Manager* manager() { return mgr_.get(); }

 private:
  ComponentOptions opts_;
  // Loads bpf_host, attaches it to the configured `devices` and detaches it from devices an
  // earlier agent served that are no longer configured. Adds the devices' addresses to
  // `node_ips` (with `ipv6`, their global IPv6 addresses too; `masquerade6` requires one). With
  // `xdp_best_effort`, a device whose driver refuses the XDP program is served by tc alone (a
  // warning), instead of failing the start.
  Status attachDevices(const std::vector<std::string>& devices, XdpMode xdp, bool xdp_best_effort,
                       bool ipv6, bool masquerade6, std::vector<IpAddr>& node_ips);

  Status setNonMasquerade(component::Host& d, const Config& cfg);
  Status applyIpMasqAgent();
  void ipMasqAgentLoop();
  void natGcLoop();

  std::unique_ptr<LbDatapath> dp_;
  std::unique_ptr<HostDatapath> host_;
  std::unique_ptr<Manager> mgr_;
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  bool stopping_ = false;
  std::atomic<size_t> nat_live_{0};   // entries after the last NAT GC run
  std::atomic<size_t> nat6_live_{0};  // IPv6 ones
  std::thread nat_gc_;
  // ipv4-native-routing-cidr or the IPv4 pod CIDR, and the IPv6 twin with IPv6 masquerade
  std::vector<IpPrefix> base_non_masq_;
  std::string ip_masq_agent_path_;
  std::string ip_masq_agent_stamp_;  // inode, size, mtime of the file last applied ("" missing)
  std::thread ip_masq_agent_;
};

}  // namespace cilium::service
