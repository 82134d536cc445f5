// Reserved identities and the labels of CIDR identities.
#include "agent/identity/identity.h"

#include <array>

namespace cilium::identity {

namespace {

constexpr std::array<std::pair<NumericIdentity, std::string_view>, 10> kReserved = {{
    {kHost, "host"},
    {kWorld, "world"},
    {kUnmanaged, "unmanaged"},
    {kHealth, "health"},
    {kInit, "init"},
    {kRemoteNode, "remote-node"},
    {kKubeApiServer, "kube-apiserver"},
    {kIngress, "ingress"},
    {kWorldIpv4, "world-ipv4"},
    {kWorldIpv6, "world-ipv6"},
}};

}  // namespace

bool isReserved(NumericIdentity id) { return id <= kWorldIpv6; }

bool isLocal(NumericIdentity id) { return (id & kLocalFlag) != 0; }

std::string_view reservedName(NumericIdentity id) {
  for (const auto& [n, name] : kReserved)
    if (n == id) return name;
  return {};
}

std::optional<NumericIdentity> reservedByName(std::string_view name) {
  for (const auto& [n, nm] : kReserved)
    if (nm == name) return n;
  return std::nullopt;
}

const std::vector<Identity>& reservedIdentities() {
  static const std::vector<Identity> kList = [] {
    std::vector<Identity> out;
    out.reserve(kReserved.size());
    for (const auto& [n, name] : kReserved)
      out.push_back({n, labels::Labels{{labels::Source::kReserved, std::string(name), ""}}});
    return out;
  }();
  return kList;
}

Result<std::optional<NumericIdentity>> reservedForLabels(const labels::Labels& lbls) {
  if (!lbls.hasSource(labels::Source::kReserved)) return std::optional<NumericIdentity>();
  // The host keeps its identity whatever node labels come with it; an endpoint that has no labels
  // yet is init.
  if (lbls.has(labels::Source::kReserved, "host")) return std::optional<NumericIdentity>(kHost);
  if (lbls.has(labels::Source::kReserved, "init")) return std::optional<NumericIdentity>(kInit);
  if (lbls.size() == 1) {
    const auto& l = lbls.list().front();
    if (auto id = reservedByName(l.key)) return std::optional<NumericIdentity>(*id);
    return makeError(ErrorCode::kInvalidArgument, "unknown reserved label \"{}\"", l.toString());
  }
  // CIDR identities carry reserved:world next to their cidr: label; they are allocated through
  // allocateCidr(), not here.
  return makeError(ErrorCode::kInvalidArgument,
                   "labels [{}] mix reserved labels with others; no identity has them",
                   lbls.toString());
}

labels::Labels cidrLabels(const IpPrefix& prefix) {
  return labels::Labels{{labels::Source::kCidr, prefix.toString(), ""},
                        {labels::Source::kReserved, "world", ""}};
}

std::optional<IpPrefix> cidrOfLabels(const labels::Labels& lbls) {
  for (const auto& l : lbls) {
    if (l.source != labels::Source::kCidr) continue;
    auto p = IpPrefix::parseMasked(l.key);
    if (p.ok()) return *p;
  }
  return std::nullopt;
}

}  // namespace cilium::identity
