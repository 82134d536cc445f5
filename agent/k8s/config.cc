// The cluster state source's configuration keys.
#include "agent/k8s/config.h"

namespace cilium::k8s {

const config::Registry<SourceConfig>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<SourceConfig>;
    r->string("k8s-api-server", "Kubernetes API server URL", &SourceConfig::k8s_api_server,
              [](std::string_view v) -> Status {
                if (v.empty() || v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0)
                  return okStatus();
                return config::invalidValue("must start with http:// or https://");
              });
    r->path("k8s-kubeconfig-path", "Path of a kubeconfig file", &SourceConfig::k8s_kubeconfig_path,
            true);
    r->seconds("k8s-sync-timeout",
               "Seconds to wait for the first full state from Kubernetes before failing to start",
               &SourceConfig::k8s_sync_timeout, 1, 3600);
    // Cilium's keys; its defaults are 10 and 20. Ours are higher: every CiliumEndpoint and
    // CiliumIdentity write is a request of its own, and 10/s would cap pod churn per node.
    r->uint("k8s-client-qps", "Requests per second to the Kubernetes API server (0: no limit)",
            &SourceConfig::k8s_client_qps, 0, 1000000);
    r->uint("k8s-client-burst", "Requests allowed at once above k8s-client-qps",
            &SourceConfig::k8s_client_burst, 1, 1000000);
    r->choice("identity-allocation-mode",
              "Where identities live: local (this node), crd (CiliumIdentity objects) or kvstore "
              "(etcd, with kvstore=etcd)",
              &SourceConfig::identity_allocation_mode, {"local", "crd", "kvstore"})
        .defaultNote("crd with a Kubernetes API server, else local");
    r->path("manifests-dir",
            "Standalone mode: read cluster state from this directory of Kubernetes YAML instead "
            "of the API server (\"\": off)",
            &SourceConfig::manifests_dir, true)
        .defaultNote("off");
    return r;
  }();
  return *r;
}

}  // namespace cilium::k8s
