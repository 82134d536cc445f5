// The chart's configuration as the components read it: the rendered cilium-config mounted as the
// kubelet mounts a ConfigMap (a timestamped directory, `..data`, one symlink per key) is the
// agent's --config-dir, and every key is the agent's own or one of the Cilium keys listed below;
// the operator runs from the same directory with the Deployment's arguments (nothing but
// --config-dir and --debug from the ConfigMap, as Cilium's chart). For several value sets, each
// value must come through as rendered, and every key is the agent's or the operator's.
#include "agent/daemon/config.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "agent/config/config.h"
#include "operator/operator.h"
#include "tests/harness/temp_dir.h"

namespace cilium {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

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
// an empty devices list is the empty text; a Go duration is the agent's seconds).
bool sameValue(const std::string& rendered, const std::string& loaded) {
  if (rendered == loaded) return true;
  auto d = config::parseDuration(rendered);
  return d.ok() && std::to_string(d->count() / 1000) == loaded && d->count() % 1000 == 0;
}

// The container's environment as the kubelet builds it: plain values, the downward API fields the
// chart uses, and configMapKeyRef from the rendered cilium-config.
std::map<std::string, std::string> containerEnv(const json& container, const json& cm) {
  std::map<std::string, std::string> env;
  for (const auto& e : container.value("env", json::array())) {
    std::string name = e["name"];
    if (e.contains("value")) {
      env[name] = e["value"].get<std::string>();
    } else if (e.contains("valueFrom") && e["valueFrom"].contains("fieldRef")) {
      std::string field = e["valueFrom"]["fieldRef"]["fieldPath"];
      EXPECT_TRUE(field == "spec.nodeName" || field == "metadata.namespace") << field;
      env[name] = field == "spec.nodeName" ? "node-1" : "kube-system";
    } else if (e.contains("valueFrom") && e["valueFrom"].contains("configMapKeyRef")) {
      const json& ref = e["valueFrom"]["configMapKeyRef"];
      EXPECT_EQ(ref.value("name", ""), "cilium-config");
      std::string key = ref["key"];
      if (cm["data"].contains(key)) env[name] = cm["data"][key].get<std::string>();
    } else {
      ADD_FAILURE() << "env " << name << ": a source this test does not resolve: " << e.dump();
    }
  }
  return env;
}

// $(NAME) in an argument replaced by the variable's value, as the kubelet does.
std::string expand(std::string arg, const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env)
    for (size_t at; (at = arg.find("$(" + k + ")")) != std::string::npos;)
      arg.replace(at, k.size() + 3, v);
  return arg;
}

class ChartConfigTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(ChartConfigTest, AgentAndOperatorReadTheRenderedConfiguration) {
  auto docs = render(GetParam());
  ASSERT_FALSE(docs.empty());
  const json& cm = find(docs, "ConfigMap");
  const json& deploy = find(docs, "Deployment");
  ASSERT_TRUE(cm.contains("data"));
  testing::TempDir tmp;
  const std::string dir = tmp.file("config-map");
  mountConfigMap(cm["data"], dir);

  // The operator as the chart runs it: cilium-config mounted where its --config-dir says, the
  // arguments expanded from its environment; no setting passed as a flag.
  const json& pod = deploy["spec"]["template"]["spec"];
  const json& container = pod["containers"][0];
  std::string mount_path;
  for (const auto& m : container.value("volumeMounts", json::array()))
    if (m.value("name", "") == "cilium-config-path") mount_path = m["mountPath"];
  ASSERT_EQ(mount_path, "/tmp/cilium/config-map") << container.dump();
  bool from_config_map = false;
  for (const auto& v : pod.value("volumes", json::array()))
    if (v.value("name", "") == "cilium-config-path")
      from_config_map = v["configMap"].value("name", "") == "cilium-config";
  EXPECT_TRUE(from_config_map) << pod.dump();
  auto env = containerEnv(container, cm);
  std::vector<std::string> args;
  for (const auto& a : container["args"]) {
    std::string arg = expand(a.get<std::string>(), env);
    EXPECT_EQ(arg.find("$("), std::string::npos) << a << ": a variable the pod does not have";
    if (arg == "--config-dir=" + mount_path) arg = "--config-dir=" + dir;
    args.push_back(arg);
  }
  EXPECT_EQ(args.size(), 2u) << "the operator's settings belong in cilium-config: "
                             << container["args"].dump();
  auto oc = op::parseFlags(args, [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  ASSERT_TRUE(oc.ok()) << oc.error().message();
  EXPECT_EQ(oc->config_dir, dir);
  EXPECT_EQ(oc->ipam, cm["data"]["ipam"].get<std::string>());
  if (oc->ipam == "cluster-pool") {
    std::string pools;
    for (const auto& p : oc->cluster_pool_ipv4_cidr) pools += (pools.empty() ? "" : " ") + p;
    EXPECT_EQ(pools, cm["data"]["cluster-pool-ipv4-cidr"].get<std::string>());
    EXPECT_EQ(std::to_string(oc->cluster_pool_ipv4_mask_size),
              cm["data"]["cluster-pool-ipv4-mask-size"].get<std::string>());
  }
  EXPECT_EQ(oc->leader_election_namespace, "kube-system");
  EXPECT_EQ(oc->cilium_pod_namespace, "kube-system");
  EXPECT_EQ(oc->operator_api_serve_addr, cm["data"]["operator-api-serve-addr"].get<std::string>());
  EXPECT_EQ(std::to_string(oc->k8s_client_burst),
            cm["data"]["operator-k8s-client-burst"].get<std::string>());
  EXPECT_EQ(oc->debug, cm["data"]["debug"].get<std::string>() == "true");
  EXPECT_EQ(oc->enable_metrics, cm["data"].contains("enable-metrics"));
  if (oc->enable_metrics) {
    EXPECT_EQ(oc->operator_prometheus_serve_addr,
              cm["data"]["operator-prometheus-serve-addr"].get<std::string>());
  }

  // every key is the agent's or the operator's: a typo fails here
  auto operator_ignores = [&](const std::string& k) {
    return std::find(oc->ignored_keys.begin(), oc->ignored_keys.end(), k) != oc->ignored_keys.end();
  };
  for (const auto& [key, value] : cm["data"].items())
    EXPECT_TRUE(daemon::findConfigKey(key) != nullptr || !operator_ignores(key))
        << "cilium-config key " << key << " is neither cilium-agent's nor cilium-operator's";

  daemon::Environment agent_env{[](const std::string& k) -> std::optional<std::string> {
                                  if (k == "K8S_NODE_NAME") return "node-1";
                                  return std::nullopt;
                                },
                                [] { return std::string("node-1"); }};
  auto loaded = daemon::loadConfig({"--config-dir=" + dir}, agent_env);
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
        std::vector<std::string>{"ipam.mode=kubernetes", "hubble.enabled=false",
                                 "operator.prometheus.enabled=false"},
        std::vector<std::string>{"prometheus.enabled=true", "hubble.metrics.enabled={dns,drop}",
                                 "hubble.tls.enabled=false", "debug.enabled=true",
                                 "ipv6.enabled=true", "MTU=9000",
                                 "ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/"
                                 "16,10.2.0.0/16}"}));

}  // namespace
}  // namespace cilium
