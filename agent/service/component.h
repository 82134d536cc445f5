// The service load balancer as a part of the agent: loads bpf_sock and the LB maps under the
// agent's pin directory, attaches the socket hooks to its cgroup-v2 root, restores the Manager
// from the pinned maps, and serves /v1/service. The sources (Kubernetes or manifests) feed
// manager() with Services and EndpointSlices; call manager()->pruneRestored() after their first
// full sync.
#pragma once

#include <memory>

#include "agent/daemon/daemon.h"
#include "agent/service/lb_datapath.h"
#include "agent/service/service.h"

namespace cilium::service {

struct ComponentOptions {
  // Attach the socket LB to the configured cgroup-root. Without it (or when the directory is
  // missing) only the per-packet LB in bpf_lxc translates.
  bool attach_cgroup = true;
  ManagerConfig manager;  // node addresses for NodePort frontends
};

class ServiceComponent final : public daemon::Component {
 public:
  explicit ServiceComponent(ComponentOptions opts = {}) : opts_(std::move(opts)) {}
  std::string_view name() const override { return "service"; }
  Status start(daemon::Daemon& d) override;

  // Valid after start().
  Manager* manager() { return mgr_.get(); }

 private:
  ComponentOptions opts_;
  std::unique_ptr<LbDatapath> dp_;
  std::unique_ptr<Manager> mgr_;
};

}  // namespace cilium::service
