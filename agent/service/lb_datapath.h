// The kernel side of service load balancing: loads bpf_sock (socket LB), pins the LB maps it
// shares with bpf_lxc, and attaches the socket programs to the agent's cgroup-v2 root through
// pinned bpf links, so that they keep translating across an agent restart.
#pragma once

#include <memory>
#include <string>

#include "agent/common/error.h"
#include "agent/service/service.h"

struct bpf_sock_lb;

namespace cilium::service {

struct LbDatapathConfig {
  std::string pin_dir;  // bpffs directory of the maps (shared with bpf_lxc) and of the links
  uint32_t services_map_entries = CILIUM_LB_SERVICES_MAP_SIZE;
  uint32_t slots_map_entries = CILIUM_LB_SLOTS_MAP_SIZE;
  uint32_t backends_map_entries = CILIUM_LB_BACKENDS_MAP_SIZE;
  uint32_t revnat_map_entries = CILIUM_LB_REVNAT_MAP_SIZE;
};

class LbDatapath {
 public:
  static Result<std::unique_ptr<LbDatapath>> load(const LbDatapathConfig& cfg);
  ~LbDatapath();

  // Attaches connect4, sendmsg4, recvmsg4, getpeername4 and their IPv6 twins to the cgroup-v2
  // directory `cgroup_path` (never the machine's root cgroup in tests), pinning the links under
  // <pin_dir>/links/. Links pinned by an earlier agent get the new programs atomically.
  Status attachCgroup(const std::string& cgroup_path);
  // Detaches and unpins; absent links are fine.
  Status detachCgroup();

  // Valid as long as this object; writes use the kernel's batch update.
  ServiceMaps maps();
  AffinityMap& affinity();
  Affinity6Map& affinity6();

 private:
  LbDatapath() = default;
  struct State;
  std::unique_ptr<State> s_;
  std::string pin_dir_;
};

}  // namespace cilium::service
