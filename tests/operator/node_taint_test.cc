// The agent-not-ready taint against the fake apiserver: the taint goes once the node's Cilium
// agent pod is Ready (and only then: not for a pod elsewhere, of other labels, not ready, or
// being deleted), other taints stay as they were, a concurrent change of the taints is never
// overwritten, set-cilium-node-taints puts it back on a node whose agent is not ready, and the
// operator does it end to end with its flags. Plus the pure pieces (labels, decisions, patches).
#include "operator/node_taint.h"

#include <gtest/gtest.h>

#include "agent/k8s/source.h"
#include "operator/operator.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"

namespace cilium::op {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const k8s::ResourceInfo kPods = k8s::Resource<k8s::Pod>::info();
const k8s::ResourceInfo kNodes = k8s::Resource<k8s::Node>::info();

json notReadyTaint() {
  return {{"key", kAgentNotReadyTaint}, {"effect", "NoSchedule"}, {"value", ""}};
}
json otherTaint() {
  return {{"key", "dedicated"},
          {"value", "infra"},
          {"effect", "NoExecute"},
          {"timeAdded", "2026-12-01T00:00:00Z"}};
}

json node(const std::string& name, json taints) {
  json n = {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", name}}},
            {"spec", json::object()}};
  if (!taints.is_null()) n["spec"]["taints"] = std::move(taints);
  return n;
}

json agentPod(const std::string& name, const std::string& node_name, bool ready,
              const std::string& ns = "kube-system", const std::string& app = "cilium") {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"k8s-app", app}}}}},
          {"spec", {{"nodeName", node_name}}},
          {"status",
           {{"phase", "Running"},
            {"conditions",
             {{{"type", "Initialized"}, {"status", "True"}},
              {{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
}

k8s::Node decodeNode(const json& j) { return *k8s::Resource<k8s::Node>::decode(j); }
k8s::Pod decodePod(const json& j) { return *k8s::Resource<k8s::Pod>::decode(j); }

TEST(NodeTaintPure, PodLabelsAreKeyValuePairs) {
  auto l = parsePodLabels("k8s-app=cilium,app.kubernetes.io/part-of==cilium");
  ASSERT_TRUE(l.ok()) << l.error().toString();
  EXPECT_EQ(*l, (k8s::StringMap{{"k8s-app", "cilium"}, {"app.kubernetes.io/part-of", "cilium"}}));
  for (const char* bad : {"", "k8s-app", "k8s-app!=cilium", "k8s-app in (cilium)", "=cilium"}) {
    auto r = parsePodLabels(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(NodeTaintPure, DecodesReadinessDeletionAndTaints) {
  json p = agentPod("a", "n1", true);
  EXPECT_TRUE(decodePod(p).ready);
  EXPECT_FALSE(decodePod(p).deleting);
  p["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z";
  EXPECT_TRUE(decodePod(p).deleting);
  EXPECT_FALSE(decodePod(agentPod("a", "n1", false)).ready);
  // A later Ready entry overrides an earlier one, as client-go reads them.
  p = agentPod("a", "n1", true);
  p["status"]["conditions"].push_back({{"type", "Ready"}, {"status", "False"}});
  EXPECT_FALSE(decodePod(p).ready);

  auto n = decodeNode(node("n1", {notReadyTaint(), otherTaint()}));
  ASSERT_EQ(n.taints.size(), 2u);
  EXPECT_EQ(n.taints[0].key, kAgentNotReadyTaint);
  EXPECT_EQ(n.taints[1].effect, "NoExecute");
  EXPECT_EQ(n.taints[1].raw, otherTaint());
  // Bad taints are refused with the field named, like every decode error.
  auto bad = k8s::Resource<k8s::Node>::decode(node("n1", {{{"effect", "NoSchedule"}}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("spec.taints[0].key: required"), std::string::npos)
      << bad.error().message();
  EXPECT_FALSE(k8s::Resource<k8s::Node>::decode(node("n1", json::array({"x"}))).ok());
}

TEST(NodeTaintPure, DecisionsFollowTheAgentPods) {
  NodeTaintOptions o;
  auto tainted = decodeNode(node("n1", {otherTaint(), notReadyTaint()}));
  auto clean = decodeNode(node("n1", json::array({otherTaint()})));
  auto ready = decodePod(agentPod("a", "n1", true));
  auto unready = decodePod(agentPod("a", "n1", false));
  auto deleting = ready;
  deleting.deleting = true;

  auto d = desiredTaints(tainted, {ready}, o);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ((*d)[0].raw, otherTaint());
  EXPECT_FALSE(desiredTaints(tainted, {}, o).has_value());
  EXPECT_FALSE(desiredTaints(tainted, {unready}, o).has_value());
  EXPECT_FALSE(desiredTaints(tainted, {deleting}, o).has_value());
  EXPECT_TRUE(desiredTaints(tainted, {unready, ready}, o).has_value());
  EXPECT_FALSE(desiredTaints(clean, {ready}, o).has_value());
  o.remove_taint = false;
  EXPECT_FALSE(desiredTaints(tainted, {ready}, o).has_value());

  // set-cilium-node-taints: only a node whose agent is scheduled and not ready.
  o.set_taint = true;
  EXPECT_FALSE(desiredTaints(clean, {}, o).has_value());
  EXPECT_FALSE(desiredTaints(clean, {ready}, o).has_value());
  EXPECT_FALSE(desiredTaints(tainted, {unready}, o).has_value());
  auto s = desiredTaints(clean, {unready}, o);
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[1].raw, json({{"key", kAgentNotReadyTaint}, {"effect", "NoSchedule"}}));
  EXPECT_TRUE(desiredTaints(clean, {deleting}, o).has_value());

  // The patch tests what was seen (null for a node without taints) before it writes.
  auto patch = taintPatch(clean, *s);
  ASSERT_EQ(patch.size(), 2u);
  EXPECT_EQ(
      patch[0],
      json({{"op", "test"}, {"path", "/spec/taints"}, {"value", json::array({otherTaint()})}}));
  EXPECT_EQ(patch[1]["op"], "add");
  EXPECT_EQ(patch[1]["value"].size(), 2u);
  EXPECT_EQ(taintPatch(decodeNode(node("n2", nullptr)), *s)[0]["value"], nullptr);
}

class NodeTaintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(srv_.start().ok());
    k8s::ClientConfig cc;
    cc.server = srv_.url();
    cc.qps = 0;
    client_ = std::move(*k8s::Client::create(cc));
  }
  void TearDown() override {
    controller_.reset();
    if (source_) source_->stop();
  }
  void startController(NodeTaintOptions o = {}) {
    source_ =
        std::make_unique<k8s::ApiSource>(*client_, k8s::ApiSourceOptions{{}, {"Node", "Pod"}, {}});
    ASSERT_TRUE(source_->start().ok());
    ASSERT_TRUE(source_->waitForSync(10s));
    o.retry_min = 20ms;
    o.retry_max = 200ms;
    controller_ = std::make_unique<NodeTaintController>(*client_, source_->stores().nodes,
                                                        source_->stores().pods, o);
    controller_->start();
  }
  json taintsOf(const std::string& name) {
    auto n = srv_.get(kNodes, "", name);
    return n ? n->value("/spec/taints"_json_pointer, json(nullptr)) : json("gone");
  }
  bool hasNotReadyTaint(const std::string& name) {
    json t = taintsOf(name);
    if (!t.is_array()) return false;
    for (const auto& e : t)
      if (e.value("key", "") == kAgentNotReadyTaint) return true;
    return false;
  }

  testing::FakeApiServer srv_;
  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<k8s::ApiSource> source_;
  std::unique_ptr<NodeTaintController> controller_;
};

TEST_F(NodeTaintTest, TaintGoesOnlyOnceTheNodesOwnAgentPodIsReady) {
  ASSERT_TRUE(srv_.create(kNodes, node("n1", {otherTaint(), notReadyTaint()})).ok());
  ASSERT_TRUE(srv_.create(kNodes, node("n2", json::array({notReadyTaint()}))).ok());
  // None of these makes n1 ready: not ready, another node's, other labels, another namespace.
  ASSERT_TRUE(srv_.create(kPods, agentPod("cilium-a", "n1", false)).ok());
  ASSERT_TRUE(srv_.create(kPods, agentPod("cilium-b", "n2", true)).ok());
  ASSERT_TRUE(srv_.create(kPods, agentPod("impostor", "n1", true, "kube-system", "web")).ok());
  ASSERT_TRUE(srv_.create(kPods, agentPod("elsewhere", "n1", true, "default")).ok());
  startController();

  // n2's agent is ready: its taint goes, and the node keeps no taints list entry for it.
  ASSERT_TRUE(testing::eventually([&] { return !hasNotReadyTaint("n2"); }, 10s)) << taintsOf("n2");
  EXPECT_EQ(taintsOf("n2"), json::array());
  EXPECT_TRUE(hasNotReadyTaint("n1"));

  // n1's agent becomes ready (the kubelet's status update): the taint goes, the other stays
  // exactly as it was.
  auto pod = srv_.get(kPods, "kube-system", "cilium-a");
  ASSERT_TRUE(pod.has_value());
  (*pod)["status"]["conditions"][1]["status"] = "True";
  ASSERT_TRUE(srv_.update(kPods, *pod).ok());
  ASSERT_TRUE(testing::eventually([&] { return !hasNotReadyTaint("n1"); }, 10s)) << taintsOf("n1");
  EXPECT_EQ(taintsOf("n1"), json::array({otherTaint()}));
  // The counters move once the API server has answered, a moment after the write shows.
  EXPECT_TRUE(testing::eventually([&] { return controller_->removed() == 2u; }));
  EXPECT_EQ(controller_->added(), 0u);

  // Without set-cilium-node-taints an agent that stops being ready leaves the node untainted;
  // a taint put back by hand then stays, as the agent is not ready.
  (*pod) = *srv_.get(kPods, "kube-system", "cilium-a");
  (*pod)["status"]["conditions"][1]["status"] = "False";
  ASSERT_TRUE(srv_.update(kPods, *pod).ok());
  ASSERT_TRUE(testing::eventually(
      [&] { return !source_->stores().pods.get("kube-system", "cilium-a")->ready; }, 10s));
  EXPECT_TRUE(taintsOf("n1") == json::array({otherTaint()}));
  json n1 = *srv_.get(kNodes, "", "n1");
  n1["spec"]["taints"].push_back(notReadyTaint());
  ASSERT_TRUE(srv_.update(kNodes, n1).ok());
  ASSERT_TRUE(testing::eventually(
      [&] { return source_->stores().nodes.get("", "n1")->taints.size() == 2; }, 10s));
  EXPECT_TRUE(controller_->reconcile("n1"));
  EXPECT_TRUE(hasNotReadyTaint("n1"));
  EXPECT_EQ(controller_->removed(), 2u);
}

TEST_F(NodeTaintTest, ADeletedAgentPodDoesNotCountAndAConcurrentChangeIsNotOverwritten) {
  ASSERT_TRUE(srv_.create(kNodes, node("n1", json::array({notReadyTaint()}))).ok());
  json p = agentPod("cilium-a", "n1", true);
  p["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z";
  ASSERT_TRUE(srv_.create(kPods, p).ok());
  startController();
  ASSERT_TRUE(testing::eventually([&] { return source_->stores().pods.size() == 1; }));
  EXPECT_TRUE(controller_->reconcile("n1"));
  EXPECT_TRUE(hasNotReadyTaint("n1"));

  // The controller judges from its informer's (stale) view; the API server's node has changed
  // meanwhile: the "test" fails, nothing is overwritten, and the next look at the new state
  // removes only the agent's taint.
  controller_.reset();
  source_->stop();
  ASSERT_TRUE(srv_.create(kPods, agentPod("cilium-b", "n1", true)).ok());
  json n1 = *srv_.get(kNodes, "", "n1");
  k8s::Node stale = decodeNode(n1);
  n1["spec"]["taints"].push_back(otherTaint());
  ASSERT_TRUE(srv_.update(kNodes, n1).ok());
  auto desired = desiredTaints(stale, {decodePod(agentPod("cilium-b", "n1", true))}, {});
  ASSERT_TRUE(desired.has_value());
  auto r = client_->request("PATCH", kNodes.objectPath("", "n1"),
                            taintPatch(stale, *desired).dump(), "application/json-patch+json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(taintsOf("n1"), json::array({notReadyTaint(), otherTaint()}));

  startController();
  ASSERT_TRUE(testing::eventually([&] { return !hasNotReadyTaint("n1"); }, 10s)) << taintsOf("n1");
  EXPECT_EQ(taintsOf("n1"), json::array({otherTaint()}));
}

TEST_F(NodeTaintTest, SetTaintsPutsItOnANodeWhoseAgentIsNotReady) {
  ASSERT_TRUE(srv_.create(kNodes, node("n1", nullptr)).ok());
  ASSERT_TRUE(srv_.create(kNodes, node("n2", nullptr)).ok());
  ASSERT_TRUE(srv_.create(kPods, agentPod("cilium-a", "n1", false)).ok());
  NodeTaintOptions o;
  o.set_taint = true;
  startController(o);
  ASSERT_TRUE(testing::eventually([&] { return hasNotReadyTaint("n1"); }, 10s)) << taintsOf("n1");
  EXPECT_EQ(taintsOf("n1"),
            json::array({{{"key", kAgentNotReadyTaint}, {"effect", "NoSchedule"}}}));
  EXPECT_EQ(taintsOf("n2"), nullptr) << "no agent scheduled on n2: left alone";
  auto pod = *srv_.get(kPods, "kube-system", "cilium-a");
  pod["status"]["conditions"][1]["status"] = "True";
  ASSERT_TRUE(srv_.update(kPods, pod).ok());
  ASSERT_TRUE(testing::eventually([&] { return !hasNotReadyTaint("n1"); }, 10s)) << taintsOf("n1");
  EXPECT_TRUE(testing::eventually([&] { return controller_->removed() == 1u; }));
  EXPECT_EQ(controller_->added(), 1u);
}

TEST(NodeTaintOperator, FlagsHaveCiliumsNamesAndDefaults) {
  auto c = parseFlags({});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->remove_cilium_node_taints);
  EXPECT_FALSE(c->set_cilium_node_taints);
  EXPECT_EQ(c->agent_not_ready_taint_key, kAgentNotReadyTaint);
  EXPECT_EQ(c->cilium_pod_labels, "k8s-app=cilium");
  c = parseFlags({"--remove-cilium-node-taints=false", "--set-cilium-node-taints=true",
                  "--cilium-pod-namespace=cilium", "--cilium-pod-labels=app=agent",
                  "--agent-not-ready-taint-key=example.com/not-ready"});
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_FALSE(c->remove_cilium_node_taints);
  EXPECT_TRUE(c->set_cilium_node_taints);
  EXPECT_EQ(c->cilium_pod_namespace, "cilium");
  EXPECT_EQ(c->agent_not_ready_taint_key, "example.com/not-ready");
  auto bad = parseFlags({"--cilium-pod-labels=k8s-app!=cilium"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--cilium-pod-labels"), std::string::npos);
  EXPECT_FALSE(parseFlags({"--agent-not-ready-taint-key="}).ok());
}

TEST(NodeTaintOperator, TheLeadingOperatorRemovesTheTaint) {
  testing::FakeApiServer srv;
  ASSERT_TRUE(srv.start().ok());
  ASSERT_TRUE(srv.create(kNodes, node("n1", json::array({notReadyTaint()}))).ok());
  ASSERT_TRUE(srv.create(kPods, agentPod("cilium-x", "n1", true)).ok());
  Config c;
  c.leader_election = false;
  c.operator_api_serve_addr = "127.0.0.1:0";
  k8s::ClientConfig cc;
  cc.server = srv.url();
  auto op = Operator::start(c, cc);
  ASSERT_TRUE(op.ok()) << op.error().toString();
  EXPECT_TRUE(testing::eventually(
      [&] {
        return srv.get(kNodes, "", "n1")->value("/spec/taints"_json_pointer, json()) ==
               json::array();
      },
      10s))
      << srv.get(kNodes, "", "n1")->dump();
  EXPECT_NE((*op)->nodeTaint(), nullptr);
  op->reset();
  c.remove_cilium_node_taints = false;
  auto off = Operator::start(c, cc);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ((*off)->nodeTaint(), nullptr) << "neither flag: no taint sync";
}

}  // namespace
}  // namespace cilium::op
