// The agent-not-ready taint: Nodes and agent Pods in, JSON patches of spec.taints out.
#include "operator/node_taint.h"

#include <algorithm>

#include <fmt/format.h>

#include "agent/common/log.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("node-taint");
  return l;
}

using nlohmann::json;

bool hasTaint(const k8s::Node& node, const std::string& key) {
  return std::any_of(node.taints.begin(), node.taints.end(),
                     [&](const k8s::Taint& t) { return t.key == key; });
}

json taintsJson(const std::vector<k8s::Taint>& taints) {
  json out = json::array();
  for (const auto& t : taints) out.push_back(t.raw);
  return out;
}

}  // namespace

Result<k8s::StringMap> parsePodLabels(const std::string& text) {
  k8s::StringMap labels;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (!value.empty() && value[0] == '=') value.erase(0, 1);  // "k==v", a selector's equality
    if (eq == std::string::npos || key.empty() || key.back() == '!' ||
        value.find_first_of("=!(), ") != std::string::npos)
      return makeError(ErrorCode::kInvalidArgument,
                       "\"{}\": only key=value labels are supported (comma-separated)", part);
    labels[key] = value;
  }
  if (labels.empty())
    return makeError(ErrorCode::kInvalidArgument, "no labels: every pod would be an agent");
  return labels;
}

bool isAgentPod(const k8s::Pod& pod, const NodeTaintOptions& options) {
  if (pod.meta.namespace_name != options.pod_namespace) return false;
  for (const auto& [k, v] : options.pod_labels) {
    auto it = pod.meta.labels.find(k);
    if (it == pod.meta.labels.end() || it->second != v) return false;
  }
  return true;
}

std::optional<std::vector<k8s::Taint>> desiredTaints(const k8s::Node& node,
                                                     const std::vector<k8s::Pod>& agent_pods,
                                                     const NodeTaintOptions& options) {
  // A pod on its way out is scheduled but will be down shortly: it never makes the node ready.
  bool scheduled = !agent_pods.empty();
  bool running = std::any_of(agent_pods.begin(), agent_pods.end(),
                             [](const k8s::Pod& p) { return p.ready && !p.deleting; });
  bool tainted = hasTaint(node, options.taint_key);
  if (running && tainted && options.remove_taint) {
    std::vector<k8s::Taint> kept;
    for (const auto& t : node.taints)
      if (t.key != options.taint_key) kept.push_back(t);
    return kept;
  }
  if (!running && scheduled && !tainted && options.set_taint) {
    std::vector<k8s::Taint> more = node.taints;
    k8s::Taint t;
    t.key = options.taint_key;
    t.effect = "NoSchedule";
    t.raw = {{"key", t.key}, {"effect", t.effect}};
    more.push_back(std::move(t));
    return more;
  }
  return std::nullopt;
}

json taintPatch(const k8s::Node& node, const std::vector<k8s::Taint>& taints) {
  // A node without taints has no spec.taints at all: "test" against null matches only that.
  json seen = node.taints.empty() ? json(nullptr) : taintsJson(node.taints);
  return json::array({{{"op", "test"}, {"path", "/spec/taints"}, {"value", seen}},
                      {{"op", "add"}, {"path", "/spec/taints"}, {"value", taintsJson(taints)}}});
}

NodeTaintController::NodeTaintController(k8s::Client& client, k8s::Store<k8s::Node>& nodes,
                                         k8s::Store<k8s::Pod>& pods, NodeTaintOptions options)
    : client_(client), nodes_(nodes), pods_(pods), options_(std::move(options)) {}

NodeTaintController::~NodeTaintController() {
  if (registered_) {
    nodes_.removeHandlers(node_handlers_);
    pods_.removeHandlers(pod_handlers_);
  }
  queue_.stop();
}

size_t NodeTaintController::removed() const {
  std::lock_guard lock(mu_);
  return removed_;
}

size_t NodeTaintController::added() const {
  std::lock_guard lock(mu_);
  return added_;
}

void NodeTaintController::start() {
  queue_.start([this](const std::string& node) { return reconcile(node); });
  k8s::Handlers<k8s::Node> nh;
  nh.on_add = [this](const k8s::Node& n) { queue_.add(n.meta.name); };
  // Our own patches come back as updates; only a change of the taints is worth a look.
  nh.on_update = [this](const k8s::Node& old, const k8s::Node& n) {
    if (old.taints != n.taints) queue_.add(n.meta.name);
  };
  node_handlers_ = nodes_.addHandlers(std::move(nh));
  k8s::Handlers<k8s::Pod> ph;
  auto pod = [this](const k8s::Pod& p) {
    if (!p.node_name.empty() && isAgentPod(p, options_)) queue_.add(p.node_name);
  };
  ph.on_add = pod;
  ph.on_update = [pod](const k8s::Pod& old, const k8s::Pod& p) {
    pod(old);
    pod(p);
  };
  ph.on_delete = pod;
  pod_handlers_ = pods_.addHandlers(std::move(ph));
  registered_ = true;
  std::string labels;
  for (const auto& [k, v] : options_.pod_labels)
    labels += (labels.empty() ? "" : ",") + k + "=" + v;
  log()->info("agent-not-ready taint sync started remove={} set={} key={} pods={}/{}",
              options_.remove_taint, options_.set_taint, options_.taint_key, options_.pod_namespace,
              labels);
}

bool NodeTaintController::reconcile(const std::string& node_name) {
  auto node = nodes_.get("", node_name);
  if (!node) return true;  // gone
  std::vector<k8s::Pod> agents;
  for (const auto& p : pods_.list())
    if (p.node_name == node_name && isAgentPod(p, options_)) agents.push_back(p);
  auto taints = desiredTaints(*node, agents, options_);
  if (!taints) return true;
  bool removing = taints->size() < node->taints.size();
  auto r = client_.request("PATCH", k8s::Resource<k8s::Node>::info().objectPath("", node_name),
                           taintPatch(*node, *taints).dump(), "application/json-patch+json");
  if (r.ok() && r->ok()) {
    std::lock_guard lock(mu_);
    (removing ? removed_ : added_)++;
    log()->info(
        "{} taint {} on node {}: {}", removing ? "removed" : "added", options_.taint_key, node_name,
        removing ? "a Cilium agent pod on it is ready" : "its Cilium agent pod is not ready");
    return true;
  }
  if (r.ok() && r->status == 404) return true;
  // Typically the taints changed since the node was seen (the test failed): the informer brings
  // the new state and the retry judges it afresh.
  log()->warn(
      "patching the taints of node {} failed: {}", node_name,
      r.ok() ? fmt::format("HTTP {} {}", r->status, r->body.substr(0, 200)) : r.error().message());
  return false;
}

}  // namespace cilium::op
