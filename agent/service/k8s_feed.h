// Feeds the service Manager from a source's Services and EndpointSlices (the API server or a
// manifests directory): every Service with the backends its EndpointSlices give, kept current
// as either changes, and the frontends restored from the last run that no Service claims are
// pruned after the first full sync.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/k8s/resources.h"
#include "agent/service/service.h"

namespace cilium::k8s {
struct Stores;
}

namespace cilium::service {

// Per-Service load-balancing algorithm (Cilium's key): "random" or "maglev" override the agent's
// bpf-lb-algorithm; any other value is reported (a warning naming the Service and the value)
// and the agent's algorithm applies. As in Cilium, the agent reads it only with
// bpf-lb-algorithm-annotation=true.
inline constexpr std::string_view kLbAlgorithmAnnotation = "service.cilium.io/lb-algorithm";

// A Kubernetes Service and its EndpointSlices as the Manager's Service: frontends per port
// (ClusterIP, externalIPs, LoadBalancer ingress IPs, NodePort), backends per port matched by
// port name and protocol; the kLbAlgorithmAnnotation; IPv4 slices only (others are skipped);
// endpoints that are not ready are left out unless terminating (then kept as terminating); `local`
// marks endpoints whose nodeName is `node_name`. nullopt for Services with nothing to balance
// (ExternalName, or headless without external addresses). kInvalidArgument naming the field for bad
// addresses. `lb_algorithm_annotation` false ignores the kLbAlgorithmAnnotation.
Result<std::optional<Service>> fromK8s(const k8s::Service& svc,
                                       const std::vector<k8s::EndpointSlice>& slices,
                                       const std::string& node_name,
                                       bool lb_algorithm_annotation = true);

class K8sFeed {
 public:
  // Programs every Service the stores hold (one batch), prunes restored frontends nobody
  // claimed, then follows changes. The stores must have synced and outlive the feed.
  // `lb_algorithm_annotation`: bpf-lb-algorithm-annotation (read kLbAlgorithmAnnotation).
  static Result<std::unique_ptr<K8sFeed>> start(Manager& manager, k8s::Stores& stores,
                                                std::string node_name,
                                                bool lb_algorithm_annotation);
  ~K8sFeed();  // stops following; the frontends stay
  K8sFeed(const K8sFeed&) = delete;
  K8sFeed& operator=(const K8sFeed&) = delete;

 private:
  K8sFeed(Manager& manager, k8s::Stores& stores, std::string node_name,
          bool lb_algorithm_annotation);
  // Recomputes one Service (namespace/name) from the stores and programs it (or deletes it).
  void sync(const std::string& key);
  // A Service or one of its slices changed: sync it, or remember it while batching.
  void changed(const std::string& key);
  std::vector<k8s::EndpointSlice> slicesOf(const std::string& key) const;

  Manager& manager_;
  k8s::Stores& stores_;
  std::string node_name_;
  bool lb_algorithm_annotation_;
  std::mutex mu_;  // handlers of both stores run on different threads
  std::map<std::string, std::set<std::string>> slices_by_service_;  // service key -> slice keys
  bool batching_ = true;         // until the first sync is programmed
  std::set<std::string> dirty_;  // Services changed while batching
  std::vector<std::function<void()>> unregister_;
};

}  // namespace cilium::service
