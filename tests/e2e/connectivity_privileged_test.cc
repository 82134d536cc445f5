// e2e tier: the connectivity test (deploy/local/connectivity-test, `cilium-local connectivity
// test`) against a local two-node cluster: every test passes and the summary says so; and with a
// cluster-wide deny-all ingress policy in force it fails, lists the failed actions and exits
// non-zero (the test can tell a broken cluster from a working one). And every test passes, each
// action over both families, on dual-stack clusters (`up --ipv6`) in both routing modes (tunnel;
// native: `up --routing-mode native`, auto-direct-node-routes).
// Everything is named cilt<pid>-..., so the harness sweep removes it even after a kill -9.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"

namespace cilium {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kSource = CILIUM_SOURCE_DIR;
const std::string kTool = kSource + "/deploy/local/cilium-local";

class ConnectivityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "cilt" + std::to_string(::getpid()) + "-conn" + std::to_string(counter_++);
    work_ = "/tmp/" + name_;
    fs::create_directories(work_ + "/manifests");
    std::vector<std::string> args = {"up",           "--nodes",     "2", "--manifests",
                                     work_ + "/manifests", "--routing-mode", routing_mode_};
    if (ipv6_) args.push_back("--ipv6");
    auto up = tool(args, 90s);
    ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  }

  void TearDown() override {
    // The logs first: `down` removes them.
    if (HasFailure()) {
      for (const char* log : {"node-1.agent.log", "node-2.agent.log", "operator.log"})
        std::fprintf(stderr, "--- %s:\n%s\n", log,
                     readFile(work_ + "/state/logs/" + log).valueOr("").c_str());
    }
    auto r = tool({"down"}, 120s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_FALSE(fs::exists("/run/netns/" + name_ + "-node-1"));
    EXPECT_FALSE(fs::exists("/run/netns/" + name_ + "-outside"));
    std::error_code ec;
    if (!std::getenv("CILIUM_TEST_KEEP_TMP")) fs::remove_all(work_, ec);
  }

  RunOutput tool(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s) {
    SpawnOptions o;
    o.extra_env = {"CILIUM_LOCAL_NAME=" + name_, "CILIUM_LOCAL_STATE=" + work_ + "/state",
                   "CILIUM_LOCAL_BUILD=" + std::string(CILIUM_BUILD_DIR)};
    std::vector<std::string> argv = {kTool};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, o, timeout);
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : RunOutput{};
  }

  static inline int counter_ = 0;
  std::string routing_mode_ = "tunnel";
  bool ipv6_ = false;
  std::string name_, work_;
};

// Dual stack: every pod, node, the outside host and the test's Services have an address of each
// family; every action runs over IPv4 and again over IPv6 ("NAME-ipv6").
class DualStackConnectivityTest : public ConnectivityTest {
 protected:
  DualStackConnectivityTest() { ipv6_ = true; }
};

// The same in routing-mode=native (auto-direct-node-routes).
class NativeConnectivityTest : public ConnectivityTest {
 protected:
  NativeConnectivityTest() {
    routing_mode_ = "native";
    ipv6_ = true;
  }
};

// The actions of both families that cross nodes, leave the cluster, or come from a node's host.
const char* const kCrossNodeActions[] = {
    "pod-to-pod-cross-node", "pod-to-service-clusterip-remote-backend",
    "outside-to-nodeport-via-node-2-backend-on-node-1", "pod-to-world", "pod-to-host-other-node",
    "host-to-pod-other-node", "client-to-echo-cross-node", "client2-to-echo-cross-node"};

void expectEveryActionOfBothFamilies(const RunOutput& r) {
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("✅ All "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("❌"), std::string::npos) << r.out;
  for (const char* action : kCrossNodeActions) {
    for (const std::string suffix : {" (", "-ipv6 ("})
      EXPECT_NE(r.out.find(std::string("✅ ") + action + suffix), std::string::npos)
          << action << suffix << "\n" << r.out;
  }
  // IPv6 masquerade: the outside host saw the node's IPv6 address.
  EXPECT_NE(r.out.find("✅ pod-to-world-ipv6 source address: the outside host saw the node's "
                       "fd00:172:30::1"),
            std::string::npos)
      << r.out;
}

TEST_F(ConnectivityTest, EveryTestPasses) {
  auto r = tool({"connectivity", "test"}, 600s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("✅ All "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("❌"), std::string::npos) << r.out;
  for (const char* test :
       {"[no-policies]", "[all-ingress-deny]", "[client-egress-by-identity]",
        "[echo-ingress-by-identity]", "[to-entities-world]", "[to-entities-host]",
        "[to-entities-remote-node]", "[to-entities-cluster]", "[deny-beats-allow]"})
    EXPECT_NE(r.out.find(std::string("Test ") + test), std::string::npos) << test << "\n" << r.out;
  for (const char* action :
       {"pod-to-pod-same-node", "pod-to-pod-cross-node", "pod-to-service-clusterip-remote-backend",
        "outside-to-nodeport-via-node-2-backend-on-node-1", "pod-to-world",
        "pod-to-host-other-node", "host-to-pod-other-node"})
    EXPECT_NE(r.out.find(std::string("✅ ") + action), std::string::npos) << action << "\n" << r.out;
  // The deployment goes away with the test.
  EXPECT_FALSE(fs::exists(work_ + "/manifests/cilium-test.yaml"));
  EXPECT_FALSE(fs::exists("/run/netns/" + name_ + "-pod-cilium-test_client"));
}

TEST_F(ConnectivityTest, FailsOnABrokenCluster) {
  // Ingress denied to every pod of the cluster: the no-policies test cannot pass.
  std::ofstream(work_ + "/manifests/deny-all.yaml")
      << "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n"
         "metadata: {name: deny-all}\nspec:\n  endpointSelector: {}\n  ingress:\n    - {}\n";
  auto r = tool({"connectivity", "test", "--test", "no-policies"}, 600s);
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("✅ All "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("❌ [no-policies] pod-to-pod-same-node"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expected success, got drop"), std::string::npos) << r.out;
}

TEST_F(DualStackConnectivityTest, EveryTestPassesOverBothFamilies) {
  // The node's own IPv6 packets to the other node's pods go into cilium_host and the tunnel from
  // the IPv6 router address, as the IPv4 ones do.
  auto routes = tool({"host", "node-1", "--", "ip", "-6", "route", "show", "proto", "196"});
  EXPECT_NE(routes.out.find("dev cilium_host"), std::string::npos) << routes.out << routes.err;
  expectEveryActionOfBothFamilies(tool({"connectivity", "test"}, 600s));
}

TEST_F(NativeConnectivityTest, EveryTestPasses) {
  // The agents say native, and each routes the other's pod CIDRs via its underlay addresses.
  auto st = tool({"dbg", "status"});
  EXPECT_NE(st.out.find("Network: Native"), std::string::npos) << st.out << st.err;
  for (const char* family : {"-4", "-6"}) {
    std::vector<std::string> ip = {"ip"};
    if (std::string(family) == "-6") ip.push_back("-6");
    ip.push_back("node-2");
    std::string node2_ip = tool(ip).out;
    while (!node2_ip.empty() && node2_ip.back() == '\n') node2_ip.pop_back();
    auto routes = tool({"host", "node-1", "--", "ip", family, "route", "show", "proto", "196"});
    EXPECT_NE(routes.out.find(" via " + node2_ip + " dev eth0"), std::string::npos)
        << family << ": " << routes.out << routes.err;
  }
  // The whole test (about a minute and a half): pod to pod across nodes unencapsulated, Services
  // with remote backends, the outside (masquerade leaves the cluster pools alone), policy by
  // identity, each over both families.
  expectEveryActionOfBothFamilies(tool({"connectivity", "test"}, 600s));
}

}  // namespace
}  // namespace cilium
