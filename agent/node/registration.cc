// This node's CiliumNode: created, kept as wanted, and read for the pod CIDR.
#include "agent/node/registration.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::node {
namespace {

auto& log() {
  static auto l = cilium::logger("node");
  return l;
}

using nlohmann::json;

std::optional<IpPrefix> firstOf(IpFamily family, const std::vector<std::string>& cidrs) {
  for (const auto& c : cidrs) {
    auto p = IpPrefix::parse(c);
    if (p.ok() && p->family() == family) return *p;
  }
  return std::nullopt;
}

// Pod CIDRs as published: IPv4 first, as Kubernetes orders a dual-stack node's podCIDRs.
std::vector<std::string> cidrList(const std::optional<IpPrefix>& v4,
                                  const std::optional<IpPrefix>& v6) {
  std::vector<std::string> out;
  if (v4) out.push_back(v4->toString());
  if (v6) out.push_back(v6->toString());
  return out;
}

}  // namespace

bool Registration::ownsFamily(const std::string& cidr) const {
  auto p = IpPrefix::parse(cidr);
  if (!p.ok()) return owns_pod_cidrs_;
  if (config_.ipam == "kubernetes") return true;
  return p->family() == IpFamily::kV4 ? config_.fixed_ipv4.has_value()
                                      : config_.fixed_ipv6.has_value();
}

std::vector<std::string> Registration::podCidrsToWrite(
    const std::vector<std::string>& desired, const std::vector<std::string>& current) const {
  // The families the agent owns from `desired`; the others (the operator's, when only one
  // family's range is fixed) as they are, so that the two writers never undo each other.
  std::vector<std::string> out;
  for (const auto& c : desired)
    if (ownsFamily(c)) out.push_back(c);
  for (const auto& c : current)
    if (!ownsFamily(c)) out.push_back(c);
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.find(':') == std::string::npos && b.find(':') != std::string::npos;
  });
  return out;
}

std::optional<IpAddr> firstGlobalAddress(IpFamily family) {
  const int af = family == IpFamily::kV4 ? AF_INET : AF_INET6;
  // Link-local addresses are not the node's: 169.254.0.0/16, fe80::/10.
  const IpPrefix link_local = family == IpFamily::kV4 ? *IpPrefix::parse("169.254.0.0/16")
                                                      : *IpPrefix::parse("fe80::/10");
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<IpAddr> out;
  for (ifaddrs* a = list; a != nullptr && !out; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != af) continue;
    if (a->ifa_flags & IFF_LOOPBACK) continue;
    // Cilium's own device carries the router address, not the node's.
    if (std::string_view(a->ifa_name).rfind("cilium_", 0) == 0) continue;
    IpAddr ip = af == AF_INET
                    ? IpAddr::fromNetworkOrder(
                          reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr)
                    : IpAddr::fromBytes(IpFamily::kV6,
                                        reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)
                                            ->sin6_addr.s6_addr);
    if (link_local.contains(ip)) continue;
    out = ip;
  }
  ::freeifaddrs(list);
  return out;
}

std::string readBootId() {
  auto text = readFile("/proc/sys/kernel/random/boot_id");
  if (!text.ok()) return "";
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Result<std::unique_ptr<Registration>> Registration::start(k8s::Client& client, k8s::Stores& stores,
                                                          RegistrationConfig config) {
  if (config.node_name.empty())
    return Error(ErrorCode::kInvalidArgument, "CiliumNode: node-name is empty");
  std::unique_ptr<Registration> r(new Registration(client, stores, std::move(config)));
  const RegistrationConfig& cfg = r->config_;
  std::vector<IpAddr> internal = cfg.internal_ips;
  if (internal.empty())
    if (auto n = stores.nodes.get("", cfg.node_name))
      for (const auto& ip : n->internal_ips)
        if (auto a = IpAddr::parse(ip); a.ok()) internal.push_back(*a);
  if (internal.empty())
    if (auto a = firstGlobalAddress(IpFamily::kV4)) internal.push_back(*a);
  if (internal.empty())
    log()->warn("CiliumNode {}: no InternalIP known (no Node object, no global IPv4 address)",
                cfg.node_name);
  k8s::CiliumNode& d = r->desired_;
  d.meta.name = cfg.node_name;
  for (const auto& ip : internal) d.addresses.push_back({"InternalIP", ip.toString()});
  d.boot_id = cfg.boot_id.empty() ? readBootId() : cfg.boot_id;
  r->owns_pod_cidrs_ =
      cfg.fixed_ipv4.has_value() || cfg.fixed_ipv6.has_value() || cfg.ipam == "kubernetes";
  d.pod_cidrs = cidrList(cfg.fixed_ipv4, cfg.fixed_ipv6);

  if (Status st = r->write(); !st.ok())
    log()->warn("CiliumNode {}: first write failed, retrying: {}", cfg.node_name,
                st.error().message());
  else
    log()->info("CiliumNode {} published internal_ip={} bootid={}", cfg.node_name,
                internal.empty() ? "-" : internal.front().toString(), d.boot_id);
  r->thread_ = std::thread([p = r.get()] { p->run(); });
  Registration* self = r.get();
  k8s::Handlers<k8s::CiliumNode> h;
  auto check = [self](const k8s::CiliumNode& n) {
    if (n.meta.name != self->config_.node_name) return;
    {
      std::lock_guard lock(self->mu_);
      if (self->inSync(n)) return;
    }
    self->kick();
  };
  h.on_add = check;
  h.on_update = [check](const k8s::CiliumNode&, const k8s::CiliumNode& n) { check(n); };
  h.on_delete = [self](const k8s::CiliumNode& n) {
    if (n.meta.name != self->config_.node_name) return;
    log()->warn("CiliumNode {} was deleted; creating it again", n.meta.name);
    self->kick();
  };
  r->handlers_ = stores.cilium_nodes.addHandlers(std::move(h));
  r->registered_ = true;
  return r;
}

Registration::~Registration() {
  if (registered_) stores_.cilium_nodes.removeHandlers(handlers_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

k8s::CiliumNode Registration::desired() const {
  std::lock_guard lock(mu_);
  return desired_;
}

bool Registration::inSync(const k8s::CiliumNode& n) const {
  if (n.addresses != desired_.addresses || n.boot_id != desired_.boot_id ||
      n.health_ipv4 != desired_.health_ipv4 || n.health_ipv6 != desired_.health_ipv6)
    return false;
  return !owns_pod_cidrs_ || n.pod_cidrs == podCidrsToWrite(desired_.pod_cidrs, n.pod_cidrs);
}

void Registration::kick() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void Registration::run() {
  std::chrono::milliseconds backoff{0};
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || dirty_; });
    if (stopping_) return;
    dirty_ = false;
    lock.unlock();
    Status st = write();
    lock.lock();
    if (st.ok()) {
      backoff = std::chrono::milliseconds{0};
      continue;
    }
    backoff = backoff.count() == 0 ? config_.retry_min : std::min(backoff * 2, config_.retry_max);
    log()->warn("CiliumNode {}: write failed, retrying in {} ms: {}", config_.node_name,
                backoff.count(), st.error().message());
    dirty_ = true;
    cv_.wait_for(lock, backoff, [this] { return stopping_; });
  }
}

Status Registration::write() {
  k8s::CiliumNode d;
  bool owns = false;
  {
    std::lock_guard lock(mu_);
    d = desired_;
    owns = owns_pod_cidrs_;
  }
  const auto info = k8s::Resource<k8s::CiliumNode>::info();
  const std::string path = info.objectPath("", d.meta.name);
  if (owns) {
    auto current = stores_.cilium_nodes.get("", d.meta.name);
    d.pod_cidrs =
        podCidrsToWrite(d.pod_cidrs, current ? current->pod_cidrs : std::vector<std::string>{});
  }
  json full = k8s::toJson(d);
  json spec = full["spec"];
  if (!owns) spec.erase("ipam");  // the operator's field in cluster-pool mode
  if (!spec.contains("health")) spec["health"] = nullptr;
  for (int attempt = 0; attempt < 3; attempt++) {
    json patch = {{"spec", spec}};
    CILIUM_ASSIGN_OR_RETURN(
        auto res, client_.request("PATCH", path, patch.dump(), "application/merge-patch+json"));
    if (res.ok()) return okStatus();
    if (res.status != 404)
      return makeError(ErrorCode::kUnavailable, "PATCH {}: HTTP {}", path, res.status);
    json create = full;
    if (!owns) create["spec"].erase("ipam");
    CILIUM_ASSIGN_OR_RETURN(auto cr, client_.request("POST", info.collectionPath(), create.dump()));
    if (cr.ok()) return okStatus();
    if (cr.status != 409)
      return makeError(ErrorCode::kUnavailable, "POST {}: HTTP {}", info.collectionPath(),
                       cr.status);
    // Created meanwhile (a restart racing its own earlier write): patch it.
  }
  return makeError(ErrorCode::kAborted, "CiliumNode {}: create and patch kept racing", d.meta.name);
}

Result<IpPrefix> Registration::waitForPodCidr(std::chrono::milliseconds timeout,
                                              std::chrono::milliseconds log_every,
                                              IpFamily family) {
  const bool v4 = family == IpFamily::kV4;
  if (v4 && config_.fixed_ipv4) return *config_.fixed_ipv4;
  if (!v4 && config_.fixed_ipv6) return *config_.fixed_ipv6;
  const char* fam = v4 ? "IPv4" : "IPv6";
  const bool from_node = config_.ipam == "kubernetes";
  const std::string& name = config_.node_name;
  // Both stores are watched; their changes wake the wait (a condition variable per wait).
  std::mutex wmu;
  std::condition_variable wcv;
  uint64_t changes = 0;
  auto wake = [&] {
    {
      std::lock_guard l(wmu);
      changes++;
    }
    wcv.notify_all();
  };
  k8s::Handlers<k8s::CiliumNode> hc;
  hc.on_add = [&](const k8s::CiliumNode&) { wake(); };
  hc.on_update = [&](const k8s::CiliumNode&, const k8s::CiliumNode&) { wake(); };
  k8s::Handlers<k8s::Node> hn;
  hn.on_add = [&](const k8s::Node&) { wake(); };
  hn.on_update = [&](const k8s::Node&, const k8s::Node&) { wake(); };
  auto idc = stores_.cilium_nodes.addHandlers(std::move(hc));
  auto idn = stores_.nodes.addHandlers(std::move(hn));
  auto t0 = std::chrono::steady_clock::now();
  auto next_log = t0;
  std::optional<IpPrefix> found;
  std::string why;
  while (true) {
    uint64_t seen;
    {
      std::lock_guard l(wmu);
      seen = changes;
    }
    if (from_node) {
      auto n = stores_.nodes.get("", name);
      if (n) found = firstOf(family, n->pod_cidrs);
      why = n ? fmt::format("Node {} has no {} spec.podCIDRs yet", name, fam)
              : fmt::format("Node {} does not exist", name);
    } else {
      auto cn = stores_.cilium_nodes.get("", name);
      if (cn) found = firstOf(family, cn->pod_cidrs);
      why = cn ? fmt::format("CiliumNode {} has no {} spec.ipam.podCIDRs yet", name, fam)
               : fmt::format("CiliumNode {} is not created yet", name);
      if (cn && !cn->operator_error.empty())
        why += fmt::format("; cilium-operator reports: {}", cn->operator_error);
      else if (cn)
        why += " (is cilium-operator running?)";
    }
    if (found) break;
    auto now = std::chrono::steady_clock::now();
    if (now - t0 >= timeout) break;
    if (now >= next_log) {
      log()->info("waiting for this node's {} pod CIDR ipam={}: {}", fam, config_.ipam, why);
      next_log = now + log_every;
    }
    std::unique_lock l(wmu);
    wcv.wait_until(l, std::min(next_log, t0 + timeout), [&] { return changes != seen; });
  }
  stores_.cilium_nodes.removeHandlers(idc);
  stores_.nodes.removeHandlers(idn);
  if (!found)
    return makeError(
        ErrorCode::kDeadlineExceeded, "no {} pod CIDR for this node within {} s (ipam={}): {}", fam,
        std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), config_.ipam, why);
  log()->info("pod CIDR known ipam={} cidr={}", config_.ipam, found->toString());
  if (from_node) {
    {
      std::lock_guard lock(mu_);
      (v4 ? learned_v4_ : learned_v6_) = *found;
      desired_.pod_cidrs = cidrList(config_.fixed_ipv4 ? config_.fixed_ipv4 : learned_v4_,
                                    config_.fixed_ipv6 ? config_.fixed_ipv6 : learned_v6_);
    }
    kick();
  }
  return *found;
}

Status Registration::setAddresses(const LocalAddresses& a) {
  {
    std::lock_guard lock(mu_);
    std::vector<k8s::NodeAddress> addrs;
    for (const auto& x : desired_.addresses)
      if (x.type != "CiliumInternalIP") addrs.push_back(x);
    if (a.router_ipv4) addrs.push_back({"CiliumInternalIP", a.router_ipv4->toString()});
    if (a.router_ipv6) addrs.push_back({"CiliumInternalIP", a.router_ipv6->toString()});
    desired_.addresses = std::move(addrs);
    desired_.health_ipv4 = a.health_ipv4 ? a.health_ipv4->toString() : "";
    desired_.health_ipv6 = a.health_ipv6 ? a.health_ipv6->toString() : "";
    if (owns_pod_cidrs_ && (a.pod_cidr_ipv4 || a.pod_cidr_ipv6))
      desired_.pod_cidrs = cidrList(a.pod_cidr_ipv4, a.pod_cidr_ipv6);
  }
  Status st = write();
  if (!st.ok()) kick();  // retried in the background
  return st;
}

}  // namespace cilium::node
