// The cluster state source's configuration keys (k8s-*, identity-allocation-mode,
// manifests-dir): declared here, composed by the agent, read by the daemon's k8s components.
#pragma once

#include <cstdint>
#include <string>

#include "agent/config/config.h"

namespace cilium::k8s {

struct SourceConfig {
  std::string k8s_api_server;
  std::string k8s_kubeconfig_path;
  uint32_t k8s_sync_timeout = 180;                 // seconds
  std::string identity_allocation_mode = "local";  // local | crd
  std::string manifests_dir;                       // standalone source; "" = off
};
const config::Registry<SourceConfig>& configKeys();

}  // namespace cilium::k8s
