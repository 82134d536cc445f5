// The GC of CiliumEndpoints without a Pod and CiliumNodes without a Node against the fake
// apiserver: an orphan is deleted on the second pass that finds it, never on the first; an
// owner that shows up in between saves it; a cluster without any Node is not judged. Also the
// operator's /healthz and metrics.
#include "operator/orphan_gc.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "agent/k8s/source.h"
#include "operator/operator.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"

namespace cilium::op {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const k8s::ResourceInfo kCeps = k8s::Resource<k8s::CiliumEndpoint>::info();
const k8s::ResourceInfo kPods = k8s::Resource<k8s::Pod>::info();
const k8s::ResourceInfo kNodes = k8s::Resource<k8s::Node>::info();
const k8s::ResourceInfo kCiliumNodes = k8s::Resource<k8s::CiliumNode>::info();

json pod(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"nodeName", "n1"}}}};
}
json endpoint(const std::string& name) {
  return {{"apiVersion", "cilium.io/v2"},
          {"kind", "CiliumEndpoint"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"status", {{"id", 1}, {"identity", {{"id", 300}}}}}};
}
json node(const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
}
json ciliumNode(const std::string& name) {
  return {{"apiVersion", "cilium.io/v2"}, {"kind", "CiliumNode"}, {"metadata", {{"name", name}}}};
}

class OrphanGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(srv_.start().ok());
    k8s::ClientConfig cc;
    cc.server = srv_.url();
    cc.qps = 0;
    client_ = std::move(*k8s::Client::create(cc));
  }
  void TearDown() override {
    if (source_) source_->stop();
  }
  void watch(std::vector<std::string> kinds) {
    source_ = std::make_unique<k8s::ApiSource>(*client_,
                                               k8s::ApiSourceOptions{{}, std::move(kinds), {}});
    ASSERT_TRUE(source_->start().ok());
    ASSERT_TRUE(source_->waitForSync(10s));
  }

  testing::FakeApiServer srv_;
  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<k8s::ApiSource> source_;
};

TEST_F(OrphanGcTest, EndpointWithoutPodGoesOnTheSecondPass) {
  for (const auto* n : {"alive", "late"}) ASSERT_TRUE(srv_.create(kPods, pod(n)).ok());
  ASSERT_TRUE(srv_.remove(kPods, "default", "late").ok());
  for (const auto* n : {"alive", "gone", "late"}) ASSERT_TRUE(srv_.create(kCeps, endpoint(n)).ok());
  watch({"CiliumEndpoint", "Pod"});
  auto& st = source_->stores();
  ASSERT_TRUE(testing::eventually([&] { return st.cilium_endpoints.size() == 3; }));
  size_t deleted_ok = 0;
  OrphanGc gc(*client_, kCeps, "CiliumEndpoint", endpointOrphans(st.cilium_endpoints, st.pods),
              1h, [&](bool ok) { deleted_ok += ok; });

  auto first = gc.runOnce();
  EXPECT_EQ(first.marked, 2u);
  EXPECT_EQ(first.deleted, 0u) << "never on the first pass";
  EXPECT_TRUE(srv_.get(kCeps, "default", "gone"));
  // The late pod shows up before the next pass: its endpoint stays.
  ASSERT_TRUE(srv_.create(kPods, pod("late")).ok());
  ASSERT_TRUE(testing::eventually([&] { return st.pods.get("default", "late").has_value(); }));
  auto second = gc.runOnce();
  EXPECT_EQ(second.deleted, 1u);
  EXPECT_EQ(deleted_ok, 1u);
  EXPECT_FALSE(srv_.get(kCeps, "default", "gone"));
  EXPECT_TRUE(srv_.get(kCeps, "default", "late"));
  EXPECT_TRUE(srv_.get(kCeps, "default", "alive"));
  ASSERT_TRUE(testing::eventually([&] { return st.cilium_endpoints.size() == 2; }));
  EXPECT_EQ(gc.runOnce().marked, 0u);
}

TEST_F(OrphanGcTest, CiliumNodeWithoutNodeGoesOnTheSecondPassButNotWithoutAnyNode) {
  for (const auto* n : {"n1", "n2"}) ASSERT_TRUE(srv_.create(kCiliumNodes, ciliumNode(n)).ok());
  watch({"CiliumNode", "Node"});
  auto& st = source_->stores();
  OrphanGc gc(*client_, kCiliumNodes, "CiliumNode", nodeOrphans(st.cilium_nodes, st.nodes), 1h);
  // No Node objects at all (a local cluster keeps only CiliumNodes): nothing is judged.
  for (int i = 0; i < 3; i++) EXPECT_TRUE(gc.runOnce().skipped);
  EXPECT_TRUE(srv_.get(kCiliumNodes, "", "n1"));
  EXPECT_TRUE(srv_.get(kCiliumNodes, "", "n2"));

  ASSERT_TRUE(srv_.create(kNodes, node("n1")).ok());
  ASSERT_TRUE(testing::eventually([&] { return st.nodes.size() == 1; }));
  auto first = gc.runOnce();
  EXPECT_FALSE(first.skipped);
  EXPECT_EQ(first.marked, 1u);
  EXPECT_EQ(first.deleted, 0u);
  EXPECT_EQ(gc.runOnce().deleted, 1u);
  EXPECT_FALSE(srv_.get(kCiliumNodes, "", "n2"));
  EXPECT_TRUE(srv_.get(kCiliumNodes, "", "n1"));
}

// /healthz says whether the API server answers; /metrics has the operator's families.
TEST(OperatorServerTest, HealthzFollowsTheApiServerAndMetricsAreServed) {
  testing::FakeApiServer srv;
  ASSERT_TRUE(srv.start().ok());
  Config c;
  c.leader_election = false;
  c.ipam = "kubernetes";
  c.operator_api_serve_addr = "127.0.0.1:0";
  k8s::ClientConfig cc;
  cc.server = srv.url();
  cc.qps = 0;
  cc.timeout = std::chrono::seconds(2);
  auto op = Operator::start(c, cc);
  ASSERT_TRUE(op.ok()) << op.error().message();
  ASSERT_GT((*op)->apiPort(), 0);
  httplib::Client http("127.0.0.1", (*op)->apiPort());
  auto h = http.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok\n");
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("cilium_operator_identity_gc_entries"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("cilium_operator_endpoint_gc_objects"), std::string::npos) << m->body;
  srv.stop();
  h = http.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 500);
  EXPECT_NE(h->body.find("API server"), std::string::npos) << h->body;
}

}  // namespace
}  // namespace cilium::op
