// The daemon's own REST handlers (/healthz, /config, /ipam, /debuginfo) and the contract's
// reserved paths.
#include "agent/common/log.h"
#include "agent/daemon/daemon.h"

namespace cilium::daemon {
namespace {

using api::Method;
using api::Request;
using api::Response;

api::IpamResponse ipamResponse(const std::vector<ipam::Lease>& leases, const ipam::Ipam& ipam) {
  api::IpamResponse out;
  for (const auto& l : leases) {
    api::IpamAddressResponse a;
    a.ip = l.ip.toString();
    a.gateway = l.gateway.toString();
    a.cidrs = {l.cidr.toString()};
    if (l.ip.isV4()) {
      out.address.ipv4 = a.ip;
      out.ipv4 = a;
    } else {
      out.address.ipv6 = a.ip;
      out.ipv6 = a;
    }
  }
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    auto router = ipam.router(f);
    if (!router) continue;
    api::NodeAddressingElement e{true, router->toString(), ipam.cidr(f)->toString(), ""};
    (f == IpFamily::kV4 ? out.host_addressing.ipv4 : out.host_addressing.ipv6) = e;
  }
  return out;
}

Result<ipam::Ipam*> readyIpam(Daemon& d) {
  if (d.ipam() == nullptr)
    return Error(ErrorCode::kUnavailable,
                 "IPAM is not ready: no pod CIDR is known yet (ipv4-range/ipv6-range are auto)");
  return d.ipam();
}

}  // namespace

const std::vector<ContractRoute>& contractRoutes() {
  static const std::vector<ContractRoute> routes = {
      {Method::kGet, "/v1/healthz", "the daemon"},
      {Method::kGet, "/v1/config", "the daemon"},
      {Method::kPatch, "/v1/config", "the daemon"},
      {Method::kGet, "/v1/debuginfo", "the daemon"},
      {Method::kPost, "/v1/ipam", "the daemon"},
      {Method::kPost, "/v1/ipam/{ip}", "the daemon"},
      {Method::kDelete, "/v1/ipam/{ip}", "the daemon"},
      {Method::kGet, "/v1/endpoint", "the endpoint manager"},
      {Method::kGet, "/v1/endpoint/{id}", "the endpoint manager"},
      {Method::kPut, "/v1/endpoint/{id}", "the endpoint manager"},
      {Method::kPatch, "/v1/endpoint/{id}", "the endpoint manager"},
      {Method::kDelete, "/v1/endpoint/{id}", "the endpoint manager"},
      {Method::kGet, "/v1/endpoint/{id}/labels", "the endpoint manager"},
      {Method::kGet, "/v1/endpoint/{id}/healthz", "the endpoint manager"},
      {Method::kGet, "/v1/identity", "the identity allocator"},
      {Method::kGet, "/v1/identity/{id}", "the identity allocator"},
      {Method::kGet, "/v1/policy", "the policy engine"},
      {Method::kPut, "/v1/policy", "the policy engine"},
      {Method::kDelete, "/v1/policy", "the policy engine"},
      {Method::kGet, "/v1/policy/selectors", "the policy engine"},
      {Method::kGet, "/v1/cluster/nodes", "the node manager"},
      {Method::kGet, "/v1/health/status", "the health checker"},
      {Method::kPut, "/v1/health/status/probe", "the health checker"},
      {Method::kGet, "/v1/fqdn/cache", "the DNS proxy (enable-l7-proxy)"},
      {Method::kDelete, "/v1/fqdn/cache", "the DNS proxy (enable-l7-proxy)"},
      {Method::kGet, "/v1/fqdn/cache/{id}", "the DNS proxy (enable-l7-proxy)"},
      {Method::kGet, "/v1/fqdn/names", "the DNS proxy (enable-l7-proxy)"},
      {Method::kGet, "/v1/map", "the datapath"},
      {Method::kGet, "/v1/map/{name}", "the datapath"},
      {Method::kGet, "/v1/monitor", "the monitor (datapath events)"},
      {Method::kGet, "/v1/service", "the service manager"},
      {Method::kGet, "/v1/service/{id}", "the service manager"},
      {Method::kPut, "/v1/service/{id}", "the service manager"},
      {Method::kDelete, "/v1/service/{id}", "the service manager"},
  };
  return routes;
}

Status Daemon::registerReservedRoutes() {
  for (const auto& r : contractRoutes()) {
    if (router_.has(r.method, r.path)) continue;
    std::string msg = fmt::format("{} {} is served by {}, which this agent does not run yet",
                                  api::methodName(r.method), r.path, r.served_by);
    CILIUM_RETURN_IF_ERROR(router_.add(r.method, r.path, [msg](const Request&) -> Result<Response> {
      return Error(ErrorCode::kUnimplemented, msg);
    }));
  }
  return okStatus();
}

Status Daemon::registerCoreRoutes() {
  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kGet, "/v1/healthz", [this](const Request&) -> Result<Response> {
        return Response::json(api::encode(status()));
      }));

  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kGet, "/v1/config", [this](const Request&) -> Result<Response> {
        return Response::json(api::encode(configuration()));
      }));

  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kPatch, "/v1/config", [this](const Request& req) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(
            auto spec, req.decodeBody<api::DaemonConfigurationSpec>("DaemonConfigurationSpec"));
        std::map<std::string, std::string> changes = spec.options;
        if (!spec.policy_enforcement.empty()) changes["enable-policy"] = spec.policy_enforcement;
        CILIUM_RETURN_IF_ERROR(config_.apply(changes));
        logger("daemon")->info("configuration changed through the API changes={}", changes.size());
        return Response::empty(200);
      }));

  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kGet, "/v1/debuginfo", [this](const Request&) -> Result<Response> {
        return Response::json(api::encode(debugInfo()));
      }));

  // POST /ipam?family=ipv4&owner=ns/pod: the next free address of one family, or of every
  // enabled family when `family` is absent (as Cilium does). The "expiration" header is accepted
  // and ignored: allocations last until released.
  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kPost, "/v1/ipam", [this](const Request& req) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(ipam::Ipam * ipam, readyIpam(*this));
        std::vector<IpFamily> families;
        if (auto f = req.queryValue("family"); f && !f->empty()) {
          CILIUM_ASSIGN_OR_RETURN(IpFamily fam, parseIpFamily(*f));
          families.push_back(fam);
        } else {
          for (IpFamily fam : {IpFamily::kV4, IpFamily::kV6})
            if (ipam->enabled(fam)) families.push_back(fam);
        }
        std::string owner = req.queryValue("owner").value_or("");
        std::vector<ipam::Lease> leases;
        for (IpFamily fam : families) {
          auto lease = ipam->allocateNext(fam, owner);
          if (!lease.ok()) {
            for (const auto& l : leases) (void)ipam->release(l.ip);  // all families or none
            return lease.error();
          }
          leases.push_back(*lease);
        }
        return Response::json(api::encode(ipamResponse(leases, *ipam)), 201);
      }));

  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kPost, "/v1/ipam/{ip}", [this](const Request& req) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(ipam::Ipam * ipam, readyIpam(*this));
        CILIUM_ASSIGN_OR_RETURN(IpAddr ip, IpAddr::parse(req.param("ip")));
        CILIUM_ASSIGN_OR_RETURN(auto lease,
                                ipam->allocate(ip, req.queryValue("owner").value_or("")));
        return Response::json(api::encode(ipamResponse({lease}, *ipam)), 200);
      }));

  // DELETE /ipam/{ip}: {ip} is an address, or an owner whose addresses are all released.
  CILIUM_RETURN_IF_ERROR(
      router_.add(Method::kDelete, "/v1/ipam/{ip}", [this](const Request& req) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(ipam::Ipam * ipam, readyIpam(*this));
        const std::string& arg = req.param("ip");
        if (auto ip = IpAddr::parse(arg); ip.ok()) {
          CILIUM_RETURN_IF_ERROR(ipam->release(*ip));
        } else {
          CILIUM_RETURN_IF_ERROR(ipam->releaseOwner(arg));
        }
        return Response::empty(200);
      }));
  return okStatus();
}

}  // namespace cilium::daemon
