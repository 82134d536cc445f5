// The endpoint manager against fake maps and fake devices: creation, the id forms, REST errors,
// deletion, regeneration on policy and identity changes, persistence and restore.
#include "agent/endpoint/manager.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/datapath/fake_maps.h"
#include "agent/endpoint/api.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::endpoint {
namespace {

using namespace std::chrono_literals;

class FakeDevices final : public Devices {
 public:
  Status attach(int ifindex) override {
    if (on_attach) on_attach(ifindex);
    std::lock_guard l(mu);
    if (fail_attach) return Error(ErrorCode::kInternal, "attach failed");
    attached.insert(ifindex);
    return okStatus();
  }
  Status detach(int ifindex) override {
    std::lock_guard l(mu);
    attached.erase(ifindex);
    return okStatus();
  }
  Status addRoute(const IpAddr& ip, int ifindex) override {
    std::lock_guard l(mu);
    routes[ip] = ifindex;
    return okStatus();
  }
  Status removeRoute(const IpAddr& ip, int) override {
    std::lock_guard l(mu);
    routes.erase(ip);
    return okStatus();
  }
  Status deleteLink(int ifindex) override {
    std::lock_guard l(mu);
    links.erase(ifindex);
    return okStatus();
  }
  bool linkExists(int ifindex, const std::string&) override {
    std::lock_guard l(mu);
    return links.count(ifindex) != 0;
  }
  std::vector<int> attachedLinks() override {
    std::lock_guard l(mu);
    return {attached.begin(), attached.end()};
  }
  Status checkPodDevice(int ifindex, const std::string&) override {
    std::lock_guard l(mu);
    if (not_pods.count(ifindex)) return Error(ErrorCode::kInvalidArgument, "not a pod's veth");
    return okStatus();
  }
  std::set<int> not_pods;  // devices checkPodDevice refuses
  std::function<void(int ifindex)> on_attach;  // runs before attach() records the device

  std::mutex mu;
  std::set<int> attached;
  std::set<int> links;
  std::map<IpAddr, int> routes;
  bool fail_attach = false;
};

uint32_t ip(const char* s) { return *datapath::parseIpv4(s); }

Spec pod(const std::string& name, const char* addr, int ifindex, const std::string& app) {
  Spec s;
  s.container_id = "c-" + name;
  s.container_interface_name = "eth0";
  s.pod_namespace = "default";
  s.pod_name = name;
  s.interface_name = "lxc" + std::to_string(ifindex);
  s.ifindex = ifindex;
  s.mac = "02:00:00:00:00:01";
  s.host_mac = "02:00:00:00:00:02";
  s.ipv4 = *IpAddr::parse(addr);
  s.labels = *labels::Labels::parse({"k8s:app=" + app, "k8s:pod-template-hash=abc123"});
  return s;
}

std::string cnp(const std::string& name, const std::string& app, const std::string& from) {
  return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: " + name +
         "\n  namespace: default\nspec:\n  endpointSelector: {matchLabels: {app: " + app +
         "}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: " + from + "}}]}]\n";
}

// Ingress allow entries of an endpoint's policy map: the remote identities.
std::set<uint32_t> ingressAllowed(datapath::PolicyMaps& maps, uint16_t id) {
  std::set<uint32_t> out;
  auto d = maps.dump(id);
  if (!d.ok()) return out;
  for (const auto& e : *d)
    if (!e.key.egress && (e.value.flags & POLICY_F_DENY) == 0) out.insert(e.key.sec_label);
  return out;
}

using cilium::testing::eventually;

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override { stop(); }

  void start() {
    auto ids = identity::Allocator::open(dir_.path() + "/ids");
    ASSERT_TRUE(ids.ok()) << ids.error().toString();
    ids_ = std::move(*ids);
    ipcache_ = std::make_unique<ipcache::IpCache>(&maps_.ipcache, &maps_.runtime_config);
    engine_ = std::make_unique<policy::Engine>(*ids_, policy::EngineOptions{}, nullptr, nullptr,
                                               ipcache_.get());
    Manager::Deps deps{ids_.get(), engine_.get(), ipcache_.get(), maps_.view(), &devices_};
    ManagerOptions opts = opts_;
    opts.state_dir = dir_.path() + "/state";
    auto m = Manager::create(deps, opts);
    ASSERT_TRUE(m.ok()) << m.error().toString();
    mgr_ = std::move(*m);
  }
  void stop() {
    mgr_.reset();
    engine_.reset();
    ipcache_.reset();
    ids_.reset();
  }

  ManagerOptions opts_;  // state_dir is set by start()

  Endpoint add(const Spec& s) {
    devices_.links.insert(s.ifindex);
    auto ep = mgr_->add(s);
    EXPECT_TRUE(ep.ok()) << ep.error().toString();
    return ep.ok() ? *ep : Endpoint{};
  }

  api::Response call(const std::string& method, const std::string& target, std::string body = "") {
    api::Router router;
    EXPECT_TRUE(registerRoutes(router, *mgr_).ok());
    return router.dispatch(method, target, {}, std::move(body));
  }

  uint64_t policyRevisionBumps() {
    auto v = maps_.runtime_config.lookup(RUNTIME_POLICY_REV);
    return v.ok() && *v ? **v : 0;
  }

  testing::TempDir dir_;
  datapath::FakeMaps maps_;
  FakeDevices devices_;
  std::unique_ptr<identity::Allocator> ids_;
  std::unique_ptr<policy::Engine> engine_;
  std::unique_ptr<ipcache::IpCache> ipcache_;
  std::unique_ptr<Manager> mgr_;
};

TEST_F(ManagerTest, CreateProgramsEverythingBeforeReturningReady) {
  uint64_t bumps = policyRevisionBumps();
  Endpoint ep = add(pod("web", "10.200.0.10", 7, "web"));
  EXPECT_EQ(ep.id(), 1);
  EXPECT_EQ(ep.state, State::kReady);
  EXPECT_GE(ep.identity, identity::kMinCluster);
  EXPECT_EQ(ep.policy_revision, engine_->revision());
  // The identity is of the security-relevant labels only, with the namespace derived.
  EXPECT_EQ(ep.identity_labels.toStrings(),
            (std::vector<std::string>{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"}));
  EXPECT_EQ(ep.information_labels.toStrings(),
            std::vector<std::string>{"k8s:pod-template-hash=abc123"});

  auto byif = maps_.endpoints_by_ifindex.lookup(7);
  ASSERT_TRUE(byif.ok() && *byif);
  EXPECT_EQ((*byif)->lxc_id, 1);
  EXPECT_EQ((*byif)->sec_id, ep.identity);
  EXPECT_EQ((*byif)->mac[0], 0x02);
  EXPECT_EQ((*byif)->node_mac[5], 0x02);
  auto byip = maps_.endpoints.lookup(datapath::endpointKeyV4(ip("10.200.0.10")));
  ASSERT_TRUE(byip.ok() && *byip);
  EXPECT_EQ((*byip)->ifindex, 7u);
  auto ipc = maps_.ipcache.lookup(datapath::ipcacheKeyV4(ip("10.200.0.10"), 32));
  ASSERT_TRUE(ipc.ok() && *ipc);
  EXPECT_EQ((*ipc)->sec_identity, ep.identity);
  EXPECT_TRUE(maps_.policy.dump(1).ok()) << "a policy map exists before the endpoint is ready";
  EXPECT_EQ(devices_.attached, std::set<int>{7});
  EXPECT_EQ(devices_.routes.at(*IpAddr::parse("10.200.0.10")), 7);
  EXPECT_GT(policyRevisionBumps(), bumps);
  auto state = readFile(dir_.path() + "/state/endpoints/1.json");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(*state)["ipv4"], "10.200.0.10");

  // A second pod of the same workload shares the identity (pod-template-hash is dropped).
  auto s2 = pod("web2", "10.200.0.11", 8, "web");
  s2.labels.set(labels::Label(labels::Source::kK8s, "pod-template-hash", "zzz"));
  Endpoint ep2 = add(s2);
  EXPECT_EQ(ep2.id(), 2);
  EXPECT_EQ(ep2.identity, ep.identity);
}

TEST_F(ManagerTest, RejectsConflictsAndBadSpecsLeavingNothingBehind) {
  add(pod("web", "10.200.0.10", 7, "web"));
  auto dup = mgr_->add(pod("other", "10.200.0.10", 9, "x"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  auto dupif = mgr_->add(pod("other", "10.200.0.12", 7, "x"));
  ASSERT_FALSE(dupif.ok());
  EXPECT_EQ(dupif.error().code(), ErrorCode::kAlreadyExists);
  Spec bad = pod("bad", "10.200.0.13", 10, "x");
  bad.ifindex = 0;
  EXPECT_EQ(mgr_->add(bad).error().code(), ErrorCode::kInvalidArgument);

  // A datapath failure half way leaves no map entry and no endpoint.
  devices_.fail_attach = true;
  devices_.links.insert(11);
  auto failed = mgr_->add(pod("db", "10.200.0.14", 11, "db"));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(mgr_->size(), 1u);
  EXPECT_FALSE(*maps_.endpoints_by_ifindex.lookup(11));
  EXPECT_FALSE(*maps_.endpoints.lookup(datapath::endpointKeyV4(ip("10.200.0.14"))));
  EXPECT_FALSE(*maps_.ipcache.lookup(datapath::ipcacheKeyV4(ip("10.200.0.14"), 32)));
  EXPECT_FALSE(maps_.policy.dump(2).ok());
  EXPECT_FALSE(ids_->lookupByLabels(
      *labels::Labels::parse({"k8s:app=db", "k8s:io.kubernetes.pod.namespace=default"})))
      << "the identity was released";
}

// One pod, one live endpoint: the pod's new sandbox (another container) replaces the endpoint of
// the old one instead of making a second endpoint with the pod's labels and identity.
TEST_F(ManagerTest, ANewSandboxOfAPodReplacesItsEndpoint) {
  auto first = add(pod("tiefighter", "10.200.0.10", 7, "tiefighter"));
  Spec again = pod("tiefighter", "10.200.0.11", 8, "tiefighter");
  again.container_id = "c-tiefighter-2";
  auto second = add(again);
  EXPECT_EQ(mgr_->size(), 1u);
  Ref by_old{Ref::Kind::kContainerId, 0, "c-tiefighter", ""};
  EXPECT_FALSE(mgr_->get(by_old).has_value());
  Ref by_pod{Ref::Kind::kPodName, 0, "default/tiefighter", ""};
  auto now = mgr_->get(by_pod);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->spec.container_id, "c-tiefighter-2");
  EXPECT_EQ(now->identity, first.identity);
  EXPECT_FALSE(devices_.links.count(7)) << "the old sandbox's veth is gone";
  EXPECT_FALSE(*maps_.endpoints.lookup(datapath::endpointKeyV4(ip("10.200.0.10"))));
  // The same container again is a conflict, not a replacement.
  auto dup = mgr_->add(again);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(mgr_->size(), 1u);
}

// The request is untrusted: a device that is not a pod's veth, or an address the node's IPAM
// refuses, is an error naming the field, and nothing is created.
TEST_F(ManagerTest, RefusesForeignDevicesAndAddresses) {
  stop();
  std::set<IpAddr> claimed;
  opts_.claim_address = [&](const IpAddr& ipv4, const std::string& owner) -> Status {
    if (ipv4 == *IpAddr::parse("8.8.8.8"))
      return Error(ErrorCode::kInvalidArgument, "8.8.8.8 is not in 10.200.0.0/24");
    EXPECT_EQ(owner, "c-web");
    claimed.insert(ipv4);
    return okStatus();
  };
  start();
  devices_.not_pods.insert(3);
  auto host = mgr_->add(pod("web", "10.200.0.10", 3, "web"));
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(host.error().message(), "interface-index: not a pod's veth");
  auto google = mgr_->add(pod("web", "8.8.8.8", 7, "web"));
  ASSERT_FALSE(google.ok());
  EXPECT_EQ(google.error().message(), "addressing.ipv4: 8.8.8.8 is not in 10.200.0.0/24");
  EXPECT_EQ(mgr_->size(), 0u);
  EXPECT_TRUE(claimed.empty());
  add(pod("web", "10.200.0.10", 7, "web"));
  EXPECT_EQ(claimed, std::set<IpAddr>{*IpAddr::parse("10.200.0.10")});
}

// A NetworkPolicy ipBlock selects an identity only while all its addresses are inside. A new pod
// of a selected identity outside the block must be denied by the time it can send: the other
// endpoints' maps take the address change before its programs are attached.
TEST_F(ManagerTest, NewAddressesReachOtherEndpointsBeforeThePodCanSend) {
  auto db = add(pod("db", "10.200.0.20", 7, "db"));
  auto web = add(pod("web-1", "10.200.0.5", 8, "web"));
  auto r = engine_->import(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block, namespace: default}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{ipBlock: {cidr: 10.200.0.0/28}}]}]
)");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  mgr_->policyChanged(r->revision, r->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(r->revision, 5s));
  ASSERT_TRUE(ingressAllowed(maps_.policy, db.id()).count(web.identity)) << "web-1 is inside";

  // web-2: the same identity, outside the block.
  bool allowed_at_attach = true;
  devices_.on_attach = [&](int ifindex) {
    if (ifindex == 9) allowed_at_attach = ingressAllowed(maps_.policy, db.id()).count(web.identity);
  };
  auto web2 = add(pod("web-2", "10.200.0.100", 9, "web"));
  devices_.on_attach = nullptr;
  EXPECT_EQ(web2.identity, web.identity);
  EXPECT_FALSE(allowed_at_attach) << "web-2 could send before db's map stopped allowing web";
  EXPECT_FALSE(ingressAllowed(maps_.policy, db.id()).count(web.identity));
}

TEST_F(ManagerTest, RestApiIdFormsAndErrors) {
  add(pod("web", "10.200.0.10", 7, "web"));
  for (const char* id : {"1", "cilium-local:1", "container-id:c-web", "pod-name:default%2Fweb",
                         "cni-attachment-id:c-web:eth0"}) {
    auto r = call("GET", std::string("/v1/endpoint/") + id);
    EXPECT_EQ(r.status, 200) << id;
    EXPECT_EQ(r.body["id"], 1) << id;
  }
  EXPECT_EQ(call("GET", "/v1/endpoint/2").status, 404);
  EXPECT_EQ(call("GET", "/v1/endpoint/pod-name:default%2Fnope").status, 404);
  EXPECT_EQ(call("GET", "/v1/endpoint/bogus-prefix:1").status, 400);
  EXPECT_EQ(call("DELETE", "/v1/endpoint/container-id:none").status, 404);

  auto list = call("GET", "/v1/endpoint");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body.size(), 1u);
  EXPECT_EQ(list.body[0]["status"]["state"], "ready");
  EXPECT_EQ(list.body[0]["status"]["networking"]["addressing"][0]["ipv4"], "10.200.0.10");
  EXPECT_EQ(call("GET", "/v1/endpoint?labels=k8s:app=db").body.size(), 0u);
  EXPECT_EQ(call("GET", "/v1/endpoint?labels=k8s:app=web").body.size(), 1u);

  auto labels = call("GET", "/v1/endpoint/1/labels");
  ASSERT_EQ(labels.status, 200);
  EXPECT_EQ(labels.body["status"]["security-relevant"][0], "k8s:app=web");

  // Malformed bodies: 400 naming the problem.
  auto bad_json = call("PUT", "/v1/endpoint/container-id:x", "{");
  EXPECT_EQ(bad_json.status, 400);
  auto bad_mac = call("PUT", "/v1/endpoint/container-id:x",
                      R"({"state":"waiting-for-identity","interface-index":9,"mac":"zz",
                          "addressing":{"ipv4":"10.200.0.20"}})");
  EXPECT_EQ(bad_mac.status, 400);
  EXPECT_NE(bad_mac.body.get<std::string>().find("mac"), std::string::npos) << bad_mac.body;
  auto no_ip = call("PUT", "/v1/endpoint/container-id:x",
                    R"({"state":"waiting-for-identity","interface-index":9})");
  EXPECT_EQ(no_ip.status, 400);
  auto bad_ip =
      call("PUT", "/v1/endpoint/container-id:x",
           R"({"state":"waiting-for-identity","interface-index":9,"addressing":{"ipv4":"10.1"}})");
  EXPECT_EQ(bad_ip.status, 400);

  devices_.links.insert(9);
  auto ok = call("PUT", "/v1/endpoint/5",
                 R"({"state":"waiting-for-identity","interface-index":9,"interface-name":"lxc9",
                     "container-id":"abc","k8s-namespace":"default","k8s-pod-name":"db",
                     "labels":["k8s:app=db"],"addressing":{"ipv4":"10.200.0.20"}})");
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(ok.body["id"], 5);
  EXPECT_EQ(ok.body["status"]["state"], "ready");
  EXPECT_EQ(
      call(
          "PUT", "/v1/endpoint/5",
          R"({"state":"waiting-for-identity","interface-index":10,"addressing":{"ipv4":"10.200.0.21"}})")
          .status,
      409);

  auto patch = call("PATCH", "/v1/endpoint/pod-name:default%2Fdb",
                    R"({"state":"ready","labels":["k8s:app=db2"]})");
  EXPECT_EQ(patch.status, 200) << patch.body;
  EXPECT_EQ(call("GET", "/v1/endpoint/5").body["status"]["identity"]["labels"][0], "k8s:app=db2");
  EXPECT_EQ(call("DELETE", "/v1/endpoint/5").status, 200);
  EXPECT_EQ(call("GET", "/v1/endpoint/5").status, 404);
}

// Dual stack: the IPv6 address gets its own cilium_lxc key (same endpoint_info, which carries
// it for source verification), its /128 in the ipcache, its route and its place in the state;
// delete removes both families.
TEST_F(ManagerTest, DualStackEndpointsProgramBothFamilies) {
  auto s = pod("web", "10.200.0.10", 7, "web");
  s.ipv6 = *IpAddr::parse("fd00:200::10");
  Endpoint ep = add(s);
  const IpAddr v6 = *IpAddr::parse("fd00:200::10");
  auto byip6 = maps_.endpoints.lookup(datapath::endpointKey(v6));
  ASSERT_TRUE(byip6.ok() && *byip6);
  EXPECT_EQ((*byip6)->lxc_id, ep.id());
  EXPECT_TRUE(std::equal(v6.bytes().begin(), v6.bytes().end(), (*byip6)->ipv6));
  auto byif = maps_.endpoints_by_ifindex.lookup(7);
  ASSERT_TRUE(byif.ok() && *byif);
  EXPECT_TRUE(std::equal(v6.bytes().begin(), v6.bytes().end(), (*byif)->ipv6));
  EXPECT_TRUE(maps_.endpoints.lookup(datapath::endpointKeyV4(ip("10.200.0.10")))->has_value());
  auto ipc6 = maps_.ipcache.lookup(datapath::ipcacheKey(IpPrefix::host(v6)));
  ASSERT_TRUE(ipc6.ok() && *ipc6);
  EXPECT_EQ((*ipc6)->sec_identity, ep.identity);
  EXPECT_EQ(devices_.routes.at(v6), 7);
  auto state = readFile(dir_.path() + "/state/endpoints/1.json");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(*state)["ipv6"], "fd00:200::10");

  // Another endpoint may not take the address, in either field.
  auto dup = pod("dup", "10.200.0.11", 8, "web");
  dup.ipv6 = v6;
  EXPECT_EQ(mgr_->add(dup).error().code(), ErrorCode::kAlreadyExists);
  // An IPv4 address in the IPv6 field is refused, naming the field.
  auto bad = pod("bad", "10.200.0.12", 9, "web");
  bad.ipv6 = *IpAddr::parse("10.200.0.13");
  auto refused = mgr_->add(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("addressing.ipv6"), std::string::npos);

  ASSERT_TRUE(mgr_->remove(Ref{Ref::Kind::kPodName, 0, "default/web", ""}).ok());
  size_t n = 0;
  (void)maps_.endpoints.forEach([&](auto&, auto&) { return ++n, true; });
  (void)maps_.ipcache.forEach([&](auto&, auto&) { return ++n, true; });
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(devices_.routes.empty());
}

// IPv6 only (enable-ipv4=false): an endpoint with an IPv6 address alone is programmed (no IPv4
// key, ipv4 0 in its endpoint_info, which bpf_lxc reads as "drop IPv4"), persisted and restored;
// one without any address is refused.
TEST_F(ManagerTest, Ipv6OnlyEndpointsAreProgrammedAndRestored) {
  const IpAddr v6 = *IpAddr::parse("fd00:200::10");
  auto s = pod("web", "10.200.0.10", 7, "web");
  s.ipv4.reset();
  s.ipv6 = v6;
  Endpoint ep = add(s);
  auto byif = maps_.endpoints_by_ifindex.lookup(7);
  ASSERT_TRUE(byif.ok() && *byif);
  EXPECT_EQ((*byif)->ipv4, 0u);
  EXPECT_TRUE(std::equal(v6.bytes().begin(), v6.bytes().end(), (*byif)->ipv6));
  EXPECT_TRUE(maps_.endpoints.lookup(datapath::endpointKey(v6))->has_value());
  EXPECT_EQ(*maps_.endpoints.count(), 1u) << "no IPv4 key";
  auto ipc6 = maps_.ipcache.lookup(datapath::ipcacheKey(IpPrefix::host(v6)));
  ASSERT_TRUE(ipc6.ok() && *ipc6);
  EXPECT_EQ((*ipc6)->sec_identity, ep.identity);
  EXPECT_EQ(devices_.routes.at(v6), 7);

  auto none = pod("none", "10.200.0.11", 8, "web");
  none.ipv4.reset();
  auto refused = mgr_->add(none);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("an IPv4 or an IPv6 address is required"),
            std::string::npos)
      << refused.error().message();

  // A restart inside the node's IPv6 pod CIDR restores it; one outside drops it.
  stop();
  IpPrefix cidr = *IpPrefix::parse("fd00:200::/64");
  opts_.pod_address = [cidr](const IpAddr& ip) { return cidr.contains(ip); };
  start();
  auto res = mgr_->restore();
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->restored, 1u);
  auto back = mgr_->get(Ref{Ref::Kind::kPodName, 0, "default/web", ""});
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->spec.ipv4);
  EXPECT_EQ(back->spec.ipv6, v6);
  EXPECT_EQ(back->state, State::kReady);
  stop();
  IpPrefix other = *IpPrefix::parse("fd00:201::/64");
  opts_.pod_address = [other](const IpAddr& ip) { return other.contains(ip); };
  start();
  res = mgr_->restore();
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->restored, 0u);
  EXPECT_EQ(res->skipped, 1u) << "its IPv6 address is outside the node's IPv6 pod CIDR";
}

TEST_F(ManagerTest, DeleteRemovesEveryTrace) {
  Endpoint ep = add(pod("web", "10.200.0.10", 7, "web"));
  auto errors = mgr_->remove(Ref{Ref::Kind::kPodName, 0, "default/web", ""});
  ASSERT_TRUE(errors.ok());
  EXPECT_EQ(*errors, 0);
  EXPECT_EQ(mgr_->size(), 0u);
  size_t n = 0;
  (void)maps_.endpoints.forEach([&](auto&, auto&) { return ++n, true; });
  (void)maps_.endpoints_by_ifindex.forEach([&](auto&, auto&) { return ++n, true; });
  (void)maps_.ipcache.forEach([&](auto&, auto&) { return ++n, true; });
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(maps_.policy.endpoints()->empty());
  EXPECT_TRUE(devices_.attached.empty());
  EXPECT_TRUE(devices_.routes.empty());
  EXPECT_TRUE(devices_.links.empty()) << "the host-side veth is deleted";
  EXPECT_FALSE(readFile(dir_.path() + "/state/endpoints/1.json").ok());
  EXPECT_FALSE(ids_->lookup(ep.identity)) << "the identity is released";
  EXPECT_TRUE(engine_->attachedEndpoints().empty());
  EXPECT_EQ(mgr_->remove(Ref{Ref::Kind::kId, 1, "", ""}).error().code(), ErrorCode::kNotFound);
}

TEST_F(ManagerTest, RegeneratesOnPolicyAndIdentityChanges) {
  Endpoint web = add(pod("web", "10.200.0.10", 7, "web"));
  Endpoint other = add(pod("other", "10.200.0.12", 9, "other"));
  EXPECT_TRUE(ingressAllowed(maps_.policy, web.id()).count(0) == 0 || !web.ingress_enforced);

  // Policy change: web gets ingress enforcement; it allows app=db, which has no pod yet.
  auto imp = engine_->import(cnp("allow-db", "web", "db"));
  ASSERT_TRUE(imp.ok()) << imp.error().toString();
  mgr_->policyChanged(imp->revision, imp->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(imp->revision, 5s));
  auto w = mgr_->get(Ref{Ref::Kind::kId, web.id(), "", ""});
  EXPECT_EQ(w->policy_revision, imp->revision);
  EXPECT_TRUE(w->ingress_enforced);
  EXPECT_EQ(mgr_->get(Ref{Ref::Kind::kId, other.id(), "", ""})->policy_revision, imp->revision)
      << "an endpoint the change did not touch reports the new revision too";
  EXPECT_FALSE(mgr_->get(Ref{Ref::Kind::kId, other.id(), "", ""})->ingress_enforced);

  // Identity change: a db pod appears; web's map gains its identity without a full replace.
  uint64_t replaces = maps_.policy.replacements();
  Endpoint db = add(pod("db", "10.200.0.11", 8, "db"));
  ASSERT_TRUE(eventually([&] { return ingressAllowed(maps_.policy, web.id()).count(db.identity); }))
      << "web's policy map never allowed the new db identity";
  EXPECT_EQ(maps_.policy.replacements(), replaces + 1) << "only db's own map was replaced";

  // The db pod goes: its identity leaves web's map.
  ASSERT_TRUE(mgr_->remove(Ref{Ref::Kind::kId, db.id(), "", ""}).ok());
  ASSERT_TRUE(
      eventually([&] { return !ingressAllowed(maps_.policy, web.id()).count(db.identity); }));

  // Deleting the policy opens web again.
  auto del = engine_->deleteByLabels({});
  ASSERT_TRUE(del.ok());
  mgr_->policyChanged(del->revision, del->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(del->revision, 5s));
  EXPECT_FALSE(mgr_->get(Ref{Ref::Kind::kId, web.id(), "", ""})->ingress_enforced);
  auto stats = mgr_->regenerationSummary();
  EXPECT_GE(stats.count, 5u);
  EXPECT_EQ(stats.failures, 0u);
}

TEST_F(ManagerTest, RestoresFromStateAndRemovesStaleEntries) {
  Endpoint web = add(pod("web", "10.200.0.10", 7, "web"));
  Endpoint db = add(pod("db", "10.200.0.11", 8, "db"));
  Endpoint gone = add(pod("gone", "10.200.0.12", 9, "gone"));
  auto imp = engine_->import(cnp("allow-db", "web", "db"));
  ASSERT_TRUE(imp.ok());
  mgr_->policyChanged(imp->revision, imp->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(imp->revision, 5s));
  auto web_policy = maps_.policy.dump(web.id());
  ASSERT_TRUE(web_policy.ok());
  std::string policy_json = engine_->rulesJson().dump();

  // The agent stops (maps stay, as pinned maps do); "gone"'s device disappears meanwhile, and a
  // leftover policy map of an endpoint nobody knows is in the datapath.
  stop();
  devices_.links.erase(9);
  ASSERT_TRUE(maps_.policy.replace(77, {}).ok());
  start();
  ASSERT_TRUE(engine_->importRules(policy_json).ok());
  uint64_t replaces = maps_.policy.replacements();
  auto res = mgr_->restore();
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->restored, 2u);
  EXPECT_EQ(res->skipped, 1u);
  EXPECT_GE(res->stale_removed, 3u);  // gone's two endpoint entries, policy 77, gone's policy map
  EXPECT_EQ(maps_.policy.replacements(), replaces + 2) << "maps are replaced, never deleted first";
  EXPECT_EQ(*maps_.policy.endpoints(), (std::vector<uint16_t>{web.id(), db.id()}));
  auto r = mgr_->get(Ref{Ref::Kind::kPodName, 0, "default/web", ""});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->identity, web.identity) << "the same labels get the same identity back";
  EXPECT_EQ(r->state, State::kReady);
  auto restored_policy = maps_.policy.dump(web.id());
  ASSERT_TRUE(restored_policy.ok());
  ASSERT_EQ(restored_policy->size(), web_policy->size());
  for (size_t i = 0; i < web_policy->size(); i++)
    EXPECT_EQ(std::memcmp(&(*restored_policy)[i], &(*web_policy)[i], sizeof(datapath::PolicyEntry)),
              0);
  EXPECT_TRUE(ingressAllowed(maps_.policy, web.id()).count(db.identity));
  EXPECT_FALSE(*maps_.endpoints_by_ifindex.lookup(9));
  EXPECT_EQ(devices_.attached, (std::set<int>{7, 8}));
  EXPECT_FALSE(
      readFile(dir_.path() + "/state/endpoints/" + std::to_string(gone.id()) + ".json").ok());
  // A restored rule is still its object's: importing the object again replaces it.
  ASSERT_TRUE(engine_->import(cnp("allow-db", "web", "other")).ok());
  EXPECT_EQ(engine_->ruleCount(), 1u);
  // New endpoints do not reuse a restored id.
  EXPECT_EQ(add(pod("new", "10.200.0.13", 10, "new")).id(), 3);
}

// A node that comes back with another pod CIDR does not restore the endpoints of its old one:
// their addresses are no longer this node's to route, so they are dropped as if their devices
// were gone (kubelet recreates the pods).
TEST_F(ManagerTest, RestoreDropsEndpointsOutsideThePodCidr) {
  Endpoint web = add(pod("web", "10.200.0.10", 7, "web"));
  Endpoint old = add(pod("old", "10.200.1.10", 8, "old"));
  stop();
  IpPrefix cidr = *IpPrefix::parse("10.200.0.0/24");
  opts_.pod_address = [cidr](const IpAddr& ip) { return cidr.contains(ip); };
  start();
  auto res = mgr_->restore();
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->restored, 1u);
  EXPECT_EQ(res->skipped, 1u);
  EXPECT_TRUE(mgr_->get(Ref{Ref::Kind::kPodName, 0, "default/web", ""}));
  EXPECT_FALSE(mgr_->get(Ref{Ref::Kind::kPodName, 0, "default/old", ""}));
  EXPECT_FALSE(*maps_.endpoints_by_ifindex.lookup(8));
  EXPECT_FALSE(
      readFile(dir_.path() + "/state/endpoints/" + std::to_string(old.id()) + ".json").ok());
  (void)web;
}

// A restart whose policy did not change writes no policy map: every endpoint keeps its inner map
// (no grace period per endpoint). One whose policy changed meanwhile is brought to the new policy:
// in place when that is safe, else swapped, all swaps in one outer-map write.
TEST_F(ManagerTest, RestoreKeepsUnchangedPolicyMapsAndBatchesTheRest) {
  Endpoint web = add(pod("web", "10.200.0.10", 7, "web"));
  Endpoint db = add(pod("db", "10.200.0.11", 8, "db"));
  Endpoint other = add(pod("other", "10.200.0.12", 9, "other"));
  auto imp = engine_->import(cnp("allow-db", "web", "db"));
  ASSERT_TRUE(imp.ok());
  mgr_->policyChanged(imp->revision, imp->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(imp->revision, 5s));
  std::string policy_json = engine_->rulesJson().dump();
  auto inner = [&](const Endpoint& ep) { return maps_.policy.innerMapId(ep.id()); };
  uint64_t web_map = inner(web), db_map = inner(db), other_map = inner(other);

  stop();
  start();
  ASSERT_TRUE(engine_->importRules(policy_json).ok());
  auto before = maps_.policy.counters();
  ASSERT_TRUE(mgr_->restore().ok());
  auto after = maps_.policy.counters();
  EXPECT_EQ(after.unchanged - before.unchanged, 3u);
  EXPECT_EQ(after.swapped, before.swapped) << "no inner map was swapped";
  EXPECT_EQ(after.outer_writes, before.outer_writes) << "no grace period waited";
  EXPECT_EQ(inner(web), web_map);
  EXPECT_EQ(inner(db), db_map);
  EXPECT_EQ(inner(other), other_map);
  EXPECT_TRUE(ingressAllowed(maps_.policy, web.id()).count(db.identity));

  // While the agent was down the rule changed: web now admits "other" instead of db (a change
  // of identities: in place), and db's ingress is enforced (the wildcard allow goes while
  // identities get allows: a swap).
  stop();
  start();
  ASSERT_TRUE(engine_->import(cnp("allow-db", "web", "other")).ok());
  ASSERT_TRUE(engine_->import(cnp("lock-db", "db", "web")).ok());
  before = maps_.policy.counters();
  auto res = mgr_->restore();
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->restored, 3u);
  after = maps_.policy.counters();
  EXPECT_EQ(inner(web), web_map) << "web's map was patched in place";
  EXPECT_NE(inner(db), db_map) << "db's map was swapped";
  EXPECT_EQ(inner(other), other_map);
  EXPECT_EQ(after.patched - before.patched, 1u);
  EXPECT_EQ(after.swapped - before.swapped, 1u);
  EXPECT_EQ(after.outer_writes - before.outer_writes, 1u);
  EXPECT_EQ(ingressAllowed(maps_.policy, web.id()).count(db.identity), 0u);
  EXPECT_TRUE(ingressAllowed(maps_.policy, web.id()).count(other.identity));
  EXPECT_TRUE(ingressAllowed(maps_.policy, db.id()).count(web.identity));
  EXPECT_EQ(ingressAllowed(maps_.policy, db.id()).count(0), 0u) << "db's ingress is enforced";
}

// A policy change reaching many endpoints writes their maps together: the swaps it needs cost
// one outer-map write, and a later change of peers is patched in place with none.
TEST_F(ManagerTest, PolicyChangeToManyEndpointsSharesOneOuterWrite) {
  std::vector<Endpoint> eps;
  for (int i = 0; i < 20; i++)
    eps.push_back(add(pod("web" + std::to_string(i), ("10.200.1." + std::to_string(10 + i)).c_str(),
                          100 + i, "web")));
  Endpoint db = add(pod("db", "10.200.0.11", 8, "db"));
  std::map<uint16_t, uint64_t> maps_before;
  for (const auto& ep : eps) maps_before[ep.id()] = maps_.policy.innerMapId(ep.id());

  auto before = maps_.policy.counters();
  auto imp = engine_->import(cnp("allow-db", "web", "db"));
  ASSERT_TRUE(imp.ok());
  mgr_->policyChanged(imp->revision, imp->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(imp->revision, 5s));
  auto after = maps_.policy.counters();
  EXPECT_EQ(after.swapped - before.swapped, 20u) << "enforcement switched on: swaps";
  EXPECT_EQ(after.outer_writes - before.outer_writes, 1u) << "all 20 in one outer-map write";
  for (const auto& ep : eps) {
    EXPECT_TRUE(ingressAllowed(maps_.policy, ep.id()).count(db.identity));
    EXPECT_EQ(mgr_->get(Ref{Ref::Kind::kId, ep.id(), "", ""})->policy_revision, imp->revision);
  }

  std::map<uint16_t, uint64_t> maps_enforced;
  for (const auto& ep : eps) maps_enforced[ep.id()] = maps_.policy.innerMapId(ep.id());
  before = after;
  imp = engine_->import(cnp("allow-db", "web", "other"));
  ASSERT_TRUE(imp.ok());
  mgr_->policyChanged(imp->revision, imp->affected_endpoints);
  ASSERT_TRUE(mgr_->waitForRevision(imp->revision, 5s));
  after = maps_.policy.counters();
  EXPECT_EQ(after.patched - before.patched, 20u) << "another peer: patched in place";
  EXPECT_EQ(after.outer_writes, before.outer_writes);
  for (const auto& ep : eps) {
    EXPECT_EQ(maps_.policy.innerMapId(ep.id()), maps_enforced[ep.id()]);
    EXPECT_EQ(ingressAllowed(maps_.policy, ep.id()).count(db.identity), 0u);
  }
}

TEST_F(ManagerTest, CorruptStateIsSkippedNotFatal) {
  ASSERT_TRUE(writeFileAtomic(dir_.path() + "/state/endpoints/4.json", "{oops").ok());
  ASSERT_TRUE(writeFileAtomic(dir_.path() + "/state/endpoints/5.json", R"({"id":5})").ok());
  auto res = mgr_->restore();
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->restored, 0u);
  EXPECT_EQ(res->skipped, 2u);
}

}  // namespace
}  // namespace cilium::endpoint
