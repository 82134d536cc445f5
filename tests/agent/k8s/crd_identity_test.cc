// CRD identity allocation and the CiliumEndpoint / policy status writers against the fake
// apiserver.
#include "agent/k8s/crd_identity.h"

#include <thread>

#include <gtest/gtest.h>

#include "agent/k8s/publisher.h"
#include "agent/k8s/reflector.h"
#include "tests/fakes/fake_apiserver.h"

namespace cilium::k8s {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class CrdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.start().ok());
    ClientConfig cfg;
    cfg.server = server.url();
    cfg.qps = 0;
    client = std::move(*Client::create(cfg));
  }
  testing::FakeApiServer server;
  std::unique_ptr<Client> client;
};

labels::Labels web() {
  return *labels::Labels::parse({"k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"});
}

TEST_F(CrdTest, SecurityLabelsRoundTrip) {
  auto m = securityLabels(web());
  EXPECT_EQ(m.at("k8s:app"), "web");
  auto back = labelsOfSecurityLabels(m);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, web());
  EXPECT_FALSE(labelsOfSecurityLabels({{"nosuchsource:x", "y"}}).ok());
}

TEST_F(CrdTest, AllocatesOnceAndReusesTheClusterIdentity) {
  Store<CiliumIdentity> cache;
  cache.markSynced();
  CrdIdentityBackend backend(*client, cache);
  auto id = backend.acquire(web(), std::nullopt);
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_GE(*id, identity::kMinCluster);
  auto obj = server.get(Resource<CiliumIdentity>::info(), "", std::to_string(*id));
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ((*obj)["security-labels"]["k8s:app"], "web");
  // Again, with an empty cache: the create answers 409 and the object is read back.
  auto again = backend.acquire(web(), std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *id);
  EXPECT_EQ(server.count(Resource<CiliumIdentity>::info()), 1u);
  auto other = backend.acquire(*labels::Labels::parse({"k8s:app=db"}), std::nullopt);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *id);
}

TEST_F(CrdTest, SlotTakenByOtherLabelsProbesTheNextNumber) {
  Store<CiliumIdentity> cache;
  CrdIdentityBackend probe(*client, cache);
  auto first = probe.acquire(web(), std::nullopt);
  ASSERT_TRUE(first.ok());
  // Someone else holds that number with other labels.
  ASSERT_TRUE(server.remove(Resource<CiliumIdentity>::info(), "", std::to_string(*first)).ok());
  CiliumIdentity squatter;
  squatter.meta.name = std::to_string(*first);
  squatter.security_labels = {{"k8s:app", "squatter"}};
  ASSERT_TRUE(server.create(Resource<CiliumIdentity>::info(), toJson(squatter)).ok());
  auto second = probe.acquire(web(), std::nullopt);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*second, *first);
}

TEST_F(CrdTest, TwoAgentsAllocatingTheSameLabelsAtOnceEndWithOneIdentity) {
  // Several label sets, each allocated by 4 "agents" (own clients and caches) at the same time.
  std::vector<labels::Labels> sets;
  for (int i = 0; i < 8; i++)
    sets.push_back(*labels::Labels::parse({fmt::format("k8s:app=a{}", i)}));
  constexpr int kAgents = 4;
  std::vector<std::vector<identity::NumericIdentity>> got(kAgents);
  std::vector<std::thread> threads;
  for (int a = 0; a < kAgents; a++) {
    threads.emplace_back([&, a] {
      ClientConfig cfg;
      cfg.server = server.url();
      cfg.qps = 0;
      auto c = Client::create(cfg);
      Store<CiliumIdentity> cache;
      Informer<CiliumIdentity> inf(**c, cache);
      inf.start();
      CrdIdentityBackend backend(**c, cache);
      for (const auto& l : sets) {
        auto id = backend.acquire(l, std::nullopt);
        got[a].push_back(id.ok() ? *id : 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int a = 1; a < kAgents; a++) EXPECT_EQ(got[a], got[0]);
  EXPECT_EQ(server.count(Resource<CiliumIdentity>::info()), sets.size());
  std::set<identity::NumericIdentity> distinct(got[0].begin(), got[0].end());
  EXPECT_EQ(distinct.size(), sets.size());
  EXPECT_EQ(distinct.count(0), 0u);
}

TEST_F(CrdTest, BackendServesTheAllocator) {
  Store<CiliumIdentity> cache;
  Informer<CiliumIdentity> inf(*client, cache);
  inf.start();
  ASSERT_TRUE(cache.waitForSync(5s));
  auto local = identity::LocalBackend::open("", identity::kMinLocal, identity::kMaxLocal, "x");
  ASSERT_TRUE(local.ok());
  auto alloc = identity::Allocator::create(std::make_unique<CrdIdentityBackend>(*client, cache),
                                           std::move(*local));
  ASSERT_TRUE(alloc.ok()) << alloc.error().message();
  auto id = (*alloc)->allocate(web());
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_TRUE(server.get(Resource<CiliumIdentity>::info(), "", std::to_string(id->id)).has_value());
}

TEST_F(CrdTest, CiliumEndpointPublishUpdateRemove) {
  CiliumEndpointPublisher pub(*client);
  EndpointState s;
  s.pod_namespace = "shop";
  s.pod_name = "web-1";
  s.endpoint_id = 42;
  s.identity = 300;
  s.identity_labels = {"k8s:app=web"};
  s.ipv4 = "10.0.0.5";
  ASSERT_TRUE(pub.publish(s).ok());
  auto info = Resource<CiliumEndpoint>::info();
  auto obj = server.get(info, "shop", "web-1");
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ((*obj)["status"]["id"], 42);
  EXPECT_EQ((*obj)["status"]["networking"]["addressing"][0]["ipv4"], "10.0.0.5");
  std::string rv = server.resourceVersion();
  ASSERT_TRUE(pub.publish(s).ok());
  EXPECT_EQ(server.resourceVersion(), rv) << "unchanged state: no write";
  s.ingress_enforcing = true;
  s.identity = 301;
  ASSERT_TRUE(pub.publish(s).ok());
  obj = server.get(info, "shop", "web-1");
  EXPECT_EQ((*obj)["status"]["identity"]["id"], 301);
  EXPECT_EQ((*obj)["status"]["policy"]["ingress"]["enforcing"], true);
  ASSERT_TRUE(pub.remove("shop", "web-1").ok());
  EXPECT_FALSE(server.get(info, "shop", "web-1").has_value());
  EXPECT_TRUE(pub.remove("shop", "web-1").ok()) << "absent is fine";
  EXPECT_FALSE(pub.publish(EndpointState{}).ok());
}

TEST_F(CrdTest, PolicyStatusPerNode) {
  auto info = Resource<CiliumNetworkPolicy>::info();
  ASSERT_TRUE(server
                  .create(info, {{"metadata", {{"name", "p"}, {"namespace", "a"}}},
                                 {"spec", {{"endpointSelector", json::object()}}}})
                  .ok());
  PolicyStatusWriter n1(*client, "node-1"), n2(*client, "node-2");
  ASSERT_TRUE(n1.write("CiliumNetworkPolicy", "a", "p", {true, "", 7}).ok());
  ASSERT_TRUE(n2.write("CiliumNetworkPolicy", "a", "p", {false, "L7 rules not supported", 3}).ok());
  auto obj = server.get(info, "a", "p");
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ((*obj)["status"]["nodes"]["node-1"]["enforcing"], true);
  EXPECT_EQ((*obj)["status"]["nodes"]["node-1"]["localPolicyRevision"], 7);
  EXPECT_EQ((*obj)["status"]["nodes"]["node-2"]["ok"], false);
  EXPECT_EQ((*obj)["status"]["nodes"]["node-2"]["error"], "L7 rules not supported");
  EXPECT_EQ((*obj)["spec"], json::parse(R"({"endpointSelector": {}})")) << "spec untouched";
  auto gone = n1.write("CiliumNetworkPolicy", "a", "nope", {});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(n1.write("NetworkPolicy", "a", "p", {}).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cilium::k8s
