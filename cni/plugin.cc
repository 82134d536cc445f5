// The CNI commands. Every path either completes or undoes what it did: a pod is never left with
// half a network (an address without an endpoint, a veth without policy).
#include "cni/plugin.h"

#include <chrono>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "agent/common/files.h"
#include "agent/common/inet.h"
#include "agent/common/log.h"

namespace cilium::cni {
namespace {

auto& log() {
  static auto l = logger("cni");
  return l;
}

Outcome failure(const NetConf* conf, Code code, std::string msg, std::string details = {}) {
  log()->warn("failing with code={} msg={} details={}", static_cast<int>(code), msg, details);
  CniError err{code, std::move(msg), std::move(details)};
  // An error is encoded in the version the runtime asked for; without a config, the newest.
  return {static_cast<int>(code) == 0 ? 1 : static_cast<int>(code),
          err.toJson(conf != nullptr ? conf->cni_version : supportedVersions().back())};
}

Outcome failure(const NetConf& conf, const CniError& e) {
  return failure(&conf, e.code, e.msg, e.details);
}

// An agent error as a CNI error: an unreachable agent is "try again later" (kubelet retries).
Outcome agentFailure(const NetConf& conf, std::string_view what, const Error& e) {
  Code code = e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kDeadlineExceeded
                  ? Code::kTryAgainLater
                  : Code::kInternal;
  return failure(&conf, code, fmt::format("{}: {}", what, e.message()));
}

uint64_t fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  return h;
}

std::string stripPrefixLength(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

// A CNI_NETNS that is not there means the container is gone (code 3: the runtime need not clean
// up); one that is something else is a bad variable (code 4, naming it); anything else, such as
// permission, is an I/O failure (code 5). Never 999: none of these is the plugin's own failure.
Outcome netnsFailure(const NetConf& conf, const std::string& netns, const Error& e) {
  switch (e.code()) {
    case ErrorCode::kNotFound:
      return failure(&conf, Code::kUnknownContainer,
                     fmt::format("the network namespace {} (CNI_NETNS) does not exist", netns),
                     e.message());
    case ErrorCode::kInvalidArgument:
      return failure(&conf, Code::kInvalidEnvironment,
                     fmt::format("CNI_NETNS {} is not a network namespace", netns), e.message());
    default:
      return failure(&conf, Code::kIoFailure,
                     fmt::format("CNI_NETNS {} cannot be used: {}", netns, e.message()));
  }
}

// The pod's IPv4 address as the agent knows it, or "".
// The endpoint's address of one family ("" = none).
std::string endpointAddress(const api::Endpoint& ep, bool ipv6) {
  if (!ep.status || !ep.status->networking) return {};
  for (const auto& a : ep.status->networking->addressing) {
    const std::string& ip = ipv6 ? a.ipv6 : a.ipv4;
    if (!ip.empty()) return ip;
  }
  return {};
}

std::string endpointHostIfname(const api::Endpoint& ep) {
  if (!ep.status || !ep.status->networking) return {};
  return ep.status->networking->interface_name;
}

std::string endpointContainerId(const api::Endpoint& ep) {
  if (!ep.status || !ep.status->external_identifiers) return {};
  return ep.status->external_identifiers->container_id;
}

}  // namespace

std::string hostIfname(std::string_view container_id, std::string_view ifname) {
  return fmt::format("lxc{:012x}", fnv1a(container_id, ifname) & 0xffffffffffffULL);
}

Outcome Plugin::run(const Getenv& getenv, std::string_view stdin_text) {
  CniError err;
  auto env = parseEnvironment(getenv, err);
  if (!env) return failure(nullptr, err.code, err.msg, err.details);

  if (env->command == Command::kVersion) {
    // VERSION may come without a config; answer in the version asked for when there is one.
    std::string version = supportedVersions().back();
    CniError ignored;
    if (auto conf = parseNetConf(stdin_text, ignored); conf && versionSupported(conf->cni_version))
      version = conf->cni_version;
    return {0, versionJson(version)};
  }

  auto conf = parseNetConf(stdin_text, err);
  if (!conf) return failure(nullptr, err.code, err.msg, err.details);
  if (!versionSupported(conf->cni_version)) {
    return failure(nullptr, Code::kIncompatibleVersion,
                   fmt::format("incompatible CNI versions: config is {:?}, plugin supports {}",
                               conf->cni_version, fmt::join(supportedVersions(), ", ")));
  }
  log()->info("command={} container={} netns={} ifname={} pod={}/{}", commandName(env->command),
              env->container_id, env->netns, env->ifname, env->arg("K8S_POD_NAMESPACE"),
              env->arg("K8S_POD_NAME"));
  switch (env->command) {
    case Command::kAdd: return add(*env, *conf);
    case Command::kDel: return del(*env, *conf);
    case Command::kCheck:
      if (compareVersions(conf->cni_version, "0.4.0") < 0) {
        return failure(
            &*conf, Code::kIncompatibleVersion,
            fmt::format("CHECK needs cniVersion 0.4.0 or later, config is {}", conf->cni_version));
      }
      return check(*env, *conf);
    case Command::kGc:
    case Command::kStatus:
      if (compareVersions(conf->cni_version, "1.1.0") < 0) {
        return failure(&*conf, Code::kIncompatibleVersion,
                       fmt::format("{} needs cniVersion 1.1.0 or later, config is {}",
                                   commandName(env->command), conf->cni_version));
      }
      return env->command == Command::kGc ? gc(*conf) : status(*conf);
    case Command::kVersion: break;
  }
  return failure(&*conf, Code::kInternal, "unreachable command");
}

Outcome Plugin::add(const Environment& env, const NetConf& conf) {
  // Each step's wall time goes into the final log line: where an ADD spends its time is the
  // first question when pods start slowly.
  using Clock = std::chrono::steady_clock;
  auto mark = Clock::now();
  auto lap = [&mark] {
    auto now = Clock::now();
    double ms = std::chrono::duration<double, std::milli>(now - mark).count();
    mark = now;
    return ms;
  };
  // Before anything is allocated: a pod whose namespace is gone or wrong gets nothing.
  if (auto st = net_.checkNetns(env.netns); !st.ok())
    return netnsFailure(conf, env.netns, st.error());
  auto health = agent_.healthz();
  if (!health.ok()) return agentFailure(conf, "cilium agent is not reachable", health.error());
  if (!health->cilium || health->cilium->state != api::StatusState::kOk) {
    return failure(&conf, Code::kTryAgainLater,
                   fmt::format("cilium agent is not ready: {}",
                               health->cilium ? health->cilium->msg : "no status"));
  }

  // The network configuration's MTU wins; else the agent's (which knows the tunnel overhead).
  int mtu = conf.mtu;
  if (mtu <= 0) {
    auto agent_mtu = agent_.deviceMtu();
    if (!agent_mtu.ok())
      return agentFailure(conf, "reading the agent's configuration", agent_mtu.error());
    mtu = *agent_mtu > 0 ? *agent_mtu : opts_.default_mtu;
  }

  const std::string host_if = hostIfname(env.container_id, env.ifname);
  // A repeated ADD for the same container starts from a clean slate: whatever an earlier attempt
  // left (endpoint, address, veth) is removed first, so the outcome is one fully wired pod.
  if (auto old = agent_.getEndpoint(env.container_id); old.ok()) {
    log()->info("container={} already has endpoint {}; replacing it", env.container_id, old->id);
    if (auto st = agent_.deleteEndpoint(env.container_id); !st.ok())
      return agentFailure(conf, "removing the previous endpoint", st.error());
  }
  // Addresses are allocated with the container id as owner: this frees whatever it held.
  (void)agent_.release(env.container_id);
  if (auto st = net_.teardown(host_if); !st.ok())
    return failure(&conf, Code::kInternal,
                   fmt::format("removing stale {}: {}", host_if, st.error().message()));

  const double prepare_ms = lap();
  auto ipam = agent_.allocate(env.container_id);
  if (!ipam.ok()) {
    Code code = ipam.error().code() == ErrorCode::kResourceExhausted ? Code::kInternal
                                                                     : Code::kTryAgainLater;
    if (ipam.error().code() == ErrorCode::kUnavailable ||
        ipam.error().code() == ErrorCode::kResourceExhausted) {
      return failure(&conf, code, fmt::format("allocating an address: {}", ipam.error().message()));
    }
    return agentFailure(conf, "allocating an address", ipam.error());
  }
  // One address per family the agent has enabled: IPv4, IPv6 (enable-ipv4=false) or both.
  const std::string ip = ipam->ipv4 ? ipam->address.ipv4 : std::string();
  const std::string gateway = ipam->ipv4 ? ipam->ipv4->gateway : std::string();
  const std::string ip6 = ipam->ipv6 ? ipam->address.ipv6 : std::string();
  const std::string gateway6 = ipam->ipv6 ? ipam->ipv6->gateway : std::string();
  if ((ip.empty() || gateway.empty()) && (ip6.empty() || gateway6.empty())) {
    (void)agent_.release(env.container_id);
    return failure(&conf, Code::kInternal, "the agent returned no address with its gateway");
  }

  const double ipam_ms = lap();
  PodLink link{env.netns, env.ifname, host_if, mtu, ip, gateway, ip6, gateway6};
  auto info = net_.setup(link);
  if (!info.ok()) {
    (void)agent_.release(env.container_id);  // by owner: every family's address
    // The namespace went away since the check above: the container is gone (code 3).
    if (auto st = net_.checkNetns(env.netns); !st.ok())
      return netnsFailure(conf, env.netns, st.error());
    return failure(
        &conf, Code::kInternal,
        fmt::format("setting up {} in {}: {}", env.ifname, env.netns, info.error().message()));
  }

  const double veth_ms = lap();
  api::EndpointChangeRequest req;
  req.container_id = env.container_id;
  req.container_interface_name = env.ifname;
  req.interface_name = host_if;
  req.interface_index = info->host_ifindex;
  req.mac = info->pod_mac;
  req.host_mac = info->host_mac;
  req.addressing = api::AddressPair{.ipv4 = ip, .ipv6 = ip6};
  req.k8s_pod_name = env.arg("K8S_POD_NAME");
  req.k8s_namespace = env.arg("K8S_POD_NAMESPACE");
  req.k8s_uid = env.arg("K8S_POD_UID");
  req.netns = env.netns;
  req.state = api::EndpointState::kWaitingForIdentity;
  req.sync_build_endpoint = true;  // return only once policy is enforced
  if (auto st = agent_.putEndpoint(req); !st.ok()) {
    (void)agent_.deleteEndpoint(env.container_id);
    (void)net_.teardown(host_if);
    (void)agent_.release(env.container_id);
    return agentFailure(conf, "creating the endpoint", st.error());
  }

  const double endpoint_ms = lap();

  AddResult result;
  result.interfaces.push_back({host_if, info->host_mac, link.mtu, ""});
  result.interfaces.push_back({env.ifname, info->pod_mac, link.mtu, env.netns});
  if (!ip.empty()) {
    result.ips.push_back({ip + "/32", gateway, 1, false});
    result.routes.push_back({"0.0.0.0/0", gateway});
  }
  if (!ip6.empty()) {
    result.ips.push_back({ip6 + "/128", gateway6, 1, true});
    result.routes.push_back({"::/0", gateway6});
  }
  log()->info(
      "added container={} ip={} ip6={} host-if={} ifindex={} ms-prepare={:.1f} ms-ipam={:.1f} "
      "ms-veth={:.1f} ms-endpoint={:.1f}",
      env.container_id, ip.empty() ? "-" : ip, ip6.empty() ? "-" : ip6, host_if, info->host_ifindex,
      prepare_ms, ipam_ms, veth_ms, endpoint_ms);
  return {0, result.toJson(conf.cni_version).dump()};
}

Outcome Plugin::del(const Environment& env, const NetConf& conf) {
  // DEL must succeed whatever is already gone: no netns, no veth, no endpoint, no address.
  const std::string host_if = hostIfname(env.container_id, env.ifname);
  std::string ip;
  if (!conf.prev_result.is_null()) {
    CniError ignored;
    if (auto prev = AddResult::fromJson(conf.prev_result, ignored); prev && !prev->ips.empty())
      ip = stripPrefixLength(prev->ips.front().address);
  }

  auto ep = agent_.getEndpoint(env.container_id);
  const bool agent_down = !ep.ok() && (ep.error().code() == ErrorCode::kUnavailable ||
                                       ep.error().code() == ErrorCode::kDeadlineExceeded);
  // The veth goes first: once it is gone the pod has no network, whatever happens next.
  if (auto st = net_.teardown(host_if); !st.ok())
    log()->warn("removing {}: {}", host_if, st.error().message());

  if (agent_down) {
    // Leave the agent a note; it finishes the endpoint and the address when it is back.
    if (auto st = queueDelete(env, ip); !st.ok()) {
      return failure(&conf, Code::kTryAgainLater,
                     fmt::format("cilium agent is down and the delete could not be queued: {}",
                                 st.error().message()));
    }
    log()->warn("agent unreachable ({}); queued the delete of container={}", ep.error().message(),
                env.container_id);
    return {0, ""};
  }
  if (ep.ok()) {
    if (ip.empty()) ip = endpointAddress(*ep, false);
    if (ip.empty()) ip = endpointAddress(*ep, true);
    if (auto st = agent_.deleteEndpoint(env.container_id);
        !st.ok() && st.error().code() != ErrorCode::kNotFound) {
      return agentFailure(conf, "deleting the endpoint", st.error());
    }
  } else if (ep.error().code() != ErrorCode::kNotFound) {
    return agentFailure(conf, "looking up the endpoint", ep.error());
  }
  // By owner: every address ADD allocated for this container, also after a half-done ADD.
  if (auto st = agent_.release(env.container_id);
      !st.ok() && st.error().code() != ErrorCode::kNotFound) {
    return agentFailure(conf, "releasing the container's addresses", st.error());
  }
  log()->info("deleted container={} ip={}", env.container_id, ip.empty() ? "-" : ip);
  return {0, ""};
}

Outcome Plugin::check(const Environment& env, const NetConf& conf) {
  if (conf.prev_result.is_null())
    return failure(&conf, Code::kInvalidNetworkConfig, "CHECK needs prevResult");
  CniError err;
  auto prev = AddResult::fromJson(conf.prev_result, err);
  if (!prev) return failure(conf, err);
  if (prev->ips.empty())
    return failure(&conf, Code::kInvalidNetworkConfig, "prevResult has no ips");
  if (auto st = net_.checkNetns(env.netns); !st.ok())
    return netnsFailure(conf, env.netns, st.error());

  auto ep = agent_.getEndpoint(env.container_id);
  if (!ep.ok()) return agentFailure(conf, "looking up the endpoint", ep.error());
  if (!ep->status || ep->status->state != api::EndpointState::kReady) {
    return failure(&conf, Code::kInternal, fmt::format("endpoint {} is not ready", ep->id));
  }
  // Every address of the result (one per family) is the endpoint's and on the pod's interface.
  for (const auto& entry : prev->ips) {
    const std::string ip = stripPrefixLength(entry.address);
    auto parsed = IpAddr::parse(ip);
    if (!parsed.ok())
      return failure(&conf, Code::kInvalidNetworkConfig,
                     fmt::format("prevResult address {:?} is not an IP address", entry.address));
    const std::string has = endpointAddress(*ep, !parsed->isV4());
    if (has != ip) {
      return failure(
          &conf, Code::kInternal,
          fmt::format("endpoint {} has address {:?}, prevResult says {}", ep->id, has, ip));
    }
    if (auto st = net_.check(env.netns, env.ifname, ip); !st.ok())
      return failure(&conf, Code::kInternal, st.error().message());
  }
  return {0, ""};
}

Outcome Plugin::gc(const NetConf& conf) {
  std::set<std::string> valid;
  if (auto it = conf.raw.find("cni.dev/valid-attachments"); it != conf.raw.end()) {
    if (!it->is_array())
      return failure(&conf, Code::kInvalidNetworkConfig,
                     "cni.dev/valid-attachments must be a list");
    for (const auto& a : *it) {
      if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string()) {
        return failure(&conf, Code::kInvalidNetworkConfig,
                       "cni.dev/valid-attachments entries need a containerID string");
      }
      valid.insert(a["containerID"].get<std::string>());
    }
  }
  auto eps = agent_.listEndpoints();
  if (!eps.ok()) return agentFailure(conf, "listing endpoints", eps.error());
  // GC carries on past errors and reports the first.
  std::string first_error;
  for (const auto& ep : *eps) {
    const std::string cid = endpointContainerId(ep);
    if (cid.empty() || valid.count(cid) != 0) continue;
    log()->info("gc: container={} endpoint={} is not in the runtime's list", cid, ep.id);
    auto record = [&](const Status& st, std::string_view what) {
      if (!st.ok() && st.error().code() != ErrorCode::kNotFound && first_error.empty())
        first_error = fmt::format("{} of {}: {}", what, cid, st.error().message());
    };
    if (auto host_if = endpointHostIfname(ep); !host_if.empty())
      record(net_.teardown(host_if), "removing the veth");
    record(agent_.deleteEndpoint(cid), "deleting the endpoint");
    record(agent_.release(cid), "releasing the container's addresses");
  }
  if (!first_error.empty()) return failure(&conf, Code::kInternal, first_error);
  return {0, ""};
}

Outcome Plugin::status(const NetConf& conf) {
  auto health = agent_.healthz();
  if (!health.ok())
    return failure(&conf, Code::kNotAvailable,
                   fmt::format("cilium agent is not reachable: {}", health.error().message()));
  if (!health->cilium || health->cilium->state != api::StatusState::kOk) {
    return failure(&conf, Code::kNotAvailable,
                   fmt::format("cilium agent is not ready: {}",
                               health->cilium ? health->cilium->msg : "no status"));
  }
  return {0, ""};
}

Status Plugin::queueDelete(const Environment& env, const std::string& ip) {
  if (opts_.delete_queue_dir.empty())
    return makeError(ErrorCode::kFailedPrecondition, "no delete queue configured");
  std::error_code ec;
  std::filesystem::create_directories(opts_.delete_queue_dir, ec);
  if (ec) return makeError(ErrorCode::kInternal, "{}: {}", opts_.delete_queue_dir, ec.message());
  nlohmann::json j = {{"container-id", env.container_id},
                      {"interface", env.ifname},
                      {"ip", ip},
                      {"k8s-namespace", env.arg("K8S_POD_NAMESPACE")},
                      {"k8s-pod-name", env.arg("K8S_POD_NAME")}};
  return writeFileAtomic(opts_.delete_queue_dir + "/" + env.container_id + ".json",
                         j.dump() + "\n");
}

}  // namespace cilium::cni
