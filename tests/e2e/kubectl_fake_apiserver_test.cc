// The real kubectl (1.32) against the fake apiserver: apply (create, then configure), get, watch
// and delete behave as against a real cluster, and what kubectl applies reaches the agent's
// informers and decodes as policy. Loopback only; needs /usr/lib/google-cloud-sdk/bin/kubectl.1.32.
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/source.h"
#include "agent/policy/decode.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kKubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

constexpr const char* kManifests = R"(
apiVersion: v1
kind: Namespace
metadata: {name: empire, labels: {side: dark}}
---
apiVersion: v1
kind: Pod
metadata: {name: deathstar, namespace: empire, labels: {org: empire, class: deathstar}}
spec:
  nodeName: node-1
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1, namespace: empire}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: empire}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
)";

using cilium::testing::eventually;

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kKubectl)) GTEST_SKIP() << kKubectl << " is not installed";
    ASSERT_TRUE(server.start().ok());
  }
  std::vector<std::string> kubectl(std::vector<std::string> args) {
    std::vector<std::string> argv = {kKubectl, "--server=" + server.url(),
                                     "--cache-dir=" + home.file("cache")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  SpawnOptions env() {
    SpawnOptions o;
    o.extra_env = {"HOME=" + home.path(), "KUBECONFIG=" + home.file("none")};
    return o;
  }
  std::string run(std::vector<std::string> args) {
    auto r = runChecked(kubectl(std::move(args)), env(), 60s);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? *r : "";
  }
  testing::TempDir home;
  testing::FakeApiServer server;
};

TEST_F(KubectlTest, ApplyGetWatchDelete) {
  ASSERT_TRUE(writeFileAtomic(home.file("demo.yaml"), kManifests).ok());
  std::string out = run({"apply", "--validate=false", "-f", home.file("demo.yaml")});
  EXPECT_NE(out.find("namespace/empire created"), std::string::npos) << out;
  EXPECT_NE(out.find("pod/deathstar created"), std::string::npos) << out;
  EXPECT_NE(out.find("ciliumnetworkpolicy.cilium.io/rule1 created"), std::string::npos) << out;
  EXPECT_NE(out.find("networkpolicy.networking.k8s.io/deny-all created"), std::string::npos) << out;
  EXPECT_EQ(server.count(k8s::Resource<k8s::Pod>::info()), 1u);

  // get: JSON lists and jsonpath, short names from discovery.
  json pods = json::parse(run({"get", "pods", "-n", "empire", "-o", "json"}), nullptr, false);
  ASSERT_TRUE(pods.is_object());
  ASSERT_EQ(pods["items"].size(), 1u);
  EXPECT_EQ(pods["items"][0]["metadata"]["labels"]["class"], "deathstar");
  EXPECT_EQ(run({"get", "cnp", "-n", "empire", "-o", "name"}),
            "ciliumnetworkpolicy.cilium.io/rule1\n");

  // Re-apply with a change: kubectl computes a patch from last-applied-configuration.
  std::string changed = kManifests;
  changed.replace(changed.find("port: \"80\""), 10, "port: \"8080\"");
  ASSERT_TRUE(writeFileAtomic(home.file("demo.yaml"), changed).ok());
  out = run({"apply", "--validate=false", "-f", home.file("demo.yaml")});
  EXPECT_NE(out.find("ciliumnetworkpolicy.cilium.io/rule1 configured"), std::string::npos) << out;
  EXPECT_NE(out.find("pod/deathstar unchanged"), std::string::npos) << out;
  EXPECT_EQ(run({"get", "cnp", "rule1", "-n", "empire", "-o",
                 "jsonpath={.spec.ingress[0].toPorts[0].ports[0].port}"}),
            "8080");

  // watch: events made after kubectl started watching are printed as they happen.
  SpawnOptions wo = env();
  wo.stdout_path = home.file("watch.out");
  wo.stderr_path = home.file("watch.err");
  auto watcher = spawn(kubectl({"get", "pods", "-n", "empire", "-w", "--output-watch-events"}), wo);
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE(eventually([&] { return server.openWatches() >= 1; }));
  json xwing = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", "xwing"}, {"namespace", "empire"}}}};
  ASSERT_TRUE(server.create(k8s::Resource<k8s::Pod>::info(), xwing).ok());
  ASSERT_TRUE(server.remove(k8s::Resource<k8s::Pod>::info(), "empire", "xwing").ok());
  ASSERT_TRUE(eventually([&] {
    auto text = readFile(home.file("watch.out"));
    return text.ok() && text->find("DELETED") != std::string::npos;
  })) << readFile(home.file("watch.out")).valueOr("")
      << readFile(home.file("watch.err")).valueOr("");
  std::string watched = *readFile(home.file("watch.out"));
  EXPECT_NE(watched.find("ADDED"), std::string::npos) << watched;
  EXPECT_NE(watched.find("xwing"), std::string::npos) << watched;
  watcher->stop();

  out = run({"delete", "pod", "deathstar", "-n", "empire"});
  EXPECT_NE(out.find("pod \"deathstar\" deleted"), std::string::npos) << out;
  EXPECT_FALSE(server.get(k8s::Resource<k8s::Pod>::info(), "empire", "deathstar").has_value());
  auto missing = cilium::run(kubectl({"get", "pod", "deathstar", "-n", "empire"}), env(), 60s);
  ASSERT_TRUE(missing.ok());
  EXPECT_NE(missing->exit_code, 0);
  EXPECT_NE(missing->err.find("NotFound"), std::string::npos) << missing->err;
}

TEST_F(KubectlTest, PoliciesAppliedWithKubectlReachTheInformersAndDecode) {
  k8s::ClientConfig cfg;
  cfg.server = server.url();
  auto client = k8s::Client::create(cfg);
  ASSERT_TRUE(client.ok());
  k8s::ApiSource source(**client);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(source.waitForSync(15s));
  ASSERT_TRUE(writeFileAtomic(home.file("demo.yaml"), kManifests).ok());
  run({"apply", "--validate=false", "-f", home.file("demo.yaml")});
  auto& stores = source.stores();
  ASSERT_TRUE(eventually([&] {
    return stores.cilium_network_policies.size() == 1 && stores.network_policies.size() == 1 &&
           stores.pods.size() == 1 && stores.namespaces.size() == 1;
  }));
  auto cnp = stores.cilium_network_policies.get("empire", "rule1");
  ASSERT_TRUE(cnp.has_value());
  auto rules = policy::decodePolicyJson(cnp->raw);
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0].namespace_name, "empire");
  auto knp = policy::decodePolicyJson(stores.network_policies.list()[0].raw);
  ASSERT_TRUE(knp.ok()) << knp.error().message();
  run({"delete", "cnp", "rule1", "-n", "empire"});
  ASSERT_TRUE(eventually([&] { return stores.cilium_network_policies.size() == 0; }));
  source.stop();
}

}  // namespace
}  // namespace cilium
