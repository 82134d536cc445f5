// Services and EndpointSlices as the Manager's Services (fromK8s): frontends per type, backends
// matched by port name and protocol, readiness and terminating endpoints, locality, and bad
// input named by field.
#include "agent/service/k8s_feed.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cilium::service {
namespace {

using nlohmann::json;

k8s::Service svc(const json& spec, const json& status = json::object(),
                 const json& annotations = json::object()) {
  json obj = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}, {"namespace", "shop"}, {"annotations", annotations}}},
              {"spec", spec},
              {"status", status}};
  auto r = k8s::Resource<k8s::Service>::decode(obj);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return *r;
}

k8s::EndpointSlice slice(const json& ports, const json& endpoints,
                         const std::string& name = "web-1", const std::string& family = "IPv4") {
  json obj = {{"apiVersion", "discovery.k8s.io/v1"},
              {"kind", "EndpointSlice"},
              {"metadata",
               {{"name", name},
                {"namespace", "shop"},
                {"labels", {{"kubernetes.io/service-name", "web"}}}}},
              {"addressType", family},
              {"ports", ports},
              {"endpoints", endpoints}};
  auto r = k8s::Resource<k8s::EndpointSlice>::decode(obj);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return *r;
}

TEST(K8sFeedTest, ClusterIpWithBackendsByPortName) {
  auto s = svc({{"clusterIP", "10.96.0.10"},
                {"ports",
                 {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}},
                  {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}}}}});
  auto es = slice(
      {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}},
       {{"name", "dns"}, {"port", 5353}, {"protocol", "UDP"}}},
      {{{"addresses", {"10.0.0.5"}}, {"nodeName", "node-1"}},
       {{"addresses", {"10.0.1.7"}}, {"nodeName", "node-2"}},
       {{"addresses", {"10.0.1.8"}}, {"conditions", {{"ready", false}}}},
       {{"addresses", {"10.0.1.9"}}, {"conditions", {{"ready", false}, {"terminating", true}}}}});
  auto out = fromK8s(s, {es}, "node-1");
  ASSERT_TRUE(out.ok()) << out.error().message();
  ASSERT_TRUE(out->has_value());
  const Service& got = **out;
  EXPECT_EQ(got.name.str(), "shop/web");
  EXPECT_EQ(got.cluster_ip->toString(), "10.96.0.10");
  ASSERT_EQ(got.ports.size(), 2u);
  const auto& http = got.ports[0];
  EXPECT_EQ(http.proto, Protocol::kTcp);
  EXPECT_EQ(http.port, 80);
  // Ready endpoints active, the not-ready one left out, the terminating one kept as terminating.
  ASSERT_EQ(http.backends.size(), 3u);
  EXPECT_EQ(http.backends[0].ip.toString(), "10.0.0.5");
  EXPECT_EQ(http.backends[0].port, 8080);
  EXPECT_TRUE(http.backends[0].local);
  EXPECT_FALSE(http.backends[1].local);
  EXPECT_EQ(http.backends[2].ip.toString(), "10.0.1.9");
  EXPECT_EQ(http.backends[2].state, BackendState::kTerminating);
  EXPECT_EQ(got.ports[1].proto, Protocol::kUdp);
  EXPECT_EQ(got.ports[1].backends[0].port, 5353);
  EXPECT_EQ(got.ports[0].node_port, 0);
}

TEST(K8sFeedTest, NodePortExternalLoadBalancerAffinityAndTrafficPolicy) {
  auto s = svc({{"type", "LoadBalancer"},
                {"clusterIP", "10.96.0.11"},
                {"externalIPs", {"192.0.2.10"}},
                {"externalTrafficPolicy", "Local"},
                {"sessionAffinity", "ClientIP"},
                {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 60}}}}},
                {"ports", {{{"port", 80}, {"nodePort", 30080}}}}},
               {{"loadBalancer", {{"ingress", {{{"ip", "198.51.100.1"}}}}}}});
  auto out = fromK8s(s, {}, "node-1");
  ASSERT_TRUE(out.ok() && out->has_value());
  const Service& got = **out;
  EXPECT_EQ(got.external_ips.size(), 1u);
  EXPECT_EQ(got.load_balancer_ips[0].toString(), "198.51.100.1");
  EXPECT_EQ(got.ports[0].node_port, 30080);
  EXPECT_TRUE(got.session_affinity);
  EXPECT_EQ(got.affinity_timeout, 60u);
  EXPECT_EQ(got.ext_traffic_policy, TrafficPolicy::kLocal);
}

TEST(K8sFeedTest, NothingToBalance) {
  EXPECT_FALSE(
      fromK8s(svc({{"clusterIP", "None"}, {"ports", {{{"port", 80}}}}}), {}, "n")->has_value());
  EXPECT_FALSE(fromK8s(svc({{"type", "ExternalName"}, {"externalName", "example.com"}}), {}, "n")
                   ->has_value());
}

// A dual-stack Service: both ClusterIPs, each family's EndpointSlices, externalIPs and
// LoadBalancer ingress of both families; expandService gives each frontend its own family's
// backends.
TEST(K8sFeedTest, DualStackServiceBothFamilies) {
  auto s = svc({{"clusterIPs", {"fd00:96::1", "10.96.0.12"}},
                {"ipFamilies", {"IPv6", "IPv4"}},
                {"ipFamilyPolicy", "PreferDualStack"},
                {"externalIPs", {"2001:db8::7", "192.0.2.7"}},
                {"ports", {{{"port", 80}}}}},
               {{"loadBalancer", {{"ingress", {{{"ip", "2001:db8::8"}}}}}}});
  auto out = fromK8s(s,
                     {slice({{{"port", 8080}}}, {{{"addresses", {"fd00::5"}}}}, "v6", "IPv6"),
                      slice({{{"port", 8080}}}, {{{"addresses", {"10.0.0.5"}}}}, "v4", "IPv4"),
                      // An address of the other family in a slice is skipped, not taken.
                      slice({{{"port", 8080}}}, {{{"addresses", {"10.0.0.6"}}}}, "bad", "IPv6")},
                     "n");
  ASSERT_TRUE(out.ok()) << out.error().message();
  ASSERT_TRUE(out->has_value());
  const Service& got = **out;
  EXPECT_EQ(got.cluster_ip->toString(), "fd00:96::1");
  ASSERT_EQ(got.more_cluster_ips.size(), 1u);
  EXPECT_EQ(got.more_cluster_ips[0].toString(), "10.96.0.12");
  ASSERT_EQ(got.external_ips.size(), 2u);
  ASSERT_EQ(got.load_balancer_ips.size(), 1u);
  EXPECT_EQ(got.ports[0].backends.size(), 2u);

  auto fes = expandService(got, ManagerConfig{});
  ASSERT_TRUE(fes.ok()) << fes.error().message();
  ASSERT_EQ(fes->size(), 5u);  // 2 ClusterIPs, 2 externalIPs, 1 LoadBalancer
  for (const auto& fe : *fes) {
    ASSERT_EQ(fe.backends.size(), 1u) << fe.frontend.ip.toString();
    EXPECT_EQ(fe.backends[0].ip.family(), fe.frontend.ip.family()) << fe.frontend.ip.toString();
  }
  // enable-ipv6 off: only the IPv4 frontends.
  ManagerConfig v4only;
  v4only.enable_ipv6 = false;
  fes = expandService(got, v4only);
  ASSERT_TRUE(fes.ok());
  EXPECT_EQ(fes->size(), 2u);
}

TEST(K8sFeedTest, IpFamilyPolicyRules) {
  auto convert = [](const json& spec) { return fromK8s(svc(spec), {}, "n"); };
  json ports = {{{"port", 80}}};
  // SingleStack (also unset) with two families: refused.
  auto r = convert({{"clusterIPs", {"10.96.0.1", "fd00::1"}}, {"ports", ports}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("spec.clusterIPs"), std::string::npos);
  EXPECT_FALSE(convert({{"clusterIPs", {"10.96.0.1", "fd00::1"}},
                        {"ipFamilyPolicy", "SingleStack"},
                        {"ports", ports}})
                   .ok());
  // RequireDualStack needs both.
  r = convert(
      {{"clusterIPs", {"10.96.0.1"}}, {"ipFamilyPolicy", "RequireDualStack"}, {"ports", ports}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("RequireDualStack"), std::string::npos);
  EXPECT_TRUE(convert({{"clusterIPs", {"10.96.0.1", "fd00::1"}},
                       {"ipFamilyPolicy", "RequireDualStack"},
                       {"ports", ports}})
                  .ok());
  // PreferDualStack: one family or two.
  EXPECT_TRUE(
      convert(
          {{"clusterIPs", {"fd00::1"}}, {"ipFamilyPolicy", "PreferDualStack"}, {"ports", ports}})
          .ok());
  // ipFamilies must name the ClusterIPs' families in order.
  r = convert({{"clusterIPs", {"10.96.0.1", "fd00::1"}},
               {"ipFamilies", {"IPv6", "IPv4"}},
               {"ipFamilyPolicy", "PreferDualStack"},
               {"ports", ports}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("spec.ipFamilies[0]"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(
      convert({{"clusterIPs", {"10.96.0.1"}}, {"ipFamilies", {"IPv5"}}, {"ports", ports}}).ok());
  EXPECT_FALSE(
      convert({{"clusterIPs", {"10.96.0.1"}}, {"ipFamilyPolicy", "Sometimes"}, {"ports", ports}})
          .ok());
  // Two ClusterIPs of one family.
  EXPECT_FALSE(convert({{"clusterIPs", {"10.96.0.1", "10.96.0.2"}},
                        {"ipFamilyPolicy", "PreferDualStack"},
                        {"ports", ports}})
                   .ok());
  // An IPv6-only Service.
  r = convert({{"clusterIPs", {"fd00::1"}}, {"ipFamilies", {"IPv6"}}, {"ports", ports}});
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->cluster_ip->toString(), "fd00::1");
}

TEST(K8sFeedTest, BadAddressIsNamed) {
  auto out = fromK8s(svc({{"clusterIP", "10.96.0.300"}, {"ports", {{{"port", 80}}}}}), {}, "n");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("spec.clusterIPs[0]"), std::string::npos)
      << out.error().message();
}

// service.cilium.io/lb-algorithm picks the Service's algorithm; an unknown value leaves it to
// the agent's bpf-lb-algorithm (and is reported), and the Service is still balanced.
TEST(K8sFeedTest, LbAlgorithmAnnotation) {
  json spec = {{"clusterIP", "10.96.0.10"}, {"ports", {{{"name", "http"}, {"port", 80}}}}};
  auto algorithmOf = [&](const json& annotations) -> std::optional<LbAlgorithm> {
    auto out = fromK8s(svc(spec, json::object(), annotations), {}, "node-1");
    EXPECT_TRUE(out.ok() && out->has_value());
    if (!out.ok() || !out->has_value()) return LbAlgorithm::kRandom;
    return (*out)->lb_algorithm;
  };
  EXPECT_EQ(algorithmOf({{"service.cilium.io/lb-algorithm", "maglev"}}), LbAlgorithm::kMaglev);
  EXPECT_EQ(algorithmOf({{"service.cilium.io/lb-algorithm", "random"}}), LbAlgorithm::kRandom);
  EXPECT_EQ(algorithmOf(json::object()), std::nullopt);
  EXPECT_EQ(algorithmOf({{"service.cilium.io/lb-algorithm", "least-conn"}}), std::nullopt);
  EXPECT_EQ(algorithmOf({{"service.cilium.io/lb-algorithm", "Maglev "}}), std::nullopt);
  EXPECT_EQ(algorithmOf({{"io.cilium/lb-algorithm", "maglev"}}), std::nullopt);
  // bpf-lb-algorithm-annotation=false (the agent's default, as Cilium's): not read.
  auto ignored = fromK8s(svc(spec, json::object(), {{"service.cilium.io/lb-algorithm", "maglev"}}),
                         {}, "node-1", false);
  ASSERT_TRUE(ignored.ok() && ignored->has_value());
  EXPECT_EQ((*ignored)->lb_algorithm, std::nullopt);

  // The Manager gives the annotated Service's frontends Maglev, the others the agent's choice.
  ManagerConfig cfg;
  cfg.algorithm = LbAlgorithm::kRandom;
  auto annotated =
      fromK8s(svc(spec, json::object(), {{"service.cilium.io/lb-algorithm", "maglev"}}), {}, "");
  auto plain = fromK8s(svc(spec), {}, "");
  ASSERT_TRUE(annotated.ok() && plain.ok());
  EXPECT_EQ(expandService(**annotated, cfg)->at(0).algorithm, LbAlgorithm::kMaglev);
  EXPECT_EQ(expandService(**plain, cfg)->at(0).algorithm, LbAlgorithm::kRandom);
  cfg.algorithm = LbAlgorithm::kMaglev;
  auto bad = fromK8s(svc(spec, json::object(), {{"service.cilium.io/lb-algorithm", "rr"}}), {}, "");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(expandService(**bad, cfg)->at(0).algorithm, LbAlgorithm::kMaglev);
}

}  // namespace
}  // namespace cilium::service
