// cilium-cni against the specification, with a fake agent and a fake host: every command, bad
// environments, malformed stdin, versions, double ADD, triple DEL, rollback, the agent down.
#include "cni/plugin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cni/input.h"
#include "cni/spec.h"

namespace cilium::cni {
namespace {

class FakeAgent : public AgentApi {
 public:
  bool up = true;
  bool ready = true;
  bool fail_put = false;
  int next_ip = 10;
  std::map<std::string, std::string> ips;                       // ip -> owner
  std::map<std::string, api::EndpointChangeRequest> endpoints;  // container id -> request
  int puts = 0;
  int device_mtu = 0;  // what GET /config says; 0: nothing
  bool dual_stack = false;  // IPAM also hands out fd00::<n> (the agent's enable-ipv6)
  bool ipv4 = true;         // false: IPv6 only (enable-ipv4=false; set dual_stack too)

  Result<api::StatusResponse> healthz() override {
    if (!up) return down();
    api::StatusResponse s;
    s.cilium = api::ComponentStatus{ready ? api::StatusState::kOk : api::StatusState::kFailure,
                                    ready ? "" : "starting"};
    return s;
  }
  Result<api::IpamResponse> allocate(const std::string& owner) override {
    if (!up) return down();
    std::string ip = "10.0.0." + std::to_string(next_ip++);
    api::IpamResponse r;
    if (ipv4) {
      ips[ip] = owner;
      r.address.ipv4 = ip;
      r.ipv4 = api::IpamAddressResponse{.ip = ip, .gateway = "10.0.0.1"};
    }
    if (dual_stack) {
      std::string ip6 = "fd00::" + std::to_string(next_ip - 1);
      ips[ip6] = owner;
      r.address.ipv6 = ip6;
      r.ipv6 = api::IpamAddressResponse{.ip = ip6, .gateway = "fd00::1"};
    }
    return r;
  }
  Status release(const std::string& what) override {
    if (!up) return down();
    size_t n =
        std::erase_if(ips, [&](const auto& kv) { return kv.first == what || kv.second == what; });
    if (n == 0) return makeError(ErrorCode::kNotFound, "{} not allocated", what);
    return okStatus();
  }
  Status putEndpoint(const api::EndpointChangeRequest& req) override {
    if (!up) return down();
    ++puts;
    if (fail_put) return makeError(ErrorCode::kInternal, "regeneration failed");
    endpoints[req.container_id] = req;
    return okStatus();
  }
  Result<api::Endpoint> getEndpoint(const std::string& cid) override {
    if (!up) return down();
    auto it = endpoints.find(cid);
    if (it == endpoints.end()) return makeError(ErrorCode::kNotFound, "no endpoint {}", cid);
    return toEndpoint(it->second);
  }
  Status deleteEndpoint(const std::string& cid) override {
    if (!up) return down();
    if (endpoints.erase(cid) == 0) return makeError(ErrorCode::kNotFound, "no endpoint {}", cid);
    return okStatus();
  }
  Result<std::vector<api::Endpoint>> listEndpoints() override {
    if (!up) return down();
    std::vector<api::Endpoint> out;
    for (const auto& [cid, req] : endpoints) out.push_back(toEndpoint(req));
    return out;
  }
  Result<int> deviceMtu() override {
    if (!up) return down();
    return device_mtu;
  }

 private:
  static Error down() { return makeError(ErrorCode::kUnavailable, "connect: no such file"); }
  static api::Endpoint toEndpoint(const api::EndpointChangeRequest& req) {
    api::Endpoint ep;
    ep.id = 1;
    ep.status.emplace();
    ep.status->state = api::EndpointState::kReady;
    ep.status->external_identifiers = api::EndpointIdentifiers{.container_id = req.container_id};
    ep.status->networking.emplace();
    ep.status->networking->addressing.push_back(*req.addressing);
    ep.status->networking->interface_name = req.interface_name;
    return ep;
  }
};

class FakeHost : public HostNet {
 public:
  std::map<std::string, PodLink> links;    // host ifname -> link
  std::map<std::string, Error> bad_netns;  // what checkNetns says about these paths
  bool fail_setup = false;
  bool netns_vanishes_in_setup = false;  // removed between the check and the veth
  int netns_checks = 0;
  Result<PodLinkInfo> setup(const PodLink& link) override {
    if (netns_vanishes_in_setup) {
      bad_netns.emplace(link.netns,
                        makeError(ErrorCode::kNotFound, "{} does not exist", link.netns));
      return makeError(ErrorCode::kNotFound, "network namespace {}: gone", link.netns);
    }
    if (fail_setup) return makeError(ErrorCode::kInternal, "RTM_NEWLINK: Operation not supported");
    if (links.count(link.host_ifname) != 0)
      return makeError(ErrorCode::kAlreadyExists, "{} exists", link.host_ifname);
    links[link.host_ifname] = link;
    return PodLinkInfo{.host_ifindex = 7,
                       .host_mac = "02:00:00:00:00:07",
                       .pod_mac = "02:00:00:00:00:08",
                       .pod_ifindex = 2};
  }
  Status teardown(const std::string& host_ifname) override {
    links.erase(host_ifname);
    return okStatus();
  }
  Status check(const std::string& netns, const std::string& ifname,
               const std::string& address) override {
    for (const auto& [name, l] : links) {
      if (l.netns == netns && l.ifname == ifname && (l.address == address || l.address6 == address))
        return okStatus();
    }
    return makeError(ErrorCode::kNotFound, "{} with {} not in {}", ifname, address, netns);
  }
  Status checkNetns(const std::string& netns) override {
    ++netns_checks;
    auto it = bad_netns.find(netns);
    return it == bad_netns.end() ? okStatus() : Status(it->second);
  }
};

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue_ = std::filesystem::temp_directory_path() /
             ("cni-queue-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(queue_);
    env_ = {{"CNI_CONTAINERID", "c0ffee"},
            {"CNI_NETNS", "/var/run/netns/cni-1234"},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/opt/cni/bin"},
            {"CNI_ARGS",
             "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=xwing;K8S_POD_UID=u1"}};
  }
  void TearDown() override { std::filesystem::remove_all(queue_); }

  Outcome run(const std::string& command, const std::string& conf) {
    env_["CNI_COMMAND"] = command;
    Plugin plugin(agent_, host_, PluginOptions{.default_mtu = 1500, .delete_queue_dir = queue_});
    return plugin.run(
        [this](const char* name) -> const char* {
          auto it = env_.find(name);
          return it == env_.end() ? nullptr : it->second.c_str();
        },
        conf);
  }
  static std::string conf(const std::string& version = "1.1.0", const std::string& extra = "") {
    return R"({"cniVersion":")" + version + R"(","name":"cilium","type":"cilium-cni")" + extra +
           "}";
  }
  static nlohmann::json json(const Outcome& o) { return nlohmann::json::parse(o.stdout_text); }
  static int code(const Outcome& o) { return json(o).at("code").get<int>(); }

  std::map<std::string, std::string> env_;
  FakeAgent agent_;
  FakeHost host_;
  std::filesystem::path queue_;
};

TEST_F(PluginTest, VersionListsSupportedVersionsWithOrWithoutConfig) {
  env_.clear();
  auto o = run("VERSION", "");
  ASSERT_EQ(o.exit_code, 0);
  EXPECT_EQ(json(o)["supportedVersions"],
            nlohmann::json({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
  EXPECT_EQ(json(o)["cniVersion"], "1.1.0");
  o = run("VERSION", conf("0.4.0"));
  EXPECT_EQ(json(o)["cniVersion"], "0.4.0");
}

TEST_F(PluginTest, MissingVariablesAreListedWithCode4) {
  env_.erase("CNI_NETNS");
  env_.erase("CNI_IFNAME");
  auto o = run("ADD", conf());
  EXPECT_EQ(o.exit_code, 4);
  EXPECT_EQ(code(o), 4);
  std::string msg = json(o)["msg"];
  EXPECT_NE(msg.find("CNI_NETNS"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CNI_IFNAME"), std::string::npos) << msg;
  EXPECT_TRUE(host_.links.empty());
  EXPECT_TRUE(agent_.ips.empty());
}

TEST_F(PluginTest, EachMalformedVariableIsRejected) {
  for (auto [var, value] :
       std::vector<std::pair<std::string, std::string>>{{"CNI_IFNAME", "0123456789abcdef"},
                                                        {"CNI_IFNAME", ".."},
                                                        {"CNI_IFNAME", "et/h0"},
                                                        {"CNI_IFNAME", "eth 0"},
                                                        {"CNI_CONTAINERID", "-bad"},
                                                        {"CNI_CONTAINERID", "a b"},
                                                        {"CNI_ARGS", "novalue"},
                                                        {"CNI_PATH", ""}}) {
    SetUp();
    env_[var] = value;
    auto o = run("ADD", conf());
    EXPECT_EQ(o.exit_code, 4) << var << "=" << value;
    EXPECT_NE(json(o)["msg"].get<std::string>().find(var), std::string::npos) << o.stdout_text;
  }
  auto o = run("FROB", conf());
  EXPECT_EQ(code(o), 4);
  env_.clear();
  o = run("", conf());
  EXPECT_EQ(code(o), 4);
}

TEST_F(PluginTest, DelNeedsNoNetns) {
  env_.erase("CNI_NETNS");
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);
  env_["CNI_NETNS"] = "";
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);
}

TEST_F(PluginTest, MalformedStdinIsDecodeFailureOrInvalidConfig) {
  EXPECT_EQ(code(run("ADD", "{not json")), 6);
  EXPECT_EQ(code(run("ADD", "[1,2]")), 6);
  EXPECT_EQ(code(run("ADD", R"({"cniVersion":"1.0.0","type":"cilium-cni"})")), 7);
  EXPECT_EQ(code(run("ADD", R"({"cniVersion":"1.0.0","name":"-x","type":"cilium-cni"})")), 7);
  EXPECT_EQ(code(run("ADD", R"({"cniVersion":1,"name":"c","type":"cilium-cni"})")), 6);
  EXPECT_EQ(code(run("ADD", conf("1.0.0", R"(,"mtu":"big")"))), 7);
  EXPECT_TRUE(agent_.ips.empty());
}

TEST_F(PluginTest, UnsupportedVersionsAreCode1) {
  EXPECT_EQ(code(run("ADD", conf("0.2.0"))), 1);
  // No cniVersion means 0.1.0, which we do not speak.
  EXPECT_EQ(code(run("ADD", R"({"name":"c","type":"cilium-cni"})")), 1);
  EXPECT_EQ(code(run("ADD", conf("2.0.0"))), 1);
  EXPECT_EQ(code(run("CHECK", conf("0.3.1"))), 1);
  EXPECT_EQ(code(run("GC", conf("1.0.0"))), 1);
  EXPECT_EQ(code(run("STATUS", conf("0.4.0"))), 1);
}

TEST_F(PluginTest, AddWiresThePodAndAnswersInTheRequestedVersion) {
  auto o = run("ADD", conf("1.0.0"));
  ASSERT_EQ(o.exit_code, 0) << o.stdout_text;
  auto r = json(o);
  EXPECT_EQ(r["cniVersion"], "1.0.0");
  ASSERT_EQ(r["interfaces"].size(), 2u);
  EXPECT_EQ(r["interfaces"][1]["name"], "eth0");
  EXPECT_EQ(r["interfaces"][1]["sandbox"], "/var/run/netns/cni-1234");
  EXPECT_FALSE(r["interfaces"][0].contains("sandbox"));
  EXPECT_EQ(r["ips"][0]["address"], "10.0.0.10/32");
  EXPECT_EQ(r["ips"][0]["gateway"], "10.0.0.1");
  EXPECT_EQ(r["ips"][0]["interface"], 1);
  EXPECT_FALSE(r["ips"][0].contains("version"));
  EXPECT_EQ(r["routes"][0]["dst"], "0.0.0.0/0");

  ASSERT_EQ(agent_.endpoints.count("c0ffee"), 1u);
  const auto& req = agent_.endpoints["c0ffee"];
  EXPECT_TRUE(req.sync_build_endpoint);
  EXPECT_EQ(req.k8s_pod_name, "xwing");
  EXPECT_EQ(req.k8s_namespace, "default");
  EXPECT_EQ(req.k8s_uid, "u1");
  EXPECT_EQ(req.interface_index, 7);
  EXPECT_EQ(req.addressing->ipv4, "10.0.0.10");
  EXPECT_EQ(agent_.ips.at("10.0.0.10"), "c0ffee");
  ASSERT_EQ(host_.links.size(), 1u);
  EXPECT_EQ(host_.links.begin()->second.gateway, "10.0.0.1");

  SetUp();
  env_["CNI_CONTAINERID"] = "other";
  auto legacy = json(run("ADD", conf("0.3.1")));
  EXPECT_EQ(legacy["ips"][0]["version"], "4");
  EXPECT_EQ(legacy["cniVersion"], "0.3.1");
}

// Dual stack: both addresses in the result (each with its family's gateway), both default
// routes, both in the endpoint request and on the pod's link; DEL releases both.
TEST_F(PluginTest, DualStackAddCarriesBothFamilies) {
  agent_.dual_stack = true;
  auto o = run("ADD", conf("1.0.0"));
  ASSERT_EQ(o.exit_code, 0) << o.stdout_text;
  auto r = json(o);
  ASSERT_EQ(r["ips"].size(), 2u);
  EXPECT_EQ(r["ips"][0]["address"], "10.0.0.10/32");
  EXPECT_EQ(r["ips"][1]["address"], "fd00::10/128");
  EXPECT_EQ(r["ips"][1]["gateway"], "fd00::1");
  EXPECT_EQ(r["ips"][1]["interface"], 1);
  ASSERT_EQ(r["routes"].size(), 2u);
  EXPECT_EQ(r["routes"][1]["dst"], "::/0");
  EXPECT_EQ(r["routes"][1]["gw"], "fd00::1");
  const auto& req = agent_.endpoints["c0ffee"];
  EXPECT_EQ(req.addressing->ipv4, "10.0.0.10");
  EXPECT_EQ(req.addressing->ipv6, "fd00::10");
  ASSERT_EQ(host_.links.size(), 1u);
  EXPECT_EQ(host_.links.begin()->second.address6, "fd00::10");
  EXPECT_EQ(host_.links.begin()->second.gateway6, "fd00::1");

  // CHECK compares both addresses with the agent's and the link's.
  EXPECT_EQ(run("CHECK", conf("1.1.0", R"(,"prevResult":)" + o.stdout_text)).exit_code, 0);
  auto bad = r;
  bad["ips"][1]["address"] = "fd00::99/128";
  EXPECT_NE(run("CHECK", conf("1.1.0", R"(,"prevResult":)" + bad.dump())).exit_code, 0)
      << "a wrong IPv6 address is found although the IPv4 one is right";

  ASSERT_EQ(run("DEL", conf("1.0.0")).exit_code, 0);
  EXPECT_TRUE(agent_.ips.empty()) << "both addresses released";
}

// IPv6 only (the agent's enable-ipv4=false): one address, its gateway and ::/0; no IPv4 on the
// link or in the endpoint request; CHECK and DEL work on the IPv6 address.
TEST_F(PluginTest, Ipv6OnlyAddCarriesOneAddress) {
  agent_.dual_stack = true;
  agent_.ipv4 = false;
  auto o = run("ADD", conf("1.0.0"));
  ASSERT_EQ(o.exit_code, 0) << o.stdout_text;
  auto r = json(o);
  ASSERT_EQ(r["ips"].size(), 1u) << r.dump();
  EXPECT_EQ(r["ips"][0]["address"], "fd00::10/128");
  EXPECT_EQ(r["ips"][0]["gateway"], "fd00::1");
  EXPECT_EQ(r["ips"][0]["interface"], 1);
  ASSERT_EQ(r["routes"].size(), 1u);
  EXPECT_EQ(r["routes"][0]["dst"], "::/0");
  EXPECT_EQ(r["routes"][0]["gw"], "fd00::1");
  const auto& req = agent_.endpoints["c0ffee"];
  EXPECT_EQ(req.addressing->ipv4, "");
  EXPECT_EQ(req.addressing->ipv6, "fd00::10");
  ASSERT_EQ(host_.links.size(), 1u);
  EXPECT_EQ(host_.links.begin()->second.address, "");
  EXPECT_EQ(host_.links.begin()->second.address6, "fd00::10");
  // CHECK finds the IPv6 address on the link and at the agent.
  EXPECT_EQ(run("CHECK", conf("1.1.0", R"(,"prevResult":)" + o.stdout_text)).exit_code, 0);

  ASSERT_EQ(run("DEL", conf("1.0.0")).exit_code, 0);
  EXPECT_TRUE(agent_.ips.empty());
  EXPECT_TRUE(host_.links.empty());

  env_["CNI_CONTAINERID"] = "legacy";
  auto legacy = json(run("ADD", conf("0.3.1")));
  ASSERT_EQ(legacy["ips"].size(), 1u);
  EXPECT_EQ(legacy["ips"][0]["version"], "6");
}

// An agent that hands out no address at all: nothing is wired, nothing leaks.
TEST_F(PluginTest, NoAddressFromTheAgentIsAnError) {
  agent_.ipv4 = false;
  auto o = run("ADD", conf());
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.stdout_text.find("no address"), std::string::npos) << o.stdout_text;
  EXPECT_TRUE(host_.links.empty());
  EXPECT_TRUE(agent_.endpoints.empty());
}

TEST_F(PluginTest, PodMtuIsTheNetworkConfigurationsElseTheAgentsElseTheDefault) {
  auto mtuOf = [&](const std::string& container, const std::string& extra) {
    env_["CNI_CONTAINERID"] = container;
    auto o = run("ADD", conf("1.1.0", extra));
    EXPECT_EQ(o.exit_code, 0) << o.stdout_text;
    return json(o)["interfaces"][1].value("mtu", 0);
  };
  EXPECT_EQ(mtuOf("a", ""), 1500) << "the agent says nothing: the plugin's default";
  // The agent in tunnel mode leaves room for the VXLAN headers.
  agent_.device_mtu = 1450;
  EXPECT_EQ(mtuOf("b", ""), 1450);
  EXPECT_EQ(host_.links.at(hostIfname("b", "eth0")).mtu, 1450);
  EXPECT_EQ(mtuOf("c", R"(,"mtu":1400)"), 1400) << "the network configuration wins";
}

TEST_F(PluginTest, AddWithTheAgentDownOrNotReadyIsTryAgainAndLeavesNothing) {
  agent_.up = false;
  auto o = run("ADD", conf());
  EXPECT_EQ(o.exit_code, 11);
  EXPECT_NE(json(o)["msg"].get<std::string>().find("not reachable"), std::string::npos);
  agent_.up = true;
  agent_.ready = false;
  EXPECT_EQ(code(run("ADD", conf())), 11);
  EXPECT_TRUE(host_.links.empty());
  EXPECT_TRUE(agent_.ips.empty());
}

TEST_F(PluginTest, AddRollsBackWhenTheEndpointCannotBeCreated) {
  agent_.fail_put = true;
  auto o = run("ADD", conf());
  EXPECT_NE(o.exit_code, 0);
  EXPECT_TRUE(host_.links.empty());
  EXPECT_TRUE(agent_.ips.empty());
  EXPECT_TRUE(agent_.endpoints.empty());
}

TEST_F(PluginTest, AddWithAMissingNetnsIsCode3AndTouchesNothing) {
  const std::string ns = "/var/run/netns/cni-1234";
  host_.bad_netns.emplace(ns, makeError(ErrorCode::kNotFound, "{} does not exist", ns));
  auto o = run("ADD", conf());
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(code(o), 3) << "the spec's 'container unknown or does not exist', not 8 (reserved)";
  EXPECT_EQ(json(o)["msg"],
            "the network namespace /var/run/netns/cni-1234 (CNI_NETNS) does not exist");
  EXPECT_EQ(agent_.puts, 0);
  EXPECT_TRUE(agent_.ips.empty());
  EXPECT_TRUE(host_.links.empty());
}

TEST_F(PluginTest, AddWithSomethingElseAsNetnsIsCode4NamingTheVariable) {
  env_["CNI_NETNS"] = "/etc/passwd";
  host_.bad_netns.emplace(
      "/etc/passwd",
      makeError(ErrorCode::kInvalidArgument, "/etc/passwd is a regular file, not a namespace"));
  auto o = run("ADD", conf());
  EXPECT_EQ(code(o), 4);
  EXPECT_EQ(json(o)["msg"], "CNI_NETNS /etc/passwd is not a network namespace");
  EXPECT_EQ(json(o)["details"], "/etc/passwd is a regular file, not a namespace");
  EXPECT_TRUE(agent_.ips.empty());

  host_.bad_netns.clear();
  host_.bad_netns.emplace("/etc/passwd", makeError(ErrorCode::kPermissionDenied, "denied"));
  EXPECT_EQ(code(run("ADD", conf())), 5);
  // CHECK looks too; DEL does not need the namespace and succeeds.
  EXPECT_EQ(
      code(run("CHECK", conf("1.1.0", R"(,"prevResult":{"ips":[{"address":"10.0.0.9/32"}]})"))), 5);
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);
}

TEST_F(PluginTest, AddReleasesTheAddressWhenTheNetnsGoesAwayMidway) {
  host_.netns_vanishes_in_setup = true;
  auto o = run("ADD", conf());
  EXPECT_EQ(code(o), 3);
  EXPECT_TRUE(agent_.ips.empty());
  EXPECT_TRUE(host_.links.empty());
}

TEST_F(PluginTest, AVethThatCannotBeMadeIsThePluginsOwnFailure) {
  host_.fail_setup = true;
  auto o = run("ADD", conf());
  EXPECT_EQ(code(o), 999);
  EXPECT_TRUE(agent_.ips.empty());
}

TEST(CheckNetnsPath, TellsANetworkNamespaceFromEverythingElse) {
  EXPECT_TRUE(checkNetnsPath("/proc/self/ns/net").ok());
  auto code = [](const std::string& p) { return checkNetnsPath(p).error().code(); };
  EXPECT_EQ(code("/nonexistent/netns"), ErrorCode::kNotFound);
  EXPECT_EQ(code("/etc/passwd/x"), ErrorCode::kNotFound);
  EXPECT_EQ(code("/etc/passwd"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(checkNetnsPath("/etc/passwd").error().message(),
            "/etc/passwd is a regular file, not a namespace");
  EXPECT_EQ(code("/tmp"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code("/dev/null"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(checkNetnsPath("/proc/self/ns/mnt").error().message(),
            "/proc/self/ns/mnt is a mount namespace, not a network namespace");
  // A FIFO is refused without being opened (opening it would block until a writer came).
  auto fifo = std::filesystem::temp_directory_path() / ("cni-fifo-" + std::to_string(::getpid()));
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(checkNetnsPath(fifo).error().message(), fifo.string() + " is a FIFO");
  std::filesystem::remove(fifo);
}

TEST(ReadNetConf, ReadsUpToTheLimitAndRefusesMoreUnread) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::string conf = R"({"cniVersion":"1.0.0","name":"c","type":"cilium-cni"})";
  ASSERT_EQ(::write(p[1], conf.data(), conf.size()), static_cast<ssize_t>(conf.size()));
  ::close(p[1]);
  CniError err;
  auto in = readNetConf(p[0], 1024, err);
  ::close(p[0]);
  ASSERT_TRUE(in);
  EXPECT_EQ(*in, conf);

  ASSERT_EQ(::pipe(p), 0);
  ::fcntl(p[1], F_SETFL, O_NONBLOCK);
  std::string big(60000, ' ');
  ASSERT_EQ(::write(p[1], big.data(), big.size()), static_cast<ssize_t>(big.size()));
  auto over = readNetConf(p[0], 4096, err);
  EXPECT_FALSE(over);
  EXPECT_EQ(err.code, Code::kDecodeFailure);
  EXPECT_EQ(err.msg, "the network configuration on stdin is over 4 KiB; refused unread");
  // It stopped at the limit: most of what was written is still in the pipe.
  char rest[65536];
  EXPECT_GT(::read(p[0], rest, sizeof rest), 50000);
  ::close(p[0]);
  ::close(p[1]);

  EXPECT_EQ(*readNetConf(-1, 4096, err), "") << "a closed stdin reads as empty";
}

TEST_F(PluginTest, DoubleAddLeavesOneWiredPod) {
  ASSERT_EQ(run("ADD", conf()).exit_code, 0);
  ASSERT_EQ(run("ADD", conf()).exit_code, 0);
  EXPECT_EQ(agent_.endpoints.size(), 1u);
  EXPECT_EQ(agent_.ips.size(), 1u);
  EXPECT_EQ(host_.links.size(), 1u);
}

TEST_F(PluginTest, TripleDelSucceedsAndLeavesNothing) {
  auto add = run("ADD", conf());
  ASSERT_EQ(add.exit_code, 0);
  auto prev = json(add);
  std::string with_prev = conf("1.1.0", R"(,"prevResult":)" + prev.dump());
  EXPECT_EQ(run("DEL", with_prev).exit_code, 0);
  EXPECT_TRUE(agent_.endpoints.empty());
  EXPECT_TRUE(agent_.ips.empty());
  EXPECT_TRUE(host_.links.empty());
  env_["CNI_NETNS"] = "";  // containerd's second DEL
  EXPECT_EQ(run("DEL", with_prev).exit_code, 0);
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);
}

TEST_F(PluginTest, DelWithTheAgentDownCleansLocallyAndQueuesTheRest) {
  ASSERT_EQ(run("ADD", conf()).exit_code, 0);
  agent_.up = false;
  auto o = run("DEL", conf());
  EXPECT_EQ(o.exit_code, 0) << o.stdout_text;
  EXPECT_TRUE(host_.links.empty());
  auto queued = queue_ / "c0ffee.json";
  ASSERT_TRUE(std::filesystem::exists(queued));
  std::ifstream in(queued);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["container-id"], "c0ffee");
  EXPECT_EQ(j["k8s-pod-name"], "xwing");
}

TEST_F(PluginTest, CheckComparesAgentAndInterfaceWithPrevResult) {
  EXPECT_EQ(code(run("CHECK", conf())), 7);  // no prevResult
  auto add = run("ADD", conf());
  ASSERT_EQ(add.exit_code, 0);
  std::string with_prev = conf("1.1.0", R"(,"prevResult":)" + add.stdout_text);
  EXPECT_EQ(run("CHECK", with_prev).exit_code, 0);

  auto bad = json(add);
  bad["ips"][0]["address"] = "10.9.9.9/32";
  EXPECT_NE(run("CHECK", conf("1.1.0", R"(,"prevResult":)" + bad.dump())).exit_code, 0);
  host_.links.clear();
  EXPECT_NE(run("CHECK", with_prev).exit_code, 0);
  EXPECT_EQ(code(run("CHECK", conf("1.1.0", R"(,"prevResult":{"ips":"x"})"))), 6);
}

TEST_F(PluginTest, GcRemovesWhatTheRuntimeNoLongerHas) {
  for (std::string cid : {"keep", "stale1", "stale2"}) {
    env_["CNI_CONTAINERID"] = cid;
    ASSERT_EQ(run("ADD", conf()).exit_code, 0);
  }
  env_ = {{"CNI_PATH", "/opt/cni/bin"}};
  auto o = run(
      "GC",
      conf("1.1.0", R"(,"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}])"));
  ASSERT_EQ(o.exit_code, 0) << o.stdout_text;
  EXPECT_EQ(agent_.endpoints.size(), 1u);
  EXPECT_EQ(agent_.endpoints.count("keep"), 1u);
  EXPECT_EQ(agent_.ips.size(), 1u);
  EXPECT_EQ(host_.links.size(), 1u);
  EXPECT_EQ(code(run("GC", conf("1.1.0", R"(,"cni.dev/valid-attachments":{})"))), 7);
}

TEST_F(PluginTest, StatusFollowsAgentReadiness) {
  env_ = {{"CNI_PATH", "/opt/cni/bin"}};
  EXPECT_EQ(run("STATUS", conf()).exit_code, 0);
  agent_.ready = false;
  EXPECT_EQ(code(run("STATUS", conf())), 50);
  agent_.up = false;
  EXPECT_EQ(code(run("STATUS", conf())), 50);
}

TEST(HostIfname, ShortStableAndDistinct) {
  auto a = hostIfname("c0ffee", "eth0");
  EXPECT_EQ(a, hostIfname("c0ffee", "eth0"));
  EXPECT_LE(a.size(), 15u);
  EXPECT_EQ(a.rfind("lxc", 0), 0u);
  std::set<std::string> names;
  for (int i = 0; i < 10000; ++i) names.insert(hostIfname("container" + std::to_string(i), "eth0"));
  EXPECT_EQ(names.size(), 10000u);
  EXPECT_NE(hostIfname("c0ffee", "eth0"), hostIfname("c0ffee", "eth1"));
}

TEST(AddResult, RoundTripsThroughPrevResult) {
  AddResult r;
  r.interfaces.push_back({"lxc1", "02:00:00:00:00:01", 1500, ""});
  r.interfaces.push_back({"eth0", "02:00:00:00:00:02", 1500, "/run/netns/x"});
  r.ips.push_back({"10.0.0.5/32", "10.0.0.1", 1, false});
  r.routes.push_back({"0.0.0.0/0", "10.0.0.1"});
  for (const auto& v : supportedVersions()) {
    CniError err;
    auto back = AddResult::fromJson(r.toJson(v), err);
    ASSERT_TRUE(back) << v << ": " << err.msg;
    EXPECT_EQ(back->ips.at(0).address, "10.0.0.5/32");
    EXPECT_EQ(back->interfaces.at(1).sandbox, "/run/netns/x");
    EXPECT_EQ(back->routes.at(0).gw, "10.0.0.1");
  }
}

}  // namespace
}  // namespace cilium::cni
