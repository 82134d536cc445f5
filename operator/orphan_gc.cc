// Mark-then-delete collection of CiliumEndpoints and CiliumNodes whose owners are gone.
#include "operator/orphan_gc.h"

#include <fmt/format.h>

#include "agent/common/log.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("operator");
  return l;
}

}  // namespace

OrphanGc::OrphanGc(k8s::Client& client, k8s::ResourceInfo info, std::string what, Finder finder,
                   std::chrono::milliseconds interval, Outcome outcome)
    : client_(client),
      info_(info),
      what_(std::move(what)),
      finder_(std::move(finder)),
      interval_(interval),
      outcome_(std::move(outcome)) {}

OrphanGc::~OrphanGc() { runner_.stop(); }

void OrphanGc::start() { runner_.start(interval_, [this] { runOnce(); }); }

OrphanGc::Pass OrphanGc::runOnce() {
  Pass pass;
  auto orphans = finder_();
  if (!orphans) {
    pass.skipped = true;
    return pass;
  }
  std::set<std::string> still;
  for (const auto& o : *orphans) {
    std::string key = k8s::objectKey(o.namespace_name, o.name);
    if (!marked_.contains(key)) {
      still.insert(key);
      pass.marked++;
      continue;
    }
    nlohmann::json opts = {{"kind", "DeleteOptions"},
                           {"apiVersion", "v1"},
                           {"preconditions", {{"resourceVersion", o.resource_version}}}};
    auto r = client_.request("DELETE", info_.objectPath(o.namespace_name, o.name), opts.dump());
    bool ok = r.ok() && (r->ok() || r->status == 404);
    if (outcome_) outcome_(ok);
    if (ok) {
      pass.deleted++;
      log()->info("deleted {} {}: its owner no longer exists", what_, key);
      continue;
    }
    // 409: rewritten since it was seen (judged afresh next pass); anything else: tried again.
    pass.failed++;
    still.insert(key);
    log()->warn("deleting {} {} failed: {}", what_, key,
                r.ok() ? fmt::format("HTTP {}", r->status) : r.error().message());
  }
  marked_ = std::move(still);
  return pass;
}

OrphanGc::Finder endpointOrphans(const k8s::Store<k8s::CiliumEndpoint>& endpoints,
                                 const k8s::Store<k8s::Pod>& pods) {
  return [&endpoints, &pods]() -> std::optional<std::vector<Orphan>> {
    if (!endpoints.hasSynced() || !pods.hasSynced()) return std::nullopt;
    std::vector<Orphan> out;
    for (const auto& cep : endpoints.list())
      if (!pods.get(cep.meta.namespace_name, cep.meta.name))
        out.push_back({cep.meta.namespace_name, cep.meta.name, cep.meta.resource_version});
    return out;
  };
}

OrphanGc::Finder nodeOrphans(const k8s::Store<k8s::CiliumNode>& cilium_nodes,
                             const k8s::Store<k8s::Node>& nodes) {
  return [&cilium_nodes, &nodes]() -> std::optional<std::vector<Orphan>> {
    if (!cilium_nodes.hasSynced() || !nodes.hasSynced()) return std::nullopt;
    if (nodes.size() == 0) {
      log()->debug("CiliumNode GC: no Node objects in the cluster, nothing to compare with");
      return std::nullopt;
    }
    std::vector<Orphan> out;
    for (const auto& cn : cilium_nodes.list())
      if (!nodes.get("", cn.meta.name))
        out.push_back({"", cn.meta.name, cn.meta.resource_version});
    return out;
  };
}

}  // namespace cilium::op
