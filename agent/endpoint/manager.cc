// Endpoint manager: creation, regeneration, deletion, persistence and restore.
#include "agent/endpoint/manager.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::endpoint {
namespace {

auto log() {
  static auto l = logger("endpoint");
  return l;
}

constexpr size_t kRecentStats = 1024;
// Regenerations written with one PolicyMaps::replaceMany(): at most this many endpoints, and
// policies of at most about this many entries in total held at once.
constexpr size_t kRegenerationBatch = 512;
constexpr size_t kRegenerationEntries = size_t{1} << 20;

std::string nowRfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  ::gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:09d}Z", buf, ts.tv_nsec);
}

void parseMac(const std::string& text, uint8_t out[8]) {
  std::memset(out, 0, 8);
  if (text.size() != 17) return;
  for (int i = 0; i < 6; i++)
    out[i] =
        static_cast<uint8_t>(std::stoul(text.substr(static_cast<size_t>(i) * 3, 2), nullptr, 16));
}

endpoint_info endpointInfo(const Endpoint& ep) {
  endpoint_info info{};
  info.ifindex = static_cast<uint32_t>(ep.spec.ifindex);
  info.lxc_id = ep.spec.id;
  info.sec_id = ep.identity;
  parseMac(ep.spec.mac, info.mac);
  parseMac(ep.spec.host_mac, info.node_mac);
  info.ipv4 = ep.spec.ipv4 ? ep.spec.ipv4->v4NetworkOrder() : 0;
  if (ep.spec.ipv6) std::memcpy(info.ipv6, ep.spec.ipv6->bytes().data(), sizeof(info.ipv6));
  return info;
}

// The endpoint's addresses: IPv4, then IPv6 in dual stack.
std::vector<IpAddr> addresses(const Spec& s) {
  std::vector<IpAddr> out;
  for (const auto* ip : {&s.ipv4, &s.ipv6})
    if (*ip) out.push_back(**ip);
  return out;
}

bool matches(const Endpoint& ep, const Ref& ref) {
  const Spec& s = ep.spec;
  switch (ref.kind) {
    case Ref::Kind::kId: return s.id == ref.id;
    case Ref::Kind::kContainerId: return !s.container_id.empty() && s.container_id == ref.value;
    case Ref::Kind::kContainerName:
      return !s.container_name.empty() && s.container_name == ref.value;
    case Ref::Kind::kPodName: return !s.pod_name.empty() && s.podRef() == ref.value;
    case Ref::Kind::kDockerEndpoint:
      return !s.docker_endpoint_id.empty() && s.docker_endpoint_id == ref.value;
    case Ref::Kind::kCniAttachment:
      return !s.container_id.empty() && s.container_id == ref.value &&
             (ref.interface.empty() || s.container_interface_name == ref.interface);
  }
  return false;
}

}  // namespace

Manager::Manager(Deps deps, ManagerOptions options) : deps_(deps), options_(std::move(options)) {}

Result<std::unique_ptr<Manager>> Manager::create(Deps deps, ManagerOptions options) {
  if (deps.ids == nullptr || deps.engine == nullptr || deps.ipcache == nullptr ||
      deps.devices == nullptr || deps.maps.endpoints == nullptr ||
      deps.maps.endpoints_by_ifindex == nullptr || deps.maps.policy == nullptr ||
      deps.maps.runtime_config == nullptr)
    return Error(ErrorCode::kInvalidArgument, "endpoint manager: a dependency is missing");
  if (!options.state_dir.empty())
    CILIUM_RETURN_IF_ERROR(makeDirs(options.state_dir + "/endpoints", 0700));
  std::unique_ptr<Manager> m(new Manager(deps, std::move(options)));
  Manager* raw = m.get();
  // Runs on whatever thread changed an identity: only queue here (regen_mu_ may be held by the
  // caller of that change).
  deps.engine->setChangeListener([raw](const std::vector<uint16_t>& ids) {
    std::lock_guard lock(raw->mu_);
    for (uint16_t id : ids) raw->pending_delta_.insert(id);
    raw->cv_.notify_all();
  });
  m->worker_ = std::thread([raw] { raw->worker(); });
  return m;
}

Manager::~Manager() {
  deps_.engine->setChangeListener(nullptr);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

void Manager::setRegenerationListener(std::function<void(const RegenerationStat&)> listener) {
  std::lock_guard lock(stats_mu_);
  listener_ = std::move(listener);
}

void Manager::record(const RegenerationStat& stat) {
  std::function<void(const RegenerationStat&)> listener;
  {
    std::lock_guard lock(stats_mu_);
    regen_count_++;
    if (!stat.ok) regen_failures_++;
    if (recent_.size() < kRecentStats) {
      recent_.push_back(stat.duration);
    } else {
      recent_[recent_next_] = stat.duration;
      recent_next_ = (recent_next_ + 1) % kRecentStats;
    }
    listener = listener_;
  }
  if (listener) listener(stat);
}

Manager::RegenerationSummary Manager::regenerationSummary() const {
  std::lock_guard lock(stats_mu_);
  RegenerationSummary s{regen_count_, regen_failures_, {}, {}};
  if (recent_.empty()) return s;
  auto sorted = recent_;
  std::sort(sorted.begin(), sorted.end());
  s.p50 = sorted[(sorted.size() - 1) / 2];
  s.p99 = sorted[(sorted.size() - 1) * 99 / 100];
  return s;
}

std::string Manager::statePath(uint16_t id) const {
  return fmt::format("{}/endpoints/{}.json", options_.state_dir, id);
}

Status Manager::persist(const Endpoint& ep) const {
  if (options_.state_dir.empty()) return okStatus();
  return writeFileAtomic(statePath(ep.id()), toStateJson(ep).dump(2) + "\n", 0600);
}

void Manager::removeStateFile(uint16_t id) const {
  if (options_.state_dir.empty()) return;
  if (::unlink(statePath(id).c_str()) != 0 && errno != ENOENT)
    log()->warn("cannot remove endpoint state file path={} error={}", statePath(id),
                std::strerror(errno));
}

void Manager::appendLog(Endpoint& ep, bool ok, std::string message) {
  ep.log.push_back(StatusChange{nowRfc3339(), ok, std::move(message), ep.state});
  if (ep.log.size() > options_.log_entries)
    ep.log.erase(ep.log.begin(),
                 ep.log.begin() + static_cast<long>(ep.log.size() - options_.log_entries));
}

labels::Labels Manager::withDerivedLabels(const Spec& spec) const {
  labels::Labels all = spec.labels;
  // The namespace is part of a pod's identity (namespaced policies select on it), as Cilium
  // derives it from the pod.
  if (!spec.pod_namespace.empty() && all.find("io.kubernetes.pod.namespace") == nullptr)
    all.set(labels::Label(labels::Source::kK8s, "io.kubernetes.pod.namespace", spec.pod_namespace));
  return all;
}

Result<identity::Identity> Manager::allocateIdentity(const labels::Labels& labels) {
  if (labels.empty())
    return deps_.ids->allocate(labels::Labels{labels::Label(labels::Source::kReserved, "init")});
  return deps_.ids->allocate(labels);
}

std::optional<uint16_t> Manager::findLocked(const Ref& ref) const {
  if (ref.kind == Ref::Kind::kId) {
    if (endpoints_.count(ref.id) != 0) return ref.id;
    return std::nullopt;
  }
  for (const auto& [id, ep] : endpoints_)
    if (matches(ep, ref)) return id;
  return std::nullopt;
}

Result<uint16_t> Manager::pickIdLocked(uint16_t wanted) const {
  if (wanted != 0) {
    if (endpoints_.count(wanted) != 0)
      return makeError(ErrorCode::kAlreadyExists, "endpoint {} already exists", wanted);
    return wanted;
  }
  uint16_t id = 1;
  for (const auto& [used, ep] : endpoints_) {
    if (used != id) break;
    if (id == 65535) return Error(ErrorCode::kResourceExhausted, "no free endpoint id");
    id++;
  }
  return id;
}

// Writes everything but the policy map: ipcache first (peers resolve the pod), then the
// endpoint entries (ifindex first: the device's program finds its endpoint before anything is
// routed to it), the programs and the route.
Status Manager::programEndpointLocked(const Endpoint& ep) {
  for (const IpAddr& ip : addresses(ep.spec))
    CILIUM_RETURN_IF_ERROR(deps_.ipcache->upsert(IpPrefix::host(ip),
                                                 ipcache::Info{ep.identity, std::nullopt, 0, 0},
                                                 ipcache::Source::kLocal));
  // The new address may change what other endpoints' rules select (a NetworkPolicy ipBlock
  // selects an identity only while all its addresses are inside): their maps take that change
  // before this endpoint can send or be reached, not whenever the worker gets to it.
  applyPendingDeltasLocked();
  endpoint_info info = endpointInfo(ep);
  CILIUM_RETURN_IF_ERROR(deps_.maps.endpoints_by_ifindex->update(info.ifindex, info));
  for (const IpAddr& ip : addresses(ep.spec))
    CILIUM_RETURN_IF_ERROR(deps_.maps.endpoints->update(datapath::endpointKey(ip), info));
  CILIUM_RETURN_IF_ERROR(deps_.devices->attach(ep.spec.ifindex));
  for (const IpAddr& ip : addresses(ep.spec))
    CILIUM_RETURN_IF_ERROR(deps_.devices->addRoute(ip, ep.spec.ifindex));
  return okStatus();
}

Status Manager::regenerateLocked(uint16_t id, const std::string& reason) {
  return regenerateManyLocked({{id, reason}}).front();
}

std::vector<Status> Manager::regenerateManyLocked(
    const std::vector<std::pair<uint16_t, std::string>>& jobs) {
  std::vector<Status> results(jobs.size(), okStatus());
  size_t begin = 0;
  while (begin < jobs.size()) {
    // Chunks bound the policies held at once; each chunk is one replaceMany().
    size_t end = begin, entries = 0;
    struct Work {
      size_t index;
      std::optional<Result<policy::EndpointPolicy>> policy;
      std::chrono::nanoseconds took{0};
    };
    std::vector<Work> work;
    for (; end < jobs.size() && work.size() < kRegenerationBatch && entries < kRegenerationEntries;
         end++) {
      uint16_t id = jobs[end].first;
      Endpoint snap;
      {
        std::lock_guard lock(mu_);
        auto it = endpoints_.find(id);
        if (it == endpoints_.end()) continue;  // deleted meanwhile
        if (it->second.state == State::kDisconnecting) continue;
        snap = it->second;
      }
      auto t0 = std::chrono::steady_clock::now();
      policy::Subject subject{id, snap.identity, snap.identity_labels, {}};
      for (const auto& p : snap.spec.named_ports)
        subject.named_ports.push_back(
            policy::NamedPort{p.name, p.port, static_cast<policy::Protocol>(p.protocol)});
      Work w{end, deps_.engine->attach(subject), {}};
      w.took = std::chrono::steady_clock::now() - t0;
      if (w.policy->ok()) entries += (*w.policy)->entries.size();
      work.push_back(std::move(w));
    }
    begin = end;

    std::vector<datapath::PolicyReplacement> changes;
    std::vector<Work*> writing;
    std::vector<L7PolicySink::Update> l7_updates;
    for (auto& w : work) {
      if (!w.policy->ok()) continue;
      changes.push_back({jobs[w.index].first, (*w.policy)->entries});
      writing.push_back(&w);
      if (deps_.l7 != nullptr) {
        std::lock_guard lock(mu_);
        auto it = endpoints_.find(jobs[w.index].first);
        if (it != endpoints_.end())
          l7_updates.push_back({it->first, it->second.identity, it->second.spec.ipv4,
                                (*w.policy)->l7, it->second.spec.ipv6});
      }
    }
    // The proxies learn the rules before the maps send them traffic.
    if (deps_.l7 != nullptr && !l7_updates.empty()) deps_.l7->l7PoliciesChanged(l7_updates);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Status> written = deps_.maps.policy->replaceMany(changes);
    bool any = std::any_of(written.begin(), written.end(), [](const Status& s) { return s.ok(); });
    Status bumped = any ? datapath::bumpPolicyRevision(*deps_.maps.runtime_config) : okStatus();
    std::chrono::nanoseconds share{0};
    if (!changes.empty())
      share = (std::chrono::steady_clock::now() - t0) / static_cast<long>(changes.size());
    for (size_t k = 0; k < writing.size(); k++) {
      writing[k]->took += share;
      Status st = written[k].ok() ? bumped : written[k];
      if (!st.ok()) *writing[k]->policy = st.error();
    }

    for (auto& w : work) {
      auto [id, reason] = jobs[w.index];
      const auto& st = *w.policy;
      {
        std::lock_guard lock(mu_);
        auto it = endpoints_.find(id);
        if (it != endpoints_.end()) {
          Endpoint& ep = it->second;
          if (st.ok()) {
            ep.policy_revision = st->revision;
            ep.ingress_enforced = st->ingress_enforced;
            ep.egress_enforced = st->egress_enforced;
            ep.policy_entries = st->entries.size();
            ep.state = State::kReady;
            appendLog(ep, true, "Successfully regenerated endpoint program (" + reason + ")");
          } else {
            // The previous policy stays in force (see PolicyMaps::replace()).
            ep.state = State::kNotReady;
            appendLog(ep, false, "Regeneration failed: " + st.error().message());
          }
        }
        cv_.notify_all();
      }
      record({id, w.took, true, st.ok(), reason});
      if (!st.ok()) {
        log()->warn("endpoint regeneration failed id={} reason={} error={}", id, reason,
                    st.error().message());
        results[w.index] = st.error();
      }
    }
  }
  // The state file is written by the callers that change what it holds (creation, labels,
  // identity): a regeneration alone only moves the revision, which a restart recomputes.
  return results;
}

Status Manager::applyDeltaLocked(uint16_t id) {
  auto t0 = std::chrono::steady_clock::now();
  auto delta = deps_.engine->consumeChanges(id);
  if (!delta.ok()) {
    if (delta.error().code() == ErrorCode::kNotFound) return okStatus();  // detached meanwhile
    return delta.error();
  }
  if (delta->l7 && deps_.l7 != nullptr) {
    std::optional<L7PolicySink::Update> u;
    {
      std::lock_guard lock(mu_);
      if (auto it = endpoints_.find(id); it != endpoints_.end())
        u = L7PolicySink::Update{id, it->second.identity, it->second.spec.ipv4, *delta->l7,
                                 it->second.spec.ipv6};
    }
    if (u) deps_.l7->l7PoliciesChanged({*u});
  }
  if (delta->empty()) return okStatus();
  Status st = deps_.maps.policy->update(id, delta->upserts, delta->deletes);
  if (st.ok()) st = datapath::bumpPolicyRevision(*deps_.maps.runtime_config);
  auto took = std::chrono::steady_clock::now() - t0;
  record({id, std::chrono::duration_cast<std::chrono::nanoseconds>(took), false, st.ok(),
          "identity change"});
  if (!st.ok()) {
    // The map may now differ from what the engine believes it holds: rebuild it completely.
    log()->warn("incremental policy update failed id={} error={}; regenerating", id,
                st.error().message());
    return regenerateLocked(id, "incremental update failed");
  }
  std::lock_guard lock(mu_);
  if (auto it = endpoints_.find(id); it != endpoints_.end()) {
    it->second.policy_entries = it->second.policy_entries + delta->upserts.size() -
                                std::min(it->second.policy_entries, delta->deletes.size());
  }
  return okStatus();
}

void Manager::applyPendingChanges() {
  std::lock_guard regen(regen_mu_);
  applyPendingDeltasLocked();
}

void Manager::applyPendingDeltasLocked() {
  std::set<uint16_t> delta;
  {
    std::lock_guard lock(mu_);
    delta.swap(pending_delta_);
    for (uint16_t id : pending_full_) delta.erase(id);  // the worker's full regeneration covers it
  }
  for (uint16_t id : delta) (void)applyDeltaLocked(id);
}

void Manager::worker() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock,
               [&] { return stopping_ || !pending_full_.empty() || !pending_delta_.empty(); });
      if (stopping_) return;
    }
    // The work is taken only once regen_mu_ is held: what is pending stays visible to a caller
    // that holds regen_mu_ and applies it itself (applyPendingDeltasLocked).
    std::lock_guard regen(regen_mu_);
    std::set<uint16_t> full, delta;
    std::map<uint16_t, std::string> reasons;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      full.swap(pending_full_);
      delta.swap(pending_delta_);
      reasons.swap(pending_reason_);
    }
    std::vector<std::pair<uint16_t, std::string>> jobs;
    for (uint16_t id : full) jobs.emplace_back(id, reasons[id]);
    (void)regenerateManyLocked(jobs);
    for (uint16_t id : delta)
      if (full.count(id) == 0) (void)applyDeltaLocked(id);
  }
}

void Manager::requestRegeneration(std::vector<uint16_t> ids, std::string reason) {
  std::lock_guard lock(mu_);
  if (ids.empty())
    for (const auto& [id, ep] : endpoints_) ids.push_back(id);
  for (uint16_t id : ids) {
    pending_full_.insert(id);
    pending_reason_[id] = reason;
  }
  cv_.notify_all();
}

void Manager::policyChanged(uint64_t revision, const std::vector<uint16_t>& affected) {
  std::set<uint16_t> regen(affected.begin(), affected.end());
  std::lock_guard lock(mu_);
  for (auto& [id, ep] : endpoints_) {
    if (regen.count(id) != 0) {
      pending_full_.insert(id);
      pending_reason_[id] = fmt::format("policy revision {}", revision);
    } else if (ep.state == State::kReady && ep.policy_revision < revision) {
      // Not selected by what changed: the policy it enforces is also that of `revision`.
      ep.policy_revision = revision;
    }
  }
  cv_.notify_all();
}

bool Manager::waitForRevision(uint64_t revision, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    for (const auto& [id, ep] : endpoints_)
      if (ep.state == State::kReady && ep.policy_revision < revision) return false;
    for (const auto& [id, ep] : endpoints_)
      if (pending_full_.count(id) != 0) return false;
    return true;
  });
}

void Manager::setPodResolver(PodResolver resolver) {
  std::lock_guard lock(resolver_mu_);
  resolver_ = std::move(resolver);
}

Result<Endpoint> Manager::add(Spec spec) {
  CILIUM_RETURN_IF_ERROR(spec.validate());
  // The request is untrusted: the device must be a pod's veth and the address one of this
  // node's pod addresses, held by nobody else (reserved for the endpoint's container now).
  if (deps_.devices != nullptr) {
    if (auto st = deps_.devices->checkPodDevice(spec.ifindex, spec.interface_name); !st.ok())
      return st.error().withContext("interface-index");
  }
  if (options_.claim_address) {
    std::string owner = !spec.container_id.empty() ? spec.container_id
                        : !spec.pod_name.empty()   ? spec.podRef()
                                                   : std::string();
    for (const IpAddr& ip : addresses(spec)) {
      if (auto st = options_.claim_address(ip, owner); !st.ok())
        return st.error().withContext(ip.isV4() ? "addressing.ipv4" : "addressing.ipv6");
    }
  }
  PodResolver resolver;
  {
    std::lock_guard lock(resolver_mu_);
    resolver = resolver_;
  }
  if (resolver && !spec.pod_name.empty()) {
    // Before any lock: the resolver may wait a little for the pod to reach the agent's cache.
    CILIUM_ASSIGN_OR_RETURN(auto meta, resolver(spec));
    spec.labels = std::move(meta.labels);
    spec.named_ports = std::move(meta.named_ports);
  }
  std::lock_guard regen(regen_mu_);
  // One pod, one live endpoint: a newer sandbox of the pod (kubelet recreates the sandbox after
  // a runtime restart, before the old one's DEL) replaces the older endpoint, so two endpoints
  // never carry the pod's labels and identity at once.
  if (!spec.pod_name.empty()) {
    std::optional<uint16_t> older;
    std::string older_container;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, other] : endpoints_) {
        if (other.spec.pod_name == spec.pod_name &&
            other.spec.pod_namespace == spec.pod_namespace &&
            other.spec.container_id != spec.container_id) {
          older = id;
          older_container = other.spec.container_id;
        }
      }
    }
    if (older) {
      log()->warn(
          "pod={} has a new sandbox container={}: replacing its endpoint id={} of container={}",
          spec.podRef(), spec.container_id, *older, older_container);
      (void)removeLocked(*older);
    }
  }
  Endpoint ep;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, other] : endpoints_) {
      for (const IpAddr& ip : addresses(spec)) {
        if (other.spec.ipv4 == ip || other.spec.ipv6 == ip)
          return makeError(ErrorCode::kAlreadyExists, "address {} is in use by endpoint {}",
                           ip.toString(), id);
      }
      if (other.spec.ifindex == spec.ifindex)
        return makeError(ErrorCode::kAlreadyExists, "interface index {} is in use by endpoint {}",
                         spec.ifindex, id);
    }
    CILIUM_ASSIGN_OR_RETURN(spec.id, pickIdLocked(spec.id));
    ep.spec = std::move(spec);
    ep.state = State::kWaitingForIdentity;
    endpoints_[ep.id()] = ep;
  }
  auto drop = [&] {
    std::lock_guard lock(mu_);
    endpoints_.erase(ep.id());
    cv_.notify_all();
  };
  auto split = options_.filter.filter(withDerivedLabels(ep.spec));
  auto ident = allocateIdentity(split.identity);
  if (!ident.ok()) {
    drop();
    return ident.error().withContext("allocate identity");
  }
  ep.identity = ident->id;
  ep.identity_labels = ident->labels;
  ep.information_labels = split.information;
  ep.state = State::kRegenerating;
  {
    std::lock_guard lock(mu_);
    endpoints_[ep.id()] = ep;
  }
  // The policy map goes in before the endpoint is reachable: no packet of it ever meets an
  // open policy.
  Status st = regenerateLocked(ep.id(), "endpoint created");
  if (st.ok()) {
    std::lock_guard lock(mu_);
    ep = endpoints_[ep.id()];
  }
  if (st.ok()) st = programEndpointLocked(ep);
  if (st.ok()) st = datapath::bumpPolicyRevision(*deps_.maps.runtime_config);
  if (st.ok()) st = persist(ep);
  if (!st.ok()) {
    cleanupLocked(ep, false);
    (void)deps_.ids->release(ep.identity);
    drop();
    removeStateFile(ep.id());
    return st.error().withContext(fmt::format("create endpoint {}", ep.id()));
  }
  log()->info("endpoint ready id={} ipv4={} ipv6={} ifindex={} identity={} revision={}", ep.id(),
              ep.spec.ipv4 ? ep.spec.ipv4->toString() : "-",
              ep.spec.ipv6 ? ep.spec.ipv6->toString() : "-", ep.spec.ifindex, ep.identity,
              ep.policy_revision);
  return ep;
}

Result<Endpoint> Manager::updateLabels(const Ref& ref, const labels::Labels& new_labels,
                                       std::optional<std::vector<NamedPort>> named_ports) {
  std::lock_guard regen(regen_mu_);
  Endpoint ep;
  {
    std::lock_guard lock(mu_);
    auto id = findLocked(ref);
    if (!id) return Error(ErrorCode::kNotFound, "endpoint not found");
    ep = endpoints_[*id];
    if (ep.spec.labels == new_labels && (!named_ports || *named_ports == ep.spec.named_ports))
      return ep;
    if (named_ports) endpoints_[*id].spec.named_ports = *named_ports;
  }
  Spec spec = ep.spec;
  spec.labels = new_labels;
  auto split = options_.filter.filter(withDerivedLabels(spec));
  CILIUM_ASSIGN_OR_RETURN(auto ident, allocateIdentity(split.identity));
  identity::NumericIdentity old = ep.identity;
  {
    std::lock_guard lock(mu_);
    Endpoint& cur = endpoints_[ep.id()];
    cur.spec.labels = new_labels;
    cur.identity = ident.id;
    cur.identity_labels = ident.labels;
    cur.information_labels = split.information;
    cur.state = State::kRegenerating;
  }
  Status st = regenerateLocked(ep.id(), "labels changed");
  {
    std::lock_guard lock(mu_);
    ep = endpoints_[ep.id()];
  }
  if (st.ok()) st = programEndpointLocked(ep);
  if (st.ok()) st = datapath::bumpPolicyRevision(*deps_.maps.runtime_config);
  if (!st.ok()) {
    // Keep the endpoint on its old identity, as the datapath may still have it.
    {
      std::lock_guard lock(mu_);
      Endpoint& cur = endpoints_[ep.id()];
      cur.identity = old;
      cur.state = State::kNotReady;
    }
    (void)deps_.ids->release(ident.id);
    (void)regenerateLocked(ep.id(), "labels change failed");
    return st.error().withContext("update labels");
  }
  (void)deps_.ids->release(old);
  if (auto p = persist(ep); !p.ok())
    log()->warn("cannot persist endpoint id={} error={}", ep.id(), p.error().message());
  return ep;
}

int Manager::cleanupLocked(const Endpoint& ep, bool delete_link) {
  int errors = 0;
  auto check = [&](const Status& st, std::string_view what) {
    if (!st.ok()) {
      errors++;
      log()->warn("endpoint cleanup step failed id={} step={} error={}", ep.id(), what,
                  st.error().message());
    }
  };
  auto checkBool = [&](const Result<bool>& r, std::string_view what) {
    if (!r.ok()) check(r.error(), what);
  };
  for (const IpAddr& ip : addresses(ep.spec)) {
    check(deps_.devices->removeRoute(ip, ep.spec.ifindex), "route");
    // Only remove entries that are still this endpoint's (a restore may have reused them).
    auto byip = deps_.maps.endpoints->lookup(datapath::endpointKey(ip));
    if (byip.ok() && *byip && (*byip)->lxc_id == ep.id())
      checkBool(deps_.maps.endpoints->remove(datapath::endpointKey(ip)), "cilium_lxc");
  }
  auto byif = deps_.maps.endpoints_by_ifindex->lookup(static_cast<uint32_t>(ep.spec.ifindex));
  if (byif.ok() && *byif && (*byif)->lxc_id == ep.id())
    checkBool(deps_.maps.endpoints_by_ifindex->remove(static_cast<uint32_t>(ep.spec.ifindex)),
              "cilium_lxc_if");
  for (const IpAddr& ip : addresses(ep.spec))
    check(deps_.ipcache->remove(IpPrefix::host(ip), ipcache::Source::kLocal), "ipcache");
  deps_.engine->detach(ep.id());
  check(deps_.maps.policy->remove(ep.id()), "policy map");
  if (deps_.l7 != nullptr) deps_.l7->endpointRemoved(ep.id());
  check(deps_.devices->detach(ep.spec.ifindex), "programs");
  if (delete_link) check(deps_.devices->deleteLink(ep.spec.ifindex), "link");
  check(datapath::bumpPolicyRevision(*deps_.maps.runtime_config), "policy revision");
  return errors;
}

Result<int> Manager::remove(const Ref& ref) {
  std::lock_guard regen(regen_mu_);
  std::optional<uint16_t> id;
  {
    std::lock_guard lock(mu_);
    id = findLocked(ref);
  }
  if (!id) return Error(ErrorCode::kNotFound, "endpoint not found");
  return removeLocked(*id);
}

int Manager::removeLocked(uint16_t id) {
  Endpoint ep;
  {
    std::lock_guard lock(mu_);
    Endpoint& cur = endpoints_[id];
    cur.state = State::kDisconnecting;
    ep = cur;
    pending_full_.erase(id);
    pending_delta_.erase(id);
  }
  int errors = cleanupLocked(ep, true);
  if (auto st = deps_.ids->release(ep.identity); !st.ok()) {
    errors++;
    log()->warn("release identity failed id={} identity={} error={}", ep.id(), ep.identity,
                st.error().message());
  }
  removeStateFile(ep.id());
  {
    std::lock_guard lock(mu_);
    endpoints_.erase(ep.id());
    cv_.notify_all();
  }
  log()->info("endpoint deleted id={} errors={}", ep.id(), errors);
  return errors;
}

std::optional<Endpoint> Manager::get(const Ref& ref) const {
  std::lock_guard lock(mu_);
  auto id = findLocked(ref);
  if (!id) return std::nullopt;
  return endpoints_.at(*id);
}

std::vector<Endpoint> Manager::list() const {
  std::lock_guard lock(mu_);
  std::vector<Endpoint> out;
  out.reserve(endpoints_.size());
  for (const auto& [id, ep] : endpoints_) out.push_back(ep);
  return out;
}

size_t Manager::size() const {
  std::lock_guard lock(mu_);
  return endpoints_.size();
}

Result<RestoreResult> Manager::restore() {
  RestoreResult res;
  if (options_.state_dir.empty()) return res;
  std::string dir = options_.state_dir + "/endpoints";
  std::vector<Endpoint> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() < 6 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
      std::string path = dir + "/" + name;
      auto text = readFile(path);
      Result<Endpoint> ep = text.ok() ? [&]() -> Result<Endpoint> {
        try {
          return fromStateJson(nlohmann::json::parse(*text), path);
        } catch (const nlohmann::json::exception& ex) {
          return makeError(ErrorCode::kInvalidArgument, "{}: {}", path, ex.what());
        }
      }()
          : Result<Endpoint>(text.error());
      if (!ep.ok()) {
        log()->warn("skipping unreadable endpoint state error={}", ep.error().message());
        ::unlink(path.c_str());
        res.skipped++;
        continue;
      }
      if (!deps_.devices->linkExists(ep->spec.ifindex, ep->spec.interface_name)) {
        log()->info("endpoint device is gone, not restoring id={} ifindex={} name={}", ep->id(),
                    ep->spec.ifindex, ep->spec.interface_name);
        ::unlink(path.c_str());
        res.skipped++;
        continue;
      }
      std::optional<IpAddr> outside;
      for (const IpAddr& ip : addresses(ep->spec))
        if (options_.pod_address && !options_.pod_address(ip)) outside = ip;
      if (outside) {
        log()->warn("endpoint address is outside this node's pod CIDR, not restoring id={} ip={}",
                    ep->id(), outside->toString());
        ::unlink(path.c_str());
        res.skipped++;
        continue;
      }
      found.push_back(std::move(*ep));
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end(),
            [](const Endpoint& a, const Endpoint& b) { return a.id() < b.id(); });

  std::lock_guard regen(regen_mu_);
  std::set<uint16_t> ids;
  std::set<int> ifindexes;
  // First every endpoint's identity, then all policies in one batch (an unchanged policy map is
  // kept as it is, changed ones are patched or swapped with shared grace periods), then the rest
  // of each endpoint.
  std::vector<std::pair<uint16_t, std::string>> jobs;
  std::map<uint16_t, identity::NumericIdentity> previous;
  auto failed = [&](uint16_t id, const Error& error) {
    // Keep what is in the datapath (it enforces the last good policy); report not-ready.
    log()->warn("endpoint restore failed id={} error={}", id, error.message());
    std::lock_guard lock(mu_);
    endpoints_[id].state = State::kNotReady;
  };
  for (auto& ep : found) {
    {
      std::lock_guard lock(mu_);
      if (endpoints_.count(ep.id()) != 0) continue;
      endpoints_[ep.id()] = ep;
    }
    ids.insert(ep.id());
    ifindexes.insert(ep.spec.ifindex);
    auto split = options_.filter.filter(withDerivedLabels(ep.spec));
    auto ident = allocateIdentity(split.identity);
    if (!ident.ok()) {
      failed(ep.id(), ident.error());
      continue;
    }
    if (ident->id != ep.identity)
      log()->warn("restored endpoint got a different identity id={} was={} now={}", ep.id(),
                  ep.identity, ident->id);
    previous[ep.id()] = ep.identity;
    {
      std::lock_guard lock(mu_);
      Endpoint& cur = endpoints_[ep.id()];
      cur.identity = ident->id;
      cur.identity_labels = ident->labels;
      cur.information_labels = split.information;
      cur.state = State::kRegenerating;
    }
    jobs.emplace_back(ep.id(), "restored");
  }
  std::vector<Status> regenerated = regenerateManyLocked(jobs);
  for (size_t i = 0; i < jobs.size(); i++) {
    uint16_t id = jobs[i].first;
    Status st = regenerated[i];
    Endpoint ep;
    if (st.ok()) {
      std::lock_guard lock(mu_);
      ep = endpoints_[id];
    }
    if (st.ok()) st = programEndpointLocked(ep);
    if (st.ok() && ep.identity != previous[id]) st = persist(ep);
    if (!st.ok())
      failed(id, st.error());
    else
      res.restored++;
  }

  // Stale state: what a previous run programmed for endpoints that are not coming back.
  std::vector<endpoint_key> stale_keys;
  (void)deps_.maps.endpoints->forEach([&](const endpoint_key& k, const endpoint_info& v) {
    if ((v.flags & ENDPOINT_F_HOST) == 0 && ids.count(v.lxc_id) == 0) stale_keys.push_back(k);
    return true;
  });
  for (const auto& k : stale_keys)
    if (deps_.maps.endpoints->remove(k).ok()) res.stale_removed++;
  std::vector<uint32_t> stale_ifs;
  (void)deps_.maps.endpoints_by_ifindex->forEach([&](const uint32_t& k, const endpoint_info& v) {
    if ((v.flags & ENDPOINT_F_HOST) == 0 && ids.count(v.lxc_id) == 0) stale_ifs.push_back(k);
    return true;
  });
  for (uint32_t k : stale_ifs)
    if (deps_.maps.endpoints_by_ifindex->remove(k).ok()) res.stale_removed++;
  if (auto eps = deps_.maps.policy->endpoints(); eps.ok()) {
    std::vector<uint16_t> stale;
    for (uint16_t id : *eps)
      if (ids.count(id) == 0) stale.push_back(id);
    if (Status st = deps_.maps.policy->removeMany(stale); st.ok())
      res.stale_removed += stale.size();
    else
      log()->warn("cannot remove stale policy maps error={}", st.error().message());
  }
  for (int ifindex : deps_.devices->attachedLinks())
    if (ifindexes.count(ifindex) == 0 && deps_.devices->detach(ifindex).ok()) res.stale_removed++;
  CILIUM_RETURN_IF_ERROR(datapath::bumpPolicyRevision(*deps_.maps.runtime_config));
  log()->info("endpoints restored restored={} skipped={} stale_removed={}", res.restored,
              res.skipped, res.stale_removed);
  return res;
}

}  // namespace cilium::endpoint
