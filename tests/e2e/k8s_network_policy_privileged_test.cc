// Kubernetes NetworkPolicy semantics end to end: the agent in a node namespace watches our fake
// kube-apiserver (Namespaces and Pods created there, NetworkPolicies applied and deleted with the
// real kubectl), pods in two namespaces are wired by the real cilium-cni, and real TCP between
// them must match what Kubernetes specifies: default deny, namespaceSelector+podSelector in one
// peer (AND) versus separate peers (OR), ipBlock with except (for external hosts and for pods),
// named ports (egress ones resolved on each destination), endPort ranges, policyTypes defaults,
// ingress and egress together, and several policies on one pod (union).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/common/yaml.h"
#include "api/client/client.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;
using nlohmann::json;

constexpr const char* kKubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
constexpr uint16_t kHttp = 8080;   // the web pod's port named "http"
constexpr uint16_t kAdmin = 9090;  // another port of the web pod, unnamed
// Addresses of "external" hosts: namespaces routed by the node that are not endpoints (world).
constexpr const char* kExtAllowed = "10.200.5.4";
constexpr const char* kExtExcepted = "10.200.5.5";

constexpr const char* kCluster = R"(
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, image: x, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: a, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: b, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: b, labels: {app: other}}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
)";

class NetworkPolicyTest : public testing::AgentNodeTest {
 protected:
  NetworkPolicyTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    if (!std::filesystem::exists(kKubectl)) GTEST_SKIP() << kKubectl << " is not installed";
    AgentNodeTest::SetUp();
    if (HasFatalFailure()) return;  // no topology: nothing below can run
    // The apiserver listens on the node namespace's loopback, where the agent and kubectl run.
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&] { return server_.start(); }).ok());
    auto docs = yaml::toJson(kCluster);
    ASSERT_TRUE(docs.ok());
    for (const auto& d : *docs) {
      const auto* info = k8s::findResourceByKind(d["kind"].get<std::string>());
      ASSERT_NE(info, nullptr);
      ASSERT_TRUE(server_.create(*info, d).ok());
    }
    agent_ = node_->startReady(
        "agent", {"--k8s-api-server=" + server_.url(), "--prometheus-serve-addr=127.0.0.1:9962"});
    ASSERT_NE(agent_, nullptr);
    for (const auto& [ns, pod] : std::vector<std::pair<std::string, std::string>>{
             {"a", "web"}, {"a", "client"}, {"b", "client"}, {"b", "other"}}) {
      addPod(ns, pod);
      if (HasFatalFailure()) return;
    }
    web_ = ip_["a/web"];
    listen("a/web", {kHttp, kAdmin});
    listen("b/other", {kHttp});
    for (const char* ip : {kExtAllowed, kExtExcepted}) {
      auto ext = topo_->addPod(std::string("ext") + (ip == kExtAllowed ? "1" : "2"), ip);
      ASSERT_TRUE(ext.ok()) << ext.error().toString();
      auto l = testing::listenTcp(ext->netns, ip, kHttp);
      ASSERT_TRUE(l.ok()) << l.error().toString();
      listeners_[{ip, kHttp}] = std::move(*l);
    }
  }

  // TCP listeners in pod `key` ("ns/name") on its address.
  void listen(const std::string& key, std::initializer_list<uint16_t> ports) {
    for (uint16_t port : ports) {
      auto l = testing::listenTcp(netns_[key], ip_[key], port);
      ASSERT_TRUE(l.ok()) << l.error().toString();
      listeners_[{ip_[key], port}] = std::move(*l);
    }
  }

  // A pod created in the apiserver (the agent sees it through its watch), then wired by the CNI.
  void createPod(const std::string& yaml) {
    auto doc = yaml::toJson(yaml);
    ASSERT_TRUE(doc.ok() && doc->size() == 1);
    const json& d = (*doc)[0];
    ASSERT_TRUE(server_.create(*k8s::findResourceByKind("Pod"), d).ok());
    addPod(d["metadata"]["namespace"], d["metadata"]["name"]);
  }

  void TearDown() override {
    for (const auto& ns : sandboxes_) (void)run({"ip", "netns", "del", ns});
    server_.stop();
  }

  void addPod(const std::string& ns, const std::string& pod) {
    std::string key = ns + "/" + pod;
    std::string sandbox = topo_->prefix() + "-" + ns + "-" + pod;
    auto r = run({"ip", "netns", "add", sandbox});
    ASSERT_TRUE(r.ok() && r->exit_code == 0);
    sandboxes_.push_back(sandbox);
    netns_[key] = "/run/netns/" + sandbox;
    auto add =
        node_->cni(CILIUM_CNI_BINARY, {"ADD", "ctr-" + ns + "-" + pod, netns_[key], ns, pod});
    ASSERT_TRUE(add.ok() && add->exit_code == 0)
        << (add.ok() ? add->out : "") << readFile(dir_ + "/cni.log").valueOr("");
    std::string ip = json::parse(add->out)["ips"][0]["address"];
    ip_[key] = ip.substr(0, ip.find('/'));
  }

  // kubectl in the node namespace, against the fake apiserver.
  std::string kubectl(std::vector<std::string> args) {
    std::vector<std::string> argv = {kKubectl, "--server=" + server_.url(),
                                     "--cache-dir=" + dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o;
    o.netns = topo_->nodeNetns();
    o.extra_env = {"HOME=" + dir_, "KUBECONFIG=" + dir_ + "/no-kubeconfig"};
    auto r = run(argv, o, 60s);
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->out + r->err : r.error().message());
    return r.ok() ? r->out : "";
  }

  // Applies `yaml` with kubectl and waits until every endpoint enforces the resulting policy
  // revision; deleteAll() removes what was applied.
  void apply(const std::string& yaml) {
    auto before = node_->client().getPolicy();
    ASSERT_TRUE(before.ok());
    std::string path = dir_ + "/policy-" + std::to_string(applied_++) + ".yaml";
    ASSERT_TRUE(writeFileAtomic(path, yaml).ok());
    kubectl({"apply", "--validate=false", "-f", path});
    files_.push_back(path);
    waitEnforced(before->revision, countDocs(yaml));
  }
  void deleteAll() {
    if (files_.empty()) return;
    auto before = node_->client().getPolicy();
    ASSERT_TRUE(before.ok());
    int docs = 0;
    for (const auto& f : files_) {
      kubectl({"delete", "-f", f});
      docs += countDocs(readFile(f).valueOr(""));
    }
    files_.clear();
    waitEnforced(before->revision, docs);
  }
  static int countDocs(const std::string& yaml) {
    auto docs = yaml::toJson(yaml);
    return docs.ok() ? static_cast<int>(docs->size()) : 1;
  }
  // Each applied or deleted object is one policy revision; then every endpoint must enforce it.
  void waitEnforced(int64_t before, int changes) {
    int64_t want = before + changes;
    bool ok = eventually(
        [&] {
          auto p = node_->client().getPolicy();
          if (!p.ok() || p->revision < want) return false;
          auto eps = node_->client().listEndpoints();
          if (!eps.ok()) return false;
          for (const auto& ep : *eps) {
            if (!ep.status || !ep.status->policy || !ep.status->policy->realized) return false;
            if (ep.status->policy->realized->policy_revision < want) return false;
          }
          return true;
        },
        15s);
    ASSERT_TRUE(ok) << "policy revision " << want << " not enforced\n" << node_->log("agent");
  }

  // Whether a TCP connection from pod `from` ("ns/name") to ip:port completes.
  bool reaches(const std::string& from, const std::string& ip, uint16_t port) {
    auto c = testing::connectTcp(netns_[from], ip, port, 600ms);
    if (!c.ok()) return false;
    auto l = listeners_.find({ip, port});
    if (l != listeners_.end()) (void)testing::acceptTcp(l->second.get(), 1s);  // empty backlog
    return true;
  }
  // The reachability of web:port from each client pod, as "a/client b/client b/other" bits.
  std::string webMatrix(uint16_t port = kHttp) {
    std::string out;
    for (const char* from : {"a/client", "b/client", "b/other"})
      out += std::string(from) + "=" + (reaches(from, web_, port) ? "yes " : "no ");
    return out;
  }

  testing::FakeApiServer server_;
  Process* agent_ = nullptr;
  std::vector<std::string> sandboxes_, files_;
  std::map<std::string, std::string> netns_, ip_;
  std::string web_;
  std::map<std::pair<std::string, uint16_t>, UniqueFd> listeners_;  // (address, port)
  int applied_ = 0;
};

TEST_F(NetworkPolicyTest, AgentWritesCiliumEndpointsAndCountsApiCalls) {
  // Each local pod gets a CiliumEndpoint with its identity and address.
  auto web = node_->client().listEndpoints();
  ASSERT_TRUE(web.ok());
  json cep;
  ASSERT_TRUE(eventually(
      [&] {
        SpawnOptions o;
        o.netns = topo_->nodeNetns();
        o.extra_env = {"HOME=" + dir_, "KUBECONFIG=" + dir_ + "/no-kubeconfig"};
        auto r = run({kKubectl, "--server=" + server_.url(), "--cache-dir=" + dir_ + "/kc", "get",
                      "ciliumendpoints", "-n", "a", "web", "-o", "json"},
                     o, 30s);
        if (!r.ok() || r->exit_code != 0) return false;
        cep = json::parse(r->out, nullptr, false);
        return cep.is_object();
      },
      10s));
  EXPECT_EQ(cep["status"]["networking"]["addressing"][0]["ipv4"], web_);
  int64_t identity = 0;
  for (const auto& ep : *web)
    if (ep.status && ep.status->external_identifiers &&
        ep.status->external_identifiers->pod_name == "a/web" && ep.status->identity)
      identity = ep.status->identity->id;
  EXPECT_NE(identity, 0);
  EXPECT_EQ(cep["status"]["identity"]["id"], identity) << cep.dump(2);

  // The status says Kubernetes is in use and synced, naming the API server and the kinds.
  auto status = node_->client().healthz();
  ASSERT_TRUE(status.ok()) << status.error().toString();
  ASSERT_TRUE(status->kubernetes);
  EXPECT_EQ(status->kubernetes->state, api::StatusState::kOk);
  EXPECT_EQ(status->kubernetes->msg, server_.url());
  EXPECT_NE(
      std::find(status->kubernetes->k8s_api_versions.begin(),
                status->kubernetes->k8s_api_versions.end(), "cilium.io/v2::CiliumNetworkPolicy"),
      status->kubernetes->k8s_api_versions.end());

  // The client's calls are exported, by host, method and return code.
  SpawnOptions in_node;
  in_node.netns = topo_->nodeNetns();
  auto metrics = run({"curl", "-sf", "http://127.0.0.1:9962/metrics"}, in_node, 10s);
  ASSERT_TRUE(metrics.ok() && metrics->exit_code == 0);
  std::string host = server_.url().substr(std::string("http://").size());
  EXPECT_NE(metrics->out.find("cilium_k8s_client_api_calls_total{host=\"" + host +
                              "\",method=\"GET\",return_code=\"200\"}"),
            std::string::npos)
      << metrics->out;
}

TEST_F(NetworkPolicyTest, ConnectivityMatchesKubernetesSemantics) {
  // No policy: everything is allowed.
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=yes b/other=yes ");
  EXPECT_TRUE(reaches("a/client", kExtExcepted, kHttp));

  // Default deny ingress for namespace a.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: a}
spec:
  podSelector: {}
  policyTypes: [Ingress]
)");
  EXPECT_EQ(webMatrix(), "a/client=no b/client=no b/other=no ");
  // Egress is not isolated by an Ingress-only policy.
  EXPECT_TRUE(reaches("a/client", kExtAllowed, kHttp));
  deleteAll();

  // One peer with namespaceSelector and podSelector: both must match (AND).
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and-peer, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
      podSelector: {matchLabels: {app: client}}
)");
  EXPECT_EQ(webMatrix(), "a/client=no b/client=yes b/other=no ");
  deleteAll();

  // Two peers: either may match (OR); a bare podSelector means the policy's own namespace.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or-peers, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
    - podSelector: {matchLabels: {app: client}}
)");
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=yes b/other=yes ");
  deleteAll();
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-ns-only, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
)");
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=no b/other=no ");
  deleteAll();

  // Named port and an endPort range: only the ports they cover are open.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named-port, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: http}]
)");
  EXPECT_TRUE(reaches("b/other", web_, kHttp));
  EXPECT_FALSE(reaches("b/other", web_, kAdmin));
  deleteAll();
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: port-range, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{protocol: TCP, port: 9000, endPort: 9100}]
)");
  EXPECT_FALSE(reaches("b/other", web_, kHttp));
  EXPECT_TRUE(reaches("b/other", web_, kAdmin));
  deleteAll();

  // policyTypes left out: Ingress is implied, so a policy with only egress rules still isolates
  // the pod's ingress; its egress allows only the ipBlock minus the exception.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-ipblock, namespace: a}
spec:
  podSelector: {matchLabels: {app: client}}
  egress:
  - to:
    - ipBlock: {cidr: 10.200.5.0/24, except: [10.200.5.5/32]}
)");
  EXPECT_TRUE(reaches("a/client", kExtAllowed, kHttp));
  EXPECT_FALSE(reaches("a/client", kExtExcepted, kHttp));
  EXPECT_FALSE(reaches("a/client", web_, kHttp));         // egress to the pod is not in the block
  EXPECT_TRUE(reaches("b/client", kExtExcepted, kHttp));  // other namespace: not selected
  deleteAll();

  // Ingress and egress together, and two policies on one pod add up (union).
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-b-client, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: client}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-a, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-egress-to-web, namespace: b}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: web}}}]
)");
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=yes b/other=no ");
  EXPECT_FALSE(reaches("b/client", kExtAllowed, kHttp));  // b's egress allows only web
  EXPECT_TRUE(reaches("a/client", kExtAllowed, kHttp));

  // Deleting them all restores full connectivity.
  deleteAll();
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=yes b/other=yes ");
  EXPECT_TRUE(reaches("b/client", kExtAllowed, kHttp));
}

// Kubernetes resolves an egress named port on the destination pod: two pods name "http"
// differently, and each is reachable only on its own number.
TEST_F(NetworkPolicyTest, EgressNamedPortsResolveOnEachDestination) {
  createPod(R"(apiVersion: v1
kind: Pod
metadata: {name: alt, namespace: a, labels: {app: alt}}
spec:
  nodeName: node-1
  containers: [{name: alt, image: x, ports: [{name: http, containerPort: 9090}]}]
)");
  std::string alt = ip_["a/alt"];
  listen("a/alt", {kHttp, kAdmin});
  EXPECT_TRUE(reaches("a/client", alt, kHttp));

  // To both pods by label, on "http": web:8080 and alt:9090, not web:9090 nor alt:8080.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-named-port, namespace: a}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [web, alt]}]}}]
    ports: [{port: http}]
)");
  EXPECT_TRUE(reaches("a/client", web_, kHttp));
  EXPECT_FALSE(reaches("a/client", web_, kAdmin));
  EXPECT_TRUE(reaches("a/client", alt, kAdmin));
  EXPECT_FALSE(reaches("a/client", alt, kHttp));
  EXPECT_TRUE(reaches("b/client", web_, kAdmin));  // not selected by the policy
  deleteAll();

  // Every destination (no `to`): still each pod on its own number, and nothing that is not a
  // pod naming the port (an external host on 8080).
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-named-port-anywhere, namespace: a}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
)");
  EXPECT_TRUE(reaches("a/client", web_, kHttp));
  EXPECT_FALSE(reaches("a/client", web_, kAdmin));
  EXPECT_TRUE(reaches("a/client", alt, kAdmin));
  EXPECT_FALSE(reaches("a/client", alt, kHttp));
  EXPECT_FALSE(reaches("a/client", kExtAllowed, kHttp));
  deleteAll();
  EXPECT_TRUE(reaches("a/client", alt, kHttp));
}

// Kubernetes: an ipBlock covering a pod's address selects that pod, and except carves it out
// (the upstream e2e "should allow egress access to server in CIDR block" and "should enforce
// except clause while egress access to server in CIDR block").
TEST_F(NetworkPolicyTest, IpBlockSelectsPodsByAddress) {
  std::string other = ip_["b/other"];
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-to-server-cidr, namespace: a}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: )" +
        web_ + R"(/32}}]
)");
  EXPECT_TRUE(reaches("a/client", web_, kHttp));
  EXPECT_FALSE(reaches("a/client", other, kHttp));
  EXPECT_FALSE(reaches("a/client", kExtAllowed, kHttp));
  deleteAll();

  // The pods' subnet except the server: every other pod, not the server.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-except-server, namespace: a}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: )" +
        web_ + R"(/24, except: [)" + web_ + R"(/32]}}]
)");
  EXPECT_FALSE(reaches("a/client", web_, kHttp));
  EXPECT_TRUE(reaches("a/client", other, kHttp));
  EXPECT_FALSE(reaches("a/client", kExtAllowed, kHttp));
  deleteAll();

  // Ingress from one client's address: that client, not the other.
  apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-from-client-cidr, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: )" +
        ip_["b/client"] + R"(/32}}]
)");
  EXPECT_EQ(webMatrix(), "a/client=no b/client=yes b/other=no ");
  deleteAll();
  EXPECT_EQ(webMatrix(), "a/client=yes b/client=yes b/other=yes ");
}

}  // namespace
}  // namespace cilium
