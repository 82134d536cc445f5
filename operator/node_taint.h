// The agent-not-ready taint (cilium-operator), as Cilium's operator manages it: a node carries
// `node.cilium.io/agent-not-ready` (put there by whoever creates the node, or by this controller
// with set-cilium-node-taints) until a Cilium agent pod on it is Ready, so the scheduler keeps
// ordinary pods off a node whose network is not set up. "Ready" is the agent pod's Ready
// condition, which the kubelet sets from the agent's readiness probe (/healthz): the Pods in
// cilium-pod-namespace matching cilium-pod-labels, by spec.nodeName. A pod being deleted does not
// count. The taint is removed (remove-cilium-node-taints, default on) with a JSON patch that first
// tests the node's taints as seen, so a concurrent change is never overwritten (the node is then
// reconciled again from its new state). Work runs on a thread of its own; a failed write is
// retried with backoff.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"
#include "agent/k8s/store.h"
#include "operator/work_queue.h"

namespace cilium::op {

inline constexpr char kAgentNotReadyTaint[] = "node.cilium.io/agent-not-ready";

struct NodeTaintOptions {
  bool remove_taint = true;                             // remove-cilium-node-taints
  bool set_taint = false;                               // set-cilium-node-taints
  std::string taint_key = kAgentNotReadyTaint;          // agent-not-ready-taint-key
  std::string pod_namespace = "kube-system";            // cilium-pod-namespace
  k8s::StringMap pod_labels = {{"k8s-app", "cilium"}};  // cilium-pod-labels
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{10000};
};

// cilium-pod-labels: "k=v[,k=v...]" (equality only). kInvalidArgument naming the bad part.
Result<k8s::StringMap> parsePodLabels(const std::string& text);

// Whether `pod` is one of the Cilium agent pods `options` describes.
bool isAgentPod(const k8s::Pod& pod, const NodeTaintOptions& options);

// The taints `node` should carry given the agent pods on it (already filtered to that node), or
// nullopt when they stay as they are.
std::optional<std::vector<k8s::Taint>> desiredTaints(const k8s::Node& node,
                                                     const std::vector<k8s::Pod>& agent_pods,
                                                     const NodeTaintOptions& options);

// The JSON patch (RFC 6902) from `node`'s taints to `taints`: a "test" of the taints as seen
// (or of their absence), then the write.
nlohmann::json taintPatch(const k8s::Node& node, const std::vector<k8s::Taint>& taints);

class NodeTaintController {
 public:
  // `client`, `nodes` and `pods` (synced stores of all Nodes and of Pods including the agent's
  // namespace) must outlive the controller.
  NodeTaintController(k8s::Client& client, k8s::Store<k8s::Node>& nodes, k8s::Store<k8s::Pod>& pods,
                      NodeTaintOptions options);
  ~NodeTaintController();  // unregisters and stops the worker
  NodeTaintController(const NodeTaintController&) = delete;
  NodeTaintController& operator=(const NodeTaintController&) = delete;

  // Registers on both stores (every node is looked at once) and starts the worker.
  void start();
  // One node now: false when a write failed and it should be tried again.
  bool reconcile(const std::string& node_name);

  // Taints removed and added so far (for tests and logs).
  size_t removed() const;
  size_t added() const;

 private:

  k8s::Client& client_;
  k8s::Store<k8s::Node>& nodes_;
  k8s::Store<k8s::Pod>& pods_;
  NodeTaintOptions options_;
  mutable std::mutex mu_;  // guards the counters
  size_t removed_ = 0, added_ = 0;
  WorkQueue queue_{options_.retry_min, options_.retry_max};  // node names
  k8s::Store<k8s::Node>::HandlerId node_handlers_ = 0;
  k8s::Store<k8s::Pod>::HandlerId pod_handlers_ = 0;
  bool registered_ = false;
};

}  // namespace cilium::op
