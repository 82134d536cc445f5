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
  uint32_t k8s_client_qps = 50;                    // the API client's rate limit; 0 = none
  uint32_t k8s_client_burst = 100;
  // local | crd | kvstore; "" (the default): crd with a Kubernetes API server, local otherwise.
  std::string identity_allocation_mode;
  std::string manifests_dir;                       // standalone source; "" = off
};
const config::Registry<SourceConfig>& configKeys();

// The identity allocation mode in force: the configured one, or by default crd when the agent
// talks to a Kubernetes API server (identities agree on every node, as Cilium's default) and local
// without one (standalone and manifests-only nodes).
inline std::string identityAllocationMode(const SourceConfig& c, bool have_api_server) {
  if (!c.identity_allocation_mode.empty()) return c.identity_allocation_mode;
  return have_api_server ? "crd" : "local";
}

}  // namespace cilium::k8s
