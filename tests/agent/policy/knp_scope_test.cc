// Kubernetes NetworkPolicy semantics and the namespace scoping of Cilium policies.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/datapath/fake_maps.h"
#include "agent/ipcache/ipcache.h"
#include "agent/policy/cidr_identities.h"
#include "policy_test_util.h"

namespace cilium::policy {
namespace {

using testing::describe;
using testing::pod;
using S = std::set<std::string>;

// Pods in three namespaces:
//   default (no labels): web (the subject), a1 {app: a}, b1 {app: b}
//   prod {team: blue}:   a2 {app: a}, c2 {app: c}
//   dev {team: red}:     a3 {app: a}
class ScopeTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    cidrs_ = std::make_unique<CidrIdentities>(*ids_, ipcache_);
    engine_ = std::make_unique<Engine>(*ids_, EngineOptions{}, cidrs_.get(), nullptr, &ipcache_);
    web_ = subject(pod({{"app", "web"}}));
    a1_ = allocate(pod({{"app", "a"}}));
    b1_ = allocate(pod({{"app", "b"}}));
    a2_ = allocate(pod({{"app", "a"}}, "prod", {{"team", "blue"}}));
    c2_ = allocate(pod({{"app", "c"}}, "prod", {{"team", "blue"}}));
    a3_ = allocate(pod({{"app", "a"}}, "dev", {{"team", "red"}}));
  }
  void TearDown() override {
    engine_.reset();
    cidrs_.reset();
    EngineFixture::TearDown();
  }

  // The identities allowed in (any protocol) besides the host, or "!" + error.
  std::set<identity::NumericIdentity> allowedIn(const Subject& s) {
    std::set<identity::NumericIdentity> out;
    for (const auto& e : resolve(s).entries)
      if (!e.key.egress && e.key.sec_label != identity::kHost && !(e.value.flags & POLICY_F_DENY))
        out.insert(e.key.sec_label);
    return out;
  }

  std::string knp(const std::string& spec, const std::string& name = "np") {
    return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: " + name +
           "\n  namespace: default\nspec:\n  podSelector:\n    matchLabels:\n      app: web\n" +
           spec;
  }
  std::string cnp(const std::string& spec, const std::string& ns = "default") {
    return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp\n"
           "  namespace: " +
           ns + "\nspec:\n" + spec;
  }
  std::string ccnp(const std::string& spec) {
    return "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n"
           "  name: ccnp\nspec:\n" +
           spec;
  }

  identity::NumericIdentity cidrId(const char* prefix) {
    auto e = ipcache_.get(*IpPrefix::parseMasked(prefix));
    return e ? e->info.identity : 0;
  }

  // The endpoint manager's part: a pod's address in the ipcache with its identity.
  void address(const char* ip, identity::NumericIdentity id) {
    ASSERT_TRUE(ipcache_
                    .upsert(*IpPrefix::parseMasked(ip, true), ipcache::Info{id, std::nullopt, 0, 0},
                            ipcache::Source::kLocal)
                    .ok());
  }
  void noAddress(const char* ip) {
    ASSERT_TRUE(ipcache_.remove(*IpPrefix::parseMasked(ip, true), ipcache::Source::kLocal).ok());
  }

  datapath::FakeMaps maps_;
  ipcache::IpCache ipcache_{&maps_.ipcache, &maps_.runtime_config};
  std::unique_ptr<CidrIdentities> cidrs_;
  Subject web_;
  identity::NumericIdentity a1_, b1_, a2_, c2_, a3_;
};

using Ids = std::set<identity::NumericIdentity>;

TEST_F(ScopeTest, KnpPeers) {
  struct Case {
    const char* name;
    const char* from;
    Ids expected;
  } cases[] = {
      {"podSelector alone: same namespace", "[{podSelector: {matchLabels: {app: a}}}]", {a1_}},
      {"namespaceSelector alone: every pod there",
       "[{namespaceSelector: {matchLabels: {team: blue}}}]",
       {a2_, c2_}},
      {"both in one peer: AND",
       "[{namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {app: a}}}]",
       {a2_}},
      {"separate peers: OR",
       "[{namespaceSelector: {matchLabels: {team: blue}}}, {podSelector: {matchLabels: {app: a}}}]",
       {a1_, a2_, c2_}},
      {"empty namespaceSelector: every pod of every namespace, nothing else",
       "[{namespaceSelector: {}}]",
       {web_.identity, a1_, b1_, a2_, c2_, a3_}},
      {"empty podSelector: every pod of the namespace",
       "[{podSelector: {}}]",
       {web_.identity, a1_, b1_}},
      {"namespace by name (kubernetes.io/metadata.name)",
       "[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}}]",
       {a3_}},
      {"matchExpressions on namespaces",
       "[{namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [red, blue]}]},"
       " podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [c]}]}}]",
       {a2_, a3_}},
  };
  for (const auto& c : cases) {
    auto r = engine_->import(knp(std::string("  ingress:\n  - from: ") + c.from + "\n"));
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.error().toString();
    EXPECT_EQ(allowedIn(web_), c.expected) << c.name;
  }
}

TEST_F(ScopeTest, KnpIpBlockWithExcept) {
  import(knp(R"(  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.1.0.0/16]
  policyTypes: [Egress]
)"));
  auto c10 = cidrId("10.0.0.0/8");
  ASSERT_NE(c10, 0u);
  ASSERT_NE(cidrId("10.1.0.0/16"), 0u);
  EXPECT_EQ(describe(resolve(web_).entries),
            (S{"in 0 any allow", fmt::format("out {} any allow", c10)}));
}

// Kubernetes: an ipBlock that covers a pod's address selects that pod, and except carves it out.
// Policy keys are per identity, so a pod identity is selected only when every address the
// ipcache maps to it is covered (and none excepted).
TEST_F(ScopeTest, KnpIpBlockSelectsPodsItCovers) {
  address("10.1.0.5", a1_);  // inside
  address("10.1.0.6", b1_);  // inside, but excepted
  address("10.2.0.5", a2_);  // outside
  address("10.1.0.7", c2_);  // partly covered: its other address is outside
  address("10.9.0.1", c2_);
  import(knp(R"(  ingress:
  - from:
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.0.6/32]}
)"));
  auto block = cidrId("10.1.0.0/16");
  ASSERT_NE(block, 0u);
  EXPECT_EQ(allowedIn(web_), (Ids{block, a1_}));
  // A CiliumNetworkPolicy CIDR set keeps Cilium's meaning: CIDR identities only.
  import(cnp(R"(  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromCIDRSet: [{cidr: 10.1.0.0/16, except: [10.1.0.6/32]}]
)"));
  ASSERT_TRUE(engine_->deleteObject(kKindKnp, "default", "np").ok());
  EXPECT_EQ(allowedIn(web_), (Ids{block}));
}

TEST_F(ScopeTest, KnpIpBlockFollowsAddresses) {
  address("10.1.0.5", a1_);
  import(knp("  egress:\n  - to: [{ipBlock: {cidr: 10.1.0.0/16}}]\n  policyTypes: [Egress]\n"));
  auto block = cidrId("10.1.0.0/16");
  auto p = engine_->attach(web_);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(describe(p->entries), (S{"in 0 any allow", fmt::format("out {} any allow", block),
                                     fmt::format("out {} any allow", a1_)}));
  auto changes = [&] {
    auto d = engine_->consumeChanges(web_.endpoint_id);
    EXPECT_TRUE(d.ok());
    S out;
    for (const auto& e : d->upserts) out.insert("+" + describe(e));
    for (const auto& k : d->deletes)
      out.insert(fmt::format("-{} {}", k.egress ? "out" : "in", k.sec_label));
    return out;
  };
  // A second pod of the identity outside the block: the identity is no longer selected.
  address("10.3.0.1", a1_);
  EXPECT_EQ(changes(), (S{fmt::format("-out {}", a1_)}));
  // It goes away again: selected again.
  noAddress("10.3.0.1");
  EXPECT_EQ(changes(), (S{fmt::format("+out {} any allow", a1_)}));
  // An address changes hands: b1's pod takes an address in the block, a1's only pod leaves it.
  noAddress("10.1.0.5");
  address("10.1.0.5", b1_);
  EXPECT_EQ(changes(), (S{fmt::format("-out {}", a1_), fmt::format("+out {} any allow", b1_)}));
  // An identity that appears after its address.
  auto late_labels = pod({{"app", "late"}});
  auto late_id = ids_->allocate(late_labels);
  ASSERT_TRUE(late_id.ok());
  ASSERT_TRUE(ids_->release(late_id->id).ok());
  address("10.1.0.9", late_id->id);
  EXPECT_TRUE(changes().empty());  // the number is not an identity (yet)
  auto again = allocate(late_labels);
  ASSERT_EQ(again, late_id->id);
  EXPECT_EQ(changes(), (S{fmt::format("+out {} any allow", again)}));
}

TEST_F(ScopeTest, KnpIpBlockIsListedAndReimported) {
  address("10.1.0.5", a1_);
  import(knp("  ingress:\n  - from: [{ipBlock: {cidr: 10.1.0.0/16}}]\n"));
  auto listed = engine_->rulesJson();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["ingress"][0]["fromCIDRSet"][0]["selectsPods"], true) << listed.dump();
  // The listing (as the agent persists it) means the same after a restart.
  ASSERT_TRUE(engine_->deleteByLabels({}).ok());
  ASSERT_TRUE(engine_->importRules(listed.dump()).ok());
  EXPECT_TRUE(allowedIn(web_).count(a1_));
  // A CiliumNetworkPolicy cannot ask for it (not a Cilium field).
  auto r = engine_->import(cnp(R"(  endpointSelector: {}
  ingress: [{fromCIDRSet: [{cidr: 10.1.0.0/16, selectsPods: true}]}]
)"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "spec.ingress[0].fromCIDRSet[0].selectsPods: unknown field");
}

TEST_F(ScopeTest, KnpPorts) {
  struct Case {
    const char* ports;
    S expected;
  } cases[] = {
      {"[{port: 80}]", {"in {a} TCP/80 allow"}},
      {"[{protocol: UDP, port: 53}]", {"in {a} UDP/53 allow"}},
      {"[{protocol: SCTP}]", {"in {a} SCTP/* allow"}},
      {"[{}]", {"in {a} TCP/* allow"}},
      {"[{port: 8000, endPort: 8003}]", {"in {a} TCP/8000-8003 allow"}},
      {"[{port: http}]", {"in {a} TCP/8080 allow"}},
      {"[{port: 80}, {port: 443}]", {"in {a} TCP/80 allow", "in {a} TCP/443 allow"}},
      {"[]", {"in {a} any allow"}},
  };
  Subject s = web_;
  s.named_ports = {{"http", 8080, Protocol::kTcp}};
  for (const auto& c : cases) {
    auto r = engine_->import(
        knp(std::string("  ingress:\n  - from: [{podSelector: {matchLabels: {app: a}}}]\n"
                        "    ports: ") +
            c.ports + "\n"));
    ASSERT_TRUE(r.ok()) << c.ports << ": " << r.error().toString();
    S want;
    for (const auto& e : c.expected) want.insert(fmt::format(fmt::runtime(e), fmt::arg("a", a1_)));
    want.insert({"in 1 any allow", "out 0 any allow"});
    EXPECT_EQ(describe(resolve(s).entries), want) << c.ports;
  }
}

TEST_F(ScopeTest, KnpPolicyTypes) {
  struct Case {
    const char* name;
    const char* spec;
    bool ingress, egress;
    S expected;
  } cases[] = {
      {"ingress rules only: ingress enforced",
       "  ingress: [{from: [{podSelector: {}}]}]\n",
       true,
       false,
       {}},
      {"egress rules without policyTypes: both enforced, ingress allows nothing",
       "  egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]\n",
       true,
       true,
       {"out {b} any allow", "-in 0 any allow"}},
      {"no rules, no policyTypes: ingress deny-all", "", true, false, {}},
      {"policyTypes [Egress] without rules: egress deny-all, ingress open",
       "  policyTypes: [Egress]\n",
       false,
       true,
       {"in 0 any allow", "-out 0 any allow"}},
      {"policyTypes [Ingress] ignores egress rules",
       "  policyTypes: [Ingress]\n  egress: [{to: [{podSelector: {}}]}]\n",
       true,
       false,
       {"out 0 any allow"}},
      {"empty ingress list with Ingress: deny all",
       "  policyTypes: [Ingress]\n  ingress: []\n",
       true,
       false,
       {"-in 0 any allow"}},
      {"one empty ingress rule: allow all", "  ingress: [{}]\n", true, false, {"in 0 any allow"}},
      {"empty from: allow all on the ports",
       "  ingress: [{from: [], ports: [{port: 22}]}]\n",
       true,
       false,
       {"in 0 TCP/22 allow"}},
      {"empty policyTypes: as if absent (the API server defaults it)",
       "  policyTypes: []\n  egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]\n",
       true,
       true,
       {"out {b} any allow", "-in 0 any allow"}},
      {"both types, both lists empty",
       "  policyTypes: [Ingress, Egress]\n  ingress: []\n  egress: []\n",
       true,
       true,
       {"-in 0 any allow", "-out 0 any allow"}},
  };
  for (const auto& c : cases) {
    auto r = engine_->import(knp(c.spec));
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.error().toString();
    auto p = resolve(web_);
    EXPECT_EQ(p.ingress_enforced, c.ingress) << c.name;
    EXPECT_EQ(p.egress_enforced, c.egress) << c.name;
    auto got = describe(p.entries);
    for (const auto& e : c.expected) {
      std::string want = fmt::format(fmt::runtime(e), fmt::arg("b", b1_));
      if (want[0] == '-') {
        EXPECT_FALSE(got.count(want.substr(1))) << c.name << ": unexpected " << want.substr(1);
      } else {
        EXPECT_TRUE(got.count(want)) << c.name << ": missing " << want;
      }
    }
  }
}

TEST_F(ScopeTest, SeveralKnpsUnite) {
  import(knp("  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]\n", "one"));
  import(knp("  ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}}]}]\n", "two"));
  EXPECT_EQ(allowedIn(web_), (Ids{a1_, a3_}));
  // Replacing "one" by name keeps "two".
  import(knp("  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]\n", "one"));
  EXPECT_EQ(allowedIn(web_), (Ids{b1_, a3_}));
  EXPECT_EQ(engine_->ruleCount(), 2u);
}

TEST_F(ScopeTest, KnpOnlySelectsPodsOfItsNamespace) {
  import(knp("  ingress: []\n"));
  Subject prod_web{7,
                   allocate(pod({{"app", "web"}}, "prod", {{"team", "blue"}})),
                   pod({{"app", "web"}}, "prod", {{"team", "blue"}}),
                   {}};
  EXPECT_TRUE(resolve(web_).ingress_enforced);
  EXPECT_FALSE(resolve(prod_web).ingress_enforced);
}

TEST_F(ScopeTest, CnpPeerScoping) {
  struct Case {
    const char* name;
    const char* selector;
    Ids expected;
  } cases[] = {
      {"plain selector: the policy's namespace", "{matchLabels: {app: a}}", {a1_}},
      {"explicit namespace key (any source)",
       "{matchLabels: {app: a, io.kubernetes.pod.namespace: prod}}",
       {a2_}},
      {"explicit k8s namespace key",
       "{matchLabels: {k8s:io.kubernetes.pod.namespace: prod}}",
       {a2_, c2_}},
      {"namespace labels select across namespaces",
       "{matchLabels: {io.cilium.k8s.namespace.labels.team: red}}",
       {a3_}},
      {"empty selector: every pod of the namespace", "{}", {web_.identity, a1_, b1_}},
      {"reserved selectors are not scoped",
       "{matchLabels: {reserved:health: \"\"}}",
       {identity::kHealth}},
  };
  for (const auto& c : cases) {
    auto r = engine_->import(cnp(std::string("  endpointSelector: {matchLabels: {app: web}}\n"
                                             "  ingress: [{fromEndpoints: [") +
                                 c.selector + "]}]\n"));
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.error().toString();
    EXPECT_EQ(allowedIn(web_), c.expected) << c.name;
  }
}

TEST_F(ScopeTest, CnpEndpointSelectorStaysInItsNamespace) {
  // Even a selector naming another namespace only applies where the policy lives.
  import(
      cnp("  endpointSelector: {matchLabels: {app: a, io.kubernetes.pod.namespace: default}}\n"
          "  ingress: [{}]\n",
          "prod"));
  Subject a1{2, a1_, pod({{"app", "a"}}), {}};
  Subject a2{3, a2_, pod({{"app", "a"}}, "prod", {{"team", "blue"}}), {}};
  EXPECT_FALSE(resolve(a1).ingress_enforced);
  EXPECT_TRUE(resolve(a2).ingress_enforced);
}

TEST_F(ScopeTest, CcnpIsClusterWide) {
  import(
      ccnp("  endpointSelector: {matchLabels: {app: a}}\n"
           "  ingress: [{fromEndpoints: [{}]}]\n"));
  Subject a3{3, a3_, pod({{"app", "a"}}, "dev", {{"team", "red"}}), {}};
  EXPECT_TRUE(resolve(a3).ingress_enforced);
  // "{}" in a cluster-wide policy: every pod (they have a namespace), no reserved identity.
  EXPECT_EQ(allowedIn(a3), (Ids{web_.identity, a1_, b1_, a2_, c2_, a3_}));
  import(ccnp("  endpointSelector: {}\n  ingress: [{fromEndpoints: [{matchLabels: {app: a}}]}]\n"));
  EXPECT_EQ(allowedIn(web_), (Ids{a1_, a2_, a3_}));
}

TEST_F(ScopeTest, BareRulesAreNotScoped) {
  auto r = engine_->importRules(R"([{"endpointSelector": {"matchLabels": {"app": "web"}},
                                     "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "a"}}]}]}])");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(allowedIn(web_), (Ids{a1_, a2_, a3_}));
  ASSERT_TRUE(engine_->deleteByLabels({}).ok());
  // An empty selector in a bare rule is every peer: identity 0.
  ASSERT_TRUE(
      engine_->importRules(R"([{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}])")
          .ok());
  EXPECT_EQ(allowedIn(web_), (Ids{0}));
}

TEST_F(ScopeTest, CcnpNodeSelectorIsRejected) {
  auto r =
      engine_->import(ccnp("  nodeSelector: {matchLabels: {role: worker}}\n  ingress: [{}]\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(r.error().message(),
            "spec.nodeSelector: host policies (nodeSelector) are not supported");
}

}  // namespace
}  // namespace cilium::policy
