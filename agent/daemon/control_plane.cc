// ControlPlane: start order, restore, the /identity /policy /map routes and background work.
#include "agent/daemon/control_plane.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/periodic.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/api.h"
#include "agent/datapath/conntrack.h"
#include "agent/endpoint/api.h"
#include "agent/endpoint/manager.h"
#include "agent/fqdn/api.h"
#include "agent/fqdn/dns_proxy.h"
#include "agent/identity/allocator.h"
#include "agent/identity/api.h"
#include "agent/ipcache/ipcache.h"
#include "agent/monitor/api.h"
#include "agent/monitor/event_hub.h"
#include "agent/node/direct_routes.h"
#include "agent/node/node.h"
#include "agent/policy/api.h"
#include "agent/policy/cidr_identities.h"
#include "agent/policy/k8s_feed.h"
#include "agent/policy/policy.h"
#include "agent/proxy/manager.h"
#include "agent/proxy/ports.h"

namespace cilium::daemon {
namespace {

auto log() {
  static auto l = logger("controlplane");
  return l;
}

// Cilium's proxy port range.
constexpr uint16_t kProxyPortMin = 10000, kProxyPortMax = 20000;

policy::EnforcementMode enforcementMode(const std::string& s) {
  if (s == "always") return policy::EnforcementMode::kAlways;
  if (s == "never") return policy::EnforcementMode::kNever;
  return policy::EnforcementMode::kDefault;
}

}  // namespace

struct ControlPlane::Impl {
  ControlPlaneOptions opts;
  std::unique_ptr<ControlPlaneDatapath> dp;
  datapath::Maps maps;
  std::unique_ptr<identity::Allocator> ids;
  std::shared_ptr<void> remote_ids;  // opts.remote_identities' follower, dropped before ids
  std::unique_ptr<ipcache::IpCache> ipcache;
  std::unique_ptr<policy::CidrIdentities> cidrs;
  policy::NamedPortTable named_ports;
  node::Manager nodes;
  std::unique_ptr<policy::Engine> engine;
  // The endpoints' L7 policies go to both proxies: cilium-proxy (HTTP) and the DNS proxy.
  struct L7Fanout final : endpoint::L7PolicySink {
    std::vector<endpoint::L7PolicySink*> sinks;
    void l7PoliciesChanged(const std::vector<Update>& u) override {
      for (auto* s : sinks) s->l7PoliciesChanged(u);
    }
    void endpointRemoved(uint16_t id) override {
      for (auto* s : sinks) s->endpointRemoved(id);
    }
  };
  L7Fanout l7_fanout;
  fqdn::DnsPolicy dns_policy;
  std::unique_ptr<endpoint::Manager> manager;
  // The DNS proxy and the toFQDNs glue (docs/l7.md): declared after the manager they call.
  std::unique_ptr<fqdn::NameManager> names;
  std::unique_ptr<fqdn::DnsProxy> dns_proxy;
  Periodic fqdn_gc;
  std::unique_ptr<monitor::EventHub> hub;
  endpoint::RestoreResult restored;
  // L7 (opts.enable_l7_proxy): the proxy ports, the proxies' policy feed, the proxy process.
  proxy::ProxyPortSet proxy_ports;
  std::unique_ptr<proxy::Manager> proxy;
  std::unique_ptr<Process> proxy_process;
  pid_t adopted_proxy_pid = 0;  // a cilium-proxy the last run started, still running
  // Feeds of ControlPlaneOptions::ipcache_feeds not synced yet (the restored entries stay).
  std::mutex feeds_mu;
  std::set<std::string> feeds_pending;
  // auto-direct-node-routes; declared after `nodes`, which it follows.
  std::unique_ptr<node::DirectRoutes> direct_routes;

  Status startProxy();
  Status startDnsProxy();

  void syncDirectRoutes() {
    if (direct_routes) {
      direct_routes->synced();
    } else if (node::RouteTable* table = dp->nodeRoutes()) {
      node::DirectRoutes::removeAll(*table);
    }
  }

  // policy::FeedTarget for the cluster state source.
  struct ClusterPolicy final : policy::FeedTarget {
    Impl& c;
    explicit ClusterPolicy(Impl& impl) : c(impl) {}
    Result<policy::ImportResult> importObjects(std::vector<policy::PolicyObject> objects) override {
      std::lock_guard lock(c.policy_mu);
      policy::ImportOptions o;
      o.owner = policy::Owner::kCluster;
      auto res = c.engine->importObjects(std::move(objects), o);
      // The source replays its whole state after a restart: persistence may trail a little.
      if (res.ok()) c.policyApplied(res->revision, res->affected_endpoints, false);
      return res;
    }
    Result<policy::DeleteResult> deleteObject(const policy::ObjectRef& r) override {
      std::lock_guard lock(c.policy_mu);
      auto res = c.engine->deleteObject(r.kind, r.namespace_name, r.name, policy::Owner::kCluster);
      if (res.ok()) c.policyApplied(res->revision, res->affected_endpoints, false);
      return res;
    }
    std::vector<policy::ObjectRef> objects() const override {
      return c.engine->objects(policy::Owner::kCluster);
    }
  };
  ClusterPolicy cluster_policy{*this};

  // policy::ApiTarget for PUT/DELETE /policy: durable before the answer.
  struct ApiPolicy final : policy::ApiTarget {
    Impl& c;
    explicit ApiPolicy(Impl& impl) : c(impl) {}
    Result<policy::ImportResult> importText(std::string_view text) override {
      std::lock_guard lock(c.policy_mu);
      CILIUM_ASSIGN_OR_RETURN(auto res, c.engine->import(text));
      c.policyApplied(res.revision, res.affected_endpoints, true);
      return res;
    }
    Result<policy::DeleteResult> deleteByLabels(const labels::Labels& labels) override {
      std::lock_guard lock(c.policy_mu);
      CILIUM_ASSIGN_OR_RETURN(auto res, c.engine->deleteByLabels(labels, policy::Owner::kApi));
      c.policyApplied(res.revision, res.affected_endpoints, true);
      return res;
    }
  };
  ApiPolicy api_policy{*this};
  std::mutex policy_mu;  // one policy change (import + persist + regenerate) at a time

  // Deferred policy persistence: many changes in a row (a Kubernetes sync) are written once.
  std::mutex persist_mu;
  std::condition_variable persist_cv;
  bool persist_pending = false;
  bool persist_stopping = false;
  std::thread persist_thread;

  std::mutex gc_mu;
  std::condition_variable gc_cv;
  bool stopping = false;
  std::thread gc_thread;
  uint64_t gc_runs = 0;
  uint64_t gc_deleted = 0;
  // Entries left in each conntrack map after the last GC pass (map name -> count): the fill
  // level without walking half a million entries per metrics scrape.
  std::map<std::string, size_t> ct_live;

  ~Impl() {
    {
      std::lock_guard lock(gc_mu);
      stopping = true;
      gc_cv.notify_all();
    }
    if (gc_thread.joinable()) gc_thread.join();
    {
      std::lock_guard lock(persist_mu);
      persist_stopping = true;
      persist_cv.notify_all();
    }
    if (persist_thread.joinable()) persist_thread.join();  // writes what is still pending
    // Order: nothing may call into a module after it is gone.
    hub.reset();
    // The proxy process stops with the agent (docs/l7.md: limits); while it is down the
    // datapath drops what it would redirect.
    proxy_process.reset();
    if (adopted_proxy_pid > 0) ::kill(adopted_proxy_pid, SIGTERM);
    fqdn_gc.stop();
    dns_proxy.reset();
    if (engine) engine->setFqdnListener(nullptr);
    if (names) (void)names->save();
    names.reset();
    manager.reset();
    proxy.reset();
    engine.reset();
    cidrs.reset();
    ipcache.reset();
    ids.reset();
    dp.reset();  // closes fds only: pinned maps and links stay
  }

  std::string policyStatePath() const { return opts.state_dir + "/policy.json"; }

  // A change is in force when this returns: affected endpoints are regenerated (bounded wait;
  // on timeout the change still stands and endpoints report the revision they enforce).
  void policyApplied(uint64_t revision, const std::vector<uint16_t>& affected, bool durable) {
    if (durable) {
      if (auto st = persistPolicy(); !st.ok())
        log()->error("cannot persist policy error={}", st.error().message());
    } else {
      std::lock_guard lock(persist_mu);
      persist_pending = true;
      persist_cv.notify_all();
    }
    manager->policyChanged(revision, affected);
    if (!manager->waitForRevision(revision, std::chrono::seconds(10)))
      log()->warn("endpoints did not reach policy revision={} within 10s", revision);
  }

  // Writes the rules once per burst of deferred changes (100 ms after the first), and once more
  // at shutdown if something is pending.
  void persistLoop() {
    std::unique_lock lock(persist_mu);
    while (true) {
      persist_cv.wait(lock, [&] { return persist_pending || persist_stopping; });
      if (!persist_pending) return;
      persist_cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return persist_stopping; });
      persist_pending = false;
      lock.unlock();
      {
        std::lock_guard policy_lock(policy_mu);
        if (auto st = persistPolicy(); !st.ok())
          log()->error("cannot persist policy error={}", st.error().message());
      }
      lock.lock();
    }
  }

  Status persistPolicy() const {
    return writeFileAtomic(policyStatePath(), engine->stateJson().dump(2) + "\n", 0600);
  }

  Status restorePolicy() {
    auto text = readFile(policyStatePath());
    if (!text.ok()) {
      if (text.error().code() == ErrorCode::kNotFound) return okStatus();
      return text.error();
    }
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded())
      return makeError(ErrorCode::kFailedPrecondition, "{} is unreadable: not JSON",
                       policyStatePath());
    auto r = engine->restoreState(j);
    if (!r.ok())
      return Error(ErrorCode::kFailedPrecondition, r.error().message())
          .withContext("restore " + policyStatePath());
    log()->info("policy restored rules={} revision={}", r->added, r->revision);
    return okStatus();
  }

  Status setupHost() {
    if (opts.router_ipv4.empty()) return okStatus();
    CILIUM_ASSIGN_OR_RETURN(IpAddr router, IpAddr::parse(opts.router_ipv4));
    if (!router.isV4())
      return makeError(ErrorCode::kInvalidArgument, "router address {}: not IPv4",
                       opts.router_ipv4);
    std::optional<IpAddr> router6;
    if (!opts.router_ipv6.empty()) {
      CILIUM_ASSIGN_OR_RETURN(router6, IpAddr::parse(opts.router_ipv6));
      if (router6->isV4())
        return makeError(ErrorCode::kInvalidArgument, "IPv6 router address {}: not IPv6",
                         opts.router_ipv6);
    }
    CILIUM_RETURN_IF_ERROR(dp->setupHostDevice(router, router6));
    // The node itself: ipcache says host, and cilium_lxc marks the address as the host so pod
    // traffic to it goes up the node's stack.
    for (const auto& ip : {std::optional(router), router6}) {
      if (!ip) continue;
      endpoint_info host{};
      host.flags = ENDPOINT_F_HOST;
      host.sec_id = identity::kHost;
      if (ip->isV4())
        host.ipv4 = ip->v4NetworkOrder();
      else
        std::memcpy(host.ipv6, ip->bytes().data(), sizeof(host.ipv6));
      CILIUM_RETURN_IF_ERROR(maps.endpoints->update(datapath::endpointKey(*ip), host));
      CILIUM_RETURN_IF_ERROR(ipcache->upsert(IpPrefix::host(*ip),
                                             ipcache::Info{identity::kHost, std::nullopt, 0, 0},
                                             ipcache::Source::kLocal));
    }
    return okStatus();
  }

  void gcLoop() {
    std::unique_lock lock(gc_mu);
    // A first pass at start: the conntrack maps' pressure is exported from the beginning.
    do {
      lock.unlock();
      uint32_t now = datapath::monotonicSeconds();
      size_t deleted = 0;
      std::map<std::string, size_t> live;
      // The same expiry rule for both families' maps (the IPv6 ones are absent in fakes that
      // do not model them).
      auto gc = [&](auto* m) {
        if (m == nullptr) return;
        auto r = datapath::gcConntrack(*m, now);
        if (r.ok()) {
          deleted += r->deleted;
          live[m->name()] = r->scanned - r->deleted;
        } else {
          log()->warn("conntrack gc failed map={} error={}", m->name(), r.error().message());
        }
      };
      gc(maps.ct_tcp);
      gc(maps.ct_any);
      gc(maps.ct6_tcp);
      gc(maps.ct6_any);
      lock.lock();
      gc_runs++;
      gc_deleted += deleted;
      for (auto& [name, n] : live) ct_live[name] = n;
      if (deleted != 0) log()->debug("conntrack gc deleted={}", deleted);
    } while (!gc_cv.wait_for(lock, opts.ct_gc_interval, [&] { return stopping; }));
  }

  Status registerRoutes(api::Router& router);
};

ControlPlane::ControlPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlPlane::~ControlPlane() = default;

endpoint::Manager& ControlPlane::endpoints() { return *impl_->manager; }
monitor::EventHub& ControlPlane::events() { return *impl_->hub; }
ControlPlaneDatapath& ControlPlane::datapath() { return *impl_->dp; }
identity::Allocator& ControlPlane::identities() { return *impl_->ids; }

std::vector<std::pair<std::string, double>> ControlPlane::mapPressure() const {
  std::vector<std::pair<std::string, double>> out;
  const datapath::Maps& m = impl_->maps;
  if (auto n = m.endpoints->count(); n.ok() && m.endpoints->maxEntries() != 0)
    out.emplace_back(m.endpoints->name(), static_cast<double>(*n) / m.endpoints->maxEntries());
  std::lock_guard lock(impl_->gc_mu);
  auto ct = [&](const auto* map) {
    if (map == nullptr) return;
    auto it = impl_->ct_live.find(map->name());
    if (it != impl_->ct_live.end() && map->maxEntries() != 0)
      out.emplace_back(map->name(), static_cast<double>(it->second) / map->maxEntries());
  };
  ct(m.ct_tcp);
  ct(m.ct_any);
  ct(m.ct6_tcp);
  ct(m.ct6_any);
  return out;
}

Status ControlPlane::deleteContainerEndpoint(const std::string& container_id) {
  endpoint::Ref ref;
  ref.kind = endpoint::Ref::Kind::kContainerId;
  ref.value = container_id;
  auto removed = impl_->manager->remove(ref);
  if (!removed.ok()) return std::move(removed).error();
  return okStatus();
}
policy::Engine& ControlPlane::policy() { return *impl_->engine; }
node::Manager& ControlPlane::nodes() { return impl_->nodes; }
proxy::Manager* ControlPlane::proxyManager() { return impl_->proxy.get(); }
fqdn::DnsProxy* ControlPlane::dnsProxy() { return impl_->dns_proxy.get(); }
fqdn::NameManager* ControlPlane::fqdnNames() { return impl_->names.get(); }
ipcache::IpCache& ControlPlane::ipcache() { return *impl_->ipcache; }

void ControlPlane::ipcacheFeedSynced(const std::string& feed) {
  std::lock_guard lock(impl_->feeds_mu);
  if (impl_->feeds_pending.erase(feed) == 0 || !impl_->feeds_pending.empty()) return;
  // Every node is known now: routes of an earlier run to nodes gone since can go (all of them
  // when this run does not route the nodes: the mode changed).
  impl_->syncDirectRoutes();
  if (auto st = impl_->ipcache->removeAll(ipcache::Source::kRestored); !st.ok())
    log()->warn("withdrawing the restored ipcache entries: {}", st.error().message());
  else
    log()->info("ipcache feeds synced: restored entries withdrawn");
}
policy::NamedPortTable& ControlPlane::namedPorts() { return impl_->named_ports; }
policy::FeedTarget& ControlPlane::clusterPolicy() { return impl_->cluster_policy; }

Result<std::unique_ptr<ControlPlane>> ControlPlane::start(const ControlPlaneOptions& opts,
                                                          api::Router& router) {
  auto t0 = std::chrono::steady_clock::now();
  // 1. Datapath: reuses pinned maps, so the running datapath keeps its state; programs already
  //    attached keep running until their links are updated below.
  CILIUM_ASSIGN_OR_RETURN(auto dp, loadKernelDatapath(opts));
  auto loaded_at = std::chrono::steady_clock::now();
  log()->info("datapath loaded took_ms={}",
              std::chrono::duration_cast<std::chrono::milliseconds>(loaded_at - t0).count());
  return start(opts, router, std::move(dp));
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::start(
    const ControlPlaneOptions& opts, api::Router& router,
    std::unique_ptr<ControlPlaneDatapath> dp) {
  auto t0 = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Impl>();
  Impl& c = *impl;
  c.opts = opts;
  CILIUM_RETURN_IF_ERROR(makeDirs(opts.state_dir, 0700));

  c.dp = std::move(dp);
  c.maps = c.dp->maps();

  // 2. Identities (held from the last run until the restore ends) and the ipcache, which starts
  //    from what the kernel map holds so nothing changes until the real sources re-announce.
  if (opts.cluster_identities) {
    CILIUM_ASSIGN_OR_RETURN(auto cluster, opts.cluster_identities());
    CILIUM_ASSIGN_OR_RETURN(
        auto local, identity::LocalBackend::open(opts.state_dir, identity::kMinLocal,
                                                 identity::kMaxLocal, "local_identities.json"));
    CILIUM_ASSIGN_OR_RETURN(c.ids,
                            identity::Allocator::create(std::move(cluster), std::move(local)));
    if (opts.remote_identities) c.remote_ids = opts.remote_identities(*c.ids);
  } else {
    CILIUM_ASSIGN_OR_RETURN(c.ids, identity::Allocator::open(opts.state_dir));
  }
  c.ipcache = std::make_unique<ipcache::IpCache>(c.maps.ipcache, c.maps.runtime_config);
  if (opts.restore) CILIUM_RETURN_IF_ERROR(c.ipcache->restoreFromKernel());
  CILIUM_RETURN_IF_ERROR(c.ipcache->upsert(*IpPrefix::parseMasked("0.0.0.0/0"),
                                           ipcache::Info{identity::kWorld, std::nullopt, 0, 0},
                                           ipcache::Source::kLocal));
  CILIUM_RETURN_IF_ERROR(c.setupHost());

  // 3. Policy: the rules in force when the agent stopped, before any endpoint is regenerated.
  c.cidrs = std::make_unique<policy::CidrIdentities>(*c.ids, *c.ipcache);
  policy::EngineOptions eopts;
  eopts.mode = enforcementMode(opts.enable_policy);
  if (opts.enable_l7_proxy) {
    CILIUM_RETURN_IF_ERROR(c.startProxy());
    eopts.l7 = policy::L7Mode::kRedirect;
    eopts.proxy_ports = {c.proxy_ports.http_ingress, c.proxy_ports.http_egress,
                         c.proxy_ports.dns_egress};
  }
  eopts.max_entries = opts.policy_map_entries;
  // The engine follows the ipcache for the addresses of identities (ipBlocks select pods).
  c.engine = std::make_unique<policy::Engine>(*c.ids, eopts, c.cidrs.get(), &c.named_ports,
                                              c.ipcache.get());
  if (opts.restore) CILIUM_RETURN_IF_ERROR(c.restorePolicy());

  // 4. Endpoints: restored (maps replaced atomically, programs swapped onto the pinned links),
  //    then what belongs to nobody is removed.
  endpoint::Manager::Deps deps{c.ids.get(), c.engine.get(), c.ipcache.get(), c.maps,
                               &c.dp->devices()};
  if (c.proxy) {
    c.l7_fanout.sinks = {c.proxy.get(), &c.dns_policy};
    deps.l7 = &c.l7_fanout;
  }
  endpoint::ManagerOptions mopts;
  mopts.state_dir = opts.state_dir;
  mopts.claim_address = opts.claim_address;
  mopts.pod_address = opts.pod_address;
  if (!mopts.claim_address) {
    mopts.claim_address = [](const IpAddr&, const std::string&) -> Status {
      return Error(ErrorCode::kFailedPrecondition,
                   "no IPv4 pod CIDR is configured on this node (ipv4-range): endpoint "
                   "addresses cannot be checked");
    };
  }
  CILIUM_ASSIGN_OR_RETURN(c.manager, endpoint::Manager::create(deps, mopts));
  auto restore_from = std::chrono::steady_clock::now();
  if (opts.restore) {
    CILIUM_ASSIGN_OR_RETURN(c.restored, c.manager->restore());
  } else {
    // Start empty: forget every endpoint of the last run.
    std::error_code ec;
    std::filesystem::remove_all(opts.state_dir + "/endpoints", ec);
    CILIUM_ASSIGN_OR_RETURN(c.restored, c.manager->restore());
  }
  if (opts.auto_direct_node_routes) {
    node::RouteTable* table = c.dp->nodeRoutes();
    if (table == nullptr)
      return Error(ErrorCode::kFailedPrecondition,
                   "auto-direct-node-routes: this datapath has no routing table to write");
    c.direct_routes = node::DirectRoutes::start(c.nodes, *table, opts.node_name);
  } else if (opts.routing_mode == "tunnel" && c.dp->nodeRoutes() != nullptr &&
             c.dp->hostDeviceIfindex() > 0 && !opts.router_ipv4.empty()) {
    // The node's own packets to other nodes' pods: into cilium_host, then the tunnel (IPv6
    // pod CIDRs too on a dual-stack node, from the IPv6 router address).
    node::TunnelRoutes tunnel{c.dp->hostDeviceIfindex(), {}, opts.tunnel_route_mtu};
    CILIUM_ASSIGN_OR_RETURN(tunnel.src4, IpAddr::parse(opts.router_ipv4));
    if (!opts.router_ipv6.empty()) {
      CILIUM_ASSIGN_OR_RETURN(tunnel.src6, IpAddr::parse(opts.router_ipv6));
    }
    c.direct_routes =
        node::DirectRoutes::start(c.nodes, *c.dp->nodeRoutes(), opts.node_name, tunnel);
  }
  if (c.proxy) CILIUM_RETURN_IF_ERROR(c.startDnsProxy());
  c.feeds_pending.insert(opts.ipcache_feeds.begin(), opts.ipcache_feeds.end());
  if (c.feeds_pending.empty()) {
    CILIUM_RETURN_IF_ERROR(c.ipcache->removeAll(ipcache::Source::kRestored));
    c.syncDirectRoutes();
  }
  c.ids->releaseRestored();
  auto restored_at = std::chrono::steady_clock::now();

  // 5. Events: the only reader of the ring (a datapath without one gets a hub nobody feeds).
  ControlPlaneDatapath* raw_dp = c.dp.get();
  if (c.dp->hasEvents()) {
    CILIUM_ASSIGN_OR_RETURN(c.hub, monitor::EventHub::start([raw_dp](auto cb) {
                              return raw_dp->openEventReader(std::move(cb));
                            }));
  } else {
    c.hub = monitor::EventHub::detached();
  }

  CILIUM_RETURN_IF_ERROR(c.registerRoutes(router));
  Impl* raw = impl.get();
  c.gc_thread = std::thread([raw] { raw->gcLoop(); });
  c.persist_thread = std::thread([raw] { raw->persistLoop(); });
  auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  log()->info(
      "control plane started endpoints_restored={} skipped={} stale_removed={} took_ms={} "
      "endpoint_restore_ms={}",
      c.restored.restored, c.restored.skipped, c.restored.stale_removed, took.count(),
      ms(restored_at - restore_from));
  return std::unique_ptr<ControlPlane>(new ControlPlane(std::move(impl)));
}

void ControlPlane::status(api::StatusResponse& s) const {
  s.attach_mode = "TCX";
  s.datapath_mode = "veth";
  if (impl_->proxy) {
    auto st = impl_->proxy->status();
    const auto& p = impl_->proxy_ports;
    api::ProxyStatus ps;
    ps.ip = "127.0.0.1";
    ps.port_range = fmt::format("{}-{}", kProxyPortMin, kProxyPortMax);
    ps.total_redirects = static_cast<int64_t>(st.redirects);
    ps.total_ports = 3;
    ps.envoy_deployment_mode =
        st.connected
            ? fmt::format("cilium-proxy: connected pid {} restarts {}", st.pid, st.restarts)
            : std::string("cilium-proxy: not connected (redirected traffic is dropped)");
    std::string serving = st.connected ? "cilium-proxy" : "none";
    ps.redirects = {{"cilium-http-ingress", serving, p.http_ingress},
                    {"cilium-http-egress", serving, p.http_egress},
                    {"cilium-dns-egress", "none", p.dns_egress}};
    s.proxy = std::move(ps);
  }
}

// Where the proxy executable is when proxy-binary is not set: next to cilium-agent, or in the
// build tree (agent/daemon/cilium-agent, agent/proxy/cilium-proxy).
static std::string defaultProxyBinary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (auto candidate : {self.parent_path() / "cilium-proxy",
                         self.parent_path().parent_path() / "proxy" / "cilium-proxy"})
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  return "";
}

Status ControlPlane::Impl::startProxy() {
  CILIUM_ASSIGN_OR_RETURN(proxy_ports,
                          proxy::loadOrAllocatePorts(opts.state_dir, kProxyPortMin, kProxyPortMax));
  if (opts.tofqdns_proxy_port != 0) proxy_ports.dns_egress = opts.tofqdns_proxy_port;
  CILIUM_RETURN_IF_ERROR(dp->enableProxyRedirect());
  proxy::ManagerOptions mo;
  mo.socket_path = opts.proxy_socket.empty() ? opts.state_dir + "/proxy.sock" : opts.proxy_socket;
  mo.ports = proxy_ports;
  CILIUM_ASSIGN_OR_RETURN(proxy, proxy::Manager::start(mo));
  std::string binary = opts.proxy_binary.empty() ? defaultProxyBinary() : opts.proxy_binary;
  if (binary.empty())
    return Error(ErrorCode::kFailedPrecondition,
                 "enable-l7-proxy: no cilium-proxy next to cilium-agent; set proxy-binary");
  // A proxy the last run started outlives an agent that crashed (it keeps enforcing its last
  // policy and reconnects to this agent): adopted, not started twice.
  std::string proxy_state = opts.state_dir + "/proxy";
  CILIUM_RETURN_IF_ERROR(makeDirs(proxy_state, 0700));
  std::string pid_file = proxy_state + "/cilium-proxy.pid";
  if (auto text = readFile(pid_file); text.ok()) {
    pid_t pid = static_cast<pid_t>(std::atoi(text->c_str()));
    auto cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline");
    if (pid > 0 && cmdline.ok() && cmdline->find("cilium-proxy") != std::string::npos &&
        cmdline->find(mo.socket_path) != std::string::npos &&
        cmdline->find("--no-supervisor") == std::string::npos) {
      adopted_proxy_pid = pid;
      log()->info("L7 proxy of the last run still running, adopted pid={}", pid);
      return okStatus();
    }
  }
  SpawnOptions so;
  so.stderr_path = "/dev/stderr";
  CILIUM_ASSIGN_OR_RETURN(auto p, spawn({binary, "--agent-socket", mo.socket_path, "--state-dir",
                                         proxy_state, "--bpf-pin-dir", opts.pin_dir},
                                        so));
  proxy_process = std::make_unique<Process>(std::move(p));
  CILIUM_RETURN_IF_ERROR(writeFileAtomic(pid_file, std::to_string(proxy_process->pid())));
  log()->info("L7 proxy started binary={} pid={} http_ingress={} http_egress={} dns_egress={}",
              binary, proxy_process->pid(), proxy_ports.http_ingress, proxy_ports.http_egress,
              proxy_ports.dns_egress);
  return okStatus();
}

// The name manager (with the DNS cache of the last run), then the DNS proxy on the
// cilium-dns-egress port. Until it listens the datapath drops the DNS it would redirect.
Status ControlPlane::Impl::startDnsProxy() {
  fqdn::CacheOptions co;
  co.min_ttl = opts.tofqdns_min_ttl;
  co.max_ips_per_host = opts.tofqdns_max_ips_per_host;
  co.grace = std::chrono::seconds(opts.tofqdns_grace_seconds);
  endpoint::Manager* m = manager.get();
  std::string state = opts.state_dir.empty() ? "" : opts.state_dir + "/fqdn_cache.json";
  names = std::make_unique<fqdn::NameManager>(
      *ids, *ipcache, co, [m] { m->applyPendingChanges(); }, state);
  fqdn::NameManager* n = names.get();
  policy::Engine* e = engine.get();
  CILIUM_RETURN_IF_ERROR(n->setSelectors(e->fqdnSelectors()));
  e->setFqdnListener([n, e] {
    if (auto st = n->setSelectors(e->fqdnSelectors()); !st.ok())
      log()->warn("toFQDNs selectors: {}", st.error().message());
  });
  fqdn_gc.start(std::chrono::milliseconds(1000), [n] {
    n->gc();
    if (auto st = n->save(); !st.ok()) log()->warn("DNS cache state: {}", st.error().message());
  });
  fqdn::DnsProxyOptions po;
  po.port = proxy_ports.dns_egress;
  po.reject_rcode = opts.tofqdns_reject_rcode;
  CILIUM_ASSIGN_OR_RETURN(dns_proxy, fqdn::DnsProxy::start(po, dns_policy, *names, *ipcache));
  return okStatus();
}

void ControlPlane::debugInfo(api::DebugInfo& d) const {
  auto sum = impl_->manager->regenerationSummary();
  d.subsystem["endpoint-manager"] = fmt::format(
      "endpoints={} regenerations={} failures={} p50_ms={:.3f} p99_ms={:.3f} restored={} "
      "stale_removed={}",
      impl_->manager->size(), sum.count, sum.failures, sum.p50.count() / 1e6, sum.p99.count() / 1e6,
      impl_->restored.restored, impl_->restored.stale_removed);
  d.subsystem["policy"] =
      fmt::format("revision={} rules={}", impl_->engine->revision(), impl_->engine->ruleCount());
  std::lock_guard lock(impl_->gc_mu);
  d.subsystem["conntrack-gc"] =
      fmt::format("runs={} deleted={}", impl_->gc_runs, impl_->gc_deleted);
}

Status ControlPlane::Impl::registerRoutes(api::Router& router) {
  CILIUM_RETURN_IF_ERROR(endpoint::registerRoutes(router, *manager));
  CILIUM_RETURN_IF_ERROR(monitor::registerRoutes(router, *hub));
  CILIUM_RETURN_IF_ERROR(identity::registerRoutes(router, *ids));
  CILIUM_RETURN_IF_ERROR(policy::registerRoutes(router, *engine, api_policy));
  if (names) CILIUM_RETURN_IF_ERROR(fqdn::registerRoutes(router, *names));
  ipcache::IpCache* cache = ipcache.get();
  datapath::MapLister ipcache_entries = [cache]() -> Result<std::vector<api::BpfMapEntry>> {
    std::vector<api::BpfMapEntry> out;
    for (const auto& e : cache->list()) {
      std::string line = ipcache::formatEntry(e);
      auto sp = line.find(' ');
      out.push_back(api::BpfMapEntry{
          e.prefix.toString(), sp == std::string::npos ? line : line.substr(sp + 1), "ok", ""});
    }
    return out;
  };
  return datapath::registerMapRoutes(router, maps, opts.pin_dir,
                                     {{"cilium_ipcache", std::move(ipcache_entries)}});
}

}  // namespace cilium::daemon
