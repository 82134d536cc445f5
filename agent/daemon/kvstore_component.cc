// The agent's kvstore components: etcd client, lease and identities; then the feeds of nodes,
// endpoints and identities and the identity garbage collector.
#include "agent/daemon/kvstore_component.h"

#include <random>

#include "agent/common/log.h"
#include "agent/endpoint/manager.h"
#include "agent/identity/allocator.h"
#include "agent/ipam/ipam.h"
#include "agent/ipcache/ipcache.h"
#include "agent/kvstore/cluster.h"
#include "agent/kvstore/config.h"
#include "agent/kvstore/etcd.h"
#include "agent/kvstore/identities.h"
#include "agent/node/registration.h"

namespace cilium::daemon {
namespace {

auto& log() {
  static auto l = cilium::logger("kvstore");
  return l;
}

// How long start() waits for etcd before going on with what the agent has.
constexpr auto kStartWait = std::chrono::seconds(5);

}  // namespace

KvstoreComponent::KvstoreComponent() = default;
KvstoreComponent::~KvstoreComponent() { stop(); }

Status KvstoreComponent::start(Host& daemon) {
  Config cfg = daemon.config<Config>();
  if (cfg.kvstore.empty()) return okStatus();
  CILIUM_ASSIGN_OR_RETURN(auto opts, kvstore::parseKvstoreOpt(cfg.kvstore_opt));
  CILIUM_ASSIGN_OR_RETURN(auto etcd, kvstore::loadEtcdConfig(opts.at("etcd.config")));
  CILIUM_ASSIGN_OR_RETURN(auto client, kvstore::Client::create(etcd));
  auto session = std::make_unique<kvstore::Session>(
      *client, kvstore::SessionOptions{.lease_ttl = std::chrono::seconds(cfg.kvstore_lease_ttl)});
  session->start();
  auto ids = std::make_unique<kvstore::Identities>(*client, *session, cfg.node_name,
                                                   cfg.stateFile("kvstore_identities.json"));
  if (auto st = ids->start(kStartWait); !st.ok())
    log()->warn("{}; going on with the restored state, converging when etcd answers",
                st.error().message());
  {
    std::lock_guard lock(mu_);
    client_ = std::move(client);
    session_ = std::move(session);
    identities_ = std::move(ids);
  }
  refreshVersion();
  log()->info("kvstore=etcd endpoints={} lease_ttl={}s", fmt::join(etcd.endpoints, ","),
              cfg.kvstore_lease_ttl);
  daemon.addStatusProvider([this](api::StatusResponse& s) { statusOf(s); });
  return okStatus();
}

void KvstoreComponent::stop() {
  std::unique_ptr<kvstore::Client> client;
  std::unique_ptr<kvstore::Session> session;
  std::unique_ptr<kvstore::Identities> ids;
  {
    std::lock_guard lock(mu_);
    client = std::move(client_);
    session = std::move(session_);
    ids = std::move(identities_);
  }
  // The lease is not revoked: this node's keys stay until it expires, so a restart does not make
  // its node and endpoints blink out on the other nodes.
  if (ids) ids->stop();
  if (session) session->stop();
}

std::function<Result<std::unique_ptr<identity::Backend>>()> KvstoreComponent::identityBackend() {
  return [this]() -> Result<std::unique_ptr<identity::Backend>> {
    if (identities_ == nullptr)
      return Error(ErrorCode::kFailedPrecondition,
                   "identity-allocation-mode=kvstore needs kvstore=etcd");
    return identities_->backend();
  };
}

void KvstoreComponent::refreshVersion() {
  kvstore::Client* client = nullptr;
  {
    std::lock_guard lock(mu_);
    client = client_.get();
  }
  if (client == nullptr) return;
  auto v = client->serverVersion();
  std::lock_guard lock(mu_);
  version_ = v.ok() ? *v : "";
}

void KvstoreComponent::statusOf(api::StatusResponse& s) {
  std::lock_guard lock(mu_);
  if (!client_) return;
  const auto& eps = client_->endpoints();
  const bool up = session_->connected() && session_->lease() != 0;
  std::string endpoints = fmt::format("{}", fmt::join(eps, ", "));
  if (up) {
    // Cilium's form: "etcd: 1/1 connected, lease-ID=..., has-quorum=true: <endpoint> - <version>".
    s.kvstore = api::ComponentStatus{
        api::StatusState::kOk,
        fmt::format("etcd: {}/{} connected, lease-ID={:x}, has-quorum=true: {} - {}", eps.size(),
                    eps.size(), session_->lease(), endpoints,
                    version_.empty() ? "unknown version" : version_)};
  } else {
    // A warning, not a failure: the agent goes on with what it has and converges later.
    s.kvstore = api::ComponentStatus{
        api::StatusState::kWarning,
        fmt::format("etcd: 0/{} connected: {} - unreachable, retrying", eps.size(), endpoints)};
  }
}

KvstoreFeedComponent::KvstoreFeedComponent(KvstoreComponent& kvstore,
                                           ControlPlaneComponent& control_plane)
    : kvstore_(kvstore), control_plane_(control_plane) {}

KvstoreFeedComponent::~KvstoreFeedComponent() { stop(); }

Status KvstoreFeedComponent::start(Host& daemon) {
  kvstore::Client* client = kvstore_.client();
  if (client == nullptr) return okStatus();
  ControlPlane* cp = control_plane_.controlPlane();
  if (cp == nullptr)
    return Error(ErrorCode::kFailedPrecondition, "kvstore: the control plane is not running");
  Config cfg = daemon.config<Config>();
  kvstore::Session& session = *kvstore_.session();
  // Other nodes' identities are remote identities (selectors match pods elsewhere); only with
  // identity-allocation-mode=kvstore, where the numbers are the cluster's.
  if (cfg.identity_allocation_mode == "kvstore") {
    kvstore_.identities()->attach(cp->identities());
    attached_ = true;
  }
  // This node: its address, pod CIDR and router address.
  node::Node self;
  self.name = cfg.node_name;
  // Its InternalIPs: the first global address of each family it runs (IPv4 first; the IPv4
  // one is also the tunnel endpoint its endpoints are published with).
  std::optional<IpAddr> host_ip = node::firstGlobalAddress(IpFamily::kV4);
  if (host_ip) self.addresses.push_back({node::AddressType::kInternalIp, *host_ip});
  if (daemon.ipam() != nullptr && daemon.ipam()->enabled(IpFamily::kV6)) {
    if (auto ip6 = node::firstGlobalAddress(IpFamily::kV6))
      self.addresses.push_back({node::AddressType::kInternalIp, *ip6});
  }
  if (ipam::Ipam* ipam = daemon.ipam()) {
    // Each family's router address and pod CIDR (IPv4 first, as Kubernetes orders them).
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      if (auto r = ipam->router(f))
        self.addresses.push_back({node::AddressType::kCiliumInternalIp, *r});
      if (auto c = ipam->cidr(f)) self.pod_cidrs.push_back(*c);
    }
  }
  self.boot_id = node::readBootId();
  // etcd did not answer the control plane's start: do not wait for it again.
  const auto wait = session.connected() ? kStartWait : std::chrono::seconds(0);
  nodes_ = std::make_unique<kvstore::NodeSync>(*client, session, cp->nodes(), cfg.cluster_name,
                                               cfg.node_name);
  nodes_->publish(self);
  cp->nodes().updateFromKvstore(self.name, self);
  if (auto st = nodes_->start(wait); !st.ok()) log()->warn("{}", st.error().message());
  endpoints_ = std::make_unique<kvstore::EndpointSync>(*client, session, cp->ipcache(), host_ip);
  // Once the pairs are listed, the ipcache entries restored from the last run can go.
  if (auto st = endpoints_->start(wait, [cp] { cp->ipcacheFeedSynced("kvstore"); }); !st.ok())
    log()->warn("{}", st.error().message());
  // Local endpoints are published when the ipcache changes (an endpoint added, removed or
  // relabeled changes it) and every second in any case.
  kvstore::EndpointSync* eps = endpoints_.get();
  ipcache_subscription_ =
      cp->ipcache().subscribe([eps](const std::vector<ipcache::Change>&) { eps->kick(); });
  endpoints_->follow(cp->endpoints(), std::chrono::seconds(1));
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ =
      std::thread([this, gc = std::chrono::seconds(cfg.identity_gc_interval)] { maintenance(gc); });
  log()->info("kvstore feeds running node={} host_ip={} identities={}", cfg.node_name,
              host_ip ? host_ip->toString() : "none", cfg.identity_allocation_mode == "kvstore");
  return okStatus();
}

void KvstoreFeedComponent::maintenance(std::chrono::seconds gc_interval) {
  // Every agent runs the collector, at a random offset so they rarely run together (when they
  // do, the transactions keep it correct).
  std::mt19937 rng{std::random_device{}()};
  auto next_gc = std::chrono::steady_clock::now() +
                 std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
                     0, std::chrono::milliseconds(gc_interval).count())(rng));
  const auto tick = gc_interval.count() > 0
                        ? std::min<std::chrono::seconds>(gc_interval, std::chrono::seconds(10))
                        : std::chrono::seconds(10);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, tick, [&] { return stopping_; });
    if (stopping_) return;
    lock.unlock();
    kvstore_.refreshVersion();
    if (gc_interval.count() > 0 && std::chrono::steady_clock::now() >= next_gc) {
      next_gc = std::chrono::steady_clock::now() + gc_interval;
      if (auto r = kvstore::collectGarbage(*kvstore_.client()); !r.ok())
        log()->debug("identity gc: {}", r.error().message());
    }
    lock.lock();
  }
}

void KvstoreFeedComponent::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ControlPlane* cp = control_plane_.controlPlane();
  if (ipcache_subscription_ != 0 && cp != nullptr) cp->ipcache().unsubscribe(ipcache_subscription_);
  ipcache_subscription_ = 0;
  endpoints_.reset();
  nodes_.reset();
  if (attached_ && kvstore_.identities() != nullptr) kvstore_.identities()->detach();
  attached_ = false;
}

}  // namespace cilium::daemon
