// ControlPlaneComponent: the agent's configuration turned into ControlPlaneOptions.
#include "agent/daemon/control_plane_component.h"

namespace cilium::daemon {

Status ControlPlaneComponent::start(Daemon& daemon) {
  Config cfg = daemon.config().snapshot();
  ControlPlaneOptions o;
  o.pin_dir = cfg.bpf_pin_dir;
  o.state_dir = cfg.persistentStateDir();
  o.ct_tcp_entries = cfg.bpf_ct_global_tcp_max;
  o.ct_any_entries = cfg.bpf_ct_global_any_max;
  o.policy_map_entries = cfg.bpf_policy_map_max;
  o.monitor_aggregation = cfg.monitor_aggregation;
  o.enable_policy = cfg.enable_policy;
  o.restore = cfg.restore;
  if (daemon.ipam() != nullptr)
    if (auto r = daemon.ipam()->router(IpFamily::kV4)) o.router_ipv4 = r->toString();
  CILIUM_ASSIGN_OR_RETURN(cp_, ControlPlane::start(o, daemon.router()));
  ControlPlane* cp = cp_.get();
  daemon.addStatusProvider([cp](api::StatusResponse& s) { cp->status(s); });
  daemon.addDebugInfoProvider([cp](api::DebugInfo& d) { cp->debugInfo(d); });
  return okStatus();
}

void ControlPlaneComponent::stop() { cp_.reset(); }

}  // namespace cilium::daemon
