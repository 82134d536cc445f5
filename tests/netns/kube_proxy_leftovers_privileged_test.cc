// netns tier: kube-proxy-replacement at start. kube-proxy chains left in the node's network
// namespace (made here with iptables and iptables-legacy inside that namespace only) are
// reported: a warning naming them, the status's kube-proxy-replacement field and a cilium-dbg
// status line; and the agent's health port answers a kubelet-style probe there.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;

class KubeProxyLeftoversTest : public testing::AgentNodeTest {
 protected:
  KubeProxyLeftoversTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  // Runs a command in the node namespace; fails the test when it fails.
  void inNode(const std::vector<std::string>& argv) {
    auto r = topo_->exec(topo_->nodeNetns(), argv);
    ASSERT_TRUE(r.ok()) << r.error().toString();
    ASSERT_EQ(r->exit_code, 0) << r->err;
  }
  // Three agents start in this test, each loading the datapath: on a loaded 2-core machine that
  // takes longer than startReady()'s 20 s.
  Process* startReady(const std::string& log, const std::vector<std::string>& extra) {
    auto p = node_->start(log, extra);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    if (!p.ok()) return nullptr;
    const bool ready = node_->waitReady(*p, 90s);
    EXPECT_TRUE(ready) << "the agent did not become ready:\n" << node_->log(log);
    return ready ? *p : nullptr;
  }
  std::optional<api::KubeProxyReplacement> kpr() {
    auto s = node_->client(5s).healthz();
    EXPECT_TRUE(s.ok()) << s.error().toString();
    return s.ok() ? s->kube_proxy_replacement : std::nullopt;
  }
};

TEST_F(KubeProxyLeftoversTest, LeftoverChainsAreReported) {
  // What a kube-proxy in iptables mode leaves: its chains in nat and filter (iptables-nft), one
  // per-Service chain, and one chain of an older kube-proxy that used iptables-legacy.
  inNode({"iptables", "-t", "nat", "-N", "KUBE-SERVICES"});
  inNode({"iptables", "-t", "nat", "-N", "KUBE-POSTROUTING"});
  inNode({"iptables", "-t", "nat", "-N", "KUBE-SVC-ERIFXISQEP7F7OF4"});
  inNode({"iptables", "-t", "nat", "-A", "OUTPUT", "-j", "KUBE-SERVICES"});
  inNode({"iptables", "-t", "filter", "-N", "KUBE-FIREWALL"});  // kubelet's: not reported
  inNode({"iptables-legacy", "-t", "nat", "-N", "KUBE-NODEPORTS"});

  Process* agent = startReady("agent", {"--kube-proxy-replacement=true"});
  ASSERT_NE(agent, nullptr);
  auto k = kpr();
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->mode, "True");
  std::set<std::string> found(k->leftover_kube_proxy_chains.begin(),
                              k->leftover_kube_proxy_chains.end());
  EXPECT_EQ(found, (std::set<std::string>{"KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-SVC-* (1)",
                                          "legacy: KUBE-NODEPORTS"}));
  // One warning naming them.
  std::string log = node_->log("agent");
  EXPECT_NE(log.find("kube-proxy rules are left in this network namespace"), std::string::npos)
      << log;
  EXPECT_NE(log.find("KUBE-SERVICES"), std::string::npos);
  // cilium-dbg status says so.
  auto dbg = run({CILIUM_DBG_BINARY, "-H", sock_, "status"});
  ASSERT_TRUE(dbg.ok());
  EXPECT_NE(dbg->out.find("KubeProxyReplacement:    True"), std::string::npos) << dbg->out;
  EXPECT_NE(dbg->out.find("Leftover kube-proxy:"), std::string::npos) << dbg->out;
  EXPECT_NE(dbg->out.find("legacy: KUBE-NODEPORTS"), std::string::npos) << dbg->out;
  // The kubelet's httpGet probe on agent-health-port (127.0.0.1:9879 of the node namespace).
  auto probe = topo_->exec(topo_->nodeNetns(),
                           {"curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:9879/healthz"});
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->out, "ok\n 200");
  EXPECT_EQ(agent->stop(), 0) << node_->log("agent");

  // Off: nothing is looked for (kube-proxy is expected to run).
  agent = startReady("agent-off", {"--kube-proxy-replacement=false"});
  ASSERT_NE(agent, nullptr);
  k = kpr();
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->mode, "False");
  EXPECT_TRUE(k->leftover_kube_proxy_chains.empty());
  EXPECT_EQ(agent->stop(), 0);

  // Flushed: nothing to report.
  inNode({"iptables", "-t", "nat", "-F"});
  inNode({"iptables", "-t", "nat", "-X"});
  inNode({"iptables-legacy", "-t", "nat", "-X"});
  agent = startReady("agent-clean", {"--kube-proxy-replacement=true"});
  ASSERT_NE(agent, nullptr);
  k = kpr();
  ASSERT_TRUE(k.has_value());
  EXPECT_TRUE(k->leftover_kube_proxy_chains.empty())
      << fmt::format("{}", fmt::join(k->leftover_kube_proxy_chains, ","));
  EXPECT_EQ(node_->log("agent-clean").find("kube-proxy rules are left"), std::string::npos);
}

}  // namespace
}  // namespace cilium
