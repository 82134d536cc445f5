// Informer semantics against the fake apiserver: pagination, relist on 410 (compaction, with
// deletions that happened while disconnected), bookmarks, dropped connections (rewatch without
// relist), token rotation, wrong-kind objects, backoff bounds.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/k8s/reflector.h"
#include "agent/k8s/source.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::k8s {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using cilium::testing::eventually;

json pod(const std::string& ns, const std::string& name, const std::string& app = "web") {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"app", app}}}}},
          {"spec", {{"nodeName", "n1"}}}};
}

ReflectorOptions fastOptions() {
  ReflectorOptions o;
  o.page_size = 3;
  o.backoff.initial = 20ms;
  o.backoff.max = 200ms;
  return o;
}

struct Recorder {
  std::mutex mu;
  std::vector<std::string> events;  // "add ns/name", "update ns/name", "delete ns/name"
  void attach(Store<Pod>& s) {
    s.addHandlers({[this](const Pod& p) { add("add", p); },
                   [this](const Pod&, const Pod& p) { add("update", p); },
                   [this](const Pod& p) { add("delete", p); }});
  }
  void add(const char* what, const Pod& p) {
    std::lock_guard lock(mu);
    events.push_back(fmt::format("{} {}/{}", what, p.meta.namespace_name, p.meta.name));
  }
  bool has(const std::string& e) {
    std::lock_guard lock(mu);
    return std::find(events.begin(), events.end(), e) != events.end();
  }
};

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.start().ok());
    ClientConfig cfg;
    cfg.server = server.url();
    cfg.qps = 0;
    auto c = Client::create(cfg);
    ASSERT_TRUE(c.ok()) << c.error().message();
    client = std::move(*c);
  }
  size_t count(std::string_view method, std::string_view path_part, std::string_view query_part) {
    size_t n = 0;
    for (const auto& r : server.requests())
      if (r.method == method && r.path.find(path_part) != std::string::npos &&
          r.query.find(query_part) != std::string::npos)
        n++;
    return n;
  }
  testing::FakeApiServer server;
  std::unique_ptr<Client> client;
  const ResourceInfo pods = Resource<Pod>::info();
};

TEST_F(InformerTest, PaginatedListThenWatch) {
  for (int i = 0; i < 10; i++)
    ASSERT_TRUE(server.create(pods, pod("a", fmt::format("p{}", i))).ok());
  Store<Pod> store;
  Recorder rec;
  rec.attach(store);
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  EXPECT_EQ(store.size(), 10u);
  EXPECT_TRUE(rec.has("add a/p9"));
  // 10 objects, pages of 3: 4 list requests, continue tokens on pages 2..4.
  EXPECT_EQ(count("GET", "/api/v1/pods", "limit=3"), 4u);
  EXPECT_EQ(count("GET", "/api/v1/pods", "continue="), 3u);
  ASSERT_TRUE(eventually([&] { return count("GET", "/api/v1/pods", "watch=1") == 1; }));
  auto reqs = server.requests();
  auto watch = std::find_if(reqs.begin(), reqs.end(), [](const auto& r) {
    return r.query.find("watch=1") != std::string::npos;
  });
  ASSERT_NE(watch, reqs.end());
  EXPECT_NE(watch->query.find("allowWatchBookmarks=true"), std::string::npos);
  EXPECT_NE(watch->query.find("timeoutSeconds="), std::string::npos);
  // Changes arrive through the watch.
  json p = *server.get(pods, "a", "p1");
  p["metadata"]["labels"]["app"] = "db";
  ASSERT_TRUE(server.update(pods, p).ok());
  ASSERT_TRUE(server.remove(pods, "a", "p2").ok());
  ASSERT_TRUE(server.create(pods, pod("b", "new")).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("add b/new") && rec.has("delete a/p2"); }));
  EXPECT_TRUE(rec.has("update a/p1"));
  EXPECT_EQ(store.get("a", "p1")->meta.labels.at("app"), "db");
  EXPECT_EQ(inf.reflector().lastResourceVersion(), server.resourceVersion());
  EXPECT_EQ(inf.reflector().stats().lists, 1u);
}

std::string queryOfLastWatch(const testing::FakeApiServer& server) {
  std::string q;
  for (const auto& r : server.requests())
    if (r.query.find("watch=1") != std::string::npos) q = r.query;
  return q;
}

TEST_F(InformerTest, GoneAfterCompactionRelistsAndEmitsDeletionsForVanishedObjects) {
  for (int i = 0; i < 4; i++)
    ASSERT_TRUE(server.create(pods, pod("a", fmt::format("p{}", i))).ok());
  Store<Pod> store;
  Recorder rec;
  rec.attach(store);
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 1; }));
  // Disconnected; meanwhile p0 is deleted, p1 changed, p9 added, and the history compacted.
  server.failNext(1000, 503, "/api/v1/pods");
  server.dropWatches();
  ASSERT_TRUE(server.remove(pods, "a", "p0").ok());
  json p1 = *server.get(pods, "a", "p1");
  p1["metadata"]["labels"]["app"] = "changed";
  ASSERT_TRUE(server.update(pods, p1).ok());
  ASSERT_TRUE(server.create(pods, pod("a", "p9")).ok());
  server.compact();
  ASSERT_TRUE(eventually([&] { return inf.reflector().stats().failures >= 2; }));
  EXPECT_FALSE(rec.has("delete a/p0"));
  server.clearRequests();
  server.clearFaults();
  // The rewatch from the old RV gets 200 + ERROR 410; the relist (quorum: no RV) brings the
  // store up to date, deletions included.
  ASSERT_TRUE(eventually([&] { return rec.has("delete a/p0") && rec.has("add a/p9"); }));
  EXPECT_TRUE(rec.has("update a/p1"));
  EXPECT_FALSE(store.get("a", "p0").has_value());
  EXPECT_EQ(store.size(), 4u);
  auto st = inf.reflector().stats();
  EXPECT_GE(st.gone, 1u);
  EXPECT_EQ(st.lists, 2u);
  bool quorum_relist = false;
  for (const auto& r : server.requests())
    if (r.path == "/api/v1/pods" && r.query.find("watch") == std::string::npos &&
        r.query.find("continue") == std::string::npos)
      quorum_relist = r.query.find("resourceVersion") == std::string::npos;
  EXPECT_TRUE(quorum_relist) << "a relist after 410 reads the latest state (no resourceVersion)";
}

TEST_F(InformerTest, GoneOnListIsRetriedFromLatest) {
  ASSERT_TRUE(server.create(pods, pod("a", "p")).ok());
  server.failNext(1, 410, "/api/v1/pods");
  Store<Pod> store;
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(inf.reflector().stats().gone, 1u);
}

TEST_F(InformerTest, ExpiredContinueTokenRestartsTheListFromLatest) {
  for (int i = 0; i < 7; i++)
    ASSERT_TRUE(server.create(pods, pod("a", fmt::format("p{}", i))).ok());
  server.failNext(1, 410, "continue=");
  Store<Pod> store;
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  EXPECT_EQ(store.size(), 7u);
  auto st = inf.reflector().stats();
  EXPECT_EQ(st.gone, 1u);
  EXPECT_EQ(st.lists, 1u);
  EXPECT_EQ(st.listed_items, 7u);
  // The second start of the list is a quorum read (no resourceVersion).
  size_t first_pages = 0, quorum_first_pages = 0;
  for (const auto& r : server.requests()) {
    if (r.path != "/api/v1/pods" || r.query.find("watch") != std::string::npos ||
        r.query.find("continue") != std::string::npos)
      continue;
    first_pages++;
    if (r.query.find("resourceVersion") == std::string::npos) quorum_first_pages++;
  }
  EXPECT_EQ(first_pages, 2u);
  EXPECT_EQ(quorum_first_pages, 1u);
}

TEST_F(InformerTest, DroppedConnectionRewatchesFromLastRvWithoutRelisting) {
  ASSERT_TRUE(server.create(pods, pod("a", "p")).ok());
  Store<Pod> store;
  Recorder rec;
  rec.attach(store);
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 1; }));
  std::string rv = inf.reflector().lastResourceVersion();
  server.dropWatches();
  ASSERT_TRUE(server.create(pods, pod("a", "while-away")).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("add a/while-away"); }));
  auto st = inf.reflector().stats();
  EXPECT_EQ(st.lists, 1u);
  EXPECT_GE(st.watches, 2u);
  EXPECT_NE(queryOfLastWatch(server).find("resourceVersion=" + rv), std::string::npos)
      << queryOfLastWatch(server);
}

TEST_F(InformerTest, BookmarksMoveTheResourceVersion) {
  ASSERT_TRUE(server.create(pods, pod("a", "p")).ok());
  Store<Pod> store;
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 1; }));
  // Other resources move the global RV; only a bookmark tells the pod watcher about it.
  for (int i = 0; i < 3; i++)
    ASSERT_TRUE(
        server
            .create(Resource<Namespace>::info(), {{"metadata", {{"name", fmt::format("ns{}", i)}}}})
            .ok());
  std::string now = server.resourceVersion();
  EXPECT_NE(inf.reflector().lastResourceVersion(), now);
  server.sendBookmarks();
  ASSERT_TRUE(eventually([&] { return inf.reflector().lastResourceVersion() == now; }));
  EXPECT_EQ(inf.reflector().stats().bookmarks, 1u);
  server.dropWatches();
  ASSERT_TRUE(eventually([&] {
    return queryOfLastWatch(server).find("resourceVersion=" + now) != std::string::npos;
  }));
  EXPECT_EQ(inf.reflector().stats().lists, 1u);
}

TEST_F(InformerTest, WrongKindObjectsAreSkippedNotFatal) {
  ASSERT_TRUE(server.create(pods, pod("a", "good")).ok());
  server.injectRaw(pods, {{"kind", "Service"},
                          {"apiVersion", "v1"},
                          {"metadata", {{"name", "svc"}, {"namespace", "a"}}}});
  Store<Pod> store;
  Informer<Pod> inf(*client, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(inf.skipped(), 1u);
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 1; }));
  server.injectRaw(pods,
                   {{"kind", "Pod"},
                    {"metadata", {{"name", "bad"}, {"namespace", "a"}, {"labels", {{"x", 1}}}}}});
  ASSERT_TRUE(server.create(pods, pod("a", "after")).ok());
  ASSERT_TRUE(eventually([&] { return store.get("a", "after").has_value(); }));
  EXPECT_EQ(inf.skipped(), 2u);
  EXPECT_EQ(inf.reflector().stats().lists, 1u);
}

TEST_F(InformerTest, TokenRotationIsPickedUpFromTheFile) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("token"), "first\n").ok());
  server.setToken("first");
  ClientConfig cfg;
  cfg.server = server.url();
  cfg.token_file = dir.file("token");
  cfg.token_reload = std::chrono::hours(1);  // only the 401 makes it re-read
  auto c = Client::create(cfg);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(server.create(pods, pod("a", "p")).ok());
  Store<Pod> store;
  Informer<Pod> inf(**c, store, fastOptions());
  inf.start();
  ASSERT_TRUE(store.waitForSync(5s));
  ASSERT_TRUE(eventually([&] { return server.openWatches() == 1; }));
  ASSERT_TRUE(writeFileAtomic(dir.file("token"), "second\n").ok());
  server.setToken("second");
  server.dropWatches();
  ASSERT_TRUE(server.create(pods, pod("a", "after-rotation")).ok());
  ASSERT_TRUE(eventually([&] { return store.get("a", "after-rotation").has_value(); }));
  EXPECT_GE((*c)->calls().count("WATCH", "pods", "401"), 1u);
  auto direct = (*c)->get("/api/v1/pods");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->status, 200);
}

TEST_F(InformerTest, BackoffGrowsAndStaysWithinBounds) {
  BackoffPolicy policy;  // the production values: 800 ms .. 30 s
  EXPECT_EQ(policy.delay(0, 0.0), 800ms);
  EXPECT_LE(policy.delay(0, 0.999), 1600ms);
  EXPECT_EQ(policy.delay(1, 0.0), 1600ms);
  EXPECT_EQ(policy.delay(5, 0.0), 25600ms);
  EXPECT_EQ(policy.delay(6, 0.5), 30000ms);
  EXPECT_EQ(policy.delay(1000, 0.999), 30000ms);
  for (unsigned a = 0; a < 40; a++)
    for (double r : {0.0, 0.3, 0.999}) {
      EXPECT_GE(policy.delay(a, r), 800ms);
      EXPECT_LE(policy.delay(a, r), 30000ms);
    }
  // Live: a server failing every list backs off within the configured bounds.
  server.failNext(1000, 500, "/api/v1/pods");
  Store<Pod> store;
  auto o = fastOptions();
  o.backoff.initial = 10ms;
  o.backoff.max = 40ms;
  Informer<Pod> inf(*client, store, o);
  inf.start();
  ASSERT_TRUE(eventually([&] { return inf.reflector().stats().failures >= 5; }));
  auto st = inf.reflector().stats();
  EXPECT_GE(st.last_backoff, 10ms);
  EXPECT_LE(st.last_backoff, 40ms);
  EXPECT_FALSE(store.hasSynced());
  server.clearFaults();
  ASSERT_TRUE(store.waitForSync(5s));
}

TEST_F(InformerTest, ApiSourceSyncsEveryKind) {
  ASSERT_TRUE(server.create(pods, pod("a", "mine")).ok());
  json other = pod("a", "other");
  other["spec"]["nodeName"] = "n2";
  ASSERT_TRUE(server.create(pods, other).ok());
  ASSERT_TRUE(server
                  .create(Resource<CiliumNetworkPolicy>::info(),
                          {{"metadata", {{"name", "p"}, {"namespace", "a"}}},
                           {"spec", {{"endpointSelector", json::object()}}}})
                  .ok());
  ApiSourceOptions o;
  o.node_name = "n1";
  o.reflector = fastOptions();
  ApiSource source(*client, o);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(source.waitForSync(5s));
  EXPECT_EQ(source.stores().pods.size(), 1u) << "only this node's pods";
  EXPECT_TRUE(source.stores().pods.get("a", "mine").has_value());
  EXPECT_EQ(source.stores().cilium_network_policies.size(), 1u);
  EXPECT_NE(source.reflector("CiliumIdentity"), nullptr);
  source.stop();
}

}  // namespace
}  // namespace cilium::k8s
