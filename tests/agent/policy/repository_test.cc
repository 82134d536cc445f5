// The rule repository: revisions, replacement by name, deletion, all-or-nothing imports,
// listings, affected endpoints and change notification.
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

std::string cnp(const std::string& name, const std::string& app, const std::string& from,
                const std::string& ns = "default") {
  return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns + "\nspec:\n  endpointSelector: {matchLabels: {app: " + app +
         "}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: " + from + "}}]}]\n";
}

class RepositoryTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    web_ = subject(pod({{"app", "web"}}), 1);
    db_ = subject(pod({{"app", "db"}}), 2);
    ASSERT_TRUE(engine_->attach(web_).ok());
    ASSERT_TRUE(engine_->attach(db_).ok());
  }
  Subject web_, db_;
};

TEST_F(RepositoryTest, RevisionCountsEveryChange) {
  EXPECT_EQ(engine_->revision(), 1u);
  auto r = engine_->import(cnp("a", "web", "db"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 2u);
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(r->affected_endpoints, std::vector<uint16_t>{1});
  EXPECT_EQ(engine_->revision(), 2u);
  EXPECT_EQ(resolve(web_).revision, 2u);

  auto d = engine_->deleteByLabels(
      labels::Labels{{labels::Source::kK8s, "io.cilium.k8s.policy.name", "a"}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->revision, 3u);
  EXPECT_EQ(d->deleted, 1u);
  EXPECT_EQ(d->affected_endpoints, std::vector<uint16_t>{1});

  auto none = engine_->deleteByLabels(labels::Labels{{labels::Source::kK8s, "nothing", "here"}});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine_->revision(), 3u) << "a delete that matched nothing changes nothing";
}

TEST_F(RepositoryTest, OutcomeListenerCountsEveryImportAndDelete) {
  std::vector<bool> outcomes;
  engine_->setOutcomeListener([&](bool ok) { outcomes.push_back(ok); });
  ASSERT_TRUE(engine_->import(cnp("a", "web", "db")).ok());
  EXPECT_FALSE(engine_->import("kind: CiliumNetworkPolicy\nspec: [").ok());
  EXPECT_FALSE(engine_->importRules("{not an array").ok());
  ASSERT_TRUE(engine_->importRules(R"([{"endpointSelector": {}, "ingress": [{}]}])").ok());
  EXPECT_TRUE(engine_->deleteObject("CiliumNetworkPolicy", "default", "a").ok());
  EXPECT_FALSE(engine_->deleteObject("CiliumNetworkPolicy", "default", "a").ok());
  EXPECT_EQ(outcomes, (std::vector<bool>{true, false, false, true, true, false}));
  engine_->setOutcomeListener(nullptr);
  ASSERT_TRUE(engine_->import(cnp("b", "web", "db")).ok());
  EXPECT_EQ(outcomes.size(), 6u);
}

TEST_F(RepositoryTest, SameNameReplacesAtomically) {
  ASSERT_TRUE(engine_->import(cnp("a", "web", "db")).ok());
  ASSERT_TRUE(engine_->import(cnp("b", "db", "web")).ok());
  auto r = engine_->import(cnp("a", "web", "web"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(engine_->ruleCount(), 2u);
  EXPECT_EQ(r->revision, 4u) << "one revision for the replacement";
  EXPECT_TRUE(describe(resolve(web_).entries).count(fmt::format("in {} any allow", web_.identity)));
  EXPECT_FALSE(describe(resolve(web_).entries).count(fmt::format("in {} any allow", db_.identity)));
  // The same name in another namespace, or of another kind, is another policy.
  ASSERT_TRUE(engine_->import(cnp("a", "web", "db", "other")).ok());
  EXPECT_EQ(engine_->ruleCount(), 3u);
  ASSERT_TRUE(engine_->deleteObject("CiliumNetworkPolicy", "other", "a").ok());
  EXPECT_EQ(engine_->ruleCount(), 2u);
  EXPECT_FALSE(engine_->deleteObject("NetworkPolicy", "default", "a").ok());
}

TEST_F(RepositoryTest, InvalidBatchIsNeverAppliedInPart) {
  ASSERT_TRUE(engine_->import(cnp("keep", "web", "db")).ok());
  auto before = engine_->rulesJson();
  auto policy_before = describe(resolve(web_).entries);
  std::string batch = cnp("keep", "web", "web") + "---\n" + cnp("new", "db", "web") + "---\n" +
                      cnp("bad", "db", "web") + "  egress: [{toEntities: [nowhere]}]\n";
  auto r = engine_->import(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "document 3 (CiliumNetworkPolicy default/bad): spec.egress[0].toEntities[0]: unknown "
            "entity \"nowhere\"");
  EXPECT_EQ(engine_->revision(), 2u);
  EXPECT_EQ(engine_->rulesJson(), before) << "not even the valid documents were applied";
  EXPECT_EQ(describe(resolve(web_).entries), policy_before);
}

class FailingCidrs : public CidrIdentityProvider {
 public:
  Status acquire(const std::vector<IpPrefix>&) override {
    return makeError(ErrorCode::kResourceExhausted, "no identities left");
  }
  void release(const std::vector<IpPrefix>&) override {}
};

TEST_F(RepositoryTest, CidrIdentityFailureAppliesNothing) {
  FailingCidrs cidrs;
  Engine engine(*ids_, {}, &cidrs);
  auto r = engine.import(R"([{"endpointSelector": {}, "egress": [{"toCIDR": ["10.0.0.0/8"]}]}])");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(engine.ruleCount(), 0u);
  EXPECT_EQ(engine.revision(), 1u);
}

TEST_F(RepositoryTest, ReplacedCidrRulesKeepTheirIdentity) {
  datapath::FakeMaps maps;
  ipcache::IpCache ipcache(&maps.ipcache, &maps.runtime_config);
  CidrIdentities cidrs(*ids_, ipcache);
  {
    Engine engine(*ids_, {}, &cidrs);
    std::string p = R"(apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: out}
spec: {endpointSelector: {}, egress: [{toCIDR: [10.0.0.0/8]}]}
)";
    ASSERT_TRUE(engine.import(p).ok());
    auto id = ipcache.get(*IpPrefix::parseMasked("10.0.0.0/8"))->info.identity;
    auto writes = maps.ipcache.updates();
    ASSERT_TRUE(engine.import(p).ok());
    EXPECT_EQ(ipcache.get(*IpPrefix::parseMasked("10.0.0.0/8"))->info.identity, id);
    EXPECT_EQ(maps.ipcache.updates(), writes) << "a replacement does not churn the ipcache";
    EXPECT_EQ(cidrs.held().at(*IpPrefix::parseMasked("10.0.0.0/8")).second, 1u);
    ASSERT_TRUE(engine.deleteObject("CiliumClusterwideNetworkPolicy", "", "out").ok());
    EXPECT_TRUE(cidrs.held().empty());
    EXPECT_FALSE(ipcache.get(*IpPrefix::parseMasked("10.0.0.0/8")).has_value());
  }
}

TEST_F(RepositoryTest, RulesJsonListsAndReimports) {
  ASSERT_TRUE(engine_->import(cnp("a", "web", "db")).ok());
  ASSERT_TRUE(engine_
                  ->import(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: default, uid: "1234"}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 5432}]}]
)")
                  .ok());
  auto all = engine_->rulesJson();
  ASSERT_EQ(all.size(), 2u);
  auto only_knp = engine_->rulesJson(
      labels::Labels{{labels::Source::kK8s, "io.cilium.k8s.policy.derived-from", "NetworkPolicy"}});
  ASSERT_EQ(only_knp.size(), 1u);
  EXPECT_EQ(only_knp[0]["endpointSelector"]["matchLabels"]["k8s:app"], "db");
  bool has_uid = false;
  for (const auto& l : only_knp[0]["labels"])
    has_uid |= l["key"] == "io.cilium.k8s.policy.uid" && l["value"] == "1234";
  EXPECT_TRUE(has_uid);

  // `cilium-dbg policy get | cilium-dbg policy import` gives the same policy.
  auto web_before = describe(resolve(web_).entries);
  auto db_before = describe(resolve(db_).entries);
  ASSERT_TRUE(engine_->deleteByLabels({}).ok());
  EXPECT_EQ(engine_->ruleCount(), 0u);
  ASSERT_TRUE(engine_->importRules(all.dump()).ok());
  EXPECT_EQ(describe(resolve(web_).entries), web_before);
  EXPECT_EQ(describe(resolve(db_).entries), db_before);
  EXPECT_EQ(engine_->rulesJson(), all);
}

TEST_F(RepositoryTest, ImportOptions) {
  ImportOptions tag;
  tag.extra_labels = labels::Labels{{labels::Source::kUnspec, "origin", "api"}};
  std::string rule = R"([{"endpointSelector": {}, "labels": ["k=v"], "ingress": [{}]}])";
  ASSERT_TRUE(engine_->importRules(rule, tag).ok());
  ASSERT_TRUE(engine_->importRules(rule, tag).ok());
  EXPECT_EQ(engine_->ruleCount(), 2u) << "without replace, rules add up";
  ImportOptions replace = tag;
  replace.replace = true;
  ASSERT_TRUE(engine_->importRules(rule, replace).ok());
  EXPECT_EQ(engine_->ruleCount(), 1u);
  ImportOptions by_labels;
  by_labels.replace_with_labels = labels::Labels{{labels::Source::kUnspec, "origin", "api"}};
  ASSERT_TRUE(engine_->importRules(R"([{"endpointSelector": {}}])", by_labels).ok());
  EXPECT_EQ(engine_->ruleCount(), 1u);
  EXPECT_EQ(engine_->rulesJson(labels::Labels{{labels::Source::kUnspec, "origin", "api"}}).size(),
            0u);
}

TEST_F(RepositoryTest, SelectorsListing) {
  ASSERT_TRUE(engine_->import(cnp("a", "web", "db")).ok());
  ASSERT_TRUE(engine_->import(cnp("b", "db", "db")).ok());
  ASSERT_TRUE(engine_->attach(web_).ok());
  auto sels = engine_->selectors();
  const SelectorInfo* db_sel = nullptr;
  for (const auto& s : sels)
    if (s.selector ==
        R"({"matchLabels":{"any:app":"db","k8s:io.kubernetes.pod.namespace":"default"}})")
      db_sel = &s;
  ASSERT_NE(db_sel, nullptr) << ::testing::PrintToString(sels.size());
  EXPECT_EQ(db_sel->identities, std::vector<identity::NumericIdentity>{db_.identity});
  EXPECT_EQ(db_sel->users, 3u) << "two rules and one attached endpoint use it";
  ASSERT_TRUE(engine_->deleteByLabels({}).ok());
  // Attached endpoints still hold their selectors until they regenerate.
  EXPECT_FALSE(engine_->selectors().empty());
  ASSERT_TRUE(engine_->attach(web_).ok());
  ASSERT_TRUE(engine_->attach(db_).ok());
  EXPECT_TRUE(engine_->selectors().empty());
}

TEST_F(RepositoryTest, ChangeListenerNamesEndpointsWithDeltas) {
  ASSERT_TRUE(engine_->import(cnp("a", "web", "client")).ok());
  ASSERT_TRUE(engine_->attach(web_).ok());
  std::vector<uint16_t> told;
  engine_->setChangeListener([&](const std::vector<uint16_t>& eps) { told = eps; });
  auto client = allocate(pod({{"app", "client"}}));
  EXPECT_EQ(told, std::vector<uint16_t>{1});
  auto delta = engine_->consumeChanges(1);
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(describe(delta->upserts), (S{fmt::format("in {} any allow", client)}));
  EXPECT_TRUE(delta->deletes.empty());
  EXPECT_TRUE(engine_->consumeChanges(1)->empty());
  told.clear();
  allocate(pod({{"app", "unrelated"}}));
  EXPECT_TRUE(told.empty());
  EXPECT_FALSE(engine_->consumeChanges(99).ok());
  engine_->detach(1);
  EXPECT_EQ(engine_->attachedEndpoints(), std::vector<uint16_t>{2});
}

TEST_F(RepositoryTest, L7RulesRedirectToTheProxyOrAreRejected) {
  std::string l7 = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: db}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: POST, path: /v1/request-landing}]
    - ports: [{port: "8080", protocol: TCP}]
  egress:
  - toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*"}]
)";
  // Without a proxy (the default): refused, never allowed at L4.
  auto rejected = engine_->import(l7);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(engine_->ruleCount(), 0u);

  EngineOptions proxied;
  proxied.l7 = L7Mode::kRedirect;
  proxied.proxy_ports = {11001, 11002, 11003};
  restart(proxied);
  auto r = engine_->import(l7);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->warnings.empty());
  auto p = resolve(web_);
  auto entries = describe(p.entries);
  EXPECT_TRUE(entries.count(fmt::format("in {} TCP/80 proxy 11001", db_.identity)))
      << fmt::format("{}", fmt::join(entries, "\n"));
  EXPECT_TRUE(entries.count(fmt::format("in {} TCP/8080 allow", db_.identity)))
      << "the port rule without L7 rules stays at L4";
  EXPECT_TRUE(entries.count("out 0 UDP/53 proxy 11003"));
  EXPECT_EQ(engine_->rulesJson()[0]["ingress"][0]["toPorts"][0]["rules"]["http"][0]["method"],
            "POST");

  // What the proxies get: the redirected ports' rules, with the peers they apply to.
  // Plus reserved:host's allow-localhost (any port, so also 80): whole, as at L4.
  ASSERT_EQ(p.l7.rules.size(), 3u);
  const L7PortRule* http = nullptr;
  bool host_all = false;
  for (const auto& rule : p.l7.rules) {
    if (rule.dir == Direction::kIngress && !rule.allow_all) http = &rule;
    if (rule.allow_all && rule.identities == std::vector<identity::NumericIdentity>{1})
      host_all = rule.proto == 0;
  }
  EXPECT_TRUE(host_all);
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->port, 80);
  EXPECT_EQ(http->bits, 16);
  EXPECT_EQ(http->identities, std::vector<identity::NumericIdentity>{db_.identity});
  EXPECT_FALSE(http->allow_all);
  ASSERT_EQ(http->http.size(), 1u);
  EXPECT_EQ(http->http[0].path, "/v1/request-landing");
}

TEST_F(RepositoryTest, AnL4RuleOnARedirectedPortIsAllowAllAtTheProxy) {
  EngineOptions proxied;
  proxied.l7 = L7Mode::kRedirect;
  proxied.proxy_ports = {11001, 11002, 11003};
  restart(proxied);
  auto r = engine_->import(R"(
- endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET}]
  - fromEndpoints: [{matchLabels: {"k8s:app": db}}]
- endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
)");
  ASSERT_TRUE(r.ok()) << r.error().message();
  auto p = resolve(web_);
  auto entries = describe(p.entries);
  EXPECT_TRUE(entries.count("in 0 TCP/80 proxy 11001"));
  EXPECT_TRUE(entries.count(fmt::format("in {} any allow", db_.identity)));
  bool db_all = false, any_get = false, port9000 = false;
  for (const auto& rule : p.l7.rules) {
    if (rule.allow_all && rule.identities == std::vector<identity::NumericIdentity>{db_.identity})
      db_all = rule.proto == 0;
    if (!rule.allow_all && rule.identities == std::vector<identity::NumericIdentity>{0})
      any_get = rule.port == 80;
    if (rule.port == 9000) port9000 = true;
  }
  EXPECT_TRUE(db_all) << "db may do anything on port 80, so the proxy must let it";
  EXPECT_TRUE(any_get);
  EXPECT_FALSE(port9000) << "a port no L7 rule touches is none of the proxy's business";
}

TEST_F(RepositoryTest, IdentityChangesCarryTheNewL7Policy) {
  EngineOptions proxied;
  proxied.l7 = L7Mode::kRedirect;
  proxied.proxy_ports = {11001, 11002, 11003};
  restart(proxied);
  ASSERT_TRUE(engine_->import(R"(
- endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:role": client}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{path: "/a.*"}]}
)").ok());
  ASSERT_TRUE(engine_->attach(web_).ok());
  auto client = allocate(pod({{"role", "client"}}));
  auto delta = engine_->consumeChanges(web_.endpoint_id);
  ASSERT_TRUE(delta.ok());
  ASSERT_EQ(delta->upserts.size(), 1u);
  EXPECT_EQ(describe(delta->upserts[0]), fmt::format("in {} TCP/80 proxy 11001", client));
  ASSERT_TRUE(delta->l7.has_value());
  // The client's HTTP rule, and reserved:host's allow-localhost (any port).
  ASSERT_EQ(delta->l7->rules.size(), 2u);
  bool client_http = false;
  for (const auto& rule : delta->l7->rules)
    if (!rule.allow_all) client_http = rule.identities == std::vector<identity::NumericIdentity>{client};
  EXPECT_TRUE(client_http);
}

}  // namespace
}  // namespace cilium::policy

namespace cilium::policy {
namespace {

TEST(NamedPortTableTest, ReferenceCountedAcrossPodsOfOneIdentity) {
  NamedPortTable t;
  labels::Labels web{labels::Label(labels::Source::kK8s, "app", "web")};
  labels::Labels db{labels::Label(labels::Source::kK8s, "app", "db")};
  NamedPort http{"http", 8080, Protocol::kTcp};
  EXPECT_TRUE(t.setPod("ns/web-1", web, {http}));   // first pod naming it: new
  EXPECT_FALSE(t.setPod("ns/web-2", web, {http}));  // second pod of the identity: same answer
  EXPECT_FALSE(t.setPod("ns/web-2", web, {http}));  // unchanged pod
  EXPECT_FALSE(t.removePod("ns/web-1"));            // still named by the other
  EXPECT_EQ(t.lookup(web, "http"), std::vector<NamedPort>{http});
  EXPECT_TRUE(t.lookup(db, "http").empty());  // another identity's pods do not name it
  // The pod's labels change: the port moves to the other identity.
  EXPECT_TRUE(t.setPod("ns/web-2", db, {http}));
  EXPECT_TRUE(t.lookup(web, "http").empty());
  EXPECT_EQ(t.lookup(db, "http"), std::vector<NamedPort>{http});
  EXPECT_TRUE(t.removePod("ns/web-2"));  // last one gone
  EXPECT_TRUE(t.lookup(db, "http").empty());
  EXPECT_FALSE(t.removePod("ns/web-2"));  // removing what is not there changes nothing
  EXPECT_TRUE(t.setPod("ns/dns", db, {{"dns", 53, Protocol::kUdp}, {"dns", 5353, Protocol::kUdp}}));
  EXPECT_EQ(t.lookup(db, "dns").size(), 2u);
  EXPECT_TRUE(t.lookup(db, "dn").empty());
  EXPECT_TRUE(t.setPod("ns/dns", db, {}));  // no named ports left
  EXPECT_TRUE(t.lookup(db, "dns").empty());
}

}  // namespace
}  // namespace cilium::policy
