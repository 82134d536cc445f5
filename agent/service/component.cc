// Start-up of the service load balancer inside the agent.
#include "agent/service/component.h"

#include <sys/stat.h>

#include "agent/common/log.h"
#include "agent/service/api.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service");
  return l;
}

}  // namespace

Status ServiceComponent::start(daemon::Daemon& d) {
  auto cfg = d.config().snapshot();
  LbDatapathConfig lc;
  lc.pin_dir = cfg.bpf_pin_dir;
  auto dp = LbDatapath::load(lc);
  if (!dp.ok()) return dp.error().withContext("service load balancer");
  dp_ = std::move(*dp);
  if (opts_.attach_cgroup) {
    struct stat st {};
    if (::stat(cfg.cgroup_root.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      CILIUM_RETURN_IF_ERROR(dp_->attachCgroup(cfg.cgroup_root));
    } else {
      // Per-packet LB still translates; say so loudly rather than fail the agent.
      log()->warn("socket LB not attached: cgroup-root {} is not a directory", cfg.cgroup_root);
    }
  }
  mgr_ = std::make_unique<Manager>(dp_->maps(), opts_.manager);
  CILIUM_RETURN_IF_ERROR(mgr_->restore());
  return registerRoutes(d.router(), *mgr_);
}

}  // namespace cilium::service
