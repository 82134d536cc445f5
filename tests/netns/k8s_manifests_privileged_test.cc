// The agent in standalone mode (--manifests-dir) with pods wired by the real cilium-cni: pods take
// their identities from the Pod and Namespace manifests, CiliumNetworkPolicy files are enforced
// on real TCP as they are added, edited and removed, a malformed file changes nothing in force,
// a pod's label change moves its endpoint to a new identity, and a Service with its
// EndpointSlice is balanced to the pod.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
constexpr uint16_t kPort = 8080;

using cilium::testing::eventually;

class ManifestsTest : public testing::AgentNodeTest {
 protected:
  ManifestsTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    AgentNodeTest::SetUp();
    manifests_ = dir_ + "/manifests";
    std::filesystem::create_directories(manifests_);
  }
  void TearDown() override {
    for (const auto& ns : netns_) (void)run({"ip", "netns", "del", ns});
  }

  void write(const std::string& name, const std::string& text) {
    // Written aside and renamed, as editors and kubectl-like tools do: the agent never sees half
    // a file.
    std::string tmp = manifests_ + "/." + name + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, manifests_ + "/" + name);
  }
  void remove(const std::string& name) { std::filesystem::remove(manifests_ + "/" + name); }

  // A pod: a sandbox namespace wired by cilium-cni ADD; returns its address.
  std::string addPod(const std::string& pod, int* exit_code = nullptr) {
    std::string ns = topo_->prefix() + "-" + pod;
    auto r = run({"ip", "netns", "add", ns});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    netns_.push_back(ns);
    netns_path_[pod] = "/run/netns/" + ns;
    auto add =
        node_->cni(CILIUM_CNI_BINARY, {"ADD", "ctr-" + pod, netns_path_[pod], "default", pod});
    EXPECT_TRUE(add.ok());
    if (exit_code != nullptr) *exit_code = add.ok() ? add->exit_code : -1;
    if (!add.ok() || add->exit_code != 0) {
      if (exit_code == nullptr)
        ADD_FAILURE() << "ADD " << pod << ": " << (add.ok() ? add->out : "");
      return "";
    }
    std::string ip = nlohmann::json::parse(add->out)["ips"][0]["address"];
    return ip.substr(0, ip.find('/'));
  }

  // A TCP connection from `from` to ip:port completes (the listener's backlog is drained).
  bool reaches(const std::string& from, const std::string& ip, int listen_fd) {
    auto c = testing::connectTcp(netns_path_[from], ip, kPort, 700ms);
    if (!c.ok()) return false;
    (void)testing::acceptTcp(listen_fd, 1s);
    return true;
  }

  std::optional<api::Endpoint> endpointOf(const std::string& pod) {
    auto eps = node_->client().listEndpoints();
    if (!eps.ok()) return std::nullopt;
    for (const auto& ep : *eps)
      if (ep.status && ep.status->external_identifiers &&
          ep.status->external_identifiers->pod_name == "default/" + pod)
        return ep;
    return std::nullopt;
  }
  std::vector<std::string> identityLabels(const std::string& pod) {
    auto ep = endpointOf(pod);
    if (!ep || !ep->status->identity) return {};
    return ep->status->identity->labels;
  }
  static bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }

  std::string manifests_;
  std::vector<std::string> netns_;
  std::map<std::string, std::string> netns_path_;
};

constexpr const char* kPods = R"(apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    team: blue
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers:
  - name: web
    image: local/http
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {containers: [{name: c, image: local/http}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec: {containers: [{name: c, image: local/http}]}
)";

// Only app=client may reach app=web, on the port the web pod names "http".
constexpr const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-from-client
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: http}]}]
)";

TEST_F(ManifestsTest, PodsPoliciesAndServicesFromTheDirectory) {
  write("pods.yaml", kPods);
  Process* agent = node_->startReady("agent", {"--manifests-dir=" + manifests_});
  ASSERT_NE(agent, nullptr);

  std::string web = addPod("web"), client = addPod("client"), other = addPod("other");
  ASSERT_FALSE(web.empty() || client.empty() || other.empty());

  // Identities come from the manifests: pod labels, namespace, namespace labels.
  auto labels = identityLabels("web");
  EXPECT_TRUE(has(labels, "k8s:app=web")) << ::testing::PrintToString(labels);
  EXPECT_TRUE(has(labels, "k8s:io.kubernetes.pod.namespace=default"));
  EXPECT_TRUE(has(labels, "k8s:io.cilium.k8s.namespace.labels.team=blue"));

  // A pod the manifests do not declare is not wired: kubelet is told to try again.
  int code = 0;
  EXPECT_EQ(addPod("ghost", &code), "");
  EXPECT_EQ(code, 11);

  auto listener = testing::listenTcp(netns_path_["web"], web, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  int lfd = listener->get();
  EXPECT_TRUE(reaches("client", web, lfd));
  EXPECT_TRUE(reaches("other", web, lfd));

  // The policy file takes effect within a second (named port resolved from the pod).
  auto t0 = std::chrono::steady_clock::now();
  write("policy.yaml", kPolicy);
  ASSERT_TRUE(eventually([&] { return !reaches("other", web, lfd); }, 3s)) << node_->log("agent");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(reaches("client", web, lfd));
  auto ep = endpointOf("web");
  ASSERT_TRUE(ep && ep->status->policy && ep->status->policy->realized);

  // A bad edit of the policy file is reported and changes nothing in force (its last good
  // version stays). A new policy that cannot be decoded fails closed: one with deny rules makes
  // the pods it selects deny all traffic in that direction until it is fixed or removed.
  write("policy.yaml", std::string(kPolicy) + "  - fromEntities: [wrld]\n");
  EXPECT_TRUE(eventually(
      [&] { return node_->log("agent").find("unknown entity \"wrld\"") != std::string::npos; },
      3s))
      << node_->log("agent");
  EXPECT_FALSE(reaches("other", web, lfd));
  EXPECT_TRUE(reaches("client", web, lfd));
  write("broken.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n"
        "spec: {endpointSelector: {matchLabels: {app: web}}, ingressDeny: [{toPorts: "
        "[{ports: [{port: \"99999\"}]}]}]}\n");
  EXPECT_TRUE(eventually([&] { return !reaches("client", web, lfd); }, 3s))
      << "an invalid policy selecting web must fail closed\n"
      << node_->log("agent");
  EXPECT_NE(node_->log("agent").find("failing closed"), std::string::npos);
  EXPECT_FALSE(reaches("other", web, lfd));
  remove("broken.yaml");
  EXPECT_TRUE(eventually([&] { return reaches("client", web, lfd); }, 3s));
  write("policy.yaml", kPolicy);

  // The other pod takes the client's label: new identity, now allowed.
  std::string relabeled = kPods;
  relabeled.replace(relabeled.find("app: other"), 10, "app: client");
  write("pods.yaml", relabeled);
  EXPECT_TRUE(eventually([&] { return has(identityLabels("other"), "k8s:app=client"); }, 3s));
  EXPECT_TRUE(eventually([&] { return reaches("other", web, lfd); }, 3s));
  write("pods.yaml", kPods);
  EXPECT_TRUE(eventually([&] { return !reaches("other", web, lfd); }, 3s));

  // A Service and its EndpointSlice: programmed, and balanced to the web pod.
  write("service.yaml", R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [")" + web + R"("]
  conditions: {ready: true}
  nodeName: node-1
)");
  ASSERT_TRUE(eventually(
      [&] {
        auto svcs = node_->client().listServices();
        if (!svcs.ok()) return false;
        for (const auto& s : *svcs)
          if (s.spec && s.spec->frontend_address.ip == "10.96.0.10" &&
              s.spec->backend_addresses.size() == 1 && s.spec->backend_addresses[0].ip == web)
            return true;
        return false;
      },
      3s));
  auto via_service = testing::connectTcp(netns_path_["client"], "10.96.0.10", 80, 2s);
  EXPECT_TRUE(via_service.ok()) << via_service.error().toString();

  // Removing the policy file removes the policy.
  remove("policy.yaml");
  EXPECT_TRUE(eventually([&] { return reaches("other", web, lfd); }, 3s));
}

// The policy in force survives an agent restart (kill -9) whatever the directory says at start: a
// file with the rule and an invalid document, then a file that is not even YAML. Denied
// connections attempted all through the restarts never get through.
TEST_F(ManifestsTest, PolicyInForceSurvivesARestartWithBadFiles) {
  write("pods.yaml", kPods);
  write("policy.yaml", kPolicy);
  Process* agent = node_->startReady("agent", {"--manifests-dir=" + manifests_});
  ASSERT_NE(agent, nullptr);
  std::string web = addPod("web"), client = addPod("client"), other = addPod("other");
  ASSERT_FALSE(web.empty() || client.empty() || other.empty());
  auto listener = testing::listenTcp(netns_path_["web"], web, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  int lfd = listener->get();
  ASSERT_TRUE(eventually([&] { return !reaches("other", web, lfd); }, 3s));
  ASSERT_TRUE(reaches("client", web, lfd));

  // The file gains a document the agent cannot take: reported, the rule stays.
  write("policy.yaml", std::string(kPolicy) +
                           "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyy\n"
                           "metadata: {name: typo}\nspec: {endpointSelector: {}}\n");
  ASSERT_TRUE(eventually(
      [&] { return node_->log("agent").find("did you mean CiliumNetworkPolicy") != std::string::npos; },
      3s));

  // Probes from the denied pod, all through two restarts.
  std::atomic<bool> stop{false};
  std::atomic<int> probes{0}, through{0};
  std::thread prober([&] {
    while (!stop) {
      probes++;
      if (testing::connectTcp(netns_path_["other"], web, kPort, 100ms).ok()) {
        through++;
        (void)testing::acceptTcp(lfd, 1s);
      }
    }
  });
  auto restart = [&](const std::string& log) {
    agent->signal(SIGKILL);
    (void)agent->wait(10s);
    agent = node_->startReady(log, {"--manifests-dir=" + manifests_});
    return agent != nullptr;
  };
  EXPECT_TRUE(restart("agent2"));
  EXPECT_NE(node_->log("agent2").find("did you mean CiliumNetworkPolicy"), std::string::npos);
  // Not even YAML when the agent starts: the objects in force before stay in force.
  agent->signal(SIGKILL);
  (void)agent->wait(10s);
  write("policy.yaml", "kind: [\n");
  agent = node_->startReady("agent3", {"--manifests-dir=" + manifests_});
  EXPECT_NE(agent, nullptr);
  auto ep = endpointOf("web");
  EXPECT_TRUE(ep && ep->status->policy && ep->status->policy->realized &&
              ep->status->policy->realized->policy_enabled == api::EndpointPolicyEnabled::kIngress);
  stop = true;
  prober.join();
  EXPECT_GT(probes.load(), 5);
  EXPECT_EQ(through.load(), 0) << through << " of " << probes
                               << " denied connections got through across the restarts";
  EXPECT_TRUE(reaches("client", web, lfd));
  EXPECT_FALSE(reaches("other", web, lfd));
}

}  // namespace
}  // namespace cilium
