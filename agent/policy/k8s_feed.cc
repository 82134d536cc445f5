// Policies from a k8s::Source into the policy Engine: decode once, keep the last good rules or
// fail closed, batch the first sync, prune what vanished while the agent was away.
#include "agent/policy/k8s_feed.h"

#include "agent/common/log.h"
#include "agent/k8s/source.h"

namespace cilium::policy {
namespace {

auto& log() {
  static auto l = cilium::logger("policy-k8s");
  return l;
}

// The parts of an object its rules are made from.
nlohmann::json policyContent(const nlohmann::json& raw) {
  nlohmann::json c = nlohmann::json::object();
  if (!raw.is_object()) return raw;
  for (const char* k : {"spec", "specs"})
    if (auto it = raw.find(k); it != raw.end()) c[k] = *it;
  if (auto m = raw.find("metadata"); m != raw.end() && m->is_object()) {
    for (const char* k : {"name", "namespace", "uid", "labels"})
      if (auto it = m->find(k); it != m->end()) c["metadata"][k] = *it;
  }
  return c;
}

std::string describe(const ObjectRef& r) {
  return fmt::format("{} {}{}{}", r.kind, r.namespace_name, r.namespace_name.empty() ? "" : "/",
                     r.name);
}

}  // namespace

Result<ImportResult> EngineTarget::importObjects(std::vector<PolicyObject> objects) {
  ImportOptions o;
  o.owner = Owner::kCluster;
  return engine_.importObjects(std::move(objects), o);
}

Result<DeleteResult> EngineTarget::deleteObject(const ObjectRef& r) {
  return engine_.deleteObject(r.kind, r.namespace_name, r.name, Owner::kCluster);
}

std::vector<ObjectRef> EngineTarget::objects() const { return engine_.objects(Owner::kCluster); }

K8sFeed::K8sFeed(FeedTarget& target, k8s::Stores& stores, StatusListener on_status)
    : target_(target), stores_(stores), on_status_(std::move(on_status)) {}

K8sFeed::~K8sFeed() {
  for (auto& u : unregister_) u();
}

Result<std::unique_ptr<K8sFeed>> K8sFeed::start(FeedTarget& target, k8s::Stores& stores,
                                                StatusListener on_status) {
  std::unique_ptr<K8sFeed> feed(new K8sFeed(target, stores, std::move(on_status)));
  feed->watch(stores.network_policies, kKindKnp);
  feed->watch(stores.cilium_network_policies, kKindCnp);
  feed->watch(stores.cilium_clusterwide_network_policies, kKindCcnp);
  feed->flushBatch();
  feed->pruneVanished();
  return feed;
}

template <typename T>
void K8sFeed::watch(k8s::Store<T>& store, std::string_view kind) {
  k8s::Handlers<T> h;
  h.on_add = [this, kind](const T& o) { changed(kind, o.meta, o.raw); };
  h.on_update = [this, kind](const T&, const T& o) { changed(kind, o.meta, o.raw); };
  h.on_delete = [this, kind](const T& o) { changed(kind, o.meta, std::nullopt); };
  auto id = store.addHandlers(std::move(h));
  unregister_.push_back([&store, id] { store.removeHandlers(id); });
}

std::map<ObjectRef, std::string> K8sFeed::rejected() const {
  std::lock_guard lock(mu_);
  return rejected_;
}

void K8sFeed::report(std::string_view kind, const k8s::ObjectMeta& meta,
                     k8s::PolicyStatus status) {
  if (on_status_) on_status_(kind, meta, status);
}

void K8sFeed::changed(std::string_view kind, const k8s::ObjectMeta& meta,
                      std::optional<nlohmann::json> raw) {
  std::lock_guard lock(mu_);
  ObjectRef ref{std::string(kind), meta.namespace_name, meta.name};
  if (!raw) {
    processed_.erase(ref);
  } else {
    auto content = policyContent(*raw);
    if (auto it = processed_.find(ref); it != processed_.end() && it->second == content) return;
    processed_[ref] = std::move(content);
  }
  Pending p{meta, std::move(raw)};
  if (batching_) {
    pending_[ref] = std::move(p);
    return;
  }
  apply(kind, p);
}

std::optional<PolicyObject> K8sFeed::decide(std::string_view kind, const k8s::ObjectMeta& meta,
                                            nlohmann::json raw,
                                            const std::set<ObjectRef>& in_force) {
  ObjectRef ref{std::string(kind), meta.namespace_name, meta.name};
  // The namespace the API server would have defaulted: a namespaced policy without one in its
  // manifest must not turn into a cluster-wide rule.
  if (!meta.namespace_name.empty() && raw.is_object()) {
    auto& m = raw["metadata"];
    if (m.is_object() && !m.contains("namespace")) m["namespace"] = meta.namespace_name;
  }
  auto objects = decodePolicyJson(raw);
  if (objects.ok() && objects->size() == 1) {
    rejected_.erase(ref);
    return std::move(objects->front());
  }
  std::string why = objects.ok() ? "not one policy object" : objects.error().message();
  rejected_[ref] = why;
  if (in_force.count(ref)) {
    log()->error("policy rejected, its last good version stays in force object={} error={}",
                 describe(ref), why);
    report(kind, meta, k8s::PolicyStatus{false, why + " (the last good version is enforced)", 0});
    return std::nullopt;
  }
  auto stand_in = failClosedPolicy(raw, why);
  if (!stand_in.ok()) {
    log()->error("policy rejected and cannot be failed closed object={} error={} ({})",
                 describe(ref), why, stand_in.error().message());
    report(kind, meta, k8s::PolicyStatus{false, why, 0});
    return std::nullopt;
  }
  log()->error(
      "policy rejected, failing closed: the endpoints it selects deny all traffic in its "
      "directions object={} error={}",
      describe(ref), why);
  report(kind, meta,
         k8s::PolicyStatus{false, why + " (failing closed: the selected endpoints deny)", 0});
  return std::move(*stand_in);
}

void K8sFeed::apply(std::string_view kind, const Pending& p) {
  ObjectRef ref{std::string(kind), p.meta.namespace_name, p.meta.name};
  if (!p.raw) {
    rejected_.erase(ref);
    auto res = target_.deleteObject(ref);
    if (!res.ok()) {
      // Never imported (nothing could be made of it): nothing to remove.
      if (res.error().code() != ErrorCode::kNotFound)
        log()->error("policy delete failed object={} error={}", describe(ref),
                     res.error().message());
      return;
    }
    log()->info("policy deleted object={} revision={}", describe(ref), res->revision);
    return;
  }
  auto objects = target_.objects();
  std::set<ObjectRef> in_force(objects.begin(), objects.end());
  auto decided = decide(kind, p.meta, *p.raw, in_force);
  if (!decided) return;
  bool stand_in = rejected_.count(ref) != 0;
  std::vector<PolicyObject> batch;
  batch.push_back(std::move(*decided));
  auto res = target_.importObjects(std::move(batch));
  if (!res.ok() && !stand_in) {
    // Decoded but not enforceable here (an L7 rule without the proxy, too many entries): the
    // same as invalid.
    std::string why = res.error().message();
    rejected_[ref] = why;
    if (in_force.count(ref)) {
      log()->error("policy refused, its last good version stays in force object={} error={}",
                   describe(ref), why);
      report(kind, p.meta,
             k8s::PolicyStatus{false, why + " (the last good version is enforced)", 0});
      return;
    }
    auto fallback = failClosedPolicy(*p.raw, why);
    if (fallback.ok()) {
      log()->error("policy refused, failing closed object={} error={}", describe(ref), why);
      std::vector<PolicyObject> one;
      one.push_back(std::move(*fallback));
      res = target_.importObjects(std::move(one));
      if (res.ok())
        report(kind, p.meta,
               k8s::PolicyStatus{false, why + " (failing closed: the selected endpoints deny)", 0});
    }
  }
  if (!res.ok()) {
    log()->error("policy import failed object={} error={}", describe(ref), res.error().message());
    report(kind, p.meta, k8s::PolicyStatus{false, res.error().message(), 0});
    return;
  }
  for (const auto& w : res->warnings) log()->warn("policy object={} warning={}", describe(ref), w);
  log()->info("policy imported object={} revision={}", describe(ref), res->revision);
  if (!rejected_.count(ref)) report(kind, p.meta, k8s::PolicyStatus{true, "", res->revision});
}

void K8sFeed::flushBatch() {
  std::lock_guard lock(mu_);
  batching_ = false;
  auto objects = target_.objects();
  std::set<ObjectRef> in_force(objects.begin(), objects.end());
  std::vector<PolicyObject> all;
  std::vector<std::pair<ObjectRef, Pending>> imported;
  for (auto& [ref, p] : pending_) {
    if (!p.raw) {
      apply(ref.kind, p);
      continue;
    }
    auto decided = decide(ref.kind, p.meta, *p.raw, in_force);
    if (!decided) continue;
    all.push_back(std::move(*decided));
    imported.emplace_back(ref, std::move(p));
  }
  pending_.clear();
  if (all.empty()) return;
  auto res = target_.importObjects(std::move(all));
  if (!res.ok()) {
    log()->warn("policy batch refused ({}); importing one object at a time",
                res.error().message());
    for (auto& [ref, p] : imported) apply(ref.kind, p);
    return;
  }
  for (const auto& w : res->warnings) log()->warn("policy warning={}", w);
  for (const auto& [ref, p] : imported)
    if (!rejected_.count(ref)) report(ref.kind, p.meta, k8s::PolicyStatus{true, "", res->revision});
  log()->info("policies imported objects={} revision={}", imported.size(), res->revision);
}

void K8sFeed::pruneVanished() {
  std::lock_guard lock(mu_);
  for (const auto& ref : target_.objects()) {
    bool present = true;
    if (ref.kind == kKindKnp)
      present = stores_.network_policies.get(ref.namespace_name, ref.name).has_value();
    else if (ref.kind == kKindCnp)
      present = stores_.cilium_network_policies.get(ref.namespace_name, ref.name).has_value();
    else if (ref.kind == kKindCcnp)
      present = stores_.cilium_clusterwide_network_policies.get("", ref.name).has_value();
    if (present) continue;
    log()->info("policy object gone while the agent was down object={}", describe(ref));
    if (auto res = target_.deleteObject(ref); !res.ok() && res.error().code() != ErrorCode::kNotFound)
      log()->error("policy delete failed object={} error={}", describe(ref),
                   res.error().message());
  }
}

}  // namespace cilium::policy
