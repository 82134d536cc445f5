// Start-up of the service load balancer inside the agent.
#include "agent/service/component.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "agent/common/log.h"
#include "agent/datapath/conntrack.h"
#include "agent/ipam/ipam.h"
#include "agent/service/api.h"
#include "agent/service/ip_masq_agent.h"
#include "agent/service/kube_proxy.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service");
  return l;
}

// The first IPv4 address of device `name`, in the calling thread's network namespace.
Result<IpAddr> deviceAddress(const std::string& name) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return errnoError(errno, "getifaddrs");
  std::optional<IpAddr> found;
  for (ifaddrs* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || name != a->ifa_name)
      continue;
    found = IpAddr::fromHostOrder(ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr));
  }
  ::freeifaddrs(list);
  if (!found)
    return makeError(ErrorCode::kFailedPrecondition, "devices: {} has no IPv4 address", name);
  return *found;
}

// The first global IPv6 address of device `name` (link-local ones are skipped: masqueraded and
// NodePort connections leave the link), as deviceAddress() picks IPv4's.
Result<IpAddr> deviceAddress6(const std::string& name) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return errnoError(errno, "getifaddrs");
  std::optional<IpAddr> found;
  for (ifaddrs* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET6 || name != a->ifa_name)
      continue;
    const auto* in6 = reinterpret_cast<sockaddr_in6*>(a->ifa_addr);
    IpAddr addr = IpAddr::fromBytes(IpFamily::kV6, in6->sin6_addr.s6_addr);
    if (IpPrefix::parse("fe80::/10")->contains(addr)) continue;
    found = addr;
  }
  ::freeifaddrs(list);
  if (!found)
    return makeError(ErrorCode::kFailedPrecondition,
                     "devices: {} has no global IPv6 address", name);
  return *found;
}

// Node ports (NodePort SNAT and masquerade) come from NAT_PORT_MIN..NAT_PORT_MAX; the node's own
// connections from the device's address must not take them, or their replies would be taken for
// a pod's. Linux's default ephemeral range (32768-60999) stays below; a wider one is reported.
void warnOnEphemeralOverlap(const component::NodeConfig& node) {
  std::ifstream in(node.sysctlPath("net/ipv4/ip_local_port_range"));
  unsigned lo = 0, hi = 0;
  if (!(in >> lo >> hi)) return;
  if (hi >= NAT_PORT_MIN && lo <= NAT_PORT_MAX)
    log()->warn(
        "net.ipv4.ip_local_port_range {}-{} overlaps the node ports {}-{} of NodePort SNAT and "
        "BPF masquerade: the node's own connections may collide with masqueraded ones",
        lo, hi, NAT_PORT_MIN, NAT_PORT_MAX);
}

}  // namespace

Status ServiceComponent::attachDevices(const std::vector<std::string>& devices, XdpMode xdp,
                                       bool xdp_best_effort, bool ipv6, bool masquerade6,
                                       std::vector<IpAddr>& node_ips) {
  std::vector<int> attached;
  for (const auto& name : devices) {
    int ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
    if (ifindex == 0) return makeError(ErrorCode::kNotFound, "devices: no device named {}", name);
    CILIUM_ASSIGN_OR_RETURN(IpAddr addr, deviceAddress(name));
    // With IPv6 on, the device's IPv6 address is a NodePort frontend and the SNAT address of
    // IPv6 NodePort and masquerade. IPv6 masquerade cannot do without it; NodePort goes on
    // over IPv4 only on that device.
    std::optional<IpAddr> addr6;
    if (ipv6) {
      auto found = deviceAddress6(name);
      if (found.ok()) {
        addr6 = *found;
      } else if (masquerade6) {
        return found.error().withContext("needed by IPv6 masquerade");
      } else {
        log()->info("devices: {} has no global IPv6 address: no IPv6 NodePort on it", name);
      }
    }
    Status st = host_->attachDevice(ifindex, addr, xdp, addr6);
    if (!st.ok() && xdp != XdpMode::kDisabled && xdp_best_effort) {
      log()->warn("devices: {} without XDP acceleration (tc only): {}", name,
                  st.error().toString());
      st = host_->attachDevice(ifindex, addr, XdpMode::kDisabled, addr6);
    }
    if (!st.ok()) return st.error().withContext("devices: " + name);
    attached.push_back(ifindex);
    for (const auto& a : {std::optional<IpAddr>(addr), addr6})
      if (a && std::find(node_ips.begin(), node_ips.end(), *a) == node_ips.end())
        node_ips.push_back(*a);
  }
  return host_->detachAllExcept(attached);
}

// The destinations BPF masquerade leaves alone: ipv4-native-routing-cidr, else the node's pod
// CIDR (Cilium's rule), and with enable-ip-masq-agent the file's CIDRs. Without masquerade the
// map is emptied.
Status ServiceComponent::setNonMasquerade(component::Host& d, const Config& cfg) {
  base_non_masq_.clear();
  if (cfg.bpfMasquerade()) {
    if (!cfg.ipv4_native_routing_cidr.empty()) {
      CILIUM_ASSIGN_OR_RETURN(IpPrefix p, IpPrefix::parse(cfg.ipv4_native_routing_cidr));
      base_non_masq_.push_back(p);
    } else if (d.ipam() != nullptr && d.ipam()->cidr(IpFamily::kV4)) {
      base_non_masq_.push_back(*d.ipam()->cidr(IpFamily::kV4));
    } else {
      log()->warn(
          "BPF masquerade: no pod CIDR and no ipv4-native-routing-cidr; every "
          "destination outside the node's endpoints is masqueraded");
    }
    warnOnEphemeralOverlap(d.config<component::NodeConfig>());
  }
  if (opts_.enable_ipv6 && cfg.bpfMasquerade6()) {
    if (!cfg.ipv6_native_routing_cidr.empty()) {
      CILIUM_ASSIGN_OR_RETURN(IpPrefix p, IpPrefix::parse(cfg.ipv6_native_routing_cidr));
      base_non_masq_.push_back(p);
    } else if (d.ipam() != nullptr && d.ipam()->cidr(IpFamily::kV6)) {
      base_non_masq_.push_back(*d.ipam()->cidr(IpFamily::kV6));
    } else {
      log()->warn(
          "IPv6 BPF masquerade: no IPv6 pod CIDR and no ipv6-native-routing-cidr; every IPv6 "
          "destination outside the node's endpoints is masqueraded");
    }
  }
  for (const auto& c : base_non_masq_)
    log()->info("BPF masquerade: not masquerading to {}", c.toString());
  if (!cfg.enable_ip_masq_agent) return host_->setNonMasqueradeCidrs(base_non_masq_);
  ip_masq_agent_path_ = cfg.ip_masq_agent_config_path;
  return applyIpMasqAgent();
}

// Reads the ip-masq-agent file and writes the non-masquerade set. A file that does not parse
// changes nothing (the set in force stays) and is an error; a missing one means the defaults.
Status ServiceComponent::applyIpMasqAgent() {
  std::string stamp, text;
  struct stat st {};
  if (::stat(ip_masq_agent_path_.c_str(), &st) == 0) {
    stamp = fmt::format("{}:{}:{}:{}", st.st_ino, st.st_size, st.st_mtim.tv_sec,
                        st.st_mtim.tv_nsec);
    std::ifstream in(ip_masq_agent_path_);
    std::ostringstream buf;
    buf << in.rdbuf();
    if (!in && !in.eof())
      return makeError(ErrorCode::kInvalidArgument, "read {}", ip_masq_agent_path_);
    text = buf.str();
  } else if (errno != ENOENT) {
    return errnoError(errno, "stat " + ip_masq_agent_path_);
  }
  ip_masq_agent_stamp_ = stamp;
  auto parsed = parseIpMasqAgentConfig(text);
  if (!parsed.ok()) return parsed.error().withContext(ip_masq_agent_path_);
  std::vector<IpPrefix> cidrs = base_non_masq_;
  for (const auto& p : ipMasqAgentNonMasqueradeV4(*parsed)) cidrs.push_back(p);
  if (opts_.enable_ipv6)
    for (const auto& p : ipMasqAgentNonMasqueradeV6(*parsed)) cidrs.push_back(p);
  log()->info("ip-masq-agent: {} non-masquerade CIDRs from {}{}", cidrs.size() - base_non_masq_.size(),
              ip_masq_agent_path_, stamp.empty() ? " (missing: the defaults)" : "");
  return host_->setNonMasqueradeCidrs(cidrs);
}

// Re-reads the ip-masq-agent file when it changed (a ConfigMap update swaps a symlink, which
// changes the inode), once a second.
void ServiceComponent::ipMasqAgentLoop() {
  std::unique_lock lock(gc_mu_);
  while (!gc_cv_.wait_for(lock, opts_.ip_masq_agent_poll, [&] { return stopping_; })) {
    lock.unlock();
    struct stat st {};
    std::string stamp;
    if (::stat(ip_masq_agent_path_.c_str(), &st) == 0)
      stamp = fmt::format("{}:{}:{}:{}", st.st_ino, st.st_size, st.st_mtim.tv_sec,
                          st.st_mtim.tv_nsec);
    if (stamp != ip_masq_agent_stamp_) {
      Status applied = applyIpMasqAgent();
      if (!applied.ok())
        log()->error("ip-masq-agent: keeping the CIDRs in force: {}", applied.error().toString());
    }
    lock.lock();
  }
}

Status ServiceComponent::start(component::Host& d) {
  const auto node = d.config<component::NodeConfig>();
  const auto cfg = d.config<Config>();
  LbDatapathConfig lc;
  lc.pin_dir = node.bpf_pin_dir;
  auto dp = LbDatapath::load(lc);
  if (!dp.ok()) return dp.error().withContext("service load balancer");
  dp_ = std::move(*dp);
  if (opts_.attach_cgroup) {
    struct stat st {};
    if (::stat(node.cgroup_root.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      CILIUM_RETURN_IF_ERROR(dp_->attachCgroup(node.cgroup_root));
    } else {
      // Per-packet LB still translates; say so loudly rather than fail the agent.
      log()->warn("socket LB not attached: cgroup-root {} is not a directory", node.cgroup_root);
    }
  }
  HostOptions ho;
  ho.enable_masquerade = cfg.bpfMasquerade();
  ho.enable_masquerade6 = opts_.enable_ipv6 && cfg.bpfMasquerade6();
  ho.lb_mode = cfg.bpf_lb_mode == "dsr"      ? LB_MODE_DSR
               : cfg.bpf_lb_mode == "hybrid" ? LB_MODE_HYBRID
                                             : LB_MODE_SNAT;
  auto host = HostDatapath::load(node.bpf_pin_dir, ho);
  if (!host.ok()) return host.error().withContext("NodePort datapath");
  host_ = std::move(*host);
  CILIUM_RETURN_IF_ERROR(setNonMasquerade(d, cfg));
  ManagerConfig mc = opts_.manager;
  mc.algorithm = cfg.bpf_lb_algorithm == "maglev" ? LbAlgorithm::kMaglev : LbAlgorithm::kRandom;
  mc.maglev_table_size = cfg.bpf_lb_maglev_table_size;
  mc.kube_proxy_replacement = cfg.kube_proxy_replacement;
  std::vector<IpAddr> device_ips;
  const bool xdp = cfg.bpf_lb_acceleration != "disabled";
  CILIUM_RETURN_IF_ERROR(attachDevices(cfg.devicesList(),
                                       xdp ? XdpMode::kNative : XdpMode::kDisabled,
                                       cfg.bpf_lb_acceleration == "best-effort",
                                       opts_.enable_ipv6, ho.enable_masquerade6, device_ips));
  if (mc.node_ips.empty()) mc.node_ips = device_ips;
  mgr_ = std::make_unique<Manager>(dp_->maps(), mc);
  // kube-proxy's rules run before the BPF datapath sees a Service's packets: with the
  // replacement on, what kube-proxy left behind in this namespace is reported, never removed
  // (they may belong to a kube-proxy still running).
  std::vector<std::string> leftovers;
  if (cfg.kube_proxy_replacement) {
    leftovers = findLeftoverKubeProxy();
    if (!leftovers.empty())
      log()->warn(
          "kube-proxy-replacement is on but kube-proxy rules are left in this network "
          "namespace: they take Service traffic before the BPF datapath; remove "
          "kube-proxy and flush its rules chains={}",
          fmt::join(leftovers, ","));
  }
  d.addStatusProvider([kpr = cfg.kube_proxy_replacement, devices = cfg.devicesList(),
                       leftovers](api::StatusResponse& s) {
    s.kube_proxy_replacement =
        api::KubeProxyReplacement{kpr ? "True" : "False", devices, leftovers};
  });
  CILIUM_RETURN_IF_ERROR(mgr_->restore());
  nat_gc_ = std::thread([this] { natGcLoop(); });
  if (cfg.enable_ip_masq_agent) ip_masq_agent_ = std::thread([this] { ipMasqAgentLoop(); });
  d.addMapPressureProvider([this, masq6 = ho.enable_masquerade6](
                               std::vector<std::pair<std::string, double>>& out) {
    NatMap& nat = host_->nat();
    if (nat.maxEntries() != 0)
      // By its pin name: the kernel keeps 15 characters of a map's name.
      out.emplace_back("cilium_snat_v4_external",
                       static_cast<double>(nat_live_.load()) / nat.maxEntries());
    NatMap6& nat6 = host_->nat6();
    if (masq6 && nat6.maxEntries() != 0)
      out.emplace_back("cilium_snat_v6_external",
                       static_cast<double>(nat6_live_.load()) / nat6.maxEntries());
  });
  return registerRoutes(d.router(), *mgr_);
}

// Runs at once (what an earlier agent left is collected, and the map's pressure is known from
// the start), then every nat_gc_interval.
void ServiceComponent::natGcLoop() {
  std::unique_lock lock(gc_mu_);
  do {
    lock.unlock();
    auto r = host_->collectNat(datapath::monotonicSeconds());
    if (!r.ok()) {
      log()->warn("NAT gc failed error={}", r.error().toString());
    } else {
      nat6_live_ = r->scanned6 - r->deleted6;
      nat_live_ = (r->scanned - r->deleted) - nat6_live_.load();
      if (r->deleted != 0) log()->debug("NAT gc scanned={} deleted={}", r->scanned, r->deleted);
    }
    lock.lock();
  } while (!gc_cv_.wait_for(lock, opts_.nat_gc_interval, [&] { return stopping_; }));
}

void ServiceComponent::stop() {
  {
    std::lock_guard lock(gc_mu_);
    stopping_ = true;
  }
  gc_cv_.notify_all();
  if (nat_gc_.joinable()) nat_gc_.join();
  if (ip_masq_agent_.joinable()) ip_masq_agent_.join();
}

}  // namespace cilium::service
