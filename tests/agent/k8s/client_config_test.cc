// kubeconfig and in-cluster configuration parsing, the call counter's resource names, and the
// token bucket.
#include <chrono>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/k8s/client.h"
#include "agent/k8s/store.h"
#include "tests/harness/temp_dir.h"

namespace cilium::k8s {
namespace {

constexpr const char* kKubeconfig = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod
  cluster: {server: "https://prod.example:6443", insecure-skip-tls-verify: true}
- name: dev
  cluster:
    server: https://[fd00::1]:8443
    certificate-authority-data: SGVsbG8gQ0E=
contexts:
- name: dev
  context: {cluster: dev, user: alice, namespace: team}
- name: prod
  context: {cluster: prod, user: bob}
users:
- name: alice
  user: {token: secret-token}
- name: bob
  user: {tokenFile: tok, client-certificate: certs/c.pem, client-key: certs/k.pem}
)";

TEST(ClientConfigTest, CurrentContextWithInlineData) {
  auto cfg = parseKubeconfig(kKubeconfig, "/nowhere");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  EXPECT_EQ(cfg->server, "https://[fd00::1]:8443");
  EXPECT_EQ(cfg->ca_pem, "Hello CA");
  EXPECT_EQ(cfg->token, "secret-token");
  EXPECT_EQ(cfg->namespace_name, "team");
  EXPECT_FALSE(cfg->insecure_skip_tls_verify);
}

TEST(ClientConfigTest, NamedContextWithFilesRelativeToTheKubeconfig) {
  testing::TempDir dir;
  ASSERT_TRUE(makeDirs(dir.file("certs")).ok());
  ASSERT_TRUE(writeFileAtomic(dir.file("certs/c.pem"), "CERT").ok());
  ASSERT_TRUE(writeFileAtomic(dir.file("certs/k.pem"), "KEY").ok());
  ASSERT_TRUE(writeFileAtomic(dir.file("config"), kKubeconfig).ok());
  auto cfg = loadKubeconfig(dir.file("config"), "prod");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  EXPECT_EQ(cfg->server, "https://prod.example:6443");
  EXPECT_TRUE(cfg->insecure_skip_tls_verify);
  EXPECT_EQ(cfg->token_file, dir.file("tok"));
  EXPECT_EQ(cfg->client_cert_pem, "CERT");
  EXPECT_EQ(cfg->client_key_pem, "KEY");
  EXPECT_EQ(cfg->namespace_name, "default");
}

TEST(ClientConfigTest, BadInputNamesTheField) {
  auto err = [](std::string_view text, std::string_view ctx = {}) {
    auto r = parseKubeconfig(text, "/nowhere", ctx);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.error().message();
  };
  EXPECT_EQ(err("{a: 1},"),
            "document 2: not valid YAML or JSON: line 1, column 7: did not find "
            "expected <document start>");
  EXPECT_EQ(err("clusters: []"), "current-context: not set and no context given");
  EXPECT_EQ(err(kKubeconfig, "nope"), "contexts: no entry named \"nope\"");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                "clusters: [{name: c, cluster: {server: 'ftp://x'}}]"),
            "clusters[c].cluster: server: scheme \"ftp\" is not http or https");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://x', "
                "certificate-authority-data: '!!'}}]\nusers: []"),
            "clusters[c].cluster.certificate-authority-data: not valid base64");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://x:99999'}}]"),
            "clusters[c].cluster: server: \"https://x:99999\": bad port");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                "users: [{name: u, user: {client-certificate-data: QQ==}}]"),
            "users[u].user: client-certificate and client-key go together");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                "users: [{name: u, user: {token: 5}}]"),
            "users[u].user.token: must be a string");
  EXPECT_EQ(err("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://x', "
                "certificate-authority: /does/not/exist}}]"),
            "clusters[c].cluster.certificate-authority: read /does/not/exist: No such file or "
            "directory");
}

TEST(ClientConfigTest, InClusterConfig) {
  testing::TempDir sa;
  ASSERT_TRUE(writeFileAtomic(sa.file("token"), "tok\n").ok());
  ASSERT_TRUE(writeFileAtomic(sa.file("ca.crt"), "CA").ok());
  ASSERT_TRUE(writeFileAtomic(sa.file("namespace"), "kube-system\n").ok());
  auto env = [](const char* name) -> const char* {
    if (std::string_view(name) == "KUBERNETES_SERVICE_HOST") return "fd00::10";
    if (std::string_view(name) == "KUBERNETES_SERVICE_PORT") return "443";
    return nullptr;
  };
  auto cfg = inClusterConfig(env, sa.path());
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  EXPECT_EQ(cfg->server, "https://[fd00::10]:443");
  EXPECT_EQ(cfg->token_file, sa.file("token"));
  EXPECT_EQ(cfg->ca_pem, "CA");
  EXPECT_EQ(cfg->namespace_name, "kube-system");
  auto none = inClusterConfig([](const char*) -> const char* { return nullptr; }, sa.path());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(ClientConfigTest, ResourceOfPath) {
  EXPECT_EQ(resourceOfPath("/api/v1/pods?limit=5"), "pods");
  EXPECT_EQ(resourceOfPath("/api/v1/namespaces/a/pods/b"), "pods");
  EXPECT_EQ(resourceOfPath("/api/v1/namespaces/a"), "namespaces");
  EXPECT_EQ(resourceOfPath("/apis/cilium.io/v2/namespaces/x/ciliumendpoints"), "ciliumendpoints");
  EXPECT_EQ(resourceOfPath("/apis/cilium.io/v2/ciliumidentities/300"), "ciliumidentities");
  EXPECT_EQ(resourceOfPath("/version"), "version");
}

TEST(ClientConfigTest, RateLimiterHoldsTheRate) {
  RateLimiter limiter(200, 5);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 25; i++) limiter.acquire();
  auto elapsed = std::chrono::steady_clock::now() - start;
  // 5 from the burst, 20 more at 200/s: at least 100 ms.
  EXPECT_GE(elapsed, std::chrono::milliseconds(95));
  EXPECT_GT(limiter.waited().count(), 0);
  RateLimiter unlimited(0, 1);
  for (int i = 0; i < 1000; i++) unlimited.acquire();
  EXPECT_EQ(unlimited.waited().count(), 0);
}

}  // namespace
}  // namespace cilium::k8s

namespace cilium::k8s {
namespace {

TEST(CallCounterTest, SubscriberHearsPastAndFutureCallsOnce) {
  CallCounter c;
  c.add("GET", "pods", "200");
  c.add("GET", "pods", "200");
  std::map<CallCounter::Key, uint64_t> heard;
  c.subscribe([&](const CallCounter::Key& k, uint64_t n) { heard[k] += n; });
  c.add("GET", "pods", "200");
  c.add("WATCH", "pods", "<error>");
  EXPECT_EQ((heard[{"GET", "pods", "200"}]), 3u);
  EXPECT_EQ((heard[{"WATCH", "pods", "<error>"}]), 1u);
  EXPECT_EQ(heard, c.snapshot());
  c.subscribe(nullptr);
  c.add("GET", "pods", "200");
  EXPECT_EQ((heard[{"GET", "pods", "200"}]), 3u);
}

TEST(StoreTest, WaitForAnObjectThatArrivesLater) {
  Store<Pod> pods;
  Pod p;
  p.meta.name = "web";
  p.meta.namespace_name = "default";
  EXPECT_FALSE(pods.waitFor("default/web", std::chrono::milliseconds(10)).has_value());
  std::thread writer([&] { pods.upsert(p); });
  auto got = pods.waitFor("default/web", std::chrono::seconds(10));
  writer.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->meta.name, "web");
}

}  // namespace
}  // namespace cilium::k8s
