// Cluster-pool IPAM controller: CiliumNodes in, spec.ipam.podCIDRs and operator-status out.
#include "operator/ipam/controller.h"

#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("ipam");
  return l;
}

using nlohmann::json;

}  // namespace

Result<std::unique_ptr<ClusterPoolController>> ClusterPoolController::create(
    k8s::Client& client, k8s::Store<k8s::CiliumNode>& nodes, ClusterPoolOptions options) {
  auto pool = ClusterPool::create(options.ipv4_cidrs, options.ipv4_mask_size);
  if (!pool.ok()) return pool.error().withContext("cluster-pool IPAM");
  return std::unique_ptr<ClusterPoolController>(
      new ClusterPoolController(client, nodes, std::move(*pool), std::move(options)));
}

ClusterPoolController::~ClusterPoolController() {
  if (registered_) nodes_.removeHandlers(handlers_);
  queue_.stop();
}

uint64_t ClusterPoolController::used() const {
  std::lock_guard lock(pool_mu_);
  return pool_.used();
}

uint64_t ClusterPoolController::capacity() const {
  std::lock_guard lock(pool_mu_);
  return pool_.capacity();
}

void ClusterPoolController::start() {
  {
    // Every allocation already written is read back before anything is handed out, so that a
    // restarted operator never gives a held CIDR to another node. Where two nodes claim the
    // same CIDR, the first by name keeps it; the other is reported when it is reconciled.
    std::lock_guard lock(pool_mu_);
    size_t restored = 0;
    for (const auto& cn : nodes_.list())
      if (!cn.pod_cidrs.empty() && occupyFromSpec(cn).empty()) restored++;
    std::string pools;
    for (const auto& p : pool_.pools()) pools += (pools.empty() ? "" : ",") + p.toString();
    log()->info("cluster-pool IPAM started pool={} mask_size={} capacity={} restored={}", pools,
                pool_.maskSize(), pool_.capacity(), restored);
  }
  queue_.start([this](const std::string& name) { return reconcile(name); });
  k8s::Handlers<k8s::CiliumNode> h;
  h.on_add = [this](const k8s::CiliumNode& n) { queue_.add(n.meta.name); };
  h.on_update = [this](const k8s::CiliumNode& old, const k8s::CiliumNode& n) {
    // The operator's own status writes come back as updates; only a change it acts on counts.
    if (old.pod_cidrs != n.pod_cidrs || n.pod_cidrs.empty()) queue_.add(n.meta.name);
  };
  h.on_delete = [this](const k8s::CiliumNode& n) { queue_.add(n.meta.name); };
  handlers_ = nodes_.addHandlers(std::move(h));
  registered_ = true;
}

std::string ClusterPoolController::occupyFromSpec(const k8s::CiliumNode& cn) {
  const std::string& name = cn.meta.name;
  IpFamily family = pool_.pools().front().family();
  for (const auto& text : cn.pod_cidrs) {
    auto cidr = IpPrefix::parse(text);
    if (!cidr.ok())
      return fmt::format("spec.ipam.podCIDRs: \"{}\" is not a CIDR ({})", text,
                         cidr.error().message());
    if (cidr->family() != family) continue;
    Status st = pool_.occupy(name, *cidr);
    if (!st.ok() && st.error().code() == ErrorCode::kFailedPrecondition) {
      // The node's CIDR was changed by someone else: follow what its spec says now.
      pool_.release(name);
      st = pool_.occupy(name, *cidr);
    }
    if (!st.ok()) return fmt::format("spec.ipam.podCIDRs: {}", st.error().message());
  }
  return "";
}

bool ClusterPoolController::reconcile(const std::string& name) {
  std::lock_guard lock(pool_mu_);
  auto cn = nodes_.get(name);
  if (!cn) {
    if (auto cidr = pool_.cidrOf(name); cidr && pool_.release(name)) {
      log()->info("released pod CIDR node={} cidr={}", name, cidr->toString());
      // A node that found the pool exhausted may fit now.
      for (const auto& other : nodes_.list())
        if (other.pod_cidrs.empty() || !other.operator_error.empty()) queue_.add(other.meta.name);
    }
    return true;
  }
  bool has_cidr = false;
  IpFamily family = pool_.pools().front().family();
  for (const auto& text : cn->pod_cidrs) {
    auto p = IpPrefix::parse(text);
    if (!p.ok() || p->family() == family) has_cidr = true;
  }
  std::string error;
  if (has_cidr) {
    error = occupyFromSpec(*cn);
  } else {
    auto cidr = pool_.allocate(name);
    if (!cidr.ok()) {
      error = cidr.error().message();
    } else if (Status st = writeCidr(name, *cidr); !st.ok()) {
      pool_.release(name);
      log()->warn("writing pod CIDR failed, will retry node={} cidr={} error={}", name,
                  cidr->toString(), st.error().message());
      return false;
    } else {
      log()->info("allocated pod CIDR node={} cidr={} used={}/{}", name, cidr->toString(),
                  pool_.used(), pool_.capacity());
    }
  }
  if (error == cn->operator_error) return true;
  if (!error.empty()) log()->warn("cannot allocate a pod CIDR node={} error={}", name, error);
  if (Status st = writeError(name, error); !st.ok()) {
    log()->warn("writing CiliumNode status failed, will retry node={} error={}", name,
                st.error().message());
    return false;
  }
  return true;
}

Status ClusterPoolController::writeCidr(const std::string& name, const IpPrefix& cidr) {
  json patch = {{"spec", {{"ipam", {{"podCIDRs", {cidr.toString()}}}}}}};
  std::string path = k8s::Resource<k8s::CiliumNode>::info().objectPath("", name);
  CILIUM_ASSIGN_OR_RETURN(
      auto res, client_.request("PATCH", path, patch.dump(), "application/merge-patch+json"));
  if (res.status == 404) return okStatus();  // deleted meanwhile: the delete event follows
  if (!res.ok()) return makeError(ErrorCode::kUnavailable, "PATCH {}: HTTP {}", path, res.status);
  return okStatus();
}

Status ClusterPoolController::writeError(const std::string& name, const std::string& error) {
  json os = error.empty() ? json{{"error", nullptr}} : json{{"error", error}};
  json patch = {{"status", {{"ipam", {{"operator-status", os}}}}}};
  // The status subresource where the CRD has one; the object itself where it has none.
  std::string path = k8s::Resource<k8s::CiliumNode>::info().objectPath("", name);
  CILIUM_ASSIGN_OR_RETURN(auto res, client_.request("PATCH", path + "/status", patch.dump(),
                                                    "application/merge-patch+json"));
  if (res.status == 404 || res.status == 405) {
    CILIUM_ASSIGN_OR_RETURN(
        res, client_.request("PATCH", path, patch.dump(), "application/merge-patch+json"));
  }
  if (res.status == 404) return okStatus();
  if (!res.ok()) return makeError(ErrorCode::kUnavailable, "PATCH {}: HTTP {}", path, res.status);
  return okStatus();
}

}  // namespace cilium::op
