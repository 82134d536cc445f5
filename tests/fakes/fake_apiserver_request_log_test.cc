// The fake apiserver's request log: every request as the apiserver's authorizer sees it (user,
// verb, apiGroup, resource, subresource, namespace, name), served at GET /debug/requests and
// written by cilium-local-apiserver --request-log on exit.
#include <httplib.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/resources.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// verb apiGroup resource subresource namespace name, space-separated ("-" for empty).
std::string attrs(const std::string& method, const std::string& path,
                  std::multimap<std::string, std::string> params = {}) {
  auto r = FakeApiServer::requestAttributes(method, path, params);
  auto d = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  return fmt::format("{} {} {} {} {} {}", r.verb, d(r.api_group), d(r.resource), d(r.subresource),
                     d(r.namespace_name), d(r.name));
}

TEST(FakeApiServerRequestLogTest, VerbsAndAttributesAsTheApiserverDerivesThem) {
  EXPECT_EQ(attrs("GET", "/api/v1/namespaces/default/pods"), "list - pods - default -");
  EXPECT_EQ(attrs("GET", "/api/v1/namespaces/default/pods", {{"watch", "true"}}),
            "watch - pods - default -");
  EXPECT_EQ(attrs("GET", "/api/v1/watch/namespaces/default/pods"), "watch - pods - default -");
  EXPECT_EQ(attrs("GET", "/api/v1/namespaces/default/pods/p1"), "get - pods - default p1");
  EXPECT_EQ(attrs("GET", "/api/v1/namespaces/kube-system"),
            "get - namespaces - kube-system kube-system");
  EXPECT_EQ(attrs("PUT", "/api/v1/namespaces/ns1/status"), "update - namespaces status ns1 ns1");
  EXPECT_EQ(attrs("GET", "/api/v1/nodes", {{"fieldSelector", "metadata.name=n1"}}),
            "list - nodes - - n1");
  EXPECT_EQ(attrs("PUT", "/apis/cilium.io/v2/ciliumnodes/n1/status"),
            "update cilium.io ciliumnodes status - n1");
  EXPECT_EQ(attrs("PATCH", "/apis/cilium.io/v2/namespaces/x/ciliumendpoints/e"),
            "patch cilium.io ciliumendpoints - x e");
  EXPECT_EQ(attrs("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"),
            "create coordination.k8s.io leases - kube-system -");
  EXPECT_EQ(attrs("DELETE", "/apis/cilium.io/v2/ciliumidentities/123"),
            "delete cilium.io ciliumidentities - - 123");
  EXPECT_EQ(attrs("DELETE", "/apis/cilium.io/v2/ciliumidentities"),
            "deletecollection cilium.io ciliumidentities - - -");
  // Non-resource requests: the method's verb, no resource.
  EXPECT_EQ(attrs("GET", "/version"), "get - - - - -");
  EXPECT_EQ(attrs("GET", "/apis/cilium.io/v2"), "get - - - - -");
  EXPECT_EQ(attrs("GET", "/api"), "get - - - - -");
}

TEST(FakeApiServerRequestLogTest, RecordsUsersAndStatusesAndServesTheLog) {
  FakeApiServer::Options o;
  o.users = {{"agent-token", "system:serviceaccount:kube-system:cilium"},
             {"operator-token", "system:serviceaccount:kube-system:cilium-operator"}};
  FakeApiServer server(o);
  ASSERT_TRUE(server.start().ok());
  httplib::Client c("127.0.0.1", server.port());
  auto as = [](const std::string& token) {
    return httplib::Headers{{"Authorization", "Bearer " + token}, {"User-Agent", "test/1"}};
  };
  ASSERT_EQ(c.Get("/api/v1/nodes", as("agent-token"))->status, 200);
  json node = {
      {"apiVersion", "cilium.io/v2"}, {"kind", "CiliumNode"}, {"metadata", {{"name", "n1"}}}};
  ASSERT_EQ(c.Post("/apis/cilium.io/v2/ciliumnodes", as("operator-token"), node.dump(),
                   "application/json")
                ->status,
            201);
  ASSERT_EQ(c.Get("/api/v1/nodes", as("wrong"))->status, 401);
  ASSERT_EQ(c.Delete("/apis/cilium.io/v2/ciliumnodes/n1", as("operator-token"))->status, 200);

  auto log = c.Get("/debug/requests");
  ASSERT_TRUE(log && log->status == 200);
  json j = json::parse(log->body);
  ASSERT_EQ(j.size(), 4u) << j.dump(2) << "\n(/debug/requests itself is not recorded)";
  EXPECT_EQ(j[0], (json{{"user", "system:serviceaccount:kube-system:cilium"},
                        {"userAgent", "test/1"},
                        {"verb", "list"},
                        {"apiGroup", ""},
                        {"apiVersion", "v1"},
                        {"resource", "nodes"},
                        {"subresource", ""},
                        {"namespace", ""},
                        {"name", ""},
                        {"method", "GET"},
                        {"path", "/api/v1/nodes"},
                        {"status", 200}}));
  EXPECT_EQ(j[1]["verb"], "create");
  EXPECT_EQ(j[1]["apiGroup"], "cilium.io");
  EXPECT_EQ(j[1]["user"], "system:serviceaccount:kube-system:cilium-operator");
  EXPECT_EQ(j[1]["status"], 201);
  EXPECT_EQ(j[2]["user"], "");
  EXPECT_EQ(j[2]["status"], 401);
  EXPECT_EQ(j[3]["verb"], "delete");
  EXPECT_EQ(j[3]["name"], "n1");
  EXPECT_EQ(server.requestLogJson(), j);
}

// The binary: --token-user names the users, --request-log writes the log when it stops.
TEST(FakeApiServerRequestLogTest, LocalApiserverWritesTheLogOnExit) {
  TempDir dir;
  SpawnOptions so;
  so.stdout_path = dir.file("url");
  auto p = spawn({CILIUM_LOCAL_APISERVER_BINARY, "--token-user", "t1=system:serviceaccount:a:b",
                  "--request-log", dir.file("requests.json")},
                 so);
  ASSERT_TRUE(p.ok()) << p.error().toString();
  std::string url;
  ASSERT_TRUE(eventually([&] {
    auto t = readFile(dir.file("url"));
    url = t.ok() ? *t : "";
    return url.find('\n') != std::string::npos;
  }));
  url.pop_back();
  httplib::Client c(url);
  ASSERT_EQ(c.Get("/api/v1/namespaces/default/pods?watch=false",
                  httplib::Headers{{"Authorization", "Bearer t1"}})
                ->status,
            200);
  EXPECT_EQ(p->stop(), 0);
  auto text = readFile(dir.file("requests.json"));
  ASSERT_TRUE(text.ok()) << text.error().toString();
  json j = json::parse(*text);
  ASSERT_EQ(j.size(), 1u) << j.dump(2);
  EXPECT_EQ(j[0]["user"], "system:serviceaccount:a:b");
  EXPECT_EQ(j[0]["verb"], "list");
  EXPECT_EQ(j[0]["resource"], "pods");
  EXPECT_EQ(j[0]["namespace"], "default");
  EXPECT_EQ(j[0]["status"], 200);
}

}  // namespace
}  // namespace cilium::testing
