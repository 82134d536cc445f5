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
  EXPECT_TRUE((*r)[0].warnings.empty()) << "L7 rules are enforced (by the proxies), no warning";
}

// A rule the proxy could not enforce is refused at import, naming the field: never a policy that
// would fail open (or closed for everything) later.
TEST(DecodeTest, InvalidL7RulesAreRejectedAtImport) {
  auto with = [](const std::string& http) {
    return decodePolicies(std::string(kCnpHead) + R"(spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [)" + http + "]\n");
  };
  ASSERT_TRUE(with(R"({method: "POST", path: "/v1/request-landing"})").ok());
  struct Case {
    std::string http, message;
  } cases[] = {
      {R"({method: "GET", path: "/v1/(unclosed"})", "path: not a valid regular expression"},
      {R"({method: "[", path: "/"})", "method: not a valid regular expression"},
      {R"({host: "a(b"})", "host: not a valid regular expression"},
      {R"({headers: ["(x: y"]})", "does not start with a header name"},
      {R"({pathx: "/"})", "pathx: unknown field"},
      {R"({headerMatches: [{name: X, mismatch: EXPLODE}]})", "is not LOG, ADD, DELETE or REPLACE"},
  };
  for (const auto& c : cases) {
    auto r = with(c.http);
    ASSERT_FALSE(r.ok()) << c.http;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << c.http;
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.http << " -> " << r.error().message();
  }
}

TEST(DecodeTest, ToFqdnsAreNormalisedAndListedBack) {
  auto r = decodePolicies(std::string(kCnpHead) + R"(spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchName: Allowed.Example.Test.}, {matchPattern: "*.Example.test"}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
)");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  const auto& rule = (*r)[0].rules.at(0);
  ASSERT_EQ(rule.egress.size(), 1u);
  const auto& f = rule.egress[0].fqdns;
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].match_name, "allowed.example.test");
  EXPECT_EQ(f[1].match_pattern, "*.example.test");
  auto j = rule.toJson();
  EXPECT_EQ(j["egress"][0]["toFQDNs"][0]["matchName"], "allowed.example.test");
  EXPECT_EQ(j["egress"][0]["toFQDNs"][1]["matchPattern"], "*.example.test");
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
           "spec:\n  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: \"*.com\"}]}]\n",
       ErrorCode::kInvalidArgument,
       "spec.egress[0].toFQDNs[0].matchName: matchName \"*.com\": character '*' is not allowed in a "
       "DNS name (use matchPattern for wildcards)"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toFQDNs: [{matchPattern: \"a..com\"}]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].toFQDNs[0].matchPattern: matchPattern \"a..com\" has an empty label"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: a.com, matchPattern: b.com}]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].toFQDNs[0]: set exactly one of matchName and matchPattern"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egressDeny: [{toFQDNs: [{matchName: a.com}]}]\n",
       ErrorCode::kUnimplemented, "spec.egressDeny[0].toFQDNs: not supported in egressDeny (as Cilium)"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  ingress: [{toFQDNs: [{matchName: a.com}]}]\n",
       ErrorCode::kInvalidArgument, "spec.ingress[0].toFQDNs: unknown field"},
      {std::string(kCnpHead) +
           "spec:\n  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{port: \"53\"}], rules: {dns: [{matchPattern: \"a b\"}]}}]}]\n",
       ErrorCode::kInvalidArgument, "spec.egress[0].toPorts[0].rules.dns[0].matchPattern: matchPattern \"a b\": character ' ' is "
       "not allowed in a DNS name"},
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
       ErrorCode::kInvalidArgument,
       "spec.egress[0].ports[0].port: 70000 is not a valid port number (1-65535)"},
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

// NetworkPolicy is validated as the API server validates it; each case names the field.
TEST(DecodeTest, NetworkPolicyValidationLikeTheApiServer) {
  const std::string head = "kind: NetworkPolicy\nmetadata: {name: n}\nspec:\n  podSelector: {}\n";
  const std::string port_name_rule =
      " is not a valid port name (IANA_SVC_NAME: 1-15 lowercase letters, digits and '-', at "
      "least one letter, no '-' at either end or twice in a row)";
  const std::string key_name_rule =
      " is not a valid label key: the name must be 1-63 alphanumerics, '-', '_' or '.', starting "
      "and ending with an alphanumeric";
  const std::string value_rule =
      " is not a valid label value: a label value must be empty or 1-63 alphanumerics, '-', '_' "
      "or '.', starting and ending with an alphanumeric";
  struct Case {
    std::string spec;  // lines under spec, after podSelector
    std::string message;
  } cases[] = {
      // Ports.
      {"  ingress: [{ports: [{port: 0}]}]\n",
       "spec.ingress[0].ports[0].port: 0 is not a valid port number (1-65535)"},
      {"  ingress: [{ports: [{port: -1}]}]\n",
       "spec.ingress[0].ports[0].port: -1 is not a valid port number (1-65535)"},
      {"  ingress: [{ports: [{port: \"80\"}]}]\n",
       "spec.ingress[0].ports[0].port: \"80\"" + port_name_rule},
      {"  ingress: [{ports: [{port: HTTP}]}]\n",
       "spec.ingress[0].ports[0].port: \"HTTP\"" + port_name_rule},
      {"  ingress: [{ports: [{port: web--x}]}]\n",
       "spec.ingress[0].ports[0].port: \"web--x\"" + port_name_rule},
      {"  ingress: [{ports: [{port: a-very-long-name}]}]\n",
       "spec.ingress[0].ports[0].port: \"a-very-long-name\"" + port_name_rule},
      {"  ingress: [{ports: [{port: 80.5}]}]\n",
       "spec.ingress[0].ports[0].port: 80.5 is not a valid port"},
      {"  egress: [{ports: [{port: 90, endPort: 80}]}]\n",
       "spec.egress[0].ports[0].endPort: 80 is below port 90"},
      {"  egress: [{ports: [{port: 80, endPort: 0}]}]\n",
       "spec.egress[0].ports[0].endPort: 0 is not a valid port number (1-65535)"},
      {"  egress: [{ports: [{port: 80, endPort: 65536}]}]\n",
       "spec.egress[0].ports[0].endPort: 65536 is not a valid port number (1-65535)"},
      {"  egress: [{ports: [{port: http, endPort: 90}]}]\n",
       "spec.egress[0].ports[0].endPort: may not be specified with a named port"},
      {"  egress: [{ports: [{endPort: 90}]}]\n",
       "spec.egress[0].ports[0].endPort: may not be specified without port"},
      {"  egress: [{ports: [{port: 80, protocol: tcp}]}]\n",
       "spec.egress[0].ports[0].protocol: \"tcp\" is not one of TCP, UDP, SCTP"},
      {"  egress: [{ports: [{port: 80, protocol: ICMP}]}]\n",
       "spec.egress[0].ports[0].protocol: \"ICMP\" is not one of TCP, UDP, SCTP"},
      {"  egress: [{ports: [{port: 80, potr: 1}]}]\n",
       "spec.egress[0].ports[0].potr: unknown field"},
      // ipBlock.
      {"  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]\n",
       "spec.ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/8 is not strictly inside 10.0.0.0/8"},
      {"  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]\n",
       "spec.ingress[0].from[0].ipBlock.except[0]: 11.0.0.0/16 is not strictly inside 10.0.0.0/8"},
      {"  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/33]}}]}]\n",
       "spec.ingress[0].from[0].ipBlock.except[0]: \"10.1.0.0/33\" is not a CIDR prefix"},
      {"  ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]\n",
       "spec.ingress[0].from[0].ipBlock.cidr: \"10.0.0.1\" is not a CIDR prefix"},
      {"  ingress: [{from: [{ipBlock: {except: [10.0.0.0/16]}}]}]\n",
       "spec.ingress[0].from[0].ipBlock.cidr: required"},
      {"  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, selectsPods: false}}]}]\n",
       "spec.egress[0].to[0].ipBlock.selectsPods: unknown field"},
      // policyTypes.
      {"  policyTypes: [Ingress, Ingress]\n", "spec.policyTypes[1]: duplicate \"Ingress\""},
      {"  policyTypes: [Egress, Ingress, Egress]\n", "spec.policyTypes[2]: duplicate \"Egress\""},
      {"  policyTypes: [ingress]\n", "spec.policyTypes[0]: \"ingress\" is not Ingress or Egress"},
      // Label selectors: Kubernetes label keys (no source prefix) and values.
      {"  ingress: [{from: [{podSelector: {matchLabels: {\"k8s:app\": a}}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchLabels.k8s:app: \"k8s:app\"" + key_name_rule},
      {"  ingress: [{from: [{podSelector: {matchLabels: {-app: a}}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchLabels.-app: \"-app\"" + key_name_rule},
      {"  ingress: [{from: [{podSelector: {matchLabels: {" + std::string(64, 'a') + ": a}}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchLabels." + std::string(64, 'a') + ": \"" +
           std::string(64, 'a') + "\"" + key_name_rule},
      {"  ingress: [{from: [{namespaceSelector: {matchLabels: {Example.com/team: a}}}]}]\n",
       "spec.ingress[0].from[0].namespaceSelector.matchLabels.Example.com/team: "
       "\"Example.com/team\" is not a valid label key: the prefix before '/' must be a DNS "
       "subdomain (lowercase alphanumerics, '-' and '.', at most 253 characters)"},
      {"  ingress: [{from: [{namespaceSelector: {matchLabels: {a/b/c: a}}}]}]\n",
       "spec.ingress[0].from[0].namespaceSelector.matchLabels.a/b/c: \"a/b/c\" is not a valid "
       "label key: a label key has at most one '/'"},
      {"  ingress: [{from: [{podSelector: {matchLabels: {app: a b}}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchLabels.app: \"a b\"" + value_rule},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: In, values: "
       "[ok, -bad]}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].values[1]: \"-bad\"" + value_rule},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: \"a b\", operator: "
       "Exists}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].key: \"a b\"" + key_name_rule},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: In}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].values: must not be empty for "
       "operator In"},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: "
       "[]}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].values: must not be empty for "
       "operator NotIn"},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: Exists, "
       "values: [a]}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].values: must be empty for "
       "operator Exists"},
      {"  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: app, operator: "
       "DoesNotExist, values: [a]}]}}]}]\n",
       "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: must be empty for "
       "operator DoesNotExist"},
      {"  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: in, values: "
       "[a]}]}}]}]\n",
       "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator: \"in\" is not one of "
       "In, NotIn, Exists, DoesNotExist"},
  };
  for (const auto& c : cases) {
    auto r = decodePolicies(head + c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << c.spec;
    EXPECT_EQ(r.error().message(), c.message) << c.spec;
  }
  // The policy's own podSelector is checked too.
  auto r = decodePolicies(
      "kind: NetworkPolicy\nmetadata: {name: n}\nspec:\n  podSelector: {matchLabels: {app: "
      "\"x!\"}}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "spec.podSelector.matchLabels.app: \"x!\"" + value_rule);
}

TEST(DecodeTest, NetworkPolicyAcceptsWhatTheApiServerAccepts) {
  auto r = decodePolicies(R"(kind: NetworkPolicy
metadata: {name: n, namespace: ns}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: web, tier: "", v: 1.2_3-a}}
  policyTypes: [Egress, Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: prod}}
      podSelector: {matchExpressions: [{key: app, operator: Exists, values: []}]}
    - ipBlock: {cidr: 10.1.2.3/16, except: [10.1.5.0/24, 10.1.6.7/32]}
    ports: [{port: 80, endPort: 80}, {port: 8000, endPort: 8010, protocol: UDP}, {port: h2c-1},
            {protocol: SCTP}]
  egress: [{}]
)");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const Rule& rule = (*r)[0].rules[0];
  ASSERT_EQ(rule.ingress.size(), 2u);
  const auto& block = rule.ingress[1].cidr_sets.at(0);
  EXPECT_EQ(block.cidr.toString(), "10.1.0.0/16");
  EXPECT_TRUE(block.selects_pods);
  const auto& ports = rule.ingress[0].ports.at(0).ports;
  ASSERT_EQ(ports.size(), 4u);
  EXPECT_EQ(ports[0].port, 80);
  EXPECT_EQ(ports[0].end_port, 0) << "a range of one port is that port";
  EXPECT_EQ(ports[1].end_port, 8010);
  EXPECT_EQ(ports[2].name, "h2c-1");
  EXPECT_EQ(ports[3].protocol, Protocol::kSctp);
}

// CiliumNetworkPolicy selectors are checked as Cilium checks them: a Kubernetes label key after
// an optional source, Kubernetes label values. Bare rules (the listing format) are not.
TEST(DecodeTest, CiliumPolicyLabelKeysAndValues) {
  struct Case {
    std::string spec;
    std::string message;
  } cases[] = {
      {"  endpointSelector: {matchLabels: {\"app name\": web}}\n",
       "spec.endpointSelector.matchLabels.app name: \"app name\" is not a valid label key: the "
       "name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending with an "
       "alphanumeric"},
      {"  endpointSelector: {}\n  ingress: [{fromEndpoints: [{matchLabels: {\"k8s:a:b\": x}}]}]\n",
       "spec.ingress[0].fromEndpoints[0].matchLabels.k8s:a:b: \"k8s:a:b\" is not a valid label "
       "key: the name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending with an "
       "alphanumeric"},
      {"  endpointSelector: {}\n  egress: [{toEndpoints: [{matchLabels: {\"k8s:app\": "
       "\"a/b\"}}]}]\n",
       "spec.egress[0].toEndpoints[0].matchLabels.k8s:app: \"a/b\" is not a valid label value: a "
       "label value must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending "
       "with an alphanumeric"},
  };
  for (const auto& c : cases) {
    auto r = decodePolicies(std::string(kCnpHead) + "spec:\n" + c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << c.spec;
    EXPECT_EQ(r.error().message(), c.message) << c.spec;
  }
  auto ok = decodePolicies(std::string(kCnpHead) + R"(spec:
  endpointSelector: {matchLabels: {"k8s:app": web, "any:io.kubernetes.pod.namespace": ns}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"reserved:host": ""}
    - matchLabels: {"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": prod}
  egressDeny: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.0.0.0/8]}]}]
)");
  EXPECT_TRUE(ok.ok()) << ok.error().toString();
  auto bare = decodeRules(R"([{"endpointSelector": {"matchLabels": {"any:a b": "c d"}}}])");
  EXPECT_TRUE(bare.ok()) << bare.error().toString();
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
