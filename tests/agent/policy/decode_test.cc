// Decoding of policy text: accepted forms, and errors that name the field.
#include "agent/policy/decode.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cilium::policy {
namespace {

const char* kCnpHead =
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: ns\n";

TEST(DecodeTest, YamlScalarsFollowTheCoreSchema) {
  auto docs =
      yamlToJson("a: 80\nb: \"80\"\nc: true\nd: ~\ne: 1.5\nf: 0x10\ng: http\nh: 'yes'\ni: yes\n");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  ASSERT_EQ(docs->size(), 1u);
  const auto& j = (*docs)[0];
  EXPECT_TRUE(j["a"].is_number_integer());
  EXPECT_TRUE(j["b"].is_string());
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_TRUE(j["e"].is_number_float());
  EXPECT_EQ(j["f"], 16);
  EXPECT_EQ(j["g"], "http");
  EXPECT_EQ(j["h"], "yes");
  EXPECT_EQ(j["i"], "yes");  // YAML 1.2: yes is a string
}

TEST(DecodeTest, MultiDocumentAndEmptyDocuments) {
  auto docs = yamlToJson("---\na: 1\n---\n---\nb: 2\n...\n");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->size(), 2u);
  EXPECT_FALSE(yamlToJson("a: [1, 2\n").ok());
  auto dup = yamlToJson("a: 1\na: 2\n");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().message(), "document 1: line 2, column 1: duplicate key \"a\"");
}

TEST(DecodeTest, HostileStructureIsRejected) {
  std::string deep(200, '[');
  EXPECT_FALSE(yamlToJson(deep).ok());
  EXPECT_FALSE(decodePolicies(deep).ok());
  // Exponential alias expansion.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; c++, prev++)
    bomb += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", c, c, prev,
                        prev, prev, prev, prev, prev, prev, prev, prev, prev);
  auto r = yamlToJson(bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("too large"), std::string::npos);
  EXPECT_FALSE(decodePolicies(std::string(kMaxPolicyBytes + 1, ' ')).ok());
  // yaml-cpp 0.7 never returns from these (it allocates until the OOM killer comes).
  for (const char* text : {"{a: 1},", "{{\"\",[{[{{}}]}]}},", "[x],"}) {
    auto bad = yamlToJson(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(yamlToJson("a: \xff\n").ok()) << "invalid UTF-8";
  EXPECT_FALSE(yamlToJson("a: *nowhere\n").ok());
  EXPECT_FALSE(yamlToJson("? [a]\n: b\n").ok()) << "complex keys";
}

TEST(DecodeTest, CnpWithSpecAndSpecs) {
  auto r = decodePolicies(std::string(kCnpHead) + R"(  uid: u-1
spec:
  endpointSelector: {}
  description: first
  labels: [{key: team, value: a}]
specs:
- endpointSelector: {matchLabels: {app: x}}
  ingress: [{}]
status: {whatever: true}
)");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  const auto& po = (*r)[0];
  EXPECT_EQ(po.kind, "CiliumNetworkPolicy");
  EXPECT_EQ(po.namespace_name, "ns");
  EXPECT_EQ(po.name, "p");
  ASSERT_EQ(po.rules.size(), 2u);
  EXPECT_EQ(po.rules[0].description, "first");
  EXPECT_EQ(po.rules[0].labels.toStrings(),
            (std::vector<std::string>{"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
                                      "k8s:io.cilium.k8s.policy.name=p",
                                      "k8s:io.cilium.k8s.policy.namespace=ns",
                                      "k8s:io.cilium.k8s.policy.uid=u-1", "unspec:team=a"}));
  // The endpoint selector is bound to the namespace.
  EXPECT_EQ(po.rules[0].endpoint_selector.toString(),
            R"({"matchLabels":{"k8s:io.kubernetes.pod.namespace":"ns"}})");
  EXPECT_EQ(po.objectLabels().size(), 3u);
}

TEST(DecodeTest, JsonArraysListsAndSingleRules) {
  auto arr = decodePolicies(
      R"([{"endpointSelector": {}}, {"endpointSelector": {"matchLabels": {"a": "b"}}}])");
  ASSERT_TRUE(arr.ok());
  ASSERT_EQ(arr->size(), 1u);
  EXPECT_EQ((*arr)[0].kind, "");
  EXPECT_EQ((*arr)[0].rules.size(), 2u);
  EXPECT_TRUE((*arr)[0].objectLabels().empty());

  auto list = decodePolicies(R"({"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
       "metadata": {"name": "a"}, "spec": {"podSelector": {}}},
      {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
       "metadata": {"name": "b", "namespace": "ignored"}, "spec": {"endpointSelector": {}}}]})");
  ASSERT_TRUE(list.ok()) << list.error().message();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].namespace_name, "default");
  EXPECT_EQ((*list)[1].namespace_name, "");

  auto single = decodePolicies("endpointSelector: {}\ningress: [{}]\n");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)[0].rules.size(), 1u);
}

TEST(DecodeTest, RulesJsonRoundTrip) {
  auto r = decodePolicies(std::string(kCnpHead) + R"(spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}, matchExpressions: [{key: x, operator: DoesNotExist}]}]
    fromEntities: [world, cluster]
    fromCIDR: [1.2.3.4]
    fromCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}, {port: http, protocol: TCP}, {port: "8000", endPort: 8010, protocol: TCP}]
      rules:
        http: [{method: GET, path: /public, headers: ["X-A: b"]}]
  ingressDeny: [{fromEntities: [host], toPorts: [{ports: [{port: "22"}]}]}]
  egress: [{toEndpoints: [{}], toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]}]
  egressDeny: [{toCIDR: [192.168.0.0/16]}]
  enableDefaultDeny: {ingress: true, egress: false}
  description: everything
)");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Rule& rule = (*r)[0].rules[0];
  nlohmann::json arr = nlohmann::json::array({rule.toJson()});
  auto back = decodeRules(arr.dump());
  ASSERT_TRUE(back.ok()) << back.error().message() << "\n" << arr.dump(2);
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0], rule) << arr.dump(2);
  EXPECT_EQ(rule.ingress[0].ports[0].ports[1].name, "http");
  EXPECT_EQ((*r)[0].warnings.size(), 2u) << "HTTP and DNS rules are not enforced";
}

TEST(DecodeTest, ErrorsNameTheField) {
  struct Case {
    std::string text;
    ErrorCode code;
    std::string message;
  } cases[] = {
      {"spec:\n  endpointSelector: {}\n", ErrorCode::kInvalidArgument, "kind: required"},
      {"kind: Deployment\n", ErrorCode::kInvalidArgument,
       "kind: \"Deployment\" is not a policy kind (CiliumNetworkPolicy, "
       "CiliumClusterwideNetworkPolicy, NetworkPolicy)"},
      {"kind: CiliumNetworkPolicy\nspec: {endpointSelector: {}}\n", ErrorCode::kInvalidArgument,
       "metadata: required"},
      {std::string(kCnpHead), ErrorCode::kInvalidArgument, "spec: a policy needs spec or specs"},
      {"apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {}\n",
       ErrorCode::kInvalidArgument, "apiVersion: \"cilium.io/v1\" is not cilium.io/v2"},
      {std::string(kCnpHead) + "spec: {}\n", ErrorCode::kInvalidArgument,
       "spec.endpointSelector: required"},
      {std::string(kCnpHead) + "spec: {endpointSelector: {}, ingres: []}\n",
       ErrorCode::kInvalidArgument, "spec.ingres: unknown field"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - "
                               "ports:\n      - port: \"99999\"\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].port: \"99999\" is not a valid port"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - "
                               "ports:\n      - port: \"http_x\"\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].port: \"http_x\" is not a valid port"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - "
                               "ports:\n      - port: \"-http\"\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].port: \"-http\" is not a valid port"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: 80, protocol: TPC}]}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].protocol: \"TPC\" is not one of TCP, UDP, SCTP, ANY"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: 80, protocol: ICMP}]}]}]\n",
       ErrorCode::kUnimplemented,
       "spec.ingress[0].toPorts[0].ports[0].protocol: protocol \"ICMP\" is not supported"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: 90, endPort: 80}]}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].endPort: 80 is below port 90"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: http, endPort: 80}]}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].ports[0].endPort: a port range needs a numeric port"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{protocol: TCP}]}]}]\n",
       ErrorCode::kInvalidArgument, "spec.ingress[0].toPorts[0].ports[0].port: required"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{}]}]\n",
       ErrorCode::kInvalidArgument, "spec.ingress[0].toPorts[0].ports: required"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  egress: [{toEntities: [wrld]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].toEntities[0]: unknown entity \"wrld\""},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{fromEntities: [world]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].fromEntities: unknown field"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: x.com}]}]\n",
       ErrorCode::kUnimplemented, "spec.egress[0].toFQDNs: not supported"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{fromRequires: [{}]}]\n",
       ErrorCode::kUnimplemented, "spec.ingress[0].fromRequires: not supported"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toCIDR: [10.0.0.0/33]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.egress[0].toCIDR[0]: \"10.0.0.0/33\" is not a CIDR prefix"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  egress: [{toCIDRSet: [{cidr: "
                               "10.0.0.0/8, except: [11.0.0.0/16]}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.egress[0].toCIDRSet[0].except[0]: 11.0.0.0/16 is not inside 10.0.0.0/8"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toCIDRSet: [{except: [11.0.0.0/16]}]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].toCIDRSet[0].cidr: required"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {matchLabels: {app: 3}}\n",
       ErrorCode::kInvalidArgument,
       "spec.endpointSelector.matchLabels.app: value must be a string (quote it)"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{fromEndpoints: "
                               "[{matchExpressions: [{key: a, operator: Is}]}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].fromEndpoints[0].matchExpressions[0].operator: \"Is\" is not one of In, "
       "NotIn, Exists, DoesNotExist"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: 80, protocol: TCP}], rules: {dns: [{matchName: a}]}}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].rules.dns: DNS rules are not allowed on ingress"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: "
                               "[{port: 80, protocol: UDP}], rules: {http: [{}]}}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].toPorts[0].rules: HTTP rules need protocol TCP (not UDP)"},
      {std::string(kCnpHead) + "spec:\n  endpointSelector: {}\n  ingressDeny: [{toPorts: [{ports: "
                               "[{port: 80}], rules: {http: [{}]}}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.ingressDeny[0].toPorts[0].rules: deny rules take ports only, no L7 rules"},
      {std::string(kCnpHead) +
           "specs:\n- endpointSelector: {}\n- endpointSelector: {}\n  egress: {}\n",
       ErrorCode::kInvalidArgument, "specs[1].egress: must be a list"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  enableDefaultDeny: {ingress: maybe}\n",
       ErrorCode::kInvalidArgument, "spec.enableDefaultDeny.ingress: must be true or false"},
      // Kubernetes NetworkPolicy.
      {"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {}\n",
       ErrorCode::kInvalidArgument, "spec.podSelector: required"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, policyTypes: [Both]}\n",
       ErrorCode::kInvalidArgument, "spec.policyTypes[0]: \"Both\" is not Ingress or Egress"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{from: "
       "[{}]}]}\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].from[0]: set podSelector, namespaceSelector or ipBlock"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{from: "
       "[{ipBlock: {cidr: 1.0.0.0/8}, podSelector: {}}]}]}\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, egress: [{to: "
       "[{podSelector: {}}], ports: [{port: 70000}]}]}\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].ports[0].port: 70000 is not a valid port"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, egress: [{ports: "
       "[{protocol: ANY}]}]}\n",
       ErrorCode::kInvalidArgument,
       "spec.egress[0].ports[0].protocol: \"ANY\" is not one of TCP, UDP, SCTP"},
      {"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, ingress: [{from: "
       "[{namespaceSelector: {matchLabels: {a: 1}}}]}]}\n",
       ErrorCode::kInvalidArgument,
       "spec.ingress[0].from[0].namespaceSelector.matchLabels.a: value must be a string (quote "
       "it)"},
      // Bare rules name their index.
      {"[{\"endpointSelector\": {}}, {\"endpointSelector\": {}, \"ingress\": [{\"fromEntities\": "
       "[\"wrld\"]}]}]",
       ErrorCode::kInvalidArgument, "[1].ingress[0].fromEntities[0]: unknown entity \"wrld\""},
      // Several documents: the failing one is named.
      {std::string(kCnpHead) + "spec: {endpointSelector: {}}\n---\n" + kCnpHead +
           "spec: {endpointSelector: {}, egress: [{toPorts: [{ports: [{port: x_y}]}]}]}\n",
       ErrorCode::kInvalidArgument,
       "document 2 (CiliumNetworkPolicy ns/p): spec.egress[0].toPorts[0].ports[0].port: \"x_y\" is "
       "not a valid port"},
  };
  for (const auto& c : cases) {
    auto r = decodePolicies(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code(), c.code) << c.text;
    EXPECT_EQ(r.error().message(), c.message) << c.text;
  }
}

TEST(DecodeTest, PortNamesAreLowercased) {
  auto r = decodePolicies(
      std::string(kCnpHead) +
      "spec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: HTTP-Alt}]}]}]}\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)[0].rules[0].ingress[0].ports[0].ports[0].name, "http-alt");
}

}  // namespace
}  // namespace cilium::policy
