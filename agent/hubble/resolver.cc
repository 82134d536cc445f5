// StaticResolver: map-backed endpoint, identity and service lookups.
#include "agent/hubble/resolver.h"

namespace cilium::hubble {

void StaticResolver::addEndpoint(const EndpointInfo& ep, const std::vector<IpAddr>& ips) {
  auto shared = std::make_shared<const EndpointInfo>(ep);
  std::lock_guard lock(mu_);
  by_id_[ep.id] = shared;
  for (const auto& ip : ips) by_ip_[ip] = shared;
  if (ep.identity != 0)
    identities_[ep.identity] = std::make_shared<const std::vector<std::string>>(ep.labels);
}

void StaticResolver::addIdentity(uint32_t identity, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  identities_[identity] = std::make_shared<const std::vector<std::string>>(std::move(labels));
}

std::shared_ptr<const EndpointInfo> StaticResolver::endpointById(uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<const EndpointInfo> StaticResolver::endpointByIp(const IpAddr& ip) const {
  std::lock_guard lock(mu_);
  auto it = by_ip_.find(ip);
  return it == by_ip_.end() ? nullptr : it->second;
}

std::shared_ptr<const std::vector<std::string>> StaticResolver::identityLabels(
    uint32_t identity) const {
  std::lock_guard lock(mu_);
  auto it = identities_.find(identity);
  return it == identities_.end() ? nullptr : it->second;
}

void StaticResolver::addService(const ServiceFrontend& fe) {
  auto info = std::make_shared<const ServiceInfo>(fe.service);
  std::lock_guard lock(mu_);
  services_[FrontendKey{fe.ip, fe.port, fe.proto}] = std::move(info);
}

void StaticResolver::replaceServices(const std::vector<ServiceFrontend>& frontends) {
  std::map<FrontendKey, std::shared_ptr<const ServiceInfo>> next;
  for (const auto& fe : frontends)
    next[FrontendKey{fe.ip, fe.port, fe.proto}] = std::make_shared<const ServiceInfo>(fe.service);
  std::lock_guard lock(mu_);
  services_.swap(next);
}

std::shared_ptr<const ServiceInfo> StaticResolver::serviceByFrontend(const IpAddr& ip,
                                                                     uint16_t port,
                                                                     uint8_t proto) const {
  std::lock_guard lock(mu_);
  if (services_.empty()) return nullptr;
  auto it = services_.find(FrontendKey{ip, port, proto});
  return it == services_.end() ? nullptr : it->second;
}

}  // namespace cilium::hubble
