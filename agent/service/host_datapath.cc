// Loading bpf_host and managing its tcx links on the native devices.
#include "agent/service/host_datapath.h"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "agent/bpf/attach.h"
#include "agent/bpf/skeleton.h"
#include "agent/common/log.h"
#include "bpf_host.skel.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service");
  return l;
}

constexpr std::string_view kLinkPrefix = "host_";

}  // namespace

struct HostDatapath::State {
  std::unique_ptr<bpf::LoadedSkeleton<bpf_host>> skel;
  std::unique_ptr<bpf::KernelMap<nat4_key, nat4_entry>> nat;
  std::unique_ptr<bpf::KernelMap<uint32_t, node_dev4>> devices;
  std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct_tcp, ct_any;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb4_reverse_nat>> revnat;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb6_reverse_nat>> revnat6;
  std::unique_ptr<bpf::KernelMap<ipmasq_key4, uint8_t>> ipmasq;
  std::unique_ptr<bpf::KernelMap<nat6_key, nat6_entry>> nat6;
  std::unique_ptr<bpf::KernelMap<uint32_t, node_dev6>> devices6;
  std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6_tcp, ct6_any;
  std::unique_ptr<bpf::KernelMap<ipmasq_key6, uint8_t>> ipmasq6;
};

HostDatapath::~HostDatapath() = default;

Result<std::unique_ptr<HostDatapath>> HostDatapath::load(const std::string& pin_dir,
                                                         const HostOptions& opts) {
  if (pin_dir.empty() || pin_dir[0] != '/')
    return makeError(ErrorCode::kInvalidArgument, "host datapath: pin_dir '{}' must be absolute",
                     pin_dir);
  CILIUM_ASSIGN_OR_RETURN(auto opened, bpf::OpenedSkeleton<bpf_host>::open({pin_dir}));
  // bpf_host declares every shared map with the default size of bpf/abi; the agent may have
  // created them with other sizes.
  CILIUM_RETURN_IF_ERROR(bpf::adoptPinnedSizes(opened->obj));
  opened->rodata->cfg_enable_bpf_masquerade = opts.enable_masquerade ? 1 : 0;
  opened->rodata->cfg_enable_bpf_masquerade6 = opts.enable_masquerade6 ? 1 : 0;
  if (opts.lb_mode > LB_MODE_HYBRID)
    return makeError(ErrorCode::kInvalidArgument, "host datapath: lb_mode {} is unknown",
                     opts.lb_mode);
  opened->rodata->cfg_lb_mode = opts.lb_mode;
  CILIUM_ASSIGN_OR_RETURN(auto loaded, std::move(opened).load());
  std::unique_ptr<HostDatapath> dp(new HostDatapath());
  dp->pin_dir_ = pin_dir;
  dp->s_ = std::make_unique<State>();
  dp->s_->skel = std::make_unique<bpf::LoadedSkeleton<bpf_host>>(std::move(loaded));
  auto& m = (*dp->s_->skel)->maps;
  CILIUM_ASSIGN_OR_RETURN(dp->s_->nat, (bpf::KernelMap<nat4_key, nat4_entry>::fromBorrowedFd(
                                           bpf_map__fd(m.cilium_snat_v4_external))));
  CILIUM_ASSIGN_OR_RETURN(
      dp->s_->devices,
      (bpf::KernelMap<uint32_t, node_dev4>::fromBorrowedFd(bpf_map__fd(m.cilium_node_dev4))));
  using CtKernelMap = bpf::KernelMap<ct_key4, ct_entry>;
  CILIUM_ASSIGN_OR_RETURN(dp->s_->ct_tcp,
                          CtKernelMap::fromBorrowedFd(bpf_map__fd(m.cilium_ct4_global)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->ct_any,
                          CtKernelMap::fromBorrowedFd(bpf_map__fd(m.cilium_ct_any4_global)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->revnat,
                          (bpf::KernelMap<uint32_t, lb4_reverse_nat>::fromBorrowedFd(
                              bpf_map__fd(m.cilium_lb4_reverse_nat))));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->revnat6,
                          (bpf::KernelMap<uint32_t, lb6_reverse_nat>::fromBorrowedFd(
                              bpf_map__fd(m.cilium_lb6_reverse_nat))));
  CILIUM_ASSIGN_OR_RETURN(
      dp->s_->ipmasq,
      (bpf::KernelMap<ipmasq_key4, uint8_t>::fromBorrowedFd(bpf_map__fd(m.cilium_ipmasq_v4))));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->nat6, (bpf::KernelMap<nat6_key, nat6_entry>::fromBorrowedFd(
                                            bpf_map__fd(m.cilium_snat_v6_external))));
  CILIUM_ASSIGN_OR_RETURN(
      dp->s_->devices6,
      (bpf::KernelMap<uint32_t, node_dev6>::fromBorrowedFd(bpf_map__fd(m.cilium_node_dev6))));
  using Ct6KernelMap = bpf::KernelMap<ct_key6, ct_entry>;
  CILIUM_ASSIGN_OR_RETURN(dp->s_->ct6_tcp,
                          Ct6KernelMap::fromBorrowedFd(bpf_map__fd(m.cilium_ct6_global)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->ct6_any,
                          Ct6KernelMap::fromBorrowedFd(bpf_map__fd(m.cilium_ct_any6_global)));
  CILIUM_ASSIGN_OR_RETURN(
      dp->s_->ipmasq6,
      (bpf::KernelMap<ipmasq_key6, uint8_t>::fromBorrowedFd(bpf_map__fd(m.cilium_ipmasq_v6))));
  std::error_code ec;
  std::filesystem::create_directories(pin_dir + "/links", ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}/links: {}", pin_dir, ec.message());
  log()->info("host datapath loaded pin_dir={} masquerade={} masquerade6={} lb_mode={}", pin_dir,
              opts.enable_masquerade, opts.enable_masquerade6, opts.lb_mode);
  return dp;
}

static std::string linkPin(const std::string& pin_dir, int ifindex, bpf::TcDirection dir) {
  return fmt::format("{}/links/{}{}_{}", pin_dir, kLinkPrefix, ifindex, bpf::directionName(dir));
}

static std::string xdpPin(const std::string& pin_dir, int ifindex) {
  return fmt::format("{}/links/{}{}_xdp", pin_dir, kLinkPrefix, ifindex);
}

// Attaches (or swaps in) the XDP program through a pinned bpf link.
static Status attachXdp(const bpf_program* prog, int ifindex, XdpMode mode,
                        const std::string& pin) {
  int prog_fd = bpf_program__fd(prog);
  if (::access(pin.c_str(), F_OK) == 0) {
    UniqueFd link(::bpf_obj_get(pin.c_str()));
    if (link && ::bpf_link_update(link.get(), prog_fd, nullptr) == 0) return okStatus();
    ::unlink(pin.c_str());
  }
  LIBBPF_OPTS(bpf_link_create_opts, opts,
              .flags = mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
  UniqueFd link(::bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts));
  if (!link)
    return errnoError(errno, fmt::format("attach XDP ({}) to ifindex {}",
                                         mode == XdpMode::kNative ? "native" : "generic", ifindex));
  if (::bpf_obj_pin(link.get(), pin.c_str()) != 0) return errnoError(errno, "pin " + pin);
  return okStatus();
}

static Status detachXdp(const std::string& pin) {
  UniqueFd link(::bpf_obj_get(pin.c_str()));
  if (!link) return okStatus();
  if (::bpf_link_detach(link.get()) != 0 && errno != ENOLINK && errno != ENODEV)
    return errnoError(errno, "detach " + pin);
  ::unlink(pin.c_str());
  return okStatus();
}

Status HostDatapath::attachDevice(int ifindex, const IpAddr& snat_address, XdpMode xdp,
                                  const std::optional<IpAddr>& snat6) {
  if (!snat_address.isV4())
    return makeError(ErrorCode::kInvalidArgument, "device {}: SNAT address {} is not IPv4", ifindex,
                     snat_address.toString());
  if (snat6 && snat6->isV4())
    return makeError(ErrorCode::kInvalidArgument, "device {}: IPv6 SNAT address {} is IPv4",
                     ifindex, snat6->toString());
  node_dev4 dev{};
  dev.address = snat_address.v4NetworkOrder();
  // The addresses first: the programs may SNAT out of this device as soon as they are attached.
  CILIUM_RETURN_IF_ERROR(s_->devices->update(static_cast<uint32_t>(ifindex), dev));
  if (snat6) {
    node_dev6 dev6{};
    std::memcpy(dev6.address.ip6, snat6->bytes().data(), sizeof(dev6.address.ip6));
    CILIUM_RETURN_IF_ERROR(s_->devices6->update(static_cast<uint32_t>(ifindex), dev6));
  } else {
    auto r = s_->devices6->remove(static_cast<uint32_t>(ifindex));
    if (!r.ok()) return r.error();
  }
  const std::pair<bpf::TcDirection, const bpf_program*> hooks[] = {
      {bpf::TcDirection::kIngress, (*s_->skel)->progs.cil_from_netdev},
      {bpf::TcDirection::kEgress, (*s_->skel)->progs.cil_to_netdev},
  };
  for (const auto& [dir, prog] : hooks) {
    std::string pin = linkPin(pin_dir_, ifindex, dir);
    if (::access(pin.c_str(), F_OK) == 0) {
      auto existing = bpf::TcLink::openPinned(pin);
      if (existing.ok() && existing->replaceProgram(prog).ok()) continue;
      ::unlink(pin.c_str());  // stale: the device went away and its ifindex was reused
    }
    CILIUM_ASSIGN_OR_RETURN(bpf::TcLink link, bpf::TcLink::attach(prog, ifindex, dir));
    CILIUM_RETURN_IF_ERROR(link.pin(pin));
  }
  if (xdp != XdpMode::kDisabled)
    CILIUM_RETURN_IF_ERROR(
        attachXdp((*s_->skel)->progs.cil_xdp_entry, ifindex, xdp, xdpPin(pin_dir_, ifindex)));
  else
    CILIUM_RETURN_IF_ERROR(detachXdp(xdpPin(pin_dir_, ifindex)));
  const char* mode = xdp == XdpMode::kNative    ? "native"
                     : xdp == XdpMode::kGeneric ? "generic"
                                                : "disabled";
  log()->info("native device attached ifindex={} snat={} snat6={} xdp={}", ifindex,
              snat_address.toString(), snat6 ? snat6->toString() : "none", mode);
  return okStatus();
}

Status HostDatapath::detachDevice(int ifindex) {
  CILIUM_RETURN_IF_ERROR(detachXdp(xdpPin(pin_dir_, ifindex)));
  for (auto dir : {bpf::TcDirection::kIngress, bpf::TcDirection::kEgress}) {
    auto link = bpf::TcLink::openPinned(linkPin(pin_dir_, ifindex, dir));
    if (!link.ok()) {
      if (link.error().code() == ErrorCode::kNotFound) continue;
      return link.error();
    }
    CILIUM_RETURN_IF_ERROR(link->detach());
  }
  auto r = s_->devices->remove(static_cast<uint32_t>(ifindex));
  if (!r.ok()) return r.error();
  r = s_->devices6->remove(static_cast<uint32_t>(ifindex));
  if (!r.ok()) return r.error();
  return okStatus();
}

Status HostDatapath::detachAllExcept(const std::vector<int>& keep) {
  std::error_code ec;
  std::vector<int> stale;
  for (const auto& e : std::filesystem::directory_iterator(pin_dir_ + "/links", ec)) {
    std::string name = e.path().filename();
    if (name.rfind(kLinkPrefix, 0) != 0) continue;
    int ifindex = std::atoi(name.c_str() + kLinkPrefix.size());
    if (ifindex <= 0 || std::find(keep.begin(), keep.end(), ifindex) != keep.end()) continue;
    if (std::find(stale.begin(), stale.end(), ifindex) == stale.end()) stale.push_back(ifindex);
  }
  for (int ifindex : stale) {
    log()->info("detaching device no longer configured ifindex={}", ifindex);
    CILIUM_RETURN_IF_ERROR(detachDevice(ifindex));
  }
  return okStatus();
}

HostPrograms HostDatapath::programs() const {
  return {(*s_->skel)->progs.cil_from_netdev, (*s_->skel)->progs.cil_to_netdev,
          (*s_->skel)->progs.cil_xdp_entry};
}

NatMap& HostDatapath::nat() { return *s_->nat; }

IpMasqMap& HostDatapath::ipMasq() { return *s_->ipmasq; }

NatMap6& HostDatapath::nat6() { return *s_->nat6; }

IpMasqMap6& HostDatapath::ipMasq6() { return *s_->ipmasq6; }

namespace {

ipmasq_key4 ipMasqKey4(const IpPrefix& p) {
  ipmasq_key4 k{};
  k.prefixlen = p.len();
  k.addr = p.addr().v4NetworkOrder();
  return k;
}

ipmasq_key6 ipMasqKey6(const IpPrefix& p) {
  ipmasq_key6 k{};
  k.prefixlen = p.len();
  std::memcpy(k.addr.ip6, p.addr().bytes().data(), sizeof(k.addr.ip6));
  return k;
}

// Makes `want` the keys of LPM map `m`: new ones first, then the ones no longer wanted go.
template <class Key>
Status syncIpMasq(bpf::Map<Key, uint8_t>& m, const std::vector<Key>& want) {
  auto same = [](const Key& a, const Key& b) { return std::memcmp(&a, &b, sizeof(Key)) == 0; };
  std::vector<Key> have;
  CILIUM_RETURN_IF_ERROR(m.forEach([&](const Key& k, const uint8_t&) {
    have.push_back(k);
    return true;
  }));
  for (const auto& k : want) CILIUM_RETURN_IF_ERROR(m.update(k, 1));
  for (const auto& k : have) {
    if (std::any_of(want.begin(), want.end(), [&](const auto& w) { return same(w, k); })) continue;
    auto r = m.remove(k);
    if (!r.ok()) return r.error();
  }
  return okStatus();
}

}  // namespace

Status HostDatapath::setNonMasqueradeCidrs(const std::vector<IpPrefix>& cidrs) {
  std::vector<ipmasq_key4> want4;
  std::vector<ipmasq_key6> want6;
  for (const auto& p : cidrs) {
    if (p.family() == IpFamily::kV4)
      want4.push_back(ipMasqKey4(p));
    else
      want6.push_back(ipMasqKey6(p));
  }
  CILIUM_RETURN_IF_ERROR(syncIpMasq(*s_->ipmasq, want4));
  return syncIpMasq(*s_->ipmasq6, want6);
}

Result<NatGcStats> HostDatapath::collectNat(uint32_t now) {
  CILIUM_ASSIGN_OR_RETURN(
      NatGcStats v4,
      gcNat({s_->nat.get(), s_->ct_tcp.get(), s_->ct_any.get(), s_->revnat.get()}, now));
  CILIUM_ASSIGN_OR_RETURN(
      NatGcStats v6,
      gcNat6({s_->nat6.get(), s_->ct6_tcp.get(), s_->ct6_any.get(), s_->revnat6.get()}, now));
  return NatGcStats{v4.scanned + v6.scanned, v4.deleted + v6.deleted, v6.scanned, v6.deleted};
}

}  // namespace cilium::service
