// Loading bpf_lxc, configuring it before load, and managing its tc links.
#include "agent/datapath/datapath.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "agent/bpf/skeleton.h"
#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/datapath/netlink.h"
#include "agent/datapath/policy_maps.h"
#include "bpf_lxc.skel.h"
#include "bpf_overlay.skel.h"

namespace cilium::datapath {
namespace {
auto log() {
  static auto l = logger("datapath");
  return l;
}

template <typename K, typename V>
Result<std::unique_ptr<bpf::KernelMap<K, V>>> kernelMap(bpf_map* m) {
  return bpf::KernelMap<K, V>::fromBorrowedFd(bpf_map__fd(m), bpf_map__name(m));
}

// The load-time constants every program of the node shares (lib/config.h).
template <typename Rodata>
void setRodata(Rodata* ro, const Config& cfg) {
  ro->cfg_ct_timeout_tcp_syn = cfg.ct_timeouts.tcp_syn;
  ro->cfg_ct_timeout_tcp_established = cfg.ct_timeouts.tcp_established;
  ro->cfg_ct_timeout_tcp_close = cfg.ct_timeouts.tcp_close;
  ro->cfg_ct_timeout_nontcp = cfg.ct_timeouts.non_tcp;
  ro->cfg_ct_report_interval = cfg.ct_report_interval;
  ro->cfg_events_rate = cfg.events_rate;
  ro->cfg_events_burst = cfg.events_burst != 0 ? cfg.events_burst : cfg.events_rate;
  ro->cfg_events_wakeup_bytes = cfg.events_wakeup_bytes != 0
                                    ? cfg.events_wakeup_bytes
                                    : std::min<uint32_t>(64 * 1024, cfg.events_ring_bytes / 4);
  ro->cfg_monitor_aggregation = static_cast<uint8_t>(cfg.monitor_aggregation);
  ro->cfg_lb_loopback_ipv4 = cfg.lb_loopback_ipv4;
  std::memcpy(&ro->cfg_lb_loopback_ipv6, cfg.lb_loopback_ipv6.data(), cfg.lb_loopback_ipv6.size());
}

// bpf_overlay, on the maps bpf_lxc has just created or reused (all of them pinned by now).
Result<bpf::LoadedSkeleton<bpf_overlay>> loadOverlay(const Config& cfg) {
  CILIUM_ASSIGN_OR_RETURN(auto opened, bpf::OpenedSkeleton<bpf_overlay>::open({cfg.pin_dir}));
  CILIUM_RETURN_IF_ERROR(bpf::adoptPinnedSizes(opened->obj));
  setRodata(opened->rodata, cfg);
  return std::move(opened).load();
}
}  // namespace

Status Config::validate() const {
  auto positive = [](uint32_t v, const char* field) -> Status {
    if (v == 0)
      return makeError(ErrorCode::kInvalidArgument, "datapath config: {} must be > 0", field);
    return okStatus();
  };
  if (pin_dir.empty() || pin_dir[0] != '/')
    return makeError(ErrorCode::kInvalidArgument,
                     "datapath config: pin_dir '{}' must be an absolute path on bpffs", pin_dir);
  if (procfs.empty() || procfs[0] != '/')
    return makeError(ErrorCode::kInvalidArgument,
                     "datapath config: procfs '{}' must be an absolute path", procfs);
  CILIUM_RETURN_IF_ERROR(positive(metrics_map_entries, "metrics_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(lxc_map_entries, "lxc_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(ipcache_map_entries, "ipcache_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(policy_map_entries, "policy_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(policy_endpoints, "policy_endpoints"));
  CILIUM_RETURN_IF_ERROR(positive(ct_tcp_map_entries, "ct_tcp_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(ct_any_map_entries, "ct_any_map_entries"));
  CILIUM_RETURN_IF_ERROR(positive(ct_timeouts.tcp_syn, "ct_timeouts.tcp_syn"));
  CILIUM_RETURN_IF_ERROR(positive(ct_timeouts.tcp_established, "ct_timeouts.tcp_established"));
  CILIUM_RETURN_IF_ERROR(positive(ct_timeouts.tcp_close, "ct_timeouts.tcp_close"));
  CILIUM_RETURN_IF_ERROR(positive(ct_timeouts.non_tcp, "ct_timeouts.non_tcp"));
  long page = ::sysconf(_SC_PAGESIZE);
  if (events_ring_bytes < page || (events_ring_bytes & (events_ring_bytes - 1)) != 0)
    return makeError(ErrorCode::kInvalidArgument,
                     "datapath config: events_ring_bytes {} must be a power of two >= {}",
                     events_ring_bytes, page);
  if (lb_loopback_ipv4 == 0)
    return makeError(ErrorCode::kInvalidArgument, "datapath config: lb_loopback_ipv4 is unset");
  if (std::all_of(lb_loopback_ipv6.begin(), lb_loopback_ipv6.end(), [](uint8_t b) { return b == 0; }))
    return makeError(ErrorCode::kInvalidArgument, "datapath config: lb_loopback_ipv6 is unset");
  if (monitor_aggregation != MonitorAggregation::kNone &&
      monitor_aggregation != MonitorAggregation::kMedium)
    return makeError(ErrorCode::kInvalidArgument, "datapath config: unknown monitor_aggregation {}",
                     static_cast<int>(monitor_aggregation));
  if (events_rate > 10'000'000)
    return makeError(ErrorCode::kInvalidArgument, "datapath config: events_rate {} above 1e7",
                     events_rate);
  return okStatus();
}

struct Datapath::State {
  bpf::LoadedSkeleton<bpf_lxc> lxc;
  std::optional<bpf::LoadedSkeleton<bpf_overlay>> overlay;
  std::unique_ptr<bpf::KernelMap<endpoint_key, endpoint_info>> endpoints;
  std::unique_ptr<bpf::KernelMap<uint32_t, endpoint_info>> endpoints_by_ifindex;
  std::unique_ptr<bpf::KernelMap<ipcache_key, remote_endpoint_info>> ipcache;
  std::unique_ptr<KernelPolicyMaps> policy;
  std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct_tcp;
  std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct_any;
  std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6_tcp;
  std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6_any;
  std::unique_ptr<bpf::KernelMap<uint32_t, uint64_t>> runtime_config;
  std::unique_ptr<bpf::KernelMap<uint32_t, bpf::PerCpu<::event_stats>>> event_stats;
};

Datapath::Datapath(Config cfg) : cfg_(std::move(cfg)) {}
Datapath::~Datapath() = default;

Result<std::unique_ptr<Datapath>> Datapath::load(const Config& cfg) {
  CILIUM_RETURN_IF_ERROR(cfg.validate());
  std::unique_ptr<Datapath> dp(new Datapath(cfg));
  CILIUM_ASSIGN_OR_RETURN(auto opened, bpf::OpenedSkeleton<bpf_lxc>::open({cfg.pin_dir}));
  auto& m = opened->maps;
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_metrics, cfg.metrics_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_lxc, cfg.lxc_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_lxc_if, cfg.lxc_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_ipcache, cfg.ipcache_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_policy_v2, cfg.policy_endpoints));
  // The inner map template decides which inner maps the outer one accepts. libbpf 1.1 crashes
  // resizing its own template (bpf_map__inner_map), so hand it one made like replace() does.
  CILIUM_ASSIGN_OR_RETURN(UniqueFd inner_template,
                          KernelPolicyMaps::createInnerMap(0, cfg.policy_map_entries));
  if (int err = bpf_map__set_inner_map_fd(m.cilium_policy_v2, inner_template.get()); err != 0)
    return errnoError(-err, "set the inner map template of cilium_policy_v2");
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_ct4_global, cfg.ct_tcp_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_ct_any4_global, cfg.ct_any_map_entries));
  // One size per protocol class, for both families.
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_ct6_global, cfg.ct_tcp_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_ct_any6_global, cfg.ct_any_map_entries));
  CILIUM_RETURN_IF_ERROR(opened.setMaxEntries(m.cilium_events, cfg.events_ring_bytes));

  setRodata(opened->rodata, cfg);

  // A pinned outer policy map accepts only inner maps like the template it was created with
  // (type, key and value sizes, flags), which the generic pin check cannot see: replace it
  // when it would refuse the maps this build creates.
  std::string policy_pin = cfg.pin_dir + "/cilium_policy_v2";
  CILIUM_ASSIGN_OR_RETURN(bool compatible,
                          pinnedPolicyMapCompatible(policy_pin, cfg.policy_map_entries));
  if (!compatible) {
    log()->warn("replacing pinned policy map with an incompatible inner map layout path={}",
                policy_pin);
    if (::unlink(policy_pin.c_str()) != 0) return errnoError(errno, "unpin " + policy_pin);
  }

  CILIUM_ASSIGN_OR_RETURN(auto loaded, std::move(opened).load());
  auto& lm = loaded->maps;
  auto st = std::make_unique<State>(State{std::move(loaded)});
  CILIUM_ASSIGN_OR_RETURN(auto overlay, loadOverlay(cfg));
  st->overlay.emplace(std::move(overlay));
  CILIUM_ASSIGN_OR_RETURN(dp->metrics_,
                          (kernelMap<metrics_key, bpf::PerCpu<metrics_value>>(lm.cilium_metrics)));
  CILIUM_ASSIGN_OR_RETURN(st->endpoints, (kernelMap<endpoint_key, endpoint_info>(lm.cilium_lxc)));
  CILIUM_ASSIGN_OR_RETURN(st->endpoints_by_ifindex,
                          (kernelMap<uint32_t, endpoint_info>(lm.cilium_lxc_if)));
  CILIUM_ASSIGN_OR_RETURN(st->ipcache,
                          (kernelMap<ipcache_key, remote_endpoint_info>(lm.cilium_ipcache)));
  CILIUM_ASSIGN_OR_RETURN(st->policy, KernelPolicyMaps::create(bpf_map__fd(lm.cilium_policy_v2),
                                                               cfg.policy_map_entries));
  CILIUM_ASSIGN_OR_RETURN(st->ct_tcp, (kernelMap<ct_key4, ct_entry>(lm.cilium_ct4_global)));
  CILIUM_ASSIGN_OR_RETURN(st->ct_any, (kernelMap<ct_key4, ct_entry>(lm.cilium_ct_any4_global)));
  CILIUM_ASSIGN_OR_RETURN(st->ct6_tcp, (kernelMap<ct_key6, ct_entry>(lm.cilium_ct6_global)));
  CILIUM_ASSIGN_OR_RETURN(st->ct6_any, (kernelMap<ct_key6, ct_entry>(lm.cilium_ct_any6_global)));
  CILIUM_ASSIGN_OR_RETURN(st->runtime_config,
                          (kernelMap<uint32_t, uint64_t>(lm.cilium_runtime_config)));
  CILIUM_ASSIGN_OR_RETURN(st->event_stats,
                          (kernelMap<uint32_t, bpf::PerCpu<::event_stats>>(lm.cilium_event_stats)));
  dp->s_ = std::move(st);

  std::error_code ec;
  std::filesystem::create_directories(cfg.pin_dir + "/links", ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}/links: {}", cfg.pin_dir, ec.message());
  log()->info("datapath loaded pin_dir={} ct_tcp={} ct_any={} ipcache={} policy={}x{}", cfg.pin_dir,
              cfg.ct_tcp_map_entries, cfg.ct_any_map_entries, cfg.ipcache_map_entries,
              cfg.policy_endpoints, cfg.policy_map_entries);
  return dp;
}

LxcPrograms Datapath::programs() const {
  return {s_->lxc->progs.cil_from_container, s_->lxc->progs.cil_to_container,
          s_->lxc->progs.cil_to_proxy, (*s_->overlay)->progs.cil_from_overlay};
}

Maps Datapath::maps() {
  return Maps{s_->endpoints.get(),   s_->endpoints_by_ifindex.get(),
              s_->ipcache.get(),     s_->policy.get(),
              s_->ct_tcp.get(),      s_->ct_any.get(),
              metrics_.get(),        s_->runtime_config.get(),
              s_->event_stats.get(), s_->ct6_tcp.get(),
              s_->ct6_any.get()};
}

Result<std::unique_ptr<EventReader>> Datapath::openEventReader(EventReader::Callback cb) const {
  return EventReader::open(bpf_map__fd(s_->lxc->maps.cilium_events), std::move(cb));
}

Result<EventCounters> Datapath::eventCounters() const {
  return readEventCounters(*s_->event_stats);
}

// Attaches `prog` to tcx `dir` of `ifindex` and pins the link at `pin`; where a pin exists the
// program is swapped atomically instead. A stale pin (device gone, ifindex reused) is replaced.
static Status attachPinned(const bpf_program* prog, int ifindex, bpf::TcDirection dir,
                           const std::string& pin) {
  if (::access(pin.c_str(), F_OK) == 0) {
    auto existing = bpf::TcLink::openPinned(pin);
    if (existing.ok() && existing->replaceProgram(prog).ok()) return okStatus();
    ::unlink(pin.c_str());
  }
  CILIUM_ASSIGN_OR_RETURN(bpf::TcLink link, bpf::TcLink::attach(prog, ifindex, dir));
  return link.pin(pin);
}

std::string Datapath::linkPin(int ifindex, bpf::TcDirection dir) const {
  return fmt::format("{}/links/lxc_{}_{}", cfg_.pin_dir, ifindex, bpf::directionName(dir));
}

Status Datapath::attachEndpoint(int ifindex) {
  // tc ingress of the host-side veth sees what the pod sends; tc egress what it receives.
  const std::pair<bpf::TcDirection, const bpf_program*> hooks[] = {
      {bpf::TcDirection::kIngress, s_->lxc->progs.cil_from_container},
      {bpf::TcDirection::kEgress, s_->lxc->progs.cil_to_container},
  };
  for (const auto& [dir, prog] : hooks)
    CILIUM_RETURN_IF_ERROR(attachPinned(prog, ifindex, dir, linkPin(ifindex, dir)));
  log()->debug("endpoint attached ifindex={}", ifindex);
  return okStatus();
}

std::string Datapath::overlayPin(int ifindex) const {
  return fmt::format("{}/links/overlay_{}_ingress", cfg_.pin_dir, ifindex);
}

// Detaches every pinned link whose name matches `pattern` (an sscanf format taking the ifindex,
// e.g. "overlay_%d_") but the one of `keep_ifindex` (0: all of them).
static Status detachPinnedLinks(const std::string& pin_dir, const char* pattern, int keep_ifindex) {
  std::string dir = pin_dir + "/links";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    int ifindex = 0;
    std::string name = e.path().filename();
    if (std::sscanf(name.c_str(), pattern, &ifindex) != 1 || ifindex == keep_ifindex) continue;
    auto link = bpf::TcLink::openPinned(e.path());
    if (link.ok()) {
      CILIUM_RETURN_IF_ERROR(link->detach());
    } else if (link.error().code() != ErrorCode::kNotFound) {
      return link.error();
    }
    ::unlink(e.path().c_str());
  }
  return okStatus();
}

Status Datapath::attachOverlay(int ifindex) {
  if (ifindex <= 0)
    return makeError(ErrorCode::kInvalidArgument, "overlay device: bad ifindex {}", ifindex);
  CILIUM_RETURN_IF_ERROR(attachPinned((*s_->overlay)->progs.cil_from_overlay, ifindex,
                                      bpf::TcDirection::kIngress, overlayPin(ifindex)));
  // Only now do pods' packets start going through it; then an older device's link goes.
  CILIUM_RETURN_IF_ERROR(
      s_->runtime_config->update(RUNTIME_TUNNEL_IFINDEX, static_cast<uint64_t>(ifindex)));
  CILIUM_RETURN_IF_ERROR(detachPinnedLinks(cfg_.pin_dir, "overlay_%d_", ifindex));
  log()->info("overlay attached ifindex={}", ifindex);
  return okStatus();
}

Status Datapath::detachOverlay() {
  // Pods' packets stop being encapsulated before the receive side goes.
  CILIUM_RETURN_IF_ERROR(s_->runtime_config->update(RUNTIME_TUNNEL_IFINDEX, 0));
  return detachPinnedLinks(cfg_.pin_dir, "overlay_%d_", 0);
}

Status Datapath::attachHostEgress(int ifindex) {
  if (ifindex <= 0)
    return makeError(ErrorCode::kInvalidArgument, "cilium_host: bad ifindex {}", ifindex);
  CILIUM_RETURN_IF_ERROR(detachHostEgress(ifindex));
  CILIUM_RETURN_IF_ERROR(attachPinned((*s_->overlay)->progs.cil_from_host, ifindex,
                                      bpf::TcDirection::kEgress, hostEgressPin(ifindex)));
  log()->info("host egress attached ifindex={}", ifindex);
  return okStatus();
}

std::string Datapath::hostEgressPin(int ifindex) const {
  return fmt::format("{}/links/cilium_host_{}_egress", cfg_.pin_dir, ifindex);
}

Status Datapath::detachHostEgress(int keep_ifindex) {
  return detachPinnedLinks(cfg_.pin_dir, "cilium_host_%d_egress", keep_ifindex);
}

Status Datapath::enableProxyRedirect() {
  CILIUM_ASSIGN_OR_RETURN(auto lo, netlink::linkByName("lo"));
  std::string pin = cfg_.pin_dir + "/links/proxy_lo_ingress";
  CILIUM_RETURN_IF_ERROR(
      attachPinned(s_->lxc->progs.cil_to_proxy, lo.ifindex, bpf::TcDirection::kIngress, pin));
  CILIUM_RETURN_IF_ERROR(netlink::replaceLocalDefaultRoute4(PROXY_ROUTE_TABLE, lo.ifindex));
  CILIUM_RETURN_IF_ERROR(netlink::ensureFwmarkRule4(MARK_MAGIC_TO_PROXY, MARK_MAGIC_HOST_MASK,
                                                    PROXY_ROUTE_TABLE, PROXY_RULE_PRIORITY));
  CILIUM_RETURN_IF_ERROR(netlink::setDeviceSysctl(cfg_.procfs, "lo", "accept_local", "1"));
  // IPv6 (dual-stack endpoints, proxies on [::1]) where the namespace has IPv6: the same rule and
  // a `local ::/0` route. Without them an IPv6 packet assigned to a proxy is not delivered (the
  // stack drops a forwarded packet that carries a socket): fail closed.
  auto v6_off = readFile(cfg_.procfs + "/sys/net/ipv6/conf/lo/disable_ipv6");
  bool v6 = v6_off.ok() && !v6_off->empty() && (*v6_off)[0] == '0';
  if (v6) {
    CILIUM_RETURN_IF_ERROR(
        netlink::replaceLocalDefaultRoute(IpFamily::kV6, PROXY_ROUTE_TABLE, lo.ifindex));
    CILIUM_RETURN_IF_ERROR(netlink::ensureFwmarkRule(IpFamily::kV6, MARK_MAGIC_TO_PROXY,
                                                     MARK_MAGIC_HOST_MASK, PROXY_ROUTE_TABLE,
                                                     PROXY_RULE_PRIORITY));
  }
  log()->info("proxy redirect enabled table={} lo_ifindex={} ipv6={}", PROXY_ROUTE_TABLE,
              lo.ifindex, v6);
  return okStatus();
}

Status Datapath::detachEndpoint(int ifindex) {
  for (auto dir : {bpf::TcDirection::kIngress, bpf::TcDirection::kEgress}) {
    std::string pin = linkPin(ifindex, dir);
    auto link = bpf::TcLink::openPinned(pin);
    if (!link.ok()) {
      if (link.error().code() == ErrorCode::kNotFound) continue;
      return link.error();
    }
    CILIUM_RETURN_IF_ERROR(link->detach());
  }
  return okStatus();
}

Result<std::vector<MetricsEntry>> Datapath::readMetrics() const {
  std::vector<MetricsEntry> out;
  CILIUM_RETURN_IF_ERROR(
      metrics_->forEach([&](const metrics_key& k, const bpf::PerCpu<metrics_value>& v) {
        MetricsEntry e{k.reason, k.dir, 0, 0};
        for (const auto& c : v.values) {
          e.packets += c.count;
          e.bytes += c.bytes;
        }
        // Entries differing only in line/file are merged: callers ask by reason and direction.
        for (auto& o : out) {
          if (o.reason == e.reason && o.dir == e.dir) {
            o.packets += e.packets;
            o.bytes += e.bytes;
            return true;
          }
        }
        out.push_back(e);
        return true;
      }));
  return out;
}

}  // namespace cilium::datapath
