// The manifests-directory source: initial scan, add/edit/remove within a second, malformed files
// reported with file, document and field while the last good version stays in force.
#include "agent/k8s/manifests.h"

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "tests/harness/temp_dir.h"

namespace cilium::k8s {
namespace {

using namespace std::chrono_literals;

template <typename Fn>
bool within(std::chrono::milliseconds timeout, Fn&& fn) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

constexpr const char* kDemo = R"(
apiVersion: v1
kind: Namespace
metadata: {name: empire, labels: {side: dark}}
---
apiVersion: v1
kind: Pod
metadata: {name: deathstar, namespace: empire, labels: {org: empire, class: deathstar}}
spec:
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
data: {a: b}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1, namespace: empire}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
)";

TEST(ManifestSourceTest, InitialScanFillsTheStores) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ASSERT_TRUE(writeFileAtomic(dir.file("notes.txt"), "not a manifest").ok());
  ManifestSource src(dir.path());
  ASSERT_TRUE(src.start().ok());
  EXPECT_TRUE(src.hasSynced());
  EXPECT_EQ(src.stores().namespaces.get("", "empire")->meta.labels.at("side"), "dark");
  auto pod = src.stores().pods.get("empire", "deathstar");
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->ports.at(0).name, "http");
  ASSERT_EQ(src.stores().cilium_network_policies.size(), 1u);
  EXPECT_EQ(src.stores().cilium_network_policies.list()[0].raw["spec"]["endpointSelector"]
                                                              ["matchLabels"]["class"],
            "deathstar");
  EXPECT_TRUE(src.errors().empty());
  EXPECT_EQ(src.name(), "manifests:" + dir.path());
}

TEST(ManifestSourceTest, AddEditRemoveTakeEffectWithinASecond) {
  testing::TempDir dir;
  ManifestSource src(dir.path());
  ASSERT_TRUE(src.start().ok());
  std::vector<std::string> seen;
  std::mutex mu;
  src.stores().pods.addHandlers({[&](const Pod& p) {
                                   std::lock_guard l(mu);
                                   seen.push_back("add " + p.meta.name);
                                 },
                                 [&](const Pod&, const Pod& p) {
                                   std::lock_guard l(mu);
                                   seen.push_back("update " + p.meta.name);
                                 },
                                 [&](const Pod& p) {
                                   std::lock_guard l(mu);
                                   seen.push_back("delete " + p.meta.name);
                                 }});
  auto saw = [&](const std::string& e) {
    std::lock_guard l(mu);
    return std::find(seen.begin(), seen.end(), e) != seen.end();
  };
  ASSERT_TRUE(writeFileAtomic(dir.file("pods.yaml"),
                              "kind: Pod\napiVersion: v1\nmetadata: {name: a, labels: {v: '1'}}\n")
                  .ok());
  EXPECT_TRUE(within(1s, [&] { return saw("add a"); }));
  // Edited in place (not atomically), as an editor might.
  {
    std::FILE* f = std::fopen(dir.file("pods.yaml").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "kind: Pod\napiVersion: v1\nmetadata: {name: a, labels: {v: '2'}}\n---\n"
        "kind: Pod\napiVersion: v1\nmetadata: {name: b}\n",
        f);
    std::fclose(f);
  }
  EXPECT_TRUE(within(1s, [&] { return saw("update a") && saw("add b"); }));
  EXPECT_EQ(src.stores().pods.get("default", "a")->meta.labels.at("v"), "2");
  std::filesystem::remove(dir.file("pods.yaml"));
  EXPECT_TRUE(within(1s, [&] { return saw("delete a") && saw("delete b"); }));
  EXPECT_EQ(src.stores().pods.size(), 0u);
}

TEST(ManifestSourceTest, MalformedFileIsReportedAndChangesNothingInForce) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ManifestSource src(dir.path());
  ASSERT_TRUE(src.start().ok());
  ASSERT_EQ(src.stores().pods.size(), 1u);
  uint64_t gen = src.generation();
  // Document 2's port is a string: the whole file is rejected, the old version stays.
  std::string bad = kDemo;
  bad.replace(bad.find("containerPort: 80"), 17, "containerPort: \"eighty\"");
  bad.replace(bad.find("name: deathstar,"), 16, "name: renamed,");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), bad).ok());
  ASSERT_TRUE(within(1s, [&] { return !src.errors().empty(); }));
  EXPECT_EQ(src.errors().at("demo.yaml"),
            "demo.yaml: document 2 (Pod empire/renamed): "
            "spec.containers[0].ports[0].containerPort: must be an integer");
  EXPECT_GT(src.generation(), gen);
  EXPECT_TRUE(src.stores().pods.get("empire", "deathstar").has_value());
  EXPECT_FALSE(src.stores().pods.get("empire", "renamed").has_value());
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
  // A policy the policy engine rejects is a malformed file too.
  std::string bad_policy = kDemo;
  bad_policy.replace(bad_policy.find("port: \"80\""), 10, "port: \"99999\"");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), bad_policy).ok());
  ASSERT_TRUE(within(1s, [&] {
    auto e = src.errors();
    return e.count("demo.yaml") && e["demo.yaml"].find("document 4") != std::string::npos;
  }));
  EXPECT_NE(src.errors().at("demo.yaml").find("spec.ingress[0].toPorts[0].ports[0].port"),
            std::string::npos)
      << src.errors().at("demo.yaml");
  // Unparseable YAML: file, document, line.
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), "kind: Pod\nmetadata: {name: [\n").ok());
  ASSERT_TRUE(within(1s, [&] {
    auto e = src.errors();
    return e.count("demo.yaml") && e["demo.yaml"].find("line 3") != std::string::npos;
  }));
  EXPECT_EQ(src.stores().pods.size(), 1u);
  // Fixed: the error goes away and the new content is in force.
  std::string fixed = kDemo;
  fixed.replace(fixed.find("name: deathstar,"), 16, "name: renamed,");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), fixed).ok());
  // A scan publishes its objects first and its errors after them: wait for both.
  ASSERT_TRUE(within(1s, [&] {
    return src.stores().pods.get("empire", "renamed").has_value() && src.errors().empty();
  })) << (src.errors().empty() ? std::string() : src.errors().begin()->second);
  EXPECT_FALSE(src.stores().pods.get("empire", "deathstar").has_value());
}

TEST(ManifestSourceTest, MissingDirectoryIsAnError) {
  ManifestSource src("/nonexistent/manifests");
  auto st = src.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace cilium::k8s
