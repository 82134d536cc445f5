// cilium-cni invoked as a container runtime does (CNI_* environment, config on stdin, inside the
// node's network namespace) against a real agent: ADD wires real pods that talk over TCP, CHECK
// verifies, DEL (repeated, with an empty netns) removes everything, and with the agent down ADD
// asks to try again while DEL is queued and finished by the next agent.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
constexpr uint16_t kPort = 8080;

class CniTest : public testing::AgentNodeTest {
 protected:
  CniTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void TearDown() override {
    for (const auto& ns : netns_) (void)run({"ip", "netns", "del", ns});
  }

  Process* startAgent(const std::string& log) { return node_->startReady(log); }

  // A bare network namespace, as the runtime creates for a sandbox (named for the sweep).
  std::string sandbox(const std::string& name) {
    std::string ns = topo_->prefix() + "-" + name;
    auto r = run({"ip", "netns", "add", ns});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    netns_.push_back(ns);
    return "/run/netns/" + ns;
  }

  RunOutput cni(const std::string& command, const std::string& container, const std::string& netns,
                const std::string& pod, const nlohmann::json& extra = nlohmann::json::object()) {
    auto r = node_->cni(CILIUM_CNI_BINARY, {command, container, netns, "default", pod, extra});
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : RunOutput{};
  }

  size_t endpoints() {
    auto eps = api::Client(api::ClientOptions{sock_, 5s}).listEndpoints();
    EXPECT_TRUE(eps.ok());
    return eps.ok() ? eps->size() : 0;
  }
  bool hostLinkExists(const std::string& name) {
    auto r = topo_->exec(topo_->nodeNetns(), {"ip", "link", "show", "dev", name});
    return r.ok() && r->exit_code == 0;
  }

  std::vector<std::string> netns_;
};

TEST_F(CniTest, AddWiresPodsThatTalkAndDelRemovesEverything) {
  ASSERT_NE(startAgent("agent"), nullptr);
  std::string ns_a = sandbox("a"), ns_b = sandbox("b");
  auto add_a = cni("ADD", "ctr-a", ns_a, "pod-a");
  ASSERT_EQ(add_a.exit_code, 0) << add_a.out << readFile(dir_ + "/cni.log").valueOr("");
  auto add_b = cni("ADD", "ctr-b", ns_b, "pod-b");
  ASSERT_EQ(add_b.exit_code, 0) << add_b.out;
  auto result_a = nlohmann::json::parse(add_a.out);
  auto result_b = nlohmann::json::parse(add_b.out);
  EXPECT_EQ(result_a["cniVersion"], "1.0.0");
  std::string ip_a = result_a["ips"][0]["address"].get<std::string>();
  std::string ip_b = result_b["ips"][0]["address"].get<std::string>();
  ip_a = ip_a.substr(0, ip_a.find('/'));
  ip_b = ip_b.substr(0, ip_b.find('/'));
  EXPECT_EQ(result_a["ips"][0]["gateway"], "10.200.0.1");
  EXPECT_EQ(result_a["interfaces"][1]["sandbox"], ns_a);
  std::string host_a = result_a["interfaces"][0]["name"];
  EXPECT_TRUE(hostLinkExists(host_a));
  EXPECT_EQ(endpoints(), 2u);

  // The pod has its address and a default route via the gateway; it talks to the other pod.
  auto addr = topo_->exec(ns_a, {"ip", "-j", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(addr.ok());
  EXPECT_NE(addr->out.find(ip_a), std::string::npos) << addr->out;
  auto route = topo_->exec(ns_a, {"ip", "route", "show", "default"});
  ASSERT_TRUE(route.ok());
  EXPECT_NE(route->out.find("via 10.200.0.1"), std::string::npos) << route->out;
  auto listener = testing::listenTcp(ns_b, ip_b, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  EXPECT_TRUE(testing::connectTcp(ns_a, ip_b, kPort, 2000ms).ok());

  // CHECK with the ADD result as prevResult.
  auto check = cni("CHECK", "ctr-a", ns_a, "pod-a", {{"prevResult", result_a}});
  EXPECT_EQ(check.exit_code, 0) << check.out;

  // Double ADD leaves one wired pod (and one address).
  auto again = cni("ADD", "ctr-a", ns_a, "pod-a");
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(endpoints(), 2u);

  // DEL three times (containerd's second DEL comes with an empty netns).
  auto prev = nlohmann::json::parse(again.out);
  EXPECT_EQ(cni("DEL", "ctr-a", ns_a, "pod-a", {{"prevResult", prev}}).exit_code, 0);
  EXPECT_EQ(cni("DEL", "ctr-a", "", "pod-a", {{"prevResult", prev}}).exit_code, 0);
  EXPECT_EQ(cni("DEL", "ctr-a", "", "pod-a").exit_code, 0);
  EXPECT_EQ(endpoints(), 1u);
  EXPECT_FALSE(hostLinkExists(host_a));
  auto gone = topo_->exec(ns_a, {"ip", "link", "show", "dev", "eth0"});
  ASSERT_TRUE(gone.ok());
  EXPECT_NE(gone->exit_code, 0) << "eth0 went with its veth peer";
  // Its address is free again: the agent can hand exactly that one out.
  std::string last = prev["ips"][0]["address"].get<std::string>();
  auto ip = IpAddr::parse(last.substr(0, last.find('/')));
  ASSERT_TRUE(ip.ok());
  auto reuse = api::Client(api::ClientOptions{sock_, 5s}).ipamAllocateIp(*ip, "probe");
  EXPECT_TRUE(reuse.ok()) << reuse.error().toString();
}

TEST_F(CniTest, AgentDownAddRetriesAndDelIsFinishedByTheNextAgent) {
  Process* agent = startAgent("agent");
  ASSERT_NE(agent, nullptr);
  std::string ns = sandbox("q");
  auto add = cni("ADD", "ctr-q", ns, "pod-q");
  ASSERT_EQ(add.exit_code, 0) << add.out;
  std::string host = nlohmann::json::parse(add.out)["interfaces"][0]["name"];
  agent->signal(SIGTERM);
  ASSERT_EQ(*agent->wait(10s), 0);

  auto refused = cni("ADD", "ctr-r", sandbox("r"), "pod-r");
  EXPECT_EQ(refused.exit_code, 11) << refused.out;
  EXPECT_EQ(nlohmann::json::parse(refused.out)["code"], 11);

  auto del = cni("DEL", "ctr-q", ns, "pod-q");
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_FALSE(hostLinkExists(host)) << "the veth goes at once";
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/run/deleteQueue/ctr-q.json"));

  ASSERT_NE(startAgent("agent2"), nullptr);
  EXPECT_EQ(endpoints(), 0u) << readFile(dir_ + "/agent2.err").valueOr("");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/run/deleteQueue/ctr-q.json"));
}

}  // namespace
}  // namespace cilium
