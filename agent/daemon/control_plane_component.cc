// ControlPlaneComponent: the agent's configuration turned into ControlPlaneOptions.
#include "agent/daemon/control_plane_component.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/daemon/k8s_component.h"
#include "agent/daemon/kvstore_component.h"
#include "agent/datapath/map_config.h"
#include "agent/k8s/crd_identity.h"
#include "agent/k8s/source.h"
#include "agent/node/api.h"

namespace cilium::daemon {
namespace {

// cilium-cni leaves <socket dir>/deleteQueue/<container id>.json when it runs DEL while the agent
// is down (cni/plugin.h): finish those deletes (endpoint, then addresses) before serving.
void drainDeleteQueue(const std::string& dir, ControlPlane& cp, ipam::Ipam* ipam) {
  static auto log = logger("daemon");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    const std::string path = entry.path().string();
    auto text = readFile(path);
    nlohmann::json j = text.ok() ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (!j.is_object() || !j.contains("container-id") || !j["container-id"].is_string()) {
      log->warn("delete queue: skipping malformed {}", path);
      std::filesystem::remove(entry.path(), ec);
      continue;
    }
    const std::string cid = j["container-id"].get<std::string>();
    if (auto st = cp.deleteContainerEndpoint(cid);
        !st.ok() && st.error().code() != ErrorCode::kNotFound) {
      log->warn("delete queue: endpoint of container={}: {}", cid, st.error().message());
      continue;  // the file stays; the next start tries again
    }
    size_t released = 0;
    if (ipam != nullptr) released = ipam->releaseOwner(cid).valueOr(std::vector<IpAddr>{}).size();
    log->info("delete queue: finished container={} addresses_released={}", cid, released);
    std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace

Status ControlPlaneComponent::start(Host& daemon) {
  Config cfg = daemon.config<Config>();
  ControlPlaneOptions o;
  o.pin_dir = cfg.bpf_pin_dir;
  o.procfs = cfg.procfs;
  o.state_dir = cfg.persistentStateDir();
  o.ct_tcp_entries = cfg.bpf_ct_global_tcp_max;
  o.ct_any_entries = cfg.bpf_ct_global_any_max;
  o.policy_map_entries = cfg.bpf_policy_map_max;
  o.monitor_aggregation = cfg.monitor_aggregation;
  o.routing_mode = cfg.routing_mode;
  o.tunnel_port = static_cast<uint16_t>(cfg.tunnel_port);
  o.auto_direct_node_routes = cfg.auto_direct_node_routes;
  o.tunnel_route_mtu =
      datapath::podMtu(cfg.mtu != 0 ? cfg.mtu : datapath::kDefaultBaseMtu, true).valueOr(0);
  o.node_name = cfg.node_name;
  o.service_loopback_ipv4 = cfg.ipv4_service_loopback_address;
  o.service_loopback_ipv6 = cfg.ipv6_service_loopback_address;
  o.enable_policy = cfg.enable_policy;
  o.restore = cfg.restore;
  o.enable_l7_proxy = cfg.enable_l7_proxy;
  o.proxy_binary = cfg.proxy_binary;
  o.tofqdns_min_ttl = cfg.tofqdns_min_ttl;
  o.tofqdns_max_ips_per_host = cfg.tofqdns_max_ips_per_host;
  o.tofqdns_reject_rcode = cfg.tofqdns_reject_code == "nameerror" ? 3 : 5;
  o.tofqdns_proxy_port = static_cast<uint16_t>(cfg.tofqdns_proxy_port);
  o.tofqdns_grace_seconds = cfg.tofqdns_grace_seconds;
  o.proxy_socket =
      (std::filesystem::path(cfg.socket_path).parent_path() / "proxy.sock").string();
  const bool have_api_server = k8s_ != nullptr && k8s_->client() != nullptr;
  // Other nodes' entries come from these after the start; the restored ones bridge the gap.
  if (have_api_server) o.ipcache_feeds.push_back("k8s");
  if (kvstore_ != nullptr && kvstore_->client() != nullptr) o.ipcache_feeds.push_back("kvstore");
  if (k8s::identityAllocationMode(cfg, have_api_server) == "crd") {
    if (!have_api_server)
      return Error(ErrorCode::kInvalidArgument,
                   "identity-allocation-mode=crd needs the Kubernetes API server "
                   "(k8s-kubeconfig-path, k8s-api-server or in-cluster configuration)");
    o.cluster_identities = crdIdentityBackend(*k8s_->client(), *k8s_->source());
    // CiliumIdentity objects are other nodes' identities: selectors match pods elsewhere.
    o.remote_identities = [store = &k8s_->source()->stores().cilium_identities](
                              identity::Allocator& ids) -> std::shared_ptr<void> {
      return std::make_shared<k8s::RemoteIdentities>(*store, ids);
    };
  } else if (cfg.identity_allocation_mode == "kvstore") {
    if (kvstore_ == nullptr || kvstore_->client() == nullptr)
      return Error(ErrorCode::kInvalidArgument,
                   "identity-allocation-mode=kvstore needs kvstore=etcd");
    o.cluster_identities = kvstore_->identityBackend();
  }
  if (ipam::Ipam* ipam = daemon.ipam(); ipam != nullptr) {
    if (auto r = ipam->router(IpFamily::kV4)) o.router_ipv4 = r->toString();
    if (auto r = ipam->router(IpFamily::kV6)) o.router_ipv6 = r->toString();
    o.claim_address = [ipam](const IpAddr& ip, const std::string& owner) -> Status {
      auto lease = ipam->allocate(ip, owner);
      if (!lease.ok()) return lease.error();
      return okStatus();
    };
    // The pod CIDRs of the enabled families (one of them in an IPv6-only or IPv4-only agent).
    std::vector<IpPrefix> cidrs;
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6})
      if (auto cidr = ipam->cidr(f)) cidrs.push_back(*cidr);
    if (!cidrs.empty())
      o.pod_address = [cidrs](const IpAddr& ip) {
        return std::any_of(cidrs.begin(), cidrs.end(),
                           [&](const IpPrefix& c) { return c.contains(ip); });
      };
  }
  CILIUM_ASSIGN_OR_RETURN(cp_, ControlPlane::start(o, daemon.router()));
  ControlPlane* cp = cp_.get();
  CILIUM_RETURN_IF_ERROR(node::registerRoutes(daemon.router(), cp->nodes(), cfg.node_name));
  drainDeleteQueue((std::filesystem::path(cfg.socket_path).parent_path() / "deleteQueue").string(),
                   *cp, daemon.ipam());
  daemon.addStatusProvider([cp](api::StatusResponse& s) { cp->status(s); });
  daemon.addMapPressureProvider([cp](std::vector<std::pair<std::string, double>>& out) {
    for (auto& p : cp->mapPressure()) out.push_back(std::move(p));
  });
  daemon.addDebugInfoProvider([cp](api::DebugInfo& d) { cp->debugInfo(d); });
  return okStatus();
}

void ControlPlaneComponent::stop() { cp_.reset(); }

}  // namespace cilium::daemon
