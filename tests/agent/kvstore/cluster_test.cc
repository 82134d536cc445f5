// Several agent-side stacks (allocator, node manager, ipcache) sharing one real etcd: allocation
// races end with one number, identities, nodes and endpoints of every node are known on every
// node, deletions and dead nodes disappear everywhere, unused identities are collected, and the
// stacks converge after etcd is killed and restarted and after a lost lease.
#include "agent/kvstore/cluster.h"

#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/kvstore/identities.h"
#include "agent/node/node.h"
#include "tests/harness/etcd_server.h"
#include "tests/harness/etcd_skip.h"
#include "tests/harness/eventually.h"

namespace cilium::kvstore {
namespace {

using cilium::testing::EtcdServer;
using cilium::testing::eventually;
using namespace std::chrono_literals;

labels::Labels appLabels(const std::string& app) {
  return *labels::Labels::parse({"k8s:app=" + app, "k8s:io.kubernetes.pod.namespace=default"});
}

// One agent's view: its etcd client and lease, identities, nodes and ipcache.
struct Stack {
  std::string name;
  IpAddr host_ip;
  std::unique_ptr<Client> client;
  std::unique_ptr<Session> session;
  std::unique_ptr<Identities> identities;
  std::unique_ptr<identity::Allocator> allocator;
  node::Manager nodes;
  ipcache::IpCache ipcache{nullptr, nullptr};
  std::unique_ptr<NodeSync> node_sync;
  std::unique_ptr<EndpointSync> endpoints;

  Stack(const EtcdServer& etcd, std::string n, IpAddr ip, std::chrono::seconds ttl = 30s,
        identity::NumericIdentity max_id = identity::kMaxCluster)
      : name(std::move(n)), host_ip(ip) {
    client = std::move(*Client::create(etcd.config(), {.call_timeout = 2000ms}));
    session = std::make_unique<Session>(*client,
                                        SessionOptions{.lease_ttl = ttl, .revoke_on_stop = true});
    session->start();
    identities =
        std::make_unique<Identities>(*client, *session, name, "", identity::kMinCluster, max_id);
    EXPECT_TRUE(identities->start(10s).ok());
    auto local = identity::LocalBackend::open("", identity::kMinLocal, identity::kMaxLocal, "x");
    allocator = std::move(*identity::Allocator::create(identities->backend(), std::move(*local)));
    identities->attach(*allocator);
    node_sync = std::make_unique<NodeSync>(*client, *session, nodes, "default", name);
    EXPECT_TRUE(node_sync->start(10s).ok());
    node::Node self;
    self.name = name;
    self.addresses = {{node::AddressType::kInternalIp, host_ip}};
    node_sync->publish(self);
    endpoints = std::make_unique<EndpointSync>(*client, *session, ipcache, host_ip);
    EXPECT_TRUE(endpoints->start(10s).ok());
  }
  // Stops like a node that goes away: its lease is revoked, its keys vanish.
  ~Stack() { shutdown(); }
  void shutdown() {
    if (!endpoints) return;
    endpoints->stop();
    node_sync->stop();
    identities->detach();
    identities->stop();
    session->stop();
    endpoints.reset();
    node_sync.reset();
    allocator.reset();
    identities.reset();
    session.reset();
  }
  std::optional<identity::NumericIdentity> remoteIdentity(const labels::Labels& l) {
    auto got = allocator->lookupByLabels(l);
    if (!got) return std::nullopt;
    return got->id;
  }
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CILIUM_REQUIRE_ETCD();
    auto st = etcd_.start();
    ASSERT_TRUE(st.ok()) << st.error().message();
    admin_ = std::move(*Client::create(etcd_.config()));
  }
  IpAddr ip(const std::string& s) { return *IpAddr::parse(s); }
  size_t keys(const std::string& prefix) {
    auto r = admin_->getPrefix(prefix);
    return r.ok() ? r->kvs.size() : 0;
  }
  EtcdServer etcd_;
  std::unique_ptr<Client> admin_;
};

// Four agents allocate the same 25 label sets at the same time: each label set ends with one
// number, the same on every agent, and one master key in etcd.
TEST_F(ClusterTest, AllocationRacesEndWithOneNumber) {
  std::vector<std::unique_ptr<Stack>> stacks;
  for (int i = 0; i < 4; i++)
    stacks.push_back(std::make_unique<Stack>(etcd_, "node" + std::to_string(i),
                                             ip("172.30.0." + std::to_string(i + 1))));
  constexpr int kSets = 25;
  std::vector<std::vector<identity::NumericIdentity>> got(
      4, std::vector<identity::NumericIdentity>(kSets));
  std::vector<std::thread> threads;
  for (int s = 0; s < 4; s++)
    threads.emplace_back([&, s] {
      for (int i = 0; i < kSets; i++) {
        auto id = stacks[s]->allocator->allocate(appLabels("race" + std::to_string(i)));
        ASSERT_TRUE(id.ok()) << id.error().message();
        got[s][i] = id->id;
      }
    });
  for (auto& t : threads) t.join();
  std::set<identity::NumericIdentity> distinct;
  for (int i = 0; i < kSets; i++) {
    for (int s = 1; s < 4; s++) EXPECT_EQ(got[s][i], got[0][i]) << "labels race" << i;
    distinct.insert(got[0][i]);
    EXPECT_GE(got[0][i], identity::kMinCluster);
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kSets));
  EXPECT_EQ(keys("cilium/state/identities/v1/id/"), static_cast<size_t>(kSets));
  // Every agent uses each: one value key per agent and label set.
  EXPECT_EQ(keys("cilium/state/identities/v1/value/"), static_cast<size_t>(4 * kSets));
}

// Concurrent allocations of one agent go to etcd together (group commit); with a range exactly
// as large as the label sets, most probes collide (the same number tried for different labels,
// in one batch or by another agent), and still every label set ends with one number on every
// agent, every number used once.
TEST_F(ClusterTest, ConcurrentAllocationsInAFullRangeEndWithOneNumberEach) {
  constexpr int kSets = 40, kAgents = 3, kThreads = 8;
  const identity::NumericIdentity max_id = identity::kMinCluster + kSets - 1;
  std::vector<std::unique_ptr<Stack>> stacks;
  for (int i = 0; i < kAgents; i++)
    stacks.push_back(std::make_unique<Stack>(etcd_, "node" + std::to_string(i),
                                             ip("172.30.0." + std::to_string(i + 1)), 30s, max_id));
  std::vector<std::vector<identity::NumericIdentity>> got(
      kAgents, std::vector<identity::NumericIdentity>(kSets));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kAgents; s++)
    for (int t = 0; t < kThreads; t++)
      threads.emplace_back([&, s, t] {
        for (int i = t; i < kSets; i += kThreads) {
          int k = (i + s * 7) % kSets;
          auto id = stacks[s]->allocator->allocate(appLabels("full" + std::to_string(k)));
          if (!id.ok()) {
            failures++;
            ADD_FAILURE() << id.error().message();
            continue;
          }
          got[s][k] = id->id;
        }
      });
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures, 0);
  std::set<identity::NumericIdentity> distinct;
  for (int k = 0; k < kSets; k++) {
    for (int s = 1; s < kAgents; s++) EXPECT_EQ(got[s][k], got[0][k]) << "labels full" << k;
    distinct.insert(got[0][k]);
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kSets));
  EXPECT_EQ(*distinct.begin(), identity::kMinCluster);
  EXPECT_EQ(*distinct.rbegin(), max_id);
  EXPECT_EQ(keys("cilium/state/identities/v1/id/"), static_cast<size_t>(kSets));
  EXPECT_EQ(keys("cilium/state/identities/v1/value/"), static_cast<size_t>(kAgents * kSets));
  // The range is full: one more label set has no number.
  auto more = stacks[0]->allocator->allocate(appLabels("one-too-many"));
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.error().code(), ErrorCode::kResourceExhausted);
}

// An identity allocated on one node is known on the others (as a remote identity); when no node
// uses it any more the collector removes it, and it disappears everywhere.
TEST_F(ClusterTest, IdentitiesAreSharedAndCollectedWhenUnused) {
  Stack a(etcd_, "a", ip("172.30.0.1"));
  Stack b(etcd_, "b", ip("172.30.0.2"));
  auto web = a.allocator->allocate(appLabels("web"));
  ASSERT_TRUE(web.ok()) << web.error().message();
  ASSERT_TRUE(eventually([&] { return b.remoteIdentity(appLabels("web")) == web->id; }));
  auto db = b.allocator->allocate(appLabels("db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(eventually([&] { return a.remoteIdentity(appLabels("db")) == db->id; }));

  // In use: nothing to collect.
  auto gc = collectGarbage(*admin_);
  ASSERT_TRUE(gc.ok()) << gc.error().message();
  EXPECT_EQ(gc->scanned, 2u);
  EXPECT_EQ(gc->deleted, 0u);

  // a's last user of web goes: its value key goes, then the collector removes the master key.
  ASSERT_TRUE(a.allocator->release(web->id).ok());
  ASSERT_TRUE(eventually([&] { return keys("cilium/state/identities/v1/value/") == 1; }));
  gc = collectGarbage(*admin_);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 1u);
  EXPECT_TRUE(
      eventually([&] { return !a.allocator->lookup(web->id) && !b.allocator->lookup(web->id); }));
  // db stays: b uses it.
  EXPECT_TRUE(a.allocator->lookup(db->id).has_value());

  // A dead node's identities: b goes away (lease revoked), the collector takes db.
  b.shutdown();
  ASSERT_TRUE(eventually([&] { return keys("cilium/state/identities/v1/value/") == 0; }));
  gc = collectGarbage(*admin_);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 1u);
  EXPECT_TRUE(eventually([&] { return !a.allocator->lookup(db->id); }));
  EXPECT_EQ(keys("cilium/state/identities/v1/id/"), 0u);
}

// A master key that is used again between the collector's read and its delete survives.
TEST_F(ClusterTest, CollectorNeverDeletesAnIdentityInUse) {
  ASSERT_TRUE(admin_->put("cilium/state/identities/v1/id/300", "k8s:app=x;").ok());
  // Somebody starts using it: the collector's transaction sees the value key and keeps it.
  ASSERT_TRUE(admin_->put("cilium/state/identities/v1/value/k8s:app=x;/n1", "300").ok());
  auto gc = collectGarbage(*admin_);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 0u);
  EXPECT_EQ(keys("cilium/state/identities/v1/id/"), 1u);
}

TEST_F(ClusterTest, NodesAndEndpointsOfEveryNodeEverywhere) {
  Stack a(etcd_, "a", ip("172.30.0.1"));
  Stack b(etcd_, "b", ip("172.30.0.2"));
  Stack c(etcd_, "c", ip("172.30.0.3"));
  std::vector<Stack*> all = {&a, &b, &c};
  // Nodes: each knows the two others.
  for (Stack* s : all)
    ASSERT_TRUE(eventually([&] { return s->nodes.list().size() == 2; })) << s->name;
  auto bn = a.nodes.get("b");
  ASSERT_TRUE(bn.has_value());
  EXPECT_TRUE(bn->from_kvstore);
  EXPECT_EQ(bn->primaryAddress(), ip("172.30.0.2"));

  // Endpoints: two pods per node.
  for (size_t i = 0; i < all.size(); i++) {
    std::vector<IpPair> pods;
    for (int p = 0; p < 2; p++)
      pods.push_back({ip(fmt::format("10.0.{}.{}", i + 1, p + 10)),
                      static_cast<identity::NumericIdentity>(1000 + i * 10 + p), all[i]->host_ip,
                      "default", fmt::format("pod-{}-{}", i, p)});
    all[i]->endpoints->publish(pods);
  }
  for (Stack* s : all)
    ASSERT_TRUE(eventually([&] { return s->endpoints->remoteCount() == 4; })) << s->name;
  auto e = a.ipcache.get(IpPrefix::host(ip("10.0.2.11")));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->info.identity, 1011u);
  EXPECT_EQ(e->info.tunnel_endpoint, ip("172.30.0.2"));
  EXPECT_EQ(e->source, ipcache::Source::kKvstore);
  // A node's own endpoints are not fed back to it.
  EXPECT_FALSE(a.ipcache.get(IpPrefix::host(ip("10.0.1.10"))).has_value());

  // A pod deleted on b disappears everywhere.
  b.endpoints->publish({{ip("10.0.2.10"), 1010, b.host_ip, "default", "pod-1-0"}});
  for (Stack* s : {&a, &c})
    EXPECT_TRUE(
        eventually([&] { return !s->ipcache.get(IpPrefix::host(ip("10.0.2.11"))).has_value(); }));

  // Node c goes away: its node and endpoints disappear everywhere.
  c.shutdown();
  for (Stack* s : {&a, &b}) {
    EXPECT_TRUE(eventually([&] { return !s->nodes.get("c").has_value(); })) << s->name;
    EXPECT_TRUE(eventually([&] {
      return !s->ipcache.get(IpPrefix::host(ip("10.0.3.10"))).has_value() &&
             !s->ipcache.get(IpPrefix::host(ip("10.0.3.11"))).has_value();
    })) << s->name;
  }
  EXPECT_EQ(a.endpoints->remoteCount(), 1u);
}

// A dual-stack endpoint is two pairs (the agent publishes one per address): its IPv6 address
// reaches the other nodes' ipcaches behind the node's IPv4 address, as its IPv4 one does.
TEST_F(ClusterTest, DualStackEndpointsArePublishedPerAddress) {
  Stack a(etcd_, "a", ip("172.30.0.1"));
  Stack b(etcd_, "b", ip("172.30.0.2"));
  a.endpoints->publish({{ip("10.0.1.10"), 1000, a.host_ip, "default", "web"},
                        {ip("fd00:10::10"), 1000, a.host_ip, "default", "web"}});
  ASSERT_TRUE(eventually([&] { return b.endpoints->remoteCount() == 2; }));
  for (const char* addr : {"10.0.1.10", "fd00:10::10"}) {
    auto e = b.ipcache.get(IpPrefix::host(ip(addr)));
    ASSERT_TRUE(e.has_value()) << addr;
    EXPECT_EQ(e->info.identity, 1000u) << addr;
    EXPECT_EQ(e->info.tunnel_endpoint, ip("172.30.0.1")) << addr;
  }
  // The IPv6 address alone goes away (the pod lost it): the IPv4 entry stays.
  a.endpoints->publish({{ip("10.0.1.10"), 1000, a.host_ip, "default", "web"}});
  EXPECT_TRUE(eventually([&] { return !b.ipcache.get(IpPrefix::host(ip("fd00:10::10"))); }));
  EXPECT_TRUE(b.ipcache.get(IpPrefix::host(ip("10.0.1.10"))).has_value());
}

// etcd killed mid-run: every node keeps what it had; changes made meanwhile land when etcd is
// back, and every node converges with nothing stale.
TEST_F(ClusterTest, EtcdKilledAndRestartedMidRun) {
  Stack a(etcd_, "a", ip("172.30.0.1"));
  Stack b(etcd_, "b", ip("172.30.0.2"));
  a.endpoints->publish({{ip("10.0.1.10"), 1000, a.host_ip, "default", "x"}});
  ASSERT_TRUE(eventually([&] { return b.endpoints->remoteCount() == 1; }));
  auto web = a.allocator->allocate(appLabels("web"));
  ASSERT_TRUE(web.ok());
  ASSERT_TRUE(eventually([&] { return b.remoteIdentity(appLabels("web")).has_value(); }));

  etcd_.kill();
  EXPECT_TRUE(eventually([&] { return !a.session->connected(); }));
  // What b knew stays while etcd is away.
  EXPECT_TRUE(b.ipcache.get(IpPrefix::host(ip("10.0.1.10"))).has_value());
  EXPECT_TRUE(b.remoteIdentity(appLabels("web")).has_value());
  EXPECT_TRUE(b.nodes.get("a").has_value());
  // a's pod x goes and y comes while etcd is down.
  a.endpoints->publish({{ip("10.0.1.11"), 1001, a.host_ip, "default", "y"}});

  auto st = etcd_.start();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(eventually(
      [&] {
        return !b.ipcache.get(IpPrefix::host(ip("10.0.1.10"))).has_value() &&
               b.ipcache.get(IpPrefix::host(ip("10.0.1.11"))).has_value();
      },
      30s));
  EXPECT_EQ(b.endpoints->remoteCount(), 1u);
  EXPECT_TRUE(eventually([&] { return a.session->connected(); }));
  // Allocation works again.
  auto db = b.allocator->allocate(appLabels("db"));
  ASSERT_TRUE(db.ok()) << db.error().message();
  EXPECT_TRUE(eventually([&] { return a.remoteIdentity(appLabels("db")) == db->id; }));
}

// a's lease is lost (revoked as if expired): its keys vanish on b, then a re-creates them.
TEST_F(ClusterTest, LostLeaseKeysAreRecreated) {
  Stack a(etcd_, "a", ip("172.30.0.1"), 10s);
  Stack b(etcd_, "b", ip("172.30.0.2"));
  a.endpoints->publish({{ip("10.0.1.10"), 1000, a.host_ip, "default", "x"}});
  auto web = a.allocator->allocate(appLabels("web"));
  ASSERT_TRUE(web.ok());
  ASSERT_TRUE(eventually([&] { return b.endpoints->remoteCount() == 1 && b.nodes.get("a"); }));
  ASSERT_TRUE(admin_->revokeLease(a.session->lease()).ok());
  EXPECT_TRUE(eventually([&] { return keys("cilium/state/identities/v1/value/") == 0; }));
  EXPECT_TRUE(eventually(
      [&] {
        return a.session->leaseRenewals() == 1 && b.endpoints->remoteCount() == 1 &&
               b.nodes.get("a").has_value() && keys("cilium/state/identities/v1/value/") == 1;
      },
      20s));
  // The identity a uses is not collected: its value key is back.
  auto gc = collectGarbage(*admin_);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 0u);
}

TEST(KvstoreFormatsTest, NodeAndIpPairJsonRoundTrip) {
  node::Node n;
  n.name = "n1";
  n.addresses = {{node::AddressType::kInternalIp, *IpAddr::parse("172.30.0.1")},
                 {node::AddressType::kCiliumInternalIp, *IpAddr::parse("10.0.1.1")}};
  n.pod_cidrs = {*IpPrefix::parse("10.0.1.0/24")};
  n.health = {*IpAddr::parse("10.0.1.2")};
  n.boot_id = "b00t";
  std::string j = nodeToJson(n, "default");
  EXPECT_NE(j.find("\"Mask\":\"////AA==\""), std::string::npos) << j;
  auto back = nodeFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, n);
  EXPECT_FALSE(nodeFromJson("{}").ok());
  EXPECT_FALSE(nodeFromJson("[1]").ok());
  EXPECT_FALSE(
      nodeFromJson(R"({"Name":"x","IPv4AllocCIDR":{"IP":"10.0.0.0","Mask":"/w=="}})").ok());

  IpPair p{*IpAddr::parse("10.0.1.5"), 256, *IpAddr::parse("172.30.0.1"), "default", "web"};
  auto pb = ipPairFromJson(ipPairToJson(p));
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(*pb, p);
  EXPECT_FALSE(ipPairFromJson(R"({"IP":"10.0.0.1","ID":0})").ok());
  EXPECT_FALSE(ipPairFromJson(R"({"IP":"nope","ID":5})").ok());
  EXPECT_FALSE(ipPairFromJson(R"({"IP":"10.0.0.1","ID":-3})").ok());

  auto l = labelsOfSortedList(appLabels("web").sortedList());
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, appLabels("web"));
  EXPECT_FALSE(labelsOfSortedList("k8s:a=1").ok());
  EXPECT_FALSE(labelsOfSortedList(";").ok());
}

}  // namespace
}  // namespace cilium::kvstore
