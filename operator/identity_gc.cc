// Identity GC: unused CiliumIdentities deleted after the heartbeat timeout.
#include "operator/identity_gc.h"

#include <set>

#include "agent/common/log.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("identity-gc");
  return l;
}

}  // namespace

IdentityGc::IdentityGc(k8s::Client& client, const k8s::Store<k8s::CiliumIdentity>& identities,
                       const k8s::Store<k8s::CiliumEndpoint>& endpoints, IdentityGcOptions options)
    : client_(client),
      identities_(identities),
      endpoints_(endpoints),
      options_(std::move(options)) {}

IdentityGc::~IdentityGc() { runner_.stop(); }

void IdentityGc::start() { runner_.start(options_.interval, [this] { runOnce(); }); }

IdentityGc::Pass IdentityGc::runOnce() {
  Pass pass;
  std::set<std::string> used;
  for (const auto& cep : endpoints_.list())
    if (cep.identity_id > 0) used.insert(std::to_string(cep.identity_id));
  auto now = options_.now();
  std::map<std::string, std::chrono::steady_clock::time_point> still_unused;
  std::vector<k8s::CiliumIdentity> expired;
  {
    std::lock_guard lock(mu_);
    for (const auto& id : identities_.list()) {
      const std::string& name = id.meta.name;
      if (used.count(name)) {
        pass.alive++;
        continue;
      }
      auto it = unused_since_.find(name);
      auto since = it == unused_since_.end() ? now : it->second;
      if (now - since >= options_.heartbeat_timeout)
        expired.push_back(id);
      else {
        still_unused[name] = since;
        pass.unused++;
      }
    }
    unused_since_ = std::move(still_unused);
  }
  const auto info = k8s::Resource<k8s::CiliumIdentity>::info();
  for (const auto& id : expired) {
    // The resourceVersion seen as unused: an identity written meanwhile is not deleted.
    nlohmann::json opts = {{"kind", "DeleteOptions"},
                           {"apiVersion", "v1"},
                           {"preconditions", {{"resourceVersion", id.meta.resource_version}}}};
    auto r = client_.request("DELETE", info.objectPath("", id.meta.name), opts.dump());
    if (r.ok() && (r->ok() || r->status == 404)) {
      pass.deleted++;
      continue;
    }
    pass.failed++;
    std::lock_guard lock(mu_);
    unused_since_[id.meta.name] = now - options_.heartbeat_timeout;  // due again next pass
    log()->warn("deleting unused identity {} failed: {}", id.meta.name,
                r.ok() ? fmt::format("HTTP {}", r->status) : r.error().message());
  }
  if (options_.on_pass) options_.on_pass(pass.alive, pass.deleted, pass.failed);
  if (pass.deleted > 0 || pass.failed > 0)
    log()->info("identity GC pass alive={} unused={} deleted={} failed={}", pass.alive, pass.unused,
                pass.deleted, pass.failed);
  return pass;
}

}  // namespace cilium::op
