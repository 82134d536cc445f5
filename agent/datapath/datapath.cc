// Loading bpf_lxc and managing its tc links.
#include "agent/datapath/datapath.h"

#include <unistd.h>

#include <filesystem>

#include "agent/bpf/skeleton.h"
#include "agent/common/log.h"
#include "bpf_lxc.skel.h"

namespace cilium::datapath {
namespace {
auto log() {
  static auto l = logger("datapath");
  return l;
}
}  // namespace

struct Datapath::Programs {
  bpf::LoadedSkeleton<bpf_lxc> lxc;
};

Datapath::Datapath(Config cfg) : cfg_(std::move(cfg)) {}
Datapath::~Datapath() = default;

Result<std::unique_ptr<Datapath>> Datapath::load(const Config& cfg) {
  std::unique_ptr<Datapath> dp(new Datapath(cfg));
  CILIUM_ASSIGN_OR_RETURN(auto opened, bpf::OpenedSkeleton<bpf_lxc>::open({cfg.pin_dir}));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_metrics, cfg.metrics_map_entries));
  CILIUM_ASSIGN_OR_RETURN(auto loaded, std::move(opened).load());
  CILIUM_ASSIGN_OR_RETURN(dp->metrics_,
                          (bpf::KernelMap<metrics_key, bpf::PerCpu<metrics_value>>::fromBorrowedFd(
                              bpf_map__fd(loaded->maps.cilium_metrics))));
  dp->progs_ = std::make_unique<Programs>(Programs{std::move(loaded)});
  std::error_code ec;
  std::filesystem::create_directories(cfg.pin_dir + "/links", ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}/links: {}", cfg.pin_dir, ec.message());
  log()->info("datapath loaded pin_dir={}", cfg.pin_dir);
  return dp;
}

LxcPrograms Datapath::programs() const {
  return {progs_->lxc->progs.cil_from_container, progs_->lxc->progs.cil_to_container};
}

std::string Datapath::linkPin(int ifindex, bpf::TcDirection dir) const {
  return fmt::format("{}/links/lxc_{}_{}", cfg_.pin_dir, ifindex, bpf::directionName(dir));
}

Status Datapath::attachEndpoint(int ifindex) {
  // tc ingress of the host-side veth sees what the pod sends; tc egress what it receives.
  const std::pair<bpf::TcDirection, const bpf_program*> hooks[] = {
      {bpf::TcDirection::kIngress, progs_->lxc->progs.cil_from_container},
      {bpf::TcDirection::kEgress, progs_->lxc->progs.cil_to_container},
  };
  for (const auto& [dir, prog] : hooks) {
    std::string pin = linkPin(ifindex, dir);
    if (::access(pin.c_str(), F_OK) == 0) {
      auto existing = bpf::TcLink::openPinned(pin);
      if (existing.ok() && existing->replaceProgram(prog).ok()) continue;
      // A stale pin (device gone and ifindex reused): drop it and attach afresh.
      ::unlink(pin.c_str());
    }
    CILIUM_ASSIGN_OR_RETURN(bpf::TcLink link, bpf::TcLink::attach(prog, ifindex, dir));
    CILIUM_RETURN_IF_ERROR(link.pin(pin));
  }
  log()->debug("endpoint attached ifindex={}", ifindex);
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
