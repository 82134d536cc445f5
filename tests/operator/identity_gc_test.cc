// Identity GC against the fake apiserver with a fake clock: identities no CiliumEndpoint refers
// to are deleted once unused for the heartbeat timeout, never earlier, never while referred to.
#include "operator/identity_gc.h"

#include <gtest/gtest.h>

#include "agent/k8s/source.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"

namespace cilium::op {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const k8s::ResourceInfo kIds = k8s::Resource<k8s::CiliumIdentity>::info();
const k8s::ResourceInfo kCeps = k8s::Resource<k8s::CiliumEndpoint>::info();

json identity(int id, const std::string& app) {
  return {{"apiVersion", "cilium.io/v2"},
          {"kind", "CiliumIdentity"},
          {"metadata", {{"name", std::to_string(id)}}},
          {"security-labels", {{"k8s:app", app}}}};
}

json endpoint(const std::string& name, int id) {
  return {{"apiVersion", "cilium.io/v2"},
          {"kind", "CiliumEndpoint"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"status", {{"id", 1}, {"identity", {{"id", id}}}}}};
}

TEST(IdentityGcTest, UnusedIdentitiesGoAfterTheTimeoutOnly) {
  testing::FakeApiServer srv;
  ASSERT_TRUE(srv.start().ok());
  for (int i : {300, 301, 302}) ASSERT_TRUE(srv.create(kIds, identity(i, std::to_string(i))).ok());
  ASSERT_TRUE(srv.create(kCeps, endpoint("web", 300)).ok());
  k8s::ClientConfig cc;
  cc.server = srv.url();
  cc.qps = 0;
  auto client = std::move(*k8s::Client::create(cc));
  k8s::ApiSource source(*client,
                        k8s::ApiSourceOptions{{}, {"CiliumIdentity", "CiliumEndpoint"}, {}});
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(source.waitForSync(10s));
  auto t = std::chrono::steady_clock::now();
  IdentityGcOptions o;
  o.heartbeat_timeout = 30min;
  o.now = [&t] { return t; };
  IdentityGc gc(*client, source.stores().cilium_identities, source.stores().cilium_endpoints, o);

  auto pass = gc.runOnce();
  EXPECT_EQ(pass.alive, 1u);
  EXPECT_EQ(pass.unused, 2u);
  EXPECT_EQ(pass.deleted, 0u);
  t += 29min;
  EXPECT_EQ(gc.runOnce().deleted, 0u) << "not before the timeout";
  // 301 is used again before its timeout: it stays, and its clock starts over when unused.
  ASSERT_TRUE(srv.create(kCeps, endpoint("db", 301)).ok());
  ASSERT_TRUE(testing::eventually([&] { return source.stores().cilium_endpoints.size() == 2; }));
  t += 2min;
  pass = gc.runOnce();
  EXPECT_EQ(pass.deleted, 1u);
  EXPECT_EQ(pass.alive, 2u);
  EXPECT_FALSE(srv.get(kIds, "", "302").has_value());
  EXPECT_TRUE(srv.get(kIds, "", "300").has_value());
  EXPECT_TRUE(srv.get(kIds, "", "301").has_value());
  ASSERT_TRUE(srv.remove(kCeps, "default", "db").ok());
  ASSERT_TRUE(testing::eventually([&] { return source.stores().cilium_endpoints.size() == 1; }));
  EXPECT_EQ(gc.runOnce().deleted, 0u) << "301 just became unused";
  t += 31min;
  EXPECT_EQ(gc.runOnce().deleted, 1u);
  EXPECT_FALSE(srv.get(kIds, "", "301").has_value());
  EXPECT_TRUE(srv.get(kIds, "", "300").has_value()) << "referred to all along";
  source.stop();
}

}  // namespace
}  // namespace cilium::op
