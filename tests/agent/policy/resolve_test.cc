// Policy YAML -> expected map entries, field by field.
#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"
#include "agent/ipcache/ipcache.h"
#include "agent/policy/cidr_identities.h"
#include "policy_test_util.h"

namespace cilium::policy {
namespace {

using testing::describe;
using testing::pod;
using S = std::set<std::string>;

class ResolveTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    web_ = subject(pod({{"app", "web"}, {"org", "empire"}}));
    client_ = allocate(pod({{"app", "client"}, {"org", "empire"}}));
    other_ = allocate(pod({{"app", "other"}, {"org", "alliance"}}));
    ASSERT_EQ(web_.identity, 256u);
    ASSERT_EQ(client_, 257u);
    ASSERT_EQ(other_, 258u);
  }

  // A CNP in namespace default selecting app=web with `body` (YAML lines under spec, indented 2).
  std::string cnp(const std::string& body) {
    return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n"
           "  namespace: default\nspec:\n  endpointSelector:\n    matchLabels:\n      app: web\n" +
           body;
  }

  Subject web_;
  identity::NumericIdentity client_ = 0, other_ = 0;
};

TEST_F(ResolveTest, NoPolicyIsDefaultAllowBothWays) {
  auto p = resolve(web_);
  EXPECT_FALSE(p.ingress_enforced);
  EXPECT_FALSE(p.egress_enforced);
  EXPECT_EQ(describe(p.entries), (S{"in 0 any allow", "out 0 any allow"}));
  EXPECT_EQ(p.revision, 1u);
}

TEST_F(ResolveTest, StarWarsL3L4) {
  import(cnp(R"(  ingress:
  - fromEndpoints:
    - matchLabels:
        org: empire
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
)"));
  auto p = resolve(web_);
  EXPECT_TRUE(p.ingress_enforced);
  EXPECT_FALSE(p.egress_enforced);
  // web itself carries org=empire; reserved:host is allowed in (allow-localhost).
  EXPECT_EQ(describe(p.entries),
            (S{"in 256 TCP/80 allow", "in 257 TCP/80 allow", "in 1 any allow", "out 0 any allow"}));
  // The policy does not select the other pods.
  Subject xwing{2, other_, pod({{"app", "other"}, {"org", "alliance"}}), {}};
  EXPECT_EQ(entries(xwing), (S{"in 0 any allow", "out 0 any allow"}));
}

TEST_F(ResolveTest, EmptyIngressRuleIsDefaultDenyOnly) {
  import(cnp("  ingress:\n  - {}\n"));
  auto p = resolve(web_);
  EXPECT_TRUE(p.ingress_enforced);
  EXPECT_EQ(describe(p.entries), (S{"in 1 any allow", "out 0 any allow"}));
}

TEST_F(ResolveTest, EgressOnlyPolicyLeavesIngressOpen) {
  import(cnp(R"(  egress:
  - toEndpoints:
    - matchLabels:
        app: client
)"));
  auto p = resolve(web_);
  EXPECT_FALSE(p.ingress_enforced);
  EXPECT_TRUE(p.egress_enforced);
  EXPECT_EQ(describe(p.entries), (S{"in 0 any allow", "out 257 any allow"}));
}

TEST_F(ResolveTest, PortsOnlyAllowEveryPeer) {
  import(cnp(R"(  ingress:
  - toPorts:
    - ports:
      - port: "443"
        protocol: TCP
)"));
  EXPECT_EQ(entries(web_), (S{"in 0 TCP/443 allow", "in 1 any allow", "out 0 any allow"}));
}

TEST_F(ResolveTest, PortForms) {
  struct Case {
    const char* ports;
    S expected;
  } cases[] = {
      {"[{port: 80, protocol: TCP}]", {"in 257 TCP/80 allow"}},
      {"[{port: \"53\", protocol: udp}]", {"in 257 UDP/53 allow"}},
      {"[{port: \"8080\"}]",
       {"in 257 TCP/8080 allow", "in 257 UDP/8080 allow", "in 257 SCTP/8080 allow"}},
      {"[{port: \"0\", protocol: TCP}]", {"in 257 TCP/* allow"}},
      {"[{port: \"0\", protocol: ANY}]",
       {"in 257 TCP/* allow", "in 257 UDP/* allow", "in 257 SCTP/* allow"}},
      {"[{port: \"8080\", endPort: 8090, protocol: TCP}]",
       {"in 257 TCP/8080-8087 allow", "in 257 TCP/8088-8089 allow", "in 257 TCP/8090 allow"}},
      {"[{port: \"80\", protocol: TCP}, {port: \"443\", protocol: TCP}]",
       {"in 257 TCP/80 allow", "in 257 TCP/443 allow"}},
      {"[{port: \"1\", endPort: 65535, protocol: SCTP}]",
       {"in 257 SCTP/1 allow", "in 257 SCTP/2-3 allow", "in 257 SCTP/4-7 allow",
        "in 257 SCTP/8-15 allow", "in 257 SCTP/16-31 allow", "in 257 SCTP/32-63 allow",
        "in 257 SCTP/64-127 allow", "in 257 SCTP/128-255 allow", "in 257 SCTP/256-511 allow",
        "in 257 SCTP/512-1023 allow", "in 257 SCTP/1024-2047 allow", "in 257 SCTP/2048-4095 allow",
        "in 257 SCTP/4096-8191 allow", "in 257 SCTP/8192-16383 allow",
        "in 257 SCTP/16384-32767 allow", "in 257 SCTP/32768-65535 allow"}},
  };
  for (const auto& c : cases) {
    auto r = engine_->import(
        cnp(std::string("  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"
                        "    toPorts: [{ports: ") +
            c.ports + "}]\n"));
    ASSERT_TRUE(r.ok()) << c.ports << ": " << r.error().toString();
    S want = c.expected;
    want.insert({"in 1 any allow", "out 0 any allow"});
    EXPECT_EQ(entries(web_), want) << c.ports;
  }
}

TEST_F(ResolveTest, IngressNamedPortsUseTheEndpointsOwnPorts) {
  import(cnp(R"(  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: http-alt}, {port: DNS, protocol: UDP}, {port: missing}]}]
)"));
  Subject s = web_;
  s.named_ports = {{"http-alt", 8080, Protocol::kTcp},
                   {"dns", 53, Protocol::kUdp},
                   {"dns", 53, Protocol::kTcp},
                   {"metrics", 9090, Protocol::kTcp}};
  EXPECT_EQ(entries(s), (S{"in 257 TCP/8080 allow", "in 257 UDP/53 allow", "in 1 any allow",
                           "out 0 any allow"}));
  // Without named ports the rule still enforces, but allows nothing.
  EXPECT_EQ(entries(web_), (S{"in 1 any allow", "out 0 any allow"}));
}

// Two destinations give the port name "web" different numbers; a third, never selected by
// toEndpoints, gives it yet another. The table is keyed by the pods' identity labels.
class EgressNamedPortTest : public ResolveTest {
 protected:
  void SetUp() override {
    ResolveTest::SetUp();
    third_labels_ = pod({{"app", "third"}, {"org", "alliance"}});
    third_ = allocate(third_labels_);
    ports_.setPod("default/client-1", pod({{"app", "client"}, {"org", "empire"}}),
                  {{"web", 8080, Protocol::kTcp}, {"dns", 53, Protocol::kUdp}});
    ports_.setPod("default/client-2", pod({{"app", "client"}, {"org", "empire"}}),
                  {{"web", 8080, Protocol::kTcp}});
    ports_.setPod("default/other-1", pod({{"app", "other"}, {"org", "alliance"}}),
                  {{"web", 9090, Protocol::kTcp}});
    ports_.setPod("default/third-1", third_labels_, {{"web", 7070, Protocol::kTcp}});
    engine_ = std::make_unique<Engine>(*ids_, EngineOptions{}, nullptr, &ports_);
  }

  NamedPortTable ports_;
  labels::Labels third_labels_;
  identity::NumericIdentity third_ = 0;
};

TEST_F(EgressNamedPortTest, EachDestinationOnlyOnItsOwnNumber) {
  import(cnp(R"(  egress:
  - toEndpoints: [{matchExpressions: [{key: app, operator: In, values: [client, other]}]}]
    toPorts: [{ports: [{port: web, protocol: TCP}, {port: dns, protocol: TCP}, {port: "443"}]}]
)"));
  auto p = engine_->attach(web_);
  ASSERT_TRUE(p.ok());
  // client is allowed on 8080 only, other on 9090 only; the third pod's 7070 is nobody's; dns is
  // UDP on the client, not TCP; the numeric port applies to both.
  EXPECT_EQ(describe(p->entries),
            (S{"in 0 any allow", "out 257 TCP/8080 allow", "out 258 TCP/9090 allow",
               "out 257 TCP/443 allow", "out 257 UDP/443 allow", "out 257 SCTP/443 allow",
               "out 258 TCP/443 allow", "out 258 UDP/443 allow", "out 258 SCTP/443 allow"}));
  EXPECT_EQ(engine_->namedPortsChanged(), std::vector<uint16_t>{web_.endpoint_id});
}

TEST_F(EgressNamedPortTest, EveryDestinationMeansEveryIdentityNamingThePort) {
  // No peer (every destination), and a NetworkPolicy rule without `to`: each identity whose pods
  // name the port gets its own number; identity 0 never gets one.
  for (const std::string& text :
       {cnp("  egress:\n  - toPorts: [{ports: [{port: web, protocol: TCP}]}]\n"),
        std::string(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{ports: [{port: web}]}]
)")}) {
    ASSERT_TRUE(engine_->deleteByLabels({}).ok() || engine_->ruleCount() == 0);
    import(text);
    EXPECT_EQ(entries(web_),
              (S{"in 0 any allow", "out 257 TCP/8080 allow", "out 258 TCP/9090 allow",
                 fmt::format("out {} TCP/7070 allow", third_)}))
        << text;
  }
}

TEST_F(EgressNamedPortTest, DenyAlsoResolvesPerDestination) {
  import(cnp(R"(  egress:
  - toEntities: [all]
  egressDeny:
  - toEndpoints: [{}]
    toPorts: [{ports: [{port: web}]}]
)"));
  auto e = entries(web_);
  EXPECT_TRUE(e.count("out 257 TCP/8080 deny"));
  EXPECT_TRUE(e.count("out 258 TCP/9090 deny"));
  EXPECT_FALSE(e.count("out 257 TCP/9090 deny"));
  EXPECT_FALSE(e.count("out 258 TCP/8080 deny"));
}

TEST_F(EgressNamedPortTest, IdentitiesAndPodsComingLater) {
  import(cnp(R"(  egress:
  - toEndpoints: [{matchLabels: {org: alliance}}]
    toPorts: [{ports: [{port: web}]}]
)"));
  ASSERT_TRUE(engine_->attach(web_).ok());
  // A new identity whose pods name the port: a delta with its own number.
  auto later_labels = pod({{"app", "later"}, {"org", "alliance"}});
  ports_.setPod("default/later-1", later_labels, {{"web", 6060, Protocol::kTcp}});
  auto later = allocate(later_labels);
  auto delta = engine_->consumeChanges(web_.endpoint_id);
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(describe(delta->upserts), (S{fmt::format("out {} TCP/6060 allow", later)}));
  // A pod of an existing identity changes its number: the table says so, the endpoint is
  // regenerated and takes the new number only.
  EXPECT_TRUE(ports_.setPod("default/other-1", pod({{"app", "other"}, {"org", "alliance"}}),
                            {{"web", 9191, Protocol::kTcp}}));
  EXPECT_EQ(engine_->namedPortsChanged(), std::vector<uint16_t>{web_.endpoint_id});
  auto p = engine_->attach(web_);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(describe(p->entries).count("out 258 TCP/9191 allow"));
  EXPECT_FALSE(describe(p->entries).count("out 258 TCP/9090 allow"));
}

TEST_F(ResolveTest, Entities) {
  auto init = identity::kInit;
  struct Case {
    const char* entity;
    S expected;
  } cases[] = {
      {"all", {"in 0 any allow"}},
      {"world", {"in 2 any allow", "in 9 any allow", "in 10 any allow"}},
      {"host", {}},  // already there through allow-localhost
      {"remote-node", {"in 6 any allow"}},
      {"kube-apiserver", {"in 7 any allow"}},
      {"init", {fmt::format("in {} any allow", init)}},
      {"health", {"in 4 any allow"}},
      {"unmanaged", {"in 3 any allow"}},
      {"ingress", {"in 8 any allow"}},
      {"none", {}},
      // Everything that is not world: reserved identities and every endpoint.
      {"cluster",
       {"in 3 any allow", "in 4 any allow", "in 5 any allow", "in 6 any allow", "in 7 any allow",
        "in 8 any allow", "in 256 any allow", "in 257 any allow", "in 258 any allow"}},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(
        engine_->import(cnp(std::string("  ingress:\n  - fromEntities: [") + c.entity + "]\n"))
            .ok());
    S want = c.expected;
    want.insert({"in 1 any allow", "out 0 any allow"});
    EXPECT_EQ(entries(web_), want) << c.entity;
  }
}

TEST_F(ResolveTest, WorldEntityAlsoSelectsCidrIdentities) {
  auto c = ids_->allocateCidr(*IpPrefix::parseMasked("8.8.8.0/24"));
  ASSERT_TRUE(c.ok());
  import(cnp("  egress:\n  - toEntities: [world]\n"));
  EXPECT_TRUE(entries(web_).count(fmt::format("out {} any allow", c->id)));
  import(cnp("  egress:\n  - toEntities: [cluster]\n"));
  EXPECT_FALSE(entries(web_).count(fmt::format("out {} any allow", c->id)));
  EXPECT_FALSE(entries(web_).count("out 2 any allow"));
}

class CidrTest : public ResolveTest {
 protected:
  void SetUp() override {
    ResolveTest::SetUp();
    cidrs_ = std::make_unique<CidrIdentities>(*ids_, ipcache_);
    engine_ = std::make_unique<Engine>(*ids_, EngineOptions{}, cidrs_.get());
  }
  void TearDown() override {
    engine_.reset();
    cidrs_.reset();
    ResolveTest::TearDown();
  }
  identity::NumericIdentity cidrId(const char* prefix) {
    auto e = ipcache_.get(*IpPrefix::parseMasked(prefix));
    return e ? e->info.identity : 0;
  }

  datapath::FakeMaps maps_;
  ipcache::IpCache ipcache_{&maps_.ipcache, &maps_.runtime_config};
  std::unique_ptr<CidrIdentities> cidrs_;
};

TEST_F(CidrTest, ToCidrGetsIdentitiesAndIpcacheEntries) {
  import(cnp(R"(  egress:
  - toCIDR: [10.0.0.0/8, 192.168.1.1]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
)"));
  auto c10 = cidrId("10.0.0.0/8");
  auto c192 = cidrId("192.168.1.1/32");
  ASSERT_NE(c10, 0u);
  ASSERT_NE(c192, 0u);
  EXPECT_TRUE(identity::isLocal(c10));
  EXPECT_EQ(ipcache_.get(*IpPrefix::parseMasked("10.0.0.0/8"))->source, ipcache::Source::kGenerated);
  // The kernel ipcache has the prefix, so 10.x addresses resolve to the CIDR identity.
  EXPECT_TRUE(
      (*maps_.ipcache.lookup(ipcache::kernelKey(*IpPrefix::parseMasked("10.0.0.0/8")))).has_value());
  EXPECT_EQ(entries(web_), (S{"in 0 any allow", fmt::format("out {} TCP/5432 allow", c10),
                              fmt::format("out {} TCP/5432 allow", c192)}));
  // Deleting the policy releases the prefixes.
  ASSERT_TRUE(engine_->deleteByLabels({}).ok());
  EXPECT_EQ(cidrId("10.0.0.0/8"), 0u);
  EXPECT_FALSE(ids_->lookup(c10).has_value());
}

TEST_F(CidrTest, CidrSetExceptCarvesOut) {
  import(cnp(R"(  egress:
  - toCIDRSet:
    - cidr: 0.0.0.0/0
      except: [10.0.0.0/8, 172.16.0.0/12]
)"));
  auto all = cidrId("0.0.0.0/0");
  auto c10 = cidrId("10.0.0.0/8");
  auto c172 = cidrId("172.16.0.0/12");
  ASSERT_TRUE(all && c10 && c172);
  // World (addresses the ipcache does not know) and the /0 identity; not the excepted prefixes.
  EXPECT_EQ(entries(web_), (S{"in 0 any allow", "out 2 any allow", "out 9 any allow",
                              fmt::format("out {} any allow", all)}));
  // A prefix another policy references inside the allowed range is selected; one inside an
  // except is not.
  import(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: other, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: nothing}}
  egress: [{toCIDR: [8.8.8.0/24, 10.1.0.0/16]}]
)");
  auto c8 = cidrId("8.8.8.0/24");
  auto c101 = cidrId("10.1.0.0/16");
  auto e = entries(web_);
  EXPECT_TRUE(e.count(fmt::format("out {} any allow", c8)));
  EXPECT_FALSE(e.count(fmt::format("out {} any allow", c101)));
}

TEST_F(CidrTest, CidrSelectorsNeverSelectEndpoints) {
  import(cnp("  ingress:\n  - fromCIDR: [0.0.0.0/0]\n"));
  auto e = entries(web_);
  EXPECT_FALSE(e.count("in 257 any allow"));
  EXPECT_TRUE(e.count("in 2 any allow"));
}

TEST_F(ResolveTest, DenyBeatsAllow) {
  struct Case {
    const char* name;
    const char* body;
    S expected;
  } cases[] = {
      {"L3 allow with an L4 deny keeps both: the deny is longer",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
)",
       {"in 257 any allow", "in 257 TCP/80 deny"}},
      {"L3 deny drops a narrower allow of the same identity",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]
)",
       {"in 257 any deny"}},
      {"protocol-wide deny drops port allows of that protocol only",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80"}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "0", protocol: TCP}]}]}]
)",
       {"in 257 TCP/* deny", "in 257 UDP/80 allow", "in 257 SCTP/80 allow"}},
      {"deny range covers an allowed port inside it",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8085", protocol: TCP}, {port: "9000", protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8080", endPort: 8095, protocol: TCP}]}]}]
)",
       {"in 257 TCP/8080-8095 deny", "in 257 TCP/9000 allow"}},
      {"allow range around a deny keeps the allow blocks and the deny",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8064", endPort: 8127, protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
)",
       {"in 257 TCP/8064-8127 allow", "in 257 TCP/8080 deny"}},
      {"overlapping ranges: an allow block containing a deny block stays, the deny is longer",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8000", endPort: 8015, protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8008", endPort: 8031, protocol: TCP}]}]}]
)",
       {"in 257 TCP/8000-8015 allow", "in 257 TCP/8008-8015 deny", "in 257 TCP/8016-8031 deny"}},
      {"overlapping ranges: allow blocks inside a deny block go",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8008", endPort: 8031, protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "8000", endPort: 8015, protocol: TCP}]}]}]
)",
       {"in 257 TCP/8000-8015 deny", "in 257 TCP/8016-8031 allow"}},
      {"a deny of every peer (identity 0) sits next to identity allows",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
  ingressDeny: [{toPorts: [{ports: [{port: "22", protocol: TCP}]}]}]
)",
       {"in 257 any allow", "in 0 TCP/22 deny"}},
      {"the same key allowed and denied is denied",
       R"(  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
)",
       {"in 257 TCP/80 deny"}},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(engine_->import(cnp(c.body)).ok()) << c.name;
    S want = c.expected;
    want.insert({"in 1 any allow", "out 0 any allow"});
    EXPECT_EQ(entries(web_), want) << c.name;
  }
}

TEST_F(ResolveTest, DenyAloneEnforcesTheDirection) {
  import(cnp("  egressDeny: [{toEntities: [world]}]\n"));
  auto p = resolve(web_);
  EXPECT_TRUE(p.egress_enforced);
  EXPECT_EQ(describe(p.entries),
            (S{"in 0 any allow", "out 2 any deny", "out 9 any deny", "out 10 any deny"}));
}

TEST_F(ResolveTest, EnableDefaultDenyFalseAddsAllowsWithoutEnforcing) {
  import(cnp(R"(  enableDefaultDeny: {ingress: false}
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]
)"));
  auto p = resolve(web_);
  EXPECT_FALSE(p.ingress_enforced);
  EXPECT_EQ(describe(p.entries), (S{"in 0 any allow", "in 257 any deny", "out 0 any allow"}));
}

TEST_F(ResolveTest, RulesOfSeveralPoliciesUnite) {
  import(cnp("  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"));
  import(R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: second, namespace: default}
spec:
  endpointSelector: {matchLabels: {org: empire}}
  ingress: [{fromEndpoints: [{matchLabels: {app: other}}], toPorts: [{ports: [{port: "9", protocol: UDP}]}]}]
)");
  EXPECT_EQ(entries(web_),
            (S{"in 257 any allow", "in 258 UDP/9 allow", "in 1 any allow", "out 0 any allow"}));
}

TEST_F(ResolveTest, IdentityAppearingLaterIsSelected) {
  import(cnp("  ingress: [{fromEndpoints: [{matchLabels: {app: late}}]}]\n"));
  EXPECT_EQ(entries(web_), (S{"in 1 any allow", "out 0 any allow"}));
  auto late = allocate(pod({{"app", "late"}}));
  EXPECT_TRUE(entries(web_).count(fmt::format("in {} any allow", late)));
  ASSERT_TRUE(ids_->release(late).ok());
  EXPECT_EQ(entries(web_), (S{"in 1 any allow", "out 0 any allow"}));
}

class ModeTest : public testing::EngineFixture {
 protected:
  EngineOptions opts_;
};

TEST_F(ModeTest, AlwaysEnforcesWithoutRules) {
  opts_.mode = EnforcementMode::kAlways;
  opts_.allow_localhost = false;
  restart(opts_);
  auto s = subject(pod({{"app", "x"}}));
  auto p = resolve(s);
  EXPECT_TRUE(p.ingress_enforced && p.egress_enforced);
  EXPECT_TRUE(p.entries.empty());
}

TEST_F(ModeTest, NeverEnforcesEvenWithRules) {
  opts_.mode = EnforcementMode::kNever;
  restart(opts_);
  auto s = subject(pod({{"app", "x"}}));
  import("[{\"endpointSelector\": {}, \"ingressDeny\": [{\"fromEntities\": [\"all\"]}]}]");
  EXPECT_EQ(describe(resolve(s).entries), (S{"in 0 any allow", "out 0 any allow"}));
}

TEST_F(ModeTest, TooManyEntriesIsAnError) {
  opts_.max_entries = 3;
  restart(opts_);
  auto s = subject(pod({{"app", "x"}}));
  import(
      R"([{"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "1", "endPort": 4, "protocol": "TCP"}, {"port": "99", "protocol": "ANY"}]}]}]}])");
  auto r = engine_->resolve(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
}

}  // namespace
}  // namespace cilium::policy
