// The control plane end to end without root: a manifests directory -> stores -> the modules'
// feeds -> identities -> policy -> endpoint manager -> (fake) maps, driven through the REST
// router as cilium-cni and the user would: pods added, a policy written, a pod relabeled.
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/api/router.h"
#include "agent/daemon/control_plane.h"
#include "agent/endpoint/k8s_feed.h"
#include "agent/endpoint/manager.h"
#include "agent/k8s/manifests.h"
#include "agent/policy/k8s_feed.h"
#include "agent/policy/policy.h"
#include "tests/fakes/fake_datapath.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::daemon {
namespace {

using namespace std::chrono_literals;
using testing::eventually;

constexpr const char* kPods = R"(apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: x}]}
)";

constexpr const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-client, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: http}]}]
)";

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifests_ = dir_.path() + "/manifests";
    std::filesystem::create_directories(manifests_);
    write("pods.yaml", kPods);

    ControlPlaneOptions o;
    o.pin_dir = dir_.path() + "/pins";
    o.state_dir = dir_.path() + "/state";
    o.router_ipv4 = "10.200.0.1";
    o.host_device = false;
    o.claim_address = [](const IpAddr&, const std::string&) { return okStatus(); };
    auto fake = std::make_unique<testing::FakeDatapath>();
    dp_ = fake.get();
    auto cp = ControlPlane::start(o, router_, std::move(fake));
    ASSERT_TRUE(cp.ok()) << cp.error().toString();
    cp_ = std::move(*cp);

    source_ = std::make_unique<k8s::ManifestSource>(manifests_,
                                                    k8s::ManifestOptions{.settle = 10ms});
    ASSERT_TRUE(source_->start().ok());
    auto eps = endpoint::K8sFeed::start(cp_->endpoints(), cp_->policy(), cp_->namedPorts(),
                                        *source_, endpoint::K8sFeedOptions{});
    ASSERT_TRUE(eps.ok()) << eps.error().toString();
    endpoint_feed_ = std::move(*eps);
    auto pols = policy::K8sFeed::start(cp_->clusterPolicy(), source_->stores());
    ASSERT_TRUE(pols.ok()) << pols.error().toString();
    policy_feed_ = std::move(*pols);
  }
  void TearDown() override {
    policy_feed_.reset();
    endpoint_feed_.reset();
    source_.reset();
    cp_.reset();
  }

  void write(const std::string& name, const std::string& text) {
    std::string tmp = manifests_ + "/." + name;
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, manifests_ + "/" + name);
  }

  // What cilium-cni sends for a pod; the endpoint's id.
  uint16_t addPod(const std::string& name, const std::string& ip, int ifindex) {
    {
      std::lock_guard l(dp_->fake_devices.mu);
      dp_->fake_devices.links.insert(ifindex);
    }
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + name;
    req.interface_name = "lxc" + std::to_string(ifindex);
    req.interface_index = ifindex;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = name;
    auto res = router_.dispatch("PUT", "/v1/endpoint/container-id:ctr-" + name,
                                {{"content-type", "application/json"}}, api::encode(req).dump());
    EXPECT_EQ(res.status, 201) << res.body.dump();
    return res.body.value("id", 0);
  }

  uint32_t identityOf(uint16_t id) {
    endpoint::Ref ref;
    ref.id = id;
    auto ep = cp_->endpoints().get(ref);
    return ep ? ep->identity : 0;
  }

  // The endpoint's ingress map entries: (identity, port) pairs allowed; port 0 = any.
  std::set<std::pair<uint32_t, uint16_t>> ingress(uint16_t id) {
    std::set<std::pair<uint32_t, uint16_t>> out;
    auto d = dp_->fake_maps.policy.dump(id);
    if (!d.ok()) return out;
    for (const auto& e : *d)
      if (!e.key.egress && !(e.value.flags & POLICY_F_DENY))
        out.insert({e.key.sec_label, e.key.prefixlen > POLICY_PREFIX_ANY_PORT ? ntohs(e.key.dport) : 0});
    return out;
  }

  ::cilium::testing::TempDir dir_;
  std::string manifests_;
  api::Router router_;
  testing::FakeDatapath* dp_ = nullptr;
  std::unique_ptr<ControlPlane> cp_;
  std::unique_ptr<k8s::ManifestSource> source_;
  std::unique_ptr<endpoint::K8sFeed> endpoint_feed_;
  std::unique_ptr<policy::K8sFeed> policy_feed_;
};

TEST_F(ControlPlaneTest, PodsPolicyAndRelabelReachTheMaps) {
  uint16_t web = addPod("web", "10.200.0.10", 10);
  uint16_t client = addPod("client", "10.200.0.11", 11);
  ASSERT_NE(web, 0);
  ASSERT_NE(client, 0);
  uint32_t client_id = identityOf(client);
  ASSERT_NE(client_id, 0u);
  // The endpoints are in the maps: endpoint entries, ipcache, programs, routes.
  EXPECT_TRUE(dp_->fake_maps.endpoints.lookup(datapath::endpointKeyV4(htonl(0x0ac8000a)))->has_value());
  auto cached = dp_->fake_maps.ipcache.lookup(datapath::ipcacheKeyV4(htonl(0x0ac8000b), 32));
  ASSERT_TRUE(cached.ok() && cached->has_value());
  EXPECT_EQ((*cached)->sec_identity, client_id);
  EXPECT_TRUE(dp_->fake_devices.attached.count(10));
  // No policy yet: the web pod admits anyone.
  EXPECT_TRUE(ingress(web).count({0, 0}));

  // A policy file: only the client, on the port the web pod names "http".
  write("policy.yaml", kPolicy);
  ASSERT_TRUE(eventually([&] {
    auto in = ingress(web);
    return in.count({client_id, 8080}) && !in.count({0, 0});
  }, 3s)) << "web's map never took the policy";

  // The client pod takes another label: a new identity, no longer admitted.
  std::string relabeled = kPods;
  relabeled.replace(relabeled.find("labels: {app: client}"), 21, "labels: {app: other}");
  write("pods.yaml", relabeled);
  ASSERT_TRUE(eventually([&] { return identityOf(client) != client_id; }, 3s));
  uint32_t other_id = identityOf(client);
  ASSERT_TRUE(eventually([&] {
    auto in = ingress(web);
    return !in.count({client_id, 8080}) && !in.count({other_id, 8080});
  }, 3s));
  auto recached = dp_->fake_maps.ipcache.lookup(datapath::ipcacheKeyV4(htonl(0x0ac8000b), 32));
  ASSERT_TRUE(recached.ok() && recached->has_value());
  EXPECT_EQ((*recached)->sec_identity, other_id);

  // And back: admitted again.
  write("pods.yaml", kPods);
  ASSERT_TRUE(eventually([&] { return ingress(web).count({identityOf(client), 8080}) != 0; }, 3s));
}

// The REST API's policy and the cluster's live side by side; a REST delete leaves the cluster's.
TEST_F(ControlPlaneTest, RestPolicyRoutesGoThroughThePolicyModule) {
  uint16_t web = addPod("web", "10.200.0.10", 10);
  write("policy.yaml", kPolicy);
  ASSERT_TRUE(eventually([&] { return !ingress(web).count({0, 0}); }, 3s));
  auto put = router_.dispatch("PUT", "/v1/policy", {{"content-type", "application/json"}},
                              R"([{"endpointSelector": {"matchLabels": {"app": "web"}},
                                   "ingress": [{"fromEntities": ["world"]}]}])");
  ASSERT_EQ(put.status, 200) << put.body.dump();
  auto listed = router_.dispatch("GET", "/v1/policy", {}, "");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(nlohmann::json::parse(listed.body["policy"].get<std::string>()).size(), 2u);
  auto del = router_.dispatch("DELETE", "/v1/policy", {}, "");
  ASSERT_EQ(del.status, 200) << del.body.dump();
  auto after = router_.dispatch("GET", "/v1/policy", {}, "");
  EXPECT_EQ(nlohmann::json::parse(after.body["policy"].get<std::string>()).size(), 1u)
      << "the cluster's rule stays";
  auto again = router_.dispatch("DELETE", "/v1/policy", {}, "");
  EXPECT_EQ(again.status, 404) << again.body.dump();
  auto id = router_.dispatch("GET", "/v1/identity/world", {}, "");
  EXPECT_EQ(id.status, 200) << id.body.dump();
  auto maps = router_.dispatch("GET", "/v1/map/cilium_lxc", {}, "");
  EXPECT_EQ(maps.status, 200) << maps.body.dump();
  EXPECT_EQ(maps.body["cache"].size(), 2u) << "the router's address and the web pod";
}

}  // namespace
}  // namespace cilium::daemon

namespace cilium::daemon {
namespace {

// After a restart, the ipcache entries read back from the kernel (other nodes' pods) stay until
// every cluster feed has written what it knows, so the datapath keeps reaching remote pods in
// between; without feeds they go at the end of the start.
// Dual stack: the node's IPv6 router address is the host as the IPv4 one is (cilium_lxc marks
// it so pods' packets to it go up the stack; the ipcache says host), and a router address of the
// wrong family is refused at start.
TEST(ControlPlaneDualStackTest, BothRouterAddressesAreTheHost) {
  ::cilium::testing::TempDir dir;
  api::Router router;
  ControlPlaneOptions o;
  o.pin_dir = dir.path() + "/pins";
  o.state_dir = dir.path() + "/state";
  o.router_ipv4 = "10.200.0.1";
  o.router_ipv6 = "fd00:10:200::1";
  o.host_device = false;
  o.claim_address = [](const IpAddr&, const std::string&) { return okStatus(); };
  auto fake = std::make_unique<testing::FakeDatapath>();
  testing::FakeDatapath* dp = fake.get();
  auto cp = ControlPlane::start(o, router, std::move(fake));
  ASSERT_TRUE(cp.ok()) << cp.error().toString();
  for (const char* text : {"10.200.0.1", "fd00:10:200::1"}) {
    IpAddr ip = *IpAddr::parse(text);
    auto ep = dp->fake_maps.endpoints.lookup(datapath::endpointKey(ip));
    ASSERT_TRUE(ep.ok() && ep->has_value()) << text;
    EXPECT_TRUE((*ep)->flags & ENDPOINT_F_HOST) << text;
    EXPECT_EQ((*ep)->sec_id, identity::kHost) << text;
    auto ic = dp->fake_maps.ipcache.lookup(datapath::ipcacheKey(IpPrefix::host(ip)));
    ASSERT_TRUE(ic.ok() && ic->has_value()) << text;
    EXPECT_EQ((*ic)->sec_identity, identity::kHost) << text;
  }
  cp->reset();

  ::cilium::testing::TempDir dir2;
  api::Router router2;
  o.pin_dir = dir2.path() + "/pins";
  o.state_dir = dir2.path() + "/state";
  o.router_ipv6 = "10.200.0.2";
  auto bad = ControlPlane::start(o, router2, std::make_unique<testing::FakeDatapath>());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not IPv6"), std::string::npos) << bad.error().toString();
}

TEST(ControlPlaneRestartTest, RestoredIpcacheEntriesStayUntilTheFeedsHaveSynced) {
  for (bool with_feeds : {true, false}) {
    ::cilium::testing::TempDir dir;
    api::Router router;
    auto fake = std::make_unique<testing::FakeDatapath>();
    testing::FakeDatapath* dp = fake.get();
    const auto key = datapath::ipcacheKeyV4(htonl(0x0ac90005), 32);  // 10.201.0.5
    remote_endpoint_info remote{};
    remote.sec_identity = 300;
    remote.tunnel_endpoint.ip4 = htonl(0xac1e0002);  // 172.30.0.2
    remote.flags = IPCACHE_F_HAS_TUNNEL_EP;
    ASSERT_TRUE(dp->fake_maps.ipcache.update(key, remote).ok());
    ControlPlaneOptions o;
    o.pin_dir = dir.path() + "/pins";
    o.state_dir = dir.path() + "/state";
    o.router_ipv4 = "10.200.0.1";
    o.host_device = false;
    o.claim_address = [](const IpAddr&, const std::string&) { return okStatus(); };
    if (with_feeds) o.ipcache_feeds = {"k8s", "kvstore"};
    auto present = [&] {
      auto v = dp->fake_maps.ipcache.lookup(key);
      return v.ok() && v->has_value();
    };
    auto cp = ControlPlane::start(o, router, std::move(fake));
    ASSERT_TRUE(cp.ok()) << cp.error().toString();
    if (!with_feeds) {
      EXPECT_FALSE(present()) << "no feed: withdrawn at start";
      continue;
    }
    auto kept = dp->fake_maps.ipcache.lookup(key);
    ASSERT_TRUE(kept.ok() && kept->has_value()) << "withdrawn before any feed has synced";
    EXPECT_EQ((*kept)->sec_identity, 300u);
    EXPECT_EQ((*kept)->flags, IPCACHE_F_HAS_TUNNEL_EP);
    (*cp)->ipcacheFeedSynced("k8s");
    (*cp)->ipcacheFeedSynced("unknown");
    EXPECT_TRUE(present()) << "kvstore has not synced yet";
    (*cp)->ipcacheFeedSynced("kvstore");
    EXPECT_FALSE(present()) << "every feed synced: withdrawn";
  }
}

}  // namespace
}  // namespace cilium::daemon
