// Cluster-pool IPAM controller: CiliumNodes in, spec.ipam.podCIDRs and operator-status out.
#include "operator/ipam/controller.h"

#include <tuple>

#include <fmt/ranges.h>
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

// The text of a family's pools ("10.0.0.0/8,10.1.0.0/16").
static std::string poolText(const ClusterPool& p) {
  std::string out;
  for (const auto& c : p.pools()) out += (out.empty() ? "" : ",") + c.toString();
  return out;
}

Result<std::unique_ptr<ClusterPoolController>> ClusterPoolController::create(
    k8s::Client& client, k8s::Store<k8s::CiliumNode>& nodes, ClusterPoolOptions options) {
  std::vector<ClusterPool> pools;
  for (auto [family, cidrs, mask, flag] :
       {std::tuple{IpFamily::kV4, &options.ipv4_cidrs, options.ipv4_mask_size,
                   "cluster-pool-ipv4-cidr"},
        std::tuple{IpFamily::kV6, &options.ipv6_cidrs, options.ipv6_mask_size,
                   "cluster-pool-ipv6-cidr"}}) {
    if (cidrs->empty()) continue;
    for (const auto& c : *cidrs)
      if (c.family() != family)
        return makeError(ErrorCode::kInvalidArgument, "cluster-pool IPAM: {}: {} is not {}", flag,
                         c.toString(), family == IpFamily::kV4 ? "IPv4" : "IPv6");
    auto pool = ClusterPool::create(*cidrs, mask);
    if (!pool.ok()) return pool.error().withContext(fmt::format("cluster-pool IPAM: {}", flag));
    pools.push_back(std::move(*pool));
  }
  if (pools.empty())
    return Error(ErrorCode::kInvalidArgument,
                 "cluster-pool IPAM: no cluster-pool-ipv4-cidr and no cluster-pool-ipv6-cidr");
  return std::unique_ptr<ClusterPoolController>(
      new ClusterPoolController(client, nodes, std::move(pools), std::move(options)));
}

ClusterPoolController::~ClusterPoolController() {
  if (registered_) nodes_.removeHandlers(handlers_);
  queue_.stop();
}

uint64_t ClusterPoolController::used() const {
  std::lock_guard lock(pool_mu_);
  uint64_t n = 0;
  for (const auto& p : pools_) n += p.used();
  return n;
}

uint64_t ClusterPoolController::capacity() const {
  std::lock_guard lock(pool_mu_);
  uint64_t n = 0;
  for (const auto& p : pools_) n += p.capacity();
  return n;
}

bool ClusterPoolController::needsCidr(const k8s::CiliumNode& cn) const {
  for (const auto& pool : pools_) {
    bool has = false;
    for (const auto& text : cn.pod_cidrs) {
      auto p = IpPrefix::parse(text);
      // Unparseable text counts as present: it is reported, never overwritten.
      if (!p.ok() || p->family() == pool.pools().front().family()) has = true;
    }
    if (!has) return true;
  }
  return false;
}

void ClusterPoolController::start() {
  {
    // Every allocation already written is read back before anything is handed out, so that a
    // restarted operator never gives a held CIDR to another node. Where two nodes claim the
    // same CIDR, the first by name keeps it; the other is reported when it is reconciled.
    std::lock_guard lock(pool_mu_);
    for (auto& pool : pools_) {
      size_t restored = 0;
      for (const auto& cn : nodes_.list())
        if (!cn.pod_cidrs.empty() && occupyFromSpec(pool, cn).empty() && pool.cidrOf(cn.meta.name))
          restored++;
      log()->info(
          "cluster-pool IPAM started family={} pool={} mask_size={} capacity={} restored={}",
          ipFamilyName(pool.pools().front().family()), poolText(pool), pool.maskSize(),
          pool.capacity(), restored);
    }
  }
  queue_.start([this](const std::string& name) { return reconcile(name); });
  k8s::Handlers<k8s::CiliumNode> h;
  h.on_add = [this](const k8s::CiliumNode& n) { queue_.add(n.meta.name); };
  h.on_update = [this](const k8s::CiliumNode& old, const k8s::CiliumNode& n) {
    // The operator's own status writes come back as updates; only a change it acts on counts.
    bool needs;
    {
      std::lock_guard lock(pool_mu_);
      needs = needsCidr(n);
    }
    if (old.pod_cidrs != n.pod_cidrs || needs) queue_.add(n.meta.name);
  };
  h.on_delete = [this](const k8s::CiliumNode& n) { queue_.add(n.meta.name); };
  handlers_ = nodes_.addHandlers(std::move(h));
  registered_ = true;
}

std::string ClusterPoolController::occupyFromSpec(ClusterPool& pool, const k8s::CiliumNode& cn) {
  const std::string& name = cn.meta.name;
  IpFamily family = pool.pools().front().family();
  for (const auto& text : cn.pod_cidrs) {
    auto cidr = IpPrefix::parse(text);
    if (!cidr.ok())
      return fmt::format("spec.ipam.podCIDRs: \"{}\" is not a CIDR ({})", text,
                         cidr.error().message());
    if (cidr->family() != family) continue;
    Status st = pool.occupy(name, *cidr);
    if (!st.ok() && st.error().code() == ErrorCode::kFailedPrecondition) {
      // The node's CIDR was changed by someone else: follow what its spec says now.
      pool.release(name);
      st = pool.occupy(name, *cidr);
    }
    if (!st.ok()) return fmt::format("spec.ipam.podCIDRs: {}", st.error().message());
  }
  return "";
}

bool ClusterPoolController::reconcile(const std::string& name) {
  std::lock_guard lock(pool_mu_);
  auto cn = nodes_.get(name);
  if (!cn) {
    bool released = false;
    for (auto& pool : pools_) {
      if (auto cidr = pool.cidrOf(name); cidr && pool.release(name)) {
        log()->info("released pod CIDR node={} cidr={}", name, cidr->toString());
        released = true;
      }
    }
    // A node that found a pool exhausted may fit now.
    if (released)
      for (const auto& other : nodes_.list())
        if (needsCidr(other) || !other.operator_error.empty()) queue_.add(other.meta.name);
    return true;
  }
  // Each family on its own: what the spec holds is read back, a missing one allocated.
  std::vector<std::string> errors;
  std::vector<std::string> cidrs = cn->pod_cidrs;
  std::vector<std::pair<ClusterPool*, IpPrefix>> allocated;
  for (auto& pool : pools_) {
    IpFamily family = pool.pools().front().family();
    bool has_cidr = false;
    for (const auto& text : cn->pod_cidrs) {
      auto p = IpPrefix::parse(text);
      if (!p.ok() || p->family() == family) has_cidr = true;
    }
    if (has_cidr) {
      if (std::string e = occupyFromSpec(pool, *cn); !e.empty()) errors.push_back(e);
      continue;
    }
    auto cidr = pool.allocate(name);
    if (!cidr.ok()) {
      errors.push_back(cidr.error().message());
      continue;
    }
    allocated.emplace_back(&pool, *cidr);
    // IPv4 first, as Kubernetes orders a dual-stack node's podCIDRs.
    if (family == IpFamily::kV4)
      cidrs.insert(cidrs.begin(), cidr->toString());
    else
      cidrs.push_back(cidr->toString());
  }
  if (!allocated.empty()) {
    if (Status st = writeCidrs(name, cidrs); !st.ok()) {
      for (auto& [pool, cidr] : allocated) pool->release(name);
      log()->warn("writing pod CIDRs failed, will retry node={} cidrs={} error={}", name,
                  fmt::join(cidrs, ","), st.error().message());
      return false;
    }
    for (auto& [pool, cidr] : allocated)
      log()->info("allocated pod CIDR node={} cidr={} used={}/{}", name, cidr.toString(),
                  pool->used(), pool->capacity());
  }
  std::string error = fmt::format("{}", fmt::join(errors, "; "));
  if (error == cn->operator_error) return true;
  if (!error.empty()) log()->warn("cannot allocate a pod CIDR node={} error={}", name, error);
  if (Status st = writeError(name, error); !st.ok()) {
    log()->warn("writing CiliumNode status failed, will retry node={} error={}", name,
                st.error().message());
    return false;
  }
  return true;
}

Status ClusterPoolController::writeCidrs(const std::string& name,
                                         const std::vector<std::string>& cidrs) {
  json patch = {{"spec", {{"ipam", {{"podCIDRs", cidrs}}}}}};
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
