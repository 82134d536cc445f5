// StaticResolver: map-backed endpoint and identity lookups.
#include "agent/hubble/resolver.h"

namespace cilium::hubble {

void StaticResolver::addEndpoint(const EndpointInfo& ep, const std::vector<IpAddr>& ips) {
  std::lock_guard lock(mu_);
  by_id_[ep.id] = ep;
  for (const auto& ip : ips) by_ip_[ip] = ep;
  if (ep.identity != 0) identities_[ep.identity] = ep.labels;
}

void StaticResolver::addIdentity(uint32_t identity, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  identities_[identity] = std::move(labels);
}

std::optional<EndpointInfo> StaticResolver::endpointById(uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<EndpointInfo> StaticResolver::endpointByIp(const IpAddr& ip) const {
  std::lock_guard lock(mu_);
  auto it = by_ip_.find(ip);
  if (it == by_ip_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::vector<std::string>> StaticResolver::identityLabels(uint32_t identity) const {
  std::lock_guard lock(mu_);
  auto it = identities_.find(identity);
  if (it == identities_.end()) return std::nullopt;
  return it->second;
}

}  // namespace cilium::hubble
