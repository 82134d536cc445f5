// The chart's configuration as the components read it: the rendered cilium-config mounted as the
// kubelet mounts a ConfigMap (a timestamped directory, `..data`, one symlink per key) is the
// agent's --config-dir, and every key is the agent's own or one of the Cilium keys listed below;
// the operator's rendered flags parse. For several value sets, each value the agent knows must
// come through as rendered.
#include "agent/daemon/config.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "operator/operator.h"
#include "tests/harness/temp_dir.h"

namespace cilium {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Keys the chart renders with Cilium's names that are not cilium-agent keys: the operator's
// pool (Cilium's agent ignores it too; ours lists it as ignored). Anything else must be a key of
// the agent's registry: a typo fails here.
const std::set<std::string> kCiliumKeys = {"cluster-pool-ipv4-cidr",
                                           "cluster-pool-ipv4-mask-size"};

std::vector<json> render(const std::vector<std::string>& values) {
  std::vector<std::string> argv = {CILIUM_HELM_TEMPLATE,
                                   "cilium",
                                   CILIUM_CHART_DIR,
                                   "--namespace",
                                   "kube-system",
                                   "--show-only",
                                   "templates/cilium-configmap.yaml",
                                   "--show-only",
                                   "templates/cilium-operator/deployment.yaml"};
  for (const auto& v : values) {
    argv.push_back("--set");
    argv.push_back(v);
  }
  auto out = runChecked(argv);
  EXPECT_TRUE(out.ok()) << out.error().message();
  if (!out.ok()) return {};
  auto docs = yaml::toJson(*out);
  EXPECT_TRUE(docs.ok()) << docs.error().message();
  return docs.ok() ? *docs : std::vector<json>{};
}

const json& find(const std::vector<json>& docs, const std::string& kind) {
  static const json none;
  for (const auto& d : docs)
    if (d.value("kind", "") == kind) return d;
  ADD_FAILURE() << "no " << kind;
  return none;
}

// The kubelet's layout of a ConfigMap volume.
void mountConfigMap(const json& data, const std::string& dir) {
  const std::string ts = "..2026_12_07_03_00_00.000000001";
  fs::create_directories(dir + "/" + ts);
  for (const auto& [key, value] : data.items()) {
    std::ofstream(dir + "/" + ts + "/" + key) << value.get<std::string>();
    fs::create_symlink("..data/" + key, dir + "/" + key);
  }
  fs::create_directory_symlink(ts, dir + "/..data");
}

// A rendered value and the agent's text of it mean the same (booleans and numbers print alike;
// an empty devices list is the empty text).
bool sameValue(const std::string& rendered, const std::string& loaded) {
  return rendered == loaded;
}

class ChartConfigTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(ChartConfigTest, AgentAndOperatorReadTheRenderedConfiguration) {
  auto docs = render(GetParam());
  ASSERT_FALSE(docs.empty());
  const json& cm = find(docs, "ConfigMap");
  const json& deploy = find(docs, "Deployment");
  ASSERT_TRUE(cm.contains("data"));

  // the operator's flags
  auto args =
      deploy["spec"]["template"]["spec"]["containers"][0]["args"].get<std::vector<std::string>>();
  auto oc = op::parseFlags(args);
  ASSERT_TRUE(oc.ok()) << oc.error().message();
  EXPECT_EQ(oc->ipam, cm["data"]["ipam"].get<std::string>());
  if (oc->ipam == "cluster-pool") {
    std::string pools;
    for (const auto& p : oc->cluster_pool_ipv4_cidr) pools += (pools.empty() ? "" : " ") + p;
    EXPECT_EQ(pools, cm["data"]["cluster-pool-ipv4-cidr"].get<std::string>());
    EXPECT_EQ(std::to_string(oc->cluster_pool_ipv4_mask_size),
              cm["data"]["cluster-pool-ipv4-mask-size"].get<std::string>());
  }
  EXPECT_EQ(oc->leader_election_namespace, "kube-system");

  // every key is the agent's or a known Cilium key
  for (const auto& [key, value] : cm["data"].items())
    EXPECT_TRUE(daemon::findConfigKey(key) != nullptr || kCiliumKeys.count(key))
        << "cilium-config key " << key << " is neither cilium-agent's nor a known Cilium key";

  testing::TempDir tmp;
  const std::string dir = tmp.file("config-map");
  mountConfigMap(cm["data"], dir);
  daemon::Environment env{[](const std::string& k) -> std::optional<std::string> {
                            if (k == "K8S_NODE_NAME") return "node-1";
                            return std::nullopt;
                          },
                          [] { return std::string("node-1"); }};
  auto loaded = daemon::loadConfig({"--config-dir=" + dir}, env);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  for (const auto& [key, value] : cm["data"].items()) {
    const auto* k = daemon::findConfigKey(key);
    if (k == nullptr) continue;
    EXPECT_TRUE(sameValue(value.get<std::string>(), daemon::configValueText(*k, loaded->config)))
        << key << ": rendered '" << value.get<std::string>() << "', the agent has '"
        << daemon::configValueText(*k, loaded->config) << "'";
    auto src = loaded->sources.find(key);
    EXPECT_TRUE(src != loaded->sources.end()) << key << " not taken from the config dir";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Values, ChartConfigTest,
    ::testing::Values(
        std::vector<std::string>{},
        std::vector<std::string>{"routingMode=native", "autoDirectNodeRoutes=true",
                                 "bpf.masquerade=true", "devices=eth0",
                                 "ipv4NativeRoutingCIDR=10.0.0.0/8"},
        std::vector<std::string>{"kubeProxyReplacement=true", "k8sServiceHost=10.0.0.1"},
        std::vector<std::string>{"ipam.mode=kubernetes", "hubble.enabled=false"},
        std::vector<std::string>{"prometheus.enabled=true", "hubble.metrics.enabled={dns,drop}",
                                 "hubble.tls.enabled=false", "debug.enabled=true",
                                 "ipv6.enabled=true", "MTU=9000",
                                 "ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/"
                                 "16,10.2.0.0/16}"}));

}  // namespace
}  // namespace cilium
