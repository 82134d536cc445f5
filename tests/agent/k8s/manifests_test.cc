// The manifests-directory source: initial scan, add/edit/remove within a second, bad documents
// reported with file, document and field while their last good version stays in force, unknown
// kinds, half-written files, and the state that survives a restart.
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

TEST(ManifestSourceTest, BadDocumentsKeepTheirLastGoodVersionAndRemoveNothing) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ManifestSource src(dir.path());
  ASSERT_TRUE(src.start().ok());
  ASSERT_EQ(src.stores().pods.size(), 1u);
  uint64_t gen = src.generation();
  // Document 2 (the pod, renamed) has a string port: reported, and the file's other objects
  // stay; the old pod stays too, since a file with a bad document removes nothing.
  std::string bad = kDemo;
  bad.replace(bad.find("containerPort: 80"), 17, "containerPort: \"eighty\"");
  bad.replace(bad.find("name: deathstar,"), 16, "name: renamed,");
  bad.replace(bad.find("side: dark"), 10, "side: light");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), bad).ok());
  ASSERT_TRUE(within(1s, [&] { return !src.errors().empty(); }));
  EXPECT_EQ(src.errors().at("demo.yaml"),
            "demo.yaml: document 2 (Pod empire/renamed): "
            "spec.containers[0].ports[0].containerPort: must be an integer");
  EXPECT_GT(src.generation(), gen);
  EXPECT_TRUE(src.stores().pods.get("empire", "deathstar").has_value());
  EXPECT_FALSE(src.stores().pods.get("empire", "renamed").has_value());
  EXPECT_EQ(src.stores().namespaces.get("", "empire")->meta.labels.at("side"), "light")
      << "the valid documents of the file take effect";
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
  // A policy's rules are the policy feed's to judge: here it is an object like any other.
  std::string bad_rules = kDemo;
  bad_rules.replace(bad_rules.find("port: \"80\""), 10, "port: \"99999\"");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), bad_rules).ok());
  ASSERT_TRUE(within(1s, [&] {
    auto p = src.stores().cilium_network_policies.get("empire", "rule1");
    return p && p->raw["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] == "99999" &&
           src.errors().empty();
  }));
  // Unparseable YAML: file, line; every object of the file stays.
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), "kind: Pod\nmetadata: {name: [\n").ok());
  ASSERT_TRUE(within(1s, [&] {
    auto e = src.errors();
    return e.count("demo.yaml") && e["demo.yaml"].find("line 3") != std::string::npos;
  }));
  EXPECT_EQ(src.stores().pods.size(), 1u);
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
  // Fixed: the error goes away and the new content is in force, removals included.
  std::string fixed = kDemo;
  fixed.replace(fixed.find("name: deathstar,"), 16, "name: renamed,");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), fixed).ok());
  // A scan publishes its objects first and its errors after them: wait for both.
  ASSERT_TRUE(within(1s, [&] {
    return src.stores().pods.get("empire", "renamed").has_value() && src.errors().empty();
  })) << (src.errors().empty() ? std::string() : src.errors().begin()->second);
  EXPECT_FALSE(src.stores().pods.get("empire", "deathstar").has_value());
}

// A typo in kind is an error naming file, document and field, and changes nothing: the object
// the document held before stays (as the file removes nothing).
TEST(ManifestSourceTest, UnknownKindOrApiVersionIsAnErrorAndChangesNothing) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ManifestSource src(dir.path());
  ASSERT_TRUE(src.start().ok());
  std::string typo = kDemo;
  typo.replace(typo.find("kind: CiliumNetworkPolicy"), 25, "kind: CiliumNetworkPolicyy");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), typo).ok());
  ASSERT_TRUE(within(1s, [&] { return !src.errors().empty(); }));
  EXPECT_EQ(src.errors().at("demo.yaml"),
            "demo.yaml: document 4 (CiliumNetworkPolicyy empire/rule1): kind: "
            "\"CiliumNetworkPolicyy\" (apiVersion cilium.io/v2) is not a kind this agent knows "
            "(did you mean CiliumNetworkPolicy?)");
  EXPECT_TRUE(src.stores().cilium_network_policies.get("empire", "rule1").has_value());

  std::string version = kDemo;
  version.replace(version.find("apiVersion: cilium.io/v2"), 24, "apiVersion: cilium.io/v3");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), version).ok());
  ASSERT_TRUE(within(1s, [&] {
    auto e = src.errors();
    return e.count("demo.yaml") && e["demo.yaml"].find("cilium.io/v3") != std::string::npos;
  }));
  EXPECT_NE(src.errors().at("demo.yaml").find("document 4 (CiliumNetworkPolicy empire/rule1): "
                                              "apiVersion: \"cilium.io/v3\" is not cilium.io/v2"),
            std::string::npos)
      << src.errors().at("demo.yaml");
  EXPECT_TRUE(src.stores().cilium_network_policies.get("empire", "rule1").has_value());

  ASSERT_TRUE(writeFileAtomic(dir.file("other.yaml"),
                              "kind: Pod\nmetadata: {name: x}\n---\n"
                              "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
                  .ok());
  ASSERT_TRUE(within(1s, [&] { return src.errors().count("other.yaml") != 0; }));
  EXPECT_EQ(src.errors().at("other.yaml"),
            "other.yaml: document 1 (Pod x): apiVersion: required")
      << "a Deployment is skipped without an error; a Pod without apiVersion is one";
}

// A file truncated and then written, or written in several steps through one open file, is never
// read half-way: an empty file means nothing yet, and a file open for writing is read once its
// writer closes it.
TEST(ManifestSourceTest, HalfWrittenFilesAreNotActedOn) {
  testing::TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ManifestSource src(dir.path(), ManifestOptions{.settle = 20ms});
  ASSERT_TRUE(src.start().ok());
  // Truncated, closed, and left so for longer than the settle time.
  {
    std::FILE* f = std::fopen(dir.file("demo.yaml").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  uint64_t gen = src.generation();
  ASSERT_TRUE(within(1s, [&] { return src.generation() > gen; }));
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u) << "an empty file removes nothing";
  EXPECT_EQ(src.stores().pods.size(), 1u);

  // Written in two steps through one open file, 200 ms apart: the first half holds only the
  // namespace and the pod, so reading it would drop the policy.
  std::string text = kDemo;
  size_t half = text.find("apiVersion: v1\nkind: ConfigMap");
  std::FILE* f = std::fopen(dir.file("demo.yaml").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(text.substr(0, half).c_str(), f);
  std::fflush(f);
  gen = src.generation();
  // The writer's pause: the source scans (its settle time passes) but leaves the file alone.
  ASSERT_TRUE(within(1s, [&] { return src.generation() > gen; }));
  std::this_thread::sleep_for(200ms);  // the rest of the writer's pause
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u) << "a file open for writing was read";
  gen = src.generation();
  std::fputs(text.substr(half).c_str(), f);
  std::fclose(f);
  ASSERT_TRUE(within(1s, [&] { return src.generation() > gen; }));
  EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
  EXPECT_TRUE(src.errors().empty()) << src.errors().begin()->second;
}

// What was in force survives a restart whatever the files say then: the state file brings back
// the objects of a file that is unreadable at start.
TEST(ManifestSourceTest, ObjectsInForceSurviveARestart) {
  testing::TempDir dir, state;
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), kDemo).ok());
  ManifestOptions opts;
  opts.state_file = state.file("manifests.json");
  {
    ManifestSource src(dir.path(), opts);
    ASSERT_TRUE(src.start().ok());
    ASSERT_EQ(src.stores().cilium_network_policies.size(), 1u);
  }
  // While the agent is away the file gets a bad document (a policy kind nobody knows).
  std::string bad = kDemo + std::string("---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyy\n"
                                        "metadata: {name: rule2, namespace: empire}\n");
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), bad).ok());
  {
    ManifestSource src(dir.path(), opts);
    ASSERT_TRUE(src.start().ok());
    EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
    EXPECT_EQ(src.errors().size(), 1u);
  }
  // Unparseable at start: the objects of its last good version stay in force.
  ASSERT_TRUE(writeFileAtomic(dir.file("demo.yaml"), "kind: [\n").ok());
  {
    ManifestSource src(dir.path(), opts);
    ASSERT_TRUE(src.start().ok());
    EXPECT_EQ(src.stores().cilium_network_policies.size(), 1u);
    EXPECT_EQ(src.stores().pods.size(), 1u);
  }
  // Removed while away: its objects go.
  std::filesystem::remove(dir.file("demo.yaml"));
  {
    ManifestSource src(dir.path(), opts);
    ASSERT_TRUE(src.start().ok());
    EXPECT_EQ(src.stores().cilium_network_policies.size(), 0u);
  }
  // A state file that is not ours stops the start instead of being ignored.
  ASSERT_TRUE(writeFileAtomic(opts.state_file, "garbage").ok());
  ManifestSource src(dir.path(), opts);
  auto st = src.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(ManifestSourceTest, MissingDirectoryIsAnError) {
  ManifestSource src("/nonexistent/manifests");
  auto st = src.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace cilium::k8s
