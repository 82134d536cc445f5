// The policy feed: objects from the cluster state into the engine as Owner::kCluster; a bad
// object keeps its last good rules or fails closed; restored rules of vanished objects are
// pruned, REST-imported rules never; status reports.
#include "agent/policy/k8s_feed.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/yaml.h"
#include "agent/k8s/source.h"
#include "policy_test_util.h"

namespace cilium::policy {
namespace {

using testing::describe;
using testing::pod;
using S = std::set<std::string>;

// A CiliumNetworkPolicy as the manifests source or the API server stores it.
k8s::CiliumNetworkPolicy cnp(const std::string& yaml_text) {
  auto docs = yaml::toJson(yaml_text);
  EXPECT_TRUE(docs.ok() && docs->size() == 1);
  k8s::CiliumNetworkPolicy p;
  p.raw = docs->at(0);
  p.meta.name = p.raw["metadata"]["name"];
  p.meta.namespace_name = p.raw["metadata"].value("namespace", "default");
  return p;
}

constexpr const char* kRule1 = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1, namespace: default}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
)";

std::string withPort(const std::string& port) {
  std::string s = kRule1;
  s.replace(s.find("\"80\""), 4, port);
  return s;
}

class K8sFeedTest : public testing::EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    deathstar_ = subject(pod({{"class", "deathstar"}}), 1);
    empire_ = allocate(pod({{"org", "empire"}}));
    ASSERT_TRUE(engine_->attach(deathstar_).ok());
    stores_.cilium_network_policies.replace({});
    stores_.network_policies.replace({});
    stores_.cilium_clusterwide_network_policies.replace({});
  }
  void start() {
    target_ = std::make_unique<EngineTarget>(*engine_);
    auto f = K8sFeed::start(*target_, stores_,
                            [this](std::string_view kind, const k8s::ObjectMeta& m,
                                   const k8s::PolicyStatus& st) {
                              statuses_.push_back(fmt::format("{} {}: {} {}", kind, m.name,
                                                              st.ok ? "ok" : "rejected", st.error));
                            });
    ASSERT_TRUE(f.ok()) << f.error().toString();
    feed_ = std::move(*f);
  }
  // The deathstar's map state without what every ingress-enforcing endpoint has (the host's
  // allow-localhost entry, and egress not enforced).
  S deathstarEntries() {
    S e = entries(deathstar_);
    EXPECT_EQ(e.erase("in 1 any allow"), 1u);
    EXPECT_EQ(e.erase("out 0 any allow"), 1u);
    return e;
  }
  std::string port80() { return fmt::format("in {} TCP/80 allow", empire_); }

  k8s::Stores stores_;
  std::unique_ptr<EngineTarget> target_;
  std::unique_ptr<K8sFeed> feed_;
  std::vector<std::string> statuses_;
  Subject deathstar_;
  identity::NumericIdentity empire_ = 0;
};

TEST_F(K8sFeedTest, ObjectsGoInForceAsTheClusters) {
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  start();
  EXPECT_TRUE(resolve(deathstar_).ingress_enforced);
  EXPECT_EQ(deathstarEntries(), S{port80()});
  EXPECT_EQ(engine_->objects(Owner::kCluster),
            (std::vector<ObjectRef>{{"CiliumNetworkPolicy", "default", "rule1"}}));
  EXPECT_TRUE(engine_->objects(Owner::kApi).empty());
  EXPECT_EQ(statuses_, std::vector<std::string>{"CiliumNetworkPolicy rule1: ok "});

  stores_.cilium_network_policies.upsert(cnp(withPort("\"8080\"")));
  EXPECT_EQ(deathstarEntries(), S{fmt::format("in {} TCP/8080 allow", empire_)});
  stores_.cilium_network_policies.erase("default/rule1");
  EXPECT_FALSE(resolve(deathstar_).ingress_enforced);
  EXPECT_EQ(engine_->ruleCount(), 0u);
}

// An update the decoder refuses leaves the last good version in force.
TEST_F(K8sFeedTest, BadUpdateKeepsTheLastGoodVersion) {
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  start();
  stores_.cilium_network_policies.upsert(cnp(withPort("\"99999\"")));
  EXPECT_EQ(deathstarEntries(), S{port80()});
  auto rejected = feed_->rejected();
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_NE(rejected.begin()->second.find("spec.ingress[0].toPorts[0].ports[0].port"),
            std::string::npos)
      << rejected.begin()->second;
  EXPECT_NE(statuses_.back().find("(the last good version is enforced)"), std::string::npos)
      << statuses_.back();
  // Fixed: in force, and no longer rejected.
  stores_.cilium_network_policies.upsert(cnp(withPort("\"443\"")));
  EXPECT_EQ(deathstarEntries(), S{fmt::format("in {} TCP/443 allow", empire_)});
  EXPECT_TRUE(feed_->rejected().empty());
}

// A new object that cannot be decoded fails closed for the endpoints it selects: they deny in
// its directions until a valid version replaces the stand-in.
TEST_F(K8sFeedTest, NewBadObjectFailsClosed) {
  start();
  EXPECT_FALSE(resolve(deathstar_).ingress_enforced);
  stores_.cilium_network_policies.upsert(cnp(withPort("\"http-alt-not-a-port-name\"")));
  auto p = resolve(deathstar_);
  EXPECT_TRUE(p.ingress_enforced);
  EXPECT_FALSE(p.egress_enforced) << "the object names ingress only";
  EXPECT_EQ(deathstarEntries(), S{}) << "nothing is allowed in";
  auto rules = engine_->rulesJson();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["description"].get<std::string>().rfind("fail-closed: ", 0), 0u)
      << rules[0].dump();
  // Its valid version replaces the stand-in.
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  EXPECT_EQ(deathstarEntries(), S{port80()});
  EXPECT_EQ(engine_->ruleCount(), 1u);
}

// A bad object with deny rules cannot say what it denies: it denies everything in that direction,
// over the allows of other policies.
TEST_F(K8sFeedTest, NewBadDenyObjectDeniesTheDirection) {
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  start();
  std::string deny = R"(
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-ssh, namespace: default}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingressDeny:
  - fromEntities: [wrld]
    toPorts: [{ports: [{port: "22", protocol: TCP}]}]
)";
  auto before = resolve(deathstar_).entries;
  ASSERT_EQ(testing::datapathVerdict(before, empire_, POLICY_INGRESS, IPPROTO_TCP, 80),
            testing::Verdict::kAllow);
  stores_.cilium_network_policies.upsert(cnp(deny));
  auto after = resolve(deathstar_);
  EXPECT_EQ(testing::datapathVerdict(after.entries, empire_, POLICY_INGRESS, IPPROTO_TCP, 80),
            testing::Verdict::kDeny);
  EXPECT_FALSE(after.egress_enforced);
  EXPECT_EQ(feed_->rejected().size(), 1u);
}

// An endpointSelector that cannot be read: every pod of the object's namespace denies.
TEST_F(K8sFeedTest, UnreadableSelectorFailsClosedForTheNamespace) {
  auto other = subject(pod({{"app", "x"}}), 2);
  auto elsewhere = subject(pod({{"app", "x"}}, "kube-system"), 3);
  ASSERT_TRUE(engine_->attach(other).ok());
  start();
  std::string bad = kRule1;
  bad.replace(bad.find("{matchLabels: {class: deathstar}}"), 33, "{matchLabels: [1, 2]}");
  stores_.cilium_network_policies.upsert(cnp(bad));
  EXPECT_TRUE(resolve(deathstar_).ingress_enforced);
  EXPECT_TRUE(resolve(other).ingress_enforced);
  EXPECT_FALSE(resolve(elsewhere).ingress_enforced) << "another namespace is not affected";
}

// After a restart the engine holds what was in force (restored from the state file): an object
// that is invalid at start keeps it, vanished objects are pruned, and the REST API's rules stay
// even when they carry Kubernetes labels.
TEST_F(K8sFeedTest, RestartKeepsWhatWasInForce) {
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  start();
  std::string gone = kRule1;
  gone.replace(gone.find("name: rule1"), 11, "name: rule2");
  stores_.cilium_network_policies.upsert(cnp(gone));
  // Imported through the REST API with the labels a Kubernetes object would have.
  auto api = engine_->import(R"([{"endpointSelector": {"matchLabels": {"class": "deathstar"}},
      "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"org": "empire"}}],
                       "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}],
      "labels": [{"key": "io.cilium.k8s.policy.derived-from", "value": "CiliumNetworkPolicy",
                  "source": "k8s"},
                 {"key": "io.cilium.k8s.policy.name", "value": "ssh", "source": "k8s"},
                 {"key": "io.cilium.k8s.policy.namespace", "value": "default", "source": "k8s"}]}])");
  ASSERT_TRUE(api.ok()) << api.error().toString();
  auto state = engine_->stateJson();
  feed_.reset();

  // The new agent: same state, and the sources now say rule1 is invalid and rule2 is gone.
  restart({});
  ASSERT_TRUE(engine_->attach(deathstar_).ok());
  ASSERT_TRUE(engine_->restoreState(state).ok());
  EXPECT_EQ(engine_->ruleCount(), 3u);
  k8s::Stores fresh;
  fresh.cilium_network_policies.replace({cnp(withPort("\"99999\""))});
  fresh.network_policies.replace({});
  fresh.cilium_clusterwide_network_policies.replace({});
  EngineTarget target(*engine_);
  auto f = K8sFeed::start(target, fresh);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(engine_->objects(Owner::kCluster),
            (std::vector<ObjectRef>{{"CiliumNetworkPolicy", "default", "rule1"}}));
  EXPECT_EQ(deathstarEntries(), S({port80(), fmt::format("in {} TCP/22 deny", empire_)}));
  EXPECT_EQ(engine_->objects(Owner::kApi),
            (std::vector<ObjectRef>{{"CiliumNetworkPolicy", "default", "ssh"}}));
}

// The REST API removes only what it imported; the cluster's rules are removed at their source.
TEST_F(K8sFeedTest, RestDeleteLeavesTheClustersRules) {
  stores_.cilium_network_policies.upsert(cnp(kRule1));
  start();
  auto d = engine_->deleteByLabels({}, Owner::kApi);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(d.error().message().find("owned by the cluster source"), std::string::npos)
      << d.error().message();
  EXPECT_EQ(deathstarEntries(), S{port80()});
}

TEST(PolicyStateTest, OlderRuleArraysAreRead) {
  auto ids = identity::Allocator::open("");
  ASSERT_TRUE(ids.ok());
  Engine engine(**ids);
  auto state = nlohmann::json::parse(R"([
    {"endpointSelector": {}, "labels": [{"key": "a", "value": "b", "source": "unspec"}]},
    {"endpointSelector": {}, "labels": [
      {"key": "io.cilium.k8s.policy.derived-from", "value": "NetworkPolicy", "source": "k8s"},
      {"key": "io.cilium.k8s.policy.name", "value": "n", "source": "k8s"},
      {"key": "io.cilium.k8s.policy.namespace", "value": "default", "source": "k8s"}]}])");
  auto r = engine.restoreState(state);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->added, 2u);
  EXPECT_EQ(engine.objects(Owner::kCluster),
            (std::vector<ObjectRef>{{"NetworkPolicy", "default", "n"}}));
  auto bad = engine.restoreState(nlohmann::json::parse(R"({"rules": [{"owner": "me", "rule": {}}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(engine.ruleCount(), 2u) << "a bad state changes nothing";
}

}  // namespace
}  // namespace cilium::policy
