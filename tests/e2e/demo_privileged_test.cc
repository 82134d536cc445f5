// e2e tier: the Star Wars scenario driven through the local cluster tool
// (deploy/local/cilium-local) as a user would: two nodes (API server, operator, an agent each) on
// the demo manifests, the ships on node-1 and the deathstars on node-2, the pods through
// cilium-cni, both ships land across the nodes; rule1 dropped into the manifests directory makes
// the deathstar endpoints enforce ingress, xwing's request times out with a "Policy denied" drop
// reported on node-2, tiefighter still lands; removing rule1 lets xwing land again. Then `down`
// leaves nothing behind, also after a crash, and README command 1 (scripts/demo.sh) passes.
// Everything is named cilt<pid>-..., so the harness sweep removes it even after a kill -9.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "tests/harness/eventually.h"

namespace cilium {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kSource = CILIUM_SOURCE_DIR;
const std::string kTool = kSource + "/deploy/local/cilium-local";
constexpr char kClusterIp[] = "10.96.0.100";

using cilium::testing::eventually;

// The pods' endpoints in `cilium-dbg endpoint list -o json`, after checking that the node's
// health endpoint (container cilium-health, identity 4) is there too; SIZE_MAX when not.
size_t podEndpoints(const std::string& list_json) {
  auto eps = nlohmann::json::parse(list_json, nullptr, false);
  if (!eps.is_array()) return SIZE_MAX;
  size_t pods = 0;
  bool health = false;
  for (const auto& ep : eps) {
    if (ep.value("/status/external-identifiers/container-id"_json_pointer, "") == "cilium-health") {
      health = ep.value("/status/identity/id"_json_pointer, 0) == 4;
      continue;
    }
    pods++;
  }
  return health ? pods : SIZE_MAX;
}

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "cilt" + std::to_string(::getpid()) + "-demo" + std::to_string(counter_++);
    work_ = "/tmp/" + name_;
    fs::create_directories(work_ + "/manifests");
    for (const auto& e : fs::directory_iterator(kSource + "/deploy/local/demo/manifests"))
      fs::copy_file(e.path(), work_ + "/manifests/" + e.path().filename().string());
  }

  void TearDown() override {
    auto r = tool({"down"}, 120s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    if (HasFailure()) std::fprintf(stderr, "agent log:\n%s\n", agent_log_.c_str());
    std::error_code ec;
    if (!std::getenv("CILIUM_TEST_KEEP_TMP")) fs::remove_all(work_, ec);
  }

  SpawnOptions env() const {
    SpawnOptions o;
    o.extra_env = {"CILIUM_LOCAL_NAME=" + name_, "CILIUM_LOCAL_STATE=" + state(),
                   "CILIUM_LOCAL_BUILD=" + std::string(CILIUM_BUILD_DIR)};
    return o;
  }
  std::string state() const { return work_ + "/state"; }

  RunOutput tool(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> argv = {kTool};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, env(), timeout);
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : RunOutput{};
  }

  // cilium-http-client in `pod`; its exit status says landed (0), refused (3), timed out (4).
  RunOutput request(const std::string& pod, const std::string& target,
                    const std::string& timeout = "3") {
    return tool({"exec", "default/" + pod, "--", "cilium-http-client", "POST",
                 "http://" + target + "/v1/request-landing", "--timeout", timeout});
  }

  std::string ip(const std::string& pod) {
    auto r = tool({"ip", "default/" + pod});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  // The node a demo pod runs on (the manifests place them).
  static std::string nodeOf(const std::string& pod) {
    return pod.rfind("deathstar", 0) == 0 ? "node-2" : "node-1";
  }

  // The endpoint's realized policy-enabled mode ("none", "ingress", "egress", "both").
  std::string policyMode(const std::string& pod) {
    auto r = tool({"dbg", "--node", nodeOf(pod), "endpoint", "get", "pod-name:default/" + pod});
    if (r.exit_code != 0) return "error: " + r.err;
    try {
      auto j = nlohmann::json::parse(r.out);
      if (j.is_array() && !j.empty()) j = j[0];
      return j["status"]["policy"]["realized"].value("policy-enabled", "none");
    } catch (const std::exception& e) {
      return std::string("unparsable: ") + e.what();
    }
  }
  bool enforcesIngress(const std::string& pod) {
    auto m = policyMode(pod);
    return m == "ingress" || m == "both";
  }

  void upWithPods() {
    auto up = tool({"up", "--nodes", "2", "--manifests", work_ + "/manifests"}, 90s);
    ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
    auto pods = tool({"pods"}, 120s);
    readAgentLogs();
    ASSERT_EQ(pods.exit_code, 0) << pods.out << pods.err;
    for (const char* p : {"deathstar-1", "deathstar-2", "tiefighter", "xwing"}) {
      size_t at = pods.out.find(std::string("default/") + p + ": 10.200.");
      ASSERT_NE(at, std::string::npos) << pods.out;
      EXPECT_EQ(pods.out.substr(pods.out.find(" on ", at), 10), " on " + nodeOf(p)) << pods.out;
    }
  }
  void readAgentLogs() {
    agent_log_ = readFile(state() + "/logs/node-1.agent.log").valueOr("") + "\n--- node-2:\n" +
                 readFile(state() + "/logs/node-2.agent.log").valueOr("");
  }
  pid_t agentPid(const std::string& node) {
    return std::atoi(readFile(state() + "/nodes/" + node + "/agent.pid").valueOr("").c_str());
  }
  // Everything `down` must remove.
  void expectGone() {
    for (const char* ns : {"-node-1", "-node-2", "-underlay", "-outside",
                           "-pod-default_xwing", "-pod-default_deathstar-1"})
      EXPECT_FALSE(netnsExists(name_ + ns)) << ns;
    EXPECT_FALSE(fs::exists("/sys/fs/bpf/" + name_));
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/unified/" + name_)) << "processes left running";
    EXPECT_FALSE(fs::exists(state()));
  }

  bool netnsExists(const std::string& ns) { return fs::exists("/run/netns/" + ns); }

  static inline int counter_ = 0;
  std::string name_, work_, agent_log_;
};

TEST_F(DemoTest, StarWarsScenario) {
  ASSERT_NO_FATAL_FAILURE(upWithPods());
  std::string ds1 = ip("deathstar-1"), ds2 = ip("deathstar-2");
  ASSERT_FALSE(ds1.empty());
  ASSERT_NE(ds1, ds2);
  // The deathstar servers run as the pods' container command; wait until they answer.
  for (const auto& t : {ds1, ds2})
    ASSERT_TRUE(eventually([&] { return request("tiefighter", t, "1").exit_code == 0; }, 15s))
        << t << " never answered";

  // The Service is used when its ClusterIP answers (service load balancing wired); otherwise
  // the pods are addressed directly, as the demo does.
  std::vector<std::string> targets = {ds1, ds2};
  if (request("tiefighter", kClusterIp, "2").exit_code == 0) targets = {kClusterIp};

  // Step 1: no policy, both ships land.
  EXPECT_EQ(policyMode("deathstar-1"), "none");
  for (const auto& t : targets) {
    for (const char* ship : {"tiefighter", "xwing"}) {
      auto r = request(ship, t);
      EXPECT_EQ(r.exit_code, 0) << ship << " -> " << t << ": " << r.out << r.err;
      EXPECT_EQ(r.out, "HTTP 200 OK\nShip landed\n") << ship << " -> " << t;
    }
  }

  // Step 2: rule1 into the manifests directory.
  std::string drops = work_ + "/drops.log";
  SpawnOptions mon = env();
  mon.stdout_path = drops;
  auto monitor = spawn({kTool, "dbg", "--node", "node-2", "monitor", "--type", "drop"}, mon);
  ASSERT_TRUE(monitor.ok()) << monitor.error().toString();
  fs::copy_file(kSource + "/deploy/local/demo/policies/rule1.yaml",
                work_ + "/manifests/rule1.yaml");
  EXPECT_TRUE(eventually(
      [&] { return enforcesIngress("deathstar-1") && enforcesIngress("deathstar-2"); }, 10s))
      << "deathstar-1: " << policyMode("deathstar-1")
      << ", deathstar-2: " << policyMode("deathstar-2");
  EXPECT_EQ(policyMode("tiefighter"), "none");
  EXPECT_EQ(policyMode("xwing"), "none");
  auto list = tool({"dbg", "--node", "node-2", "endpoint", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("Enabled"), std::string::npos) << list.out;

  std::string xwing_ip = ip("xwing");
  for (const auto& t : targets) {
    auto x = request("xwing", t, "2");
    EXPECT_EQ(x.exit_code, 4) << "xwing -> " << t << " must time out: " << x.out << x.err;
    auto tie = request("tiefighter", t);
    EXPECT_EQ(tie.exit_code, 0) << "tiefighter -> " << t << ": " << tie.out << tie.err;
    EXPECT_EQ(tie.out, "HTTP 200 OK\nShip landed\n");
  }
  // L3/L4 lets every request of an allowed peer through, the exhaust port included.
  auto put = tool({"exec", "default/tiefighter", "--", "cilium-http-client", "PUT",
                   "http://" + targets[0] + "/v1/exhaust-port", "--timeout", "3"});
  EXPECT_EQ(put.exit_code, 1) << put.out << put.err;
  EXPECT_EQ(put.out, "HTTP 500 Internal Server Error\nPanic: deathstar exploded\n");
  // The drop event names the reason and comes from xwing's address.
  EXPECT_TRUE(eventually(
      [&] {
        std::string text = readFile(drops).valueOr("");
        size_t at = text.find("Policy denied");
        return at != std::string::npos && text.find(xwing_ip, at) != std::string::npos;
      },
      5s))
      << readFile(drops).valueOr("");
  monitor->stop();
  // Hubble on the deathstars' node shows the drop of xwing's packets from the other node.
  auto flows = tool({"hubble", "--node", "node-2", "observe", "--verdict", "DROPPED",
                     "--from-ip", xwing_ip});
  EXPECT_EQ(flows.exit_code, 0) << flows.err;
  EXPECT_NE(flows.out.find("Policy denied"), std::string::npos) << flows.out;
  EXPECT_NE(flows.out.find("default/xwing"), std::string::npos)
      << "the other node's pod is named (from its CiliumEndpoint)\n"
      << flows.out;

  // The node's metrics are on: the policy change, the pods' addresses, Hubble's flows.
  auto metrics = tool({"metrics", "--node", "node-2"});
  EXPECT_EQ(metrics.exit_code, 0) << metrics.err;
  EXPECT_NE(metrics.out.find("cilium_policy_change_total{outcome=\"success\"} "), std::string::npos)
      << metrics.out;
  EXPECT_NE(metrics.out.find("cilium_ip_addresses{family=\"ipv4\"} "), std::string::npos)
      << metrics.out;
  auto hubble_metrics = tool({"metrics", "--node", "node-2", "hubble"});
  EXPECT_EQ(hubble_metrics.exit_code, 0) << hubble_metrics.err;
  EXPECT_NE(hubble_metrics.out.find("hubble_drop_total"), std::string::npos) << hubble_metrics.out;

  // Removing the file lifts the policy again.
  fs::remove(work_ + "/manifests/rule1.yaml");
  EXPECT_TRUE(eventually([&] { return request("xwing", targets[0], "1").exit_code == 0; }, 10s));
  readAgentLogs();

  // Down removes everything, and a second down is a no-op.
  auto down = tool({"down"}, 120s);
  EXPECT_EQ(down.exit_code, 0) << down.out << down.err;
  expectGone();
  EXPECT_FALSE(fs::exists(work_ + "/manifests/cilium-local.endpointslices.json"));
  EXPECT_EQ(tool({"down"}).exit_code, 0);
}

TEST_F(DemoTest, PodsFollowTheManifestsAndDownCleansUpAfterACrash) {
  ASSERT_NO_FATAL_FAILURE(upWithPods());
  // A pod that leaves the manifests goes on the next `pods`: endpoint, namespace and address.
  std::string ships = readFile(work_ + "/manifests/ships.yaml").valueOr("");
  ASSERT_NE(ships.find("---"), std::string::npos);
  std::ofstream(work_ + "/manifests/ships.yaml", std::ios::trunc)
      << ships.substr(0, ships.find("---"));
  auto again = tool({"pods"}, 120s);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("default/xwing: deleted"), std::string::npos) << again.out;
  EXPECT_FALSE(netnsExists(name_ + "-pod-default_xwing"));
  EXPECT_NE(tool({"ip", "default/xwing"}).exit_code, 0);
  auto eps = tool({"dbg", "--node", "node-1", "endpoint", "list", "-o", "json"});
  EXPECT_EQ(podEndpoints(eps.out), 1u) << eps.out;

  auto started = tool({"run", "default/tiefighter", "--as", "extra", "--", "sleep", "1000"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto status = tool({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_NE(status.out.find("extra("), std::string::npos) << status.out;

  // A crash: the agents are killed and the pidfiles are lost.
  for (const char* node : {"node-1", "node-2"}) {
    pid_t agent = agentPid(node);
    ASSERT_GT(agent, 1);
    ASSERT_EQ(::kill(agent, SIGKILL), 0);
  }
  for (const auto& e : fs::recursive_directory_iterator(state()))
    if (e.path().extension() == ".pid") fs::remove(e.path());

  auto down = tool({"down"}, 120s);
  EXPECT_EQ(down.exit_code, 0) << down.out << down.err;
  expectGone();
}

// The deathstars' agent (node-2, where rule1 is enforced) restarts alone, as a DaemonSet restarts
// it: `restart-agent --kill`, a plain `restart-agent`, and a crashed agent brought back; the
// pods, their addresses and rule1 stay, and xwing is denied before, during and after.
TEST_F(DemoTest, AgentRestartsAloneKeepingPodsAndPolicy) {
  ASSERT_NO_FATAL_FAILURE(upWithPods());
  std::string ds1 = ip("deathstar-1");
  ASSERT_TRUE(eventually([&] { return request("tiefighter", ds1, "1").exit_code == 0; }, 15s));
  fs::copy_file(kSource + "/deploy/local/demo/policies/rule1.yaml",
                work_ + "/manifests/rule1.yaml");
  ASSERT_TRUE(eventually([&] { return enforcesIngress("deathstar-1"); }, 10s));
  ASSERT_EQ(request("xwing", ds1, "1").exit_code, 4);

  auto restarted = tool({"restart-agent", "--node", "node-2", "--kill"}, 90s);
  EXPECT_EQ(restarted.exit_code, 0) << restarted.out << restarted.err;
  EXPECT_NE(restarted.out.find("SIGKILL"), std::string::npos) << restarted.out;
  EXPECT_EQ(request("xwing", ds1, "1").exit_code, 4) << "rule1 must hold across the restart";
  EXPECT_EQ(request("tiefighter", ds1).exit_code, 0);
  EXPECT_TRUE(enforcesIngress("deathstar-1"));

  auto graceful = tool({"restart-agent", "--node", "node-2"}, 90s);
  EXPECT_EQ(graceful.exit_code, 0) << graceful.out << graceful.err;
  EXPECT_NE(graceful.out.find("SIGTERM"), std::string::npos) << graceful.out;

  // A crash: `up` refuses and says what to do; restart-agent brings the agent back.
  pid_t agent = agentPid("node-2");
  ASSERT_GT(agent, 1);
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return tool({"status"}).exit_code != 0; }, 10s));
  auto up = tool({"up", "--nodes", "2", "--manifests", work_ + "/manifests"});
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("restart-agent"), std::string::npos) << up.err;
  EXPECT_EQ(request("xwing", ds1, "1").exit_code, 4) << "the datapath enforces without the agent";
  auto back = tool({"restart-agent", "--node", "node-2"}, 90s);
  EXPECT_EQ(back.exit_code, 0) << back.out << back.err;
  EXPECT_NE(back.out.find("not running"), std::string::npos) << back.out;
  auto eps = tool({"dbg", "--node", "node-2", "endpoint", "list", "-o", "json"});
  EXPECT_EQ(podEndpoints(eps.out), 2u) << eps.out;
  EXPECT_EQ(request("xwing", ds1, "1").exit_code, 4);
  EXPECT_EQ(request("tiefighter", ds1).exit_code, 0);
  readAgentLogs();
}

TEST_F(DemoTest, ReadmeCommandOnePasses) {
  SpawnOptions o;
  o.extra_env = {"CILIUM_DEMO_SKIP_BUILD=1", "CILIUM_DEMO_NAME=" + name_ + "sw",
                 "CILIUM_LOCAL_BUILD=" + std::string(CILIUM_BUILD_DIR)};
  auto res = run({kSource + "/scripts/demo.sh"}, o, 240s);
  ASSERT_TRUE(res.ok()) << res.error().toString();
  const RunOutput& r = *res;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("expectations held"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Policy denied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("got 403 Access denied"), std::string::npos) << "step 3 (L7)\n" << r.out;
  EXPECT_NE(r.out.find("toFQDNs allows it"), std::string::npos) << "step 4 (DNS)\n" << r.out;
  EXPECT_NE(r.out.find("its address stays denied"), std::string::npos) << "step 4 (DNS)\n"
                                                                        << r.out;
  EXPECT_FALSE(netnsExists(name_ + "sw-node-1")) << "the demo tears down at exit";
  EXPECT_FALSE(netnsExists(name_ + "sw-underlay")) << "the demo tears down at exit";
}

// README command 1 on a dual-stack cluster: the same steps, and rule1 holding over IPv6 (the
// Service's IPv6 ClusterIP and a Death Star's IPv6 address; the xwing's IPv6 packets dropped).
TEST_F(DemoTest, ReadmeCommandOnePassesDualStack) {
  SpawnOptions o;
  o.extra_env = {"CILIUM_DEMO_SKIP_BUILD=1", "CILIUM_DEMO_NAME=" + name_ + "s6",
                 "CILIUM_LOCAL_BUILD=" + std::string(CILIUM_BUILD_DIR)};
  auto res = run({kSource + "/scripts/demo.sh", "--ipv6"}, o, 240s);
  ASSERT_TRUE(res.ok()) << res.error().toString();
  const RunOutput& r = *res;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("expectations held"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiefighter landed on [fd00:96::100]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("its IPv6 packets are dropped as well"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("xwing's IPv6 flows as DROPPED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("got 403 Access denied"), std::string::npos) << "step 3 (L7)\n" << r.out;
  EXPECT_FALSE(netnsExists(name_ + "s6-node-1")) << "the demo tears down at exit";
}

}  // namespace
}  // namespace cilium
