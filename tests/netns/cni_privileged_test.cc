// cilium-cni invoked as a container runtime does (CNI_* environment, config on stdin, inside the
// node's network namespace) against a real agent: ADD wires real pods that talk over TCP (IPv4,
// dual stack and IPv6 only), CHECK verifies, DEL (repeated, with an empty netns) removes
// everything, and with the agent down ADD asks to try again while DEL is queued and finished by
// the next agent.
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

// The agent's address families: IPv4 (the default), dual stack (enable-ipv6), IPv6 only
// (enable-ipv4=false).
enum class Stack { kIpv4, kDual, kIpv6 };

std::string stackName(const ::testing::TestParamInfo<Stack>& info) {
  switch (info.param) {
    case Stack::kIpv4: return "IPv4";
    case Stack::kDual: return "DualStack";
    case Stack::kIpv6: return "IPv6Only";
  }
  return "?";
}

class CniStackTest : public CniTest, public ::testing::WithParamInterface<Stack> {
 protected:
  bool v4() const { return GetParam() != Stack::kIpv6; }
  bool v6() const { return GetParam() != Stack::kIpv4; }
  // The agent's flags for the stack; IPv6 on in the node namespace (the harness turns it off),
  // where the agent routes the pods' /128s.
  std::vector<std::string> stackArgs() {
    if (!v6()) return {};
    for (const char* key :
         {"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"})
      EXPECT_EQ(topo_->exec(topo_->nodeNetns(), {"sysctl", "-qw", key})->exit_code, 0);
    std::vector<std::string> args = {"--enable-ipv6=true", "--ipv6-range=fd00:200::/112"};
    if (!v4()) args.push_back("--enable-ipv4=false");
    return args;
  }
  // The result's addresses (prefix length cut) of one family, in order.
  static std::vector<std::string> ipsOf(const nlohmann::json& result, bool ipv6) {
    std::vector<std::string> out;
    for (const auto& ip : result["ips"]) {
      std::string a = ip["address"].get<std::string>();
      if ((a.find(':') != std::string::npos) == ipv6) out.push_back(a.substr(0, a.find('/')));
    }
    return out;
  }
};

INSTANTIATE_TEST_SUITE_P(Stacks, CniStackTest,
                         ::testing::Values(Stack::kIpv4, Stack::kDual, Stack::kIpv6), stackName);

TEST_P(CniStackTest, AddWiresPodsThatTalkAndDelRemovesEverything) {
  ASSERT_NE(node_->startReady("agent", stackArgs()), nullptr);
  std::string ns_a = sandbox("a"), ns_b = sandbox("b");
  auto add_a = cni("ADD", "ctr-a", ns_a, "pod-a");
  ASSERT_EQ(add_a.exit_code, 0) << add_a.out << readFile(dir_ + "/cni.log").valueOr("");
  auto add_b = cni("ADD", "ctr-b", ns_b, "pod-b");
  ASSERT_EQ(add_b.exit_code, 0) << add_b.out;
  auto result_a = nlohmann::json::parse(add_a.out);
  auto result_b = nlohmann::json::parse(add_b.out);
  EXPECT_EQ(result_a["cniVersion"], "1.0.0");
  // One address per family of the agent, each with its family's gateway and default route.
  ASSERT_EQ(result_a["ips"].size(), (v4() ? 1u : 0u) + (v6() ? 1u : 0u)) << add_a.out;
  ASSERT_EQ(result_a["routes"].size(), result_a["ips"].size()) << add_a.out;
  size_t at = 0;
  if (v4()) {
    EXPECT_EQ(result_a["ips"][at]["gateway"], "10.200.0.1");
    EXPECT_EQ(result_a["routes"][at]["dst"], "0.0.0.0/0");
    at++;
  }
  if (v6()) {
    EXPECT_EQ(result_a["ips"][at]["gateway"], "fd00:200::1");
    EXPECT_EQ(result_a["ips"][at]["address"].get<std::string>().substr(0, 9), "fd00:200:");
    EXPECT_EQ(result_a["routes"][at]["dst"], "::/0");
    EXPECT_EQ(result_a["routes"][at]["gw"], "fd00:200::1");
  }
  EXPECT_EQ(result_a["interfaces"][1]["sandbox"], ns_a);
  std::string host_a = result_a["interfaces"][0]["name"];
  EXPECT_TRUE(hostLinkExists(host_a));
  EXPECT_EQ(endpoints(), 2u);

  // The pod has each address and a default route via each gateway; it talks to the other pod
  // over each family.
  auto addr = topo_->exec(ns_a, {"ip", "-j", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(addr.ok());
  for (bool ipv6 : {false, true}) {
    for (const auto& ip : ipsOf(result_a, ipv6))
      EXPECT_NE(addr->out.find("\"" + ip + "\""), std::string::npos) << ip << addr->out;
    auto route = topo_->exec(ns_a, {"ip", ipv6 ? "-6" : "-4", "route", "show", "default"});
    ASSERT_TRUE(route.ok());
    const bool has = ipv6 ? v6() : v4();
    EXPECT_EQ(route->out.find(ipv6 ? "via fd00:200::1" : "via 10.200.0.1") != std::string::npos,
              has)
        << route->out;
    auto to = ipsOf(result_b, ipv6);
    ASSERT_EQ(to.size(), has ? 1u : 0u);
    if (!has) continue;
    auto listener = testing::listenTcp(ns_b, to[0], kPort);
    ASSERT_TRUE(listener.ok()) << listener.error().toString();
    EXPECT_TRUE(testing::connectTcp(ns_a, to[0], kPort, 2000ms).ok()) << to[0];
  }
  if (!v4()) {
    // No IPv4 on the pod at all: its interface carries none.
    auto v4addr = topo_->exec(ns_a, {"ip", "-4", "addr", "show", "dev", "eth0"});
    ASSERT_TRUE(v4addr.ok());
    EXPECT_EQ(v4addr->out.find("inet "), std::string::npos) << v4addr->out;
  }

  // CHECK with the ADD result as prevResult.
  auto check = cni("CHECK", "ctr-a", ns_a, "pod-a", {{"prevResult", result_a}});
  EXPECT_EQ(check.exit_code, 0) << check.out;

  // Double ADD leaves one wired pod (and one address per family).
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
  // Its addresses are free again: the agent can hand exactly those out.
  for (const auto& entry : prev["ips"]) {
    std::string last = entry["address"].get<std::string>();
    auto ip = IpAddr::parse(last.substr(0, last.find('/')));
    ASSERT_TRUE(ip.ok());
    auto reuse = api::Client(api::ClientOptions{sock_, 5s}).ipamAllocateIp(*ip, "probe");
    EXPECT_TRUE(reuse.ok()) << last << ": " << reuse.error().toString();
  }
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
