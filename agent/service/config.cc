// The service load balancer's configuration keys.
#include "agent/service/config.h"

namespace cilium::service {

std::vector<std::string> Config::devicesList() const {
  // Commas as the flag writes the list, spaces as Cilium's ConfigMap does ("eth0 eth1").
  std::vector<std::string> out;
  size_t start = 0;
  while (start < devices.size()) {
    size_t end = devices.find_first_of(", \t\n", start);
    if (end == std::string::npos) end = devices.size();
    if (end > start) out.push_back(devices.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    using config::invalidValue;
    auto* r = new config::Registry<Config>;
    r->string("devices",
              "Native devices for NodePort, externalIPs and LoadBalancer, separated by commas "
              "or spaces (\"\": none)",
              &Config::devices, [](std::string_view v) -> Status {
                Config c;
                c.devices = std::string(v);
                for (const auto& d : c.devicesList()) {
                  if (d.size() > 15)
                    return invalidValue("a device name is longer than 15 characters");
                  if (d.find_first_of("/:") != std::string::npos)
                    return invalidValue("a device name contains '/' or ':'");
                }
                return okStatus();
              });
    // Cilium's values since 1.14 are true and false; the older strict and disabled mean the
    // same, partial (per-feature replacement) was removed and is refused.
    config::Key<Config> kpr;
    kpr.name = "kube-proxy-replacement";
    kpr.type = "bool";
    kpr.description =
        "Serve NodePort, externalIPs and LoadBalancer frontends on the devices in BPF (true), "
        "or leave them to kube-proxy (false; ClusterIP is always served in BPF)";
    kpr.set = [](Config& c, std::string_view v) -> Status {
      std::string l = config::lower(v);
      if (l == "strict") l = "true";
      if (l == "disabled") l = "false";
      if (l == "partial")
        return invalidValue(
            "'partial' is not supported (Cilium removed it in 1.14): true or false");
      auto b = config::parseBool(l);
      if (!b.ok()) return invalidValue(fmt::format("'{}' is not true or false", v));
      c.kube_proxy_replacement = *b;
      return okStatus();
    };
    kpr.get = [](const Config& c) { return nlohmann::json(c.kube_proxy_replacement); };
    r->add(std::move(kpr));
    r->uint("bpf-lb-map-max", "Maximum entries in the load-balancing maps", &Config::bpf_lb_map_max,
            1 << 10, 1 << 24);
    r->string("ipv4-service-loopback-address",
              "Source address of a pod's packets to itself through a Service (hairpin)",
              &Config::ipv4_service_loopback_address, [](std::string_view v) -> Status {
                auto a = IpAddr::parse(v);
                if (!a.ok() || !a->isV4() || a->v4NetworkOrder() == 0)
                  return invalidValue("is not an IPv4 unicast address");
                return okStatus();
              });
    r->string("ipv6-service-loopback-address",
              "Source address of a pod's IPv6 packets to itself through a Service (hairpin)",
              &Config::ipv6_service_loopback_address, [](std::string_view v) -> Status {
                auto a = IpAddr::parse(v);
                if (!a.ok() || a->isV4() || *a == IpAddr::parse("::").value() ||
                    a->bytes()[0] == 0xff)
                  return invalidValue("is not an IPv6 unicast address");
                return okStatus();
              });
    r->choice("bpf-lb-acceleration",
              "XDP acceleration of NodePort to remote backends on the devices: native (a device "
              "without driver support fails the start), best-effort (such a device gets tc only) "
              "or disabled",
              &Config::bpf_lb_acceleration, {"disabled", "native", "best-effort"});
    r->choice("bpf-lb-algorithm",
              "How a Service's backend is picked for a new connection: random, or maglev "
              "(consistent hashing of the client)",
              &Config::bpf_lb_algorithm, {"random", "maglev"});
    r->boolean("bpf-lb-algorithm-annotation",
               "Let a Service's service.cilium.io/lb-algorithm annotation (random, maglev) "
               "override bpf-lb-algorithm",
               &Config::bpf_lb_algorithm_annotation);
    auto& maglev = r->uint("bpf-lb-maglev-table-size",
                           "Entries in each Service's Maglev table (a prime: 251, 509, 1021, "
                           "2039, 4093, 8191, 16381, 32749, 65521)",
                           &Config::bpf_lb_maglev_table_size, 251, 65521);
    maglev.set = [range = maglev.set](Config& c, std::string_view v) -> Status {
      CILIUM_RETURN_IF_ERROR(range(c, v));
      for (uint32_t p : {251u, 509u, 1021u, 2039u, 4093u, 8191u, 16381u, 32749u, 65521u})
        if (c.bpf_lb_maglev_table_size == p) return okStatus();
      return invalidValue("is not one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521");
    };
    r->choice("bpf-lb-mode",
              "How NodePort, externalIPs and LoadBalancer reach a backend on another node: snat, "
              "dsr (direct server return: the backend's node answers the client; needs "
              "routing-mode=native) or hybrid (dsr for TCP, snat for UDP)",
              &Config::bpf_lb_mode, {"snat", "dsr", "hybrid"});
    r->string("bpf-lb-dsr-dispatch",
              "How DSR carries the service address to the backend's node: opt (an IPv4 option)",
              &Config::bpf_lb_dsr_dispatch, [](std::string_view v) -> Status {
                if (v == "opt") return okStatus();
                if (v == "geneve")
                  return invalidValue(
                      "is not supported: this kernel has no Geneve; use opt (an IPv4 option)");
                if (v == "ipip")
                  return invalidValue("is not supported: use opt (an IPv4 option)");
                return invalidValue("is not one of opt (geneve and ipip are not supported)");
              });
    r->boolean("enable-ipv4-masquerade",
               "Masquerade IPv4 traffic from pods to the outside (with enable-bpf-masquerade; "
               "there is no iptables masquerade)",
               &Config::enable_ipv4_masquerade);
    r->boolean("enable-ipv6-masquerade",
               "Masquerade IPv6 traffic from pods to the outside (with enable-bpf-masquerade and "
               "enable-ipv6)",
               &Config::enable_ipv6_masquerade);
    r->boolean("enable-bpf-masquerade",
               "Masquerade pods' traffic to the outside in BPF on the devices: it leaves with the "
               "device's address",
               &Config::enable_bpf_masquerade);
    r->string("ipv4-native-routing-cidr",
              "Destinations reached without masquerading (\"\": the node's pod CIDR)",
              &Config::ipv4_native_routing_cidr, [](std::string_view v) -> Status {
                if (v.empty()) return okStatus();
                auto p = IpPrefix::parse(v);
                if (!p.ok()) return p.error();
                if (p->family() != IpFamily::kV4) return invalidValue("is not an IPv4 CIDR");
                return okStatus();
              });
    r->string("ipv6-native-routing-cidr",
              "IPv6 destinations reached without masquerading (\"\": the node's IPv6 pod CIDR)",
              &Config::ipv6_native_routing_cidr, [](std::string_view v) -> Status {
                if (v.empty()) return okStatus();
                auto p = IpPrefix::parse(v);
                if (!p.ok()) return p.error();
                if (p->family() != IpFamily::kV6) return invalidValue("is not an IPv6 CIDR");
                return okStatus();
              });
    r->boolean("enable-ip-masq-agent",
               "Also leave the destinations of the ip-masq-agent configuration file "
               "(nonMasqueradeCIDRs, masqLinkLocal) unmasqueraded; needs enable-bpf-masquerade",
               &Config::enable_ip_masq_agent);
    r->path("ip-masq-agent-config-path",
            "The ip-masq-agent configuration file (YAML or JSON; missing: the default private "
            "ranges)",
            &Config::ip_masq_agent_config_path);
    r->check([](const Config& c) -> Status {
      if (c.enable_ip_masq_agent && !c.bpfMasquerade())
        return makeError(ErrorCode::kInvalidArgument,
                         "enable-ip-masq-agent needs enable-bpf-masquerade and "
                         "enable-ipv4-masquerade");
      return okStatus();
    });
    r->check([](const Config& c) -> Status {
      if (c.bpfMasquerade() && c.devicesList().empty())
        return makeError(ErrorCode::kInvalidArgument,
                         "enable-bpf-masquerade needs the native devices it masquerades on "
                         "(devices)");
      return okStatus();
    });
    return r;
  }();
  return *r;
}

}  // namespace cilium::service
