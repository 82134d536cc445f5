// Endpoint validation and its persisted JSON form.
#include "agent/endpoint/endpoint.h"

#include <nlohmann/json.hpp>

#include "agent/datapath/maps.h"

namespace cilium::endpoint {
namespace {

nlohmann::json namedPortsJson(const std::vector<NamedPort>& ports) {
  auto out = nlohmann::json::array();
  for (const auto& p : ports)
    out.push_back({{"name", p.name}, {"port", p.port}, {"protocol", p.protocol}});
  return out;
}

bool isMac(std::string_view s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

constexpr std::pair<State, std::string_view> kStateNames[] = {
    {State::kWaitingForIdentity, "waiting-for-identity"},
    {State::kRestoring, "restoring"},
    {State::kRegenerating, "regenerating"},
    {State::kReady, "ready"},
    {State::kDisconnecting, "disconnecting"},
    {State::kNotReady, "not-ready"},
};

}  // namespace

std::string_view stateName(State s) {
  for (const auto& [st, name] : kStateNames)
    if (st == s) return name;
  return "invalid";
}

Status Spec::validate() const {
  if (!mac.empty() && !isMac(mac))
    return makeError(ErrorCode::kInvalidArgument, "mac: '{}' is not a MAC address", mac);
  if (!host_mac.empty() && !isMac(host_mac))
    return makeError(ErrorCode::kInvalidArgument, "host-mac: '{}' is not a MAC address", host_mac);
  if (ifindex <= 0)
    return makeError(ErrorCode::kInvalidArgument,
                     "interface-index: {} is not a device index (the host side of the veth)",
                     ifindex);
  // IPv4, IPv6 or both (an IPv6-only agent's endpoints have no IPv4 address).
  if (!ipv4 && !ipv6)
    return Error(ErrorCode::kInvalidArgument, "addressing: an IPv4 or an IPv6 address is required");
  if (ipv4 && !ipv4->isV4())
    return makeError(ErrorCode::kInvalidArgument, "addressing.ipv4: {} is not an IPv4 address",
                     ipv4->toString());
  if (ipv6 && ipv6->isV4())
    return makeError(ErrorCode::kInvalidArgument, "addressing.ipv6: {} is not an IPv6 address",
                     ipv6->toString());
  if (pod_name.empty() != pod_namespace.empty())
    return Error(ErrorCode::kInvalidArgument,
                 "k8s-pod-name and k8s-namespace must be given together");
  return okStatus();
}

nlohmann::json toStateJson(const Endpoint& ep) {
  const Spec& s = ep.spec;
  return {
      {"id", s.id},
      {"container-id", s.container_id},
      {"container-name", s.container_name},
      {"container-interface-name", s.container_interface_name},
      {"docker-endpoint-id", s.docker_endpoint_id},
      {"k8s-namespace", s.pod_namespace},
      {"k8s-pod-name", s.pod_name},
      {"k8s-uid", s.k8s_uid},
      {"interface-name", s.interface_name},
      {"interface-index", s.ifindex},
      {"mac", s.mac},
      {"host-mac", s.host_mac},
      {"ipv4", s.ipv4 ? s.ipv4->toString() : ""},
      {"ipv6", s.ipv6 ? s.ipv6->toString() : ""},
      {"netns", s.netns},
      {"labels", s.labels.toStrings()},
      {"named-ports", namedPortsJson(s.named_ports)},
      {"identity", ep.identity},
      {"policy-revision", ep.policy_revision},
  };
}

Result<Endpoint> fromStateJson(const nlohmann::json& j, const std::string& origin) {
  auto fail = [&](std::string_view what) {
    return makeError(ErrorCode::kInvalidArgument, "{}: {}", origin, what);
  };
  if (!j.is_object()) return fail("not a JSON object");
  // nlohmann converts a float to an integer type without a range check (undefined behaviour for
  // 1e300): numbers must be integers.
  for (const char* key : {"id", "interface-index", "identity", "policy-revision"}) {
    if (auto it = j.find(key); it != j.end() && it->is_number_float())
      return fail(fmt::format("{}: not an integer", key));
  }
  Endpoint ep;
  Spec& s = ep.spec;
  try {
    uint64_t id = j.at("id").get<uint64_t>();
    if (id == 0 || id > 65535) return fail("id out of range 1..65535");
    s.id = static_cast<uint16_t>(id);
    s.container_id = j.value("container-id", "");
    s.container_name = j.value("container-name", "");
    s.container_interface_name = j.value("container-interface-name", "");
    s.docker_endpoint_id = j.value("docker-endpoint-id", "");
    s.pod_namespace = j.value("k8s-namespace", "");
    s.pod_name = j.value("k8s-pod-name", "");
    s.k8s_uid = j.value("k8s-uid", "");
    s.interface_name = j.value("interface-name", "");
    s.ifindex = j.at("interface-index").get<int>();
    s.mac = j.value("mac", "");
    s.host_mac = j.value("host-mac", "");
    s.netns = j.value("netns", "");
    std::string ip = j.value("ipv4", "");
    if (!ip.empty()) {
      auto parsed = IpAddr::parse(ip);
      if (!parsed.ok() || !parsed->isV4())
        return fail("ipv4: '" + ip + "' is not an IPv4 address");
      s.ipv4 = *parsed;
    }
    std::string ip6 = j.value("ipv6", "");
    if (!ip6.empty()) {
      auto parsed = IpAddr::parse(ip6);
      if (!parsed.ok() || parsed->isV4()) return fail("ipv6: '" + ip6 + "' is not an IPv6 address");
      s.ipv6 = *parsed;
    }
    auto labels = labels::Labels::parse(j.value("labels", std::vector<std::string>{}));
    if (!labels.ok()) return fail("labels: " + labels.error().message());
    s.labels = std::move(*labels);
    if (auto ports = j.find("named-ports"); ports != j.end()) {
      for (const auto& p : *ports) {
        if (p.at("port").is_number_float() || p.at("protocol").is_number_float())
          return fail("named-ports: port and protocol must be integers");
        s.named_ports.push_back(NamedPort{p.at("name").get<std::string>(),
                                          p.at("port").get<uint16_t>(),
                                          p.at("protocol").get<uint8_t>()});
      }
    }
    ep.identity = j.value("identity", identity::NumericIdentity{0});
    ep.policy_revision = j.value("policy-revision", uint64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return fail(e.what());
  }
  if (auto st = s.validate(); !st.ok()) return st.error().withContext(origin);
  ep.state = State::kRestoring;
  return ep;
}

}  // namespace cilium::endpoint
