// The daemon in-process (unprivileged: no bpffs), driven through the real client over its Unix
// socket: health, configuration, IPAM, reserved paths, components, restart, CNI configuration.
#include "agent/daemon/daemon.h"

#include <httplib.h>
#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "api/client/client.h"
#include "tests/harness/temp_dir.h"

namespace cilium::daemon {
namespace {

using api::Client;
using api::ClientOptions;

Config testConfig(const testing::TempDir& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--state-dir=" + dir.file("run"),
                                   "--socket-path=" + dir.file("run/cilium.sock"),
                                   "--ipv4-range=10.200.0.0/24", "--node-name=node-1"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto loaded = loadConfig(args, Environment::system());
  EXPECT_TRUE(loaded.ok()) << loaded.error().toString();
  return loaded->config;
}

DaemonOptions unprivileged() {
  DaemonOptions o;
  o.manage_bpffs = false;
  return o;
}

class DaemonTest : public ::testing::Test {
 protected:
  void startDaemon(std::vector<std::string> extra = {}) {
    daemon_ = std::make_unique<Daemon>(testConfig(dir_, std::move(extra)), unprivileged());
    auto st = daemon_->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();
  }
  Client client() {
    return Client(ClientOptions{dir_.file("run/cilium.sock"), std::chrono::seconds(5)});
  }

  testing::TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, HealthzReportsReadinessAndIpam) {
  startDaemon();
  auto s = client().healthz();
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ(s->cilium->state, api::StatusState::kOk);
  EXPECT_NE(s->cilium->msg.find("node-1"), std::string::npos);
  EXPECT_EQ(s->kvstore->state, api::StatusState::kDisabled);
  EXPECT_EQ(s->ipam->status, "IPv4: 0/253 allocated from 10.200.0.0/24");
  EXPECT_EQ(s->cluster->self, "node-1");
  EXPECT_EQ(s->identity_range->min_identity, 256);
  ASSERT_TRUE(client().ipamAllocate(IpFamily::kV4, "default/xwing").ok());
  EXPECT_EQ(client().healthz()->ipam->status, "IPv4: 1/253 allocated from 10.200.0.0/24");
  EXPECT_EQ(client().healthz()->ipam->allocations["10.200.0.2"], "default/xwing");

  struct stat st {};
  ASSERT_EQ(::stat(dir_.file("run/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(DaemonTest, GetAndPatchConfig) {
  startDaemon();
  auto c = client();
  auto cfg = c.getConfig();
  ASSERT_TRUE(cfg.ok()) << cfg.error().toString();
  EXPECT_EQ(cfg->spec->options, (api::ConfigurationMap{{"debug", "false"}, {"log-level", "info"}}));
  EXPECT_EQ(cfg->spec->policy_enforcement, "default");
  EXPECT_EQ(cfg->status->immutable["ipv4-range"], "10.200.0.0/24");
  EXPECT_EQ(cfg->status->daemon_configuration_map["bpf-ct-global-tcp-max"], 524288);
  EXPECT_EQ(cfg->status->daemon_configuration_map["bpf-pin-dir"], "/sys/fs/bpf/cilium");
  EXPECT_EQ(cfg->status->addressing->ipv4->ip, "10.200.0.1");
  EXPECT_EQ(cfg->status->addressing->ipv4->alloc_range, "10.200.0.0/24");
  EXPECT_TRUE(cfg->status->addressing->ipv4->enabled);
  EXPECT_FALSE(cfg->status->addressing->ipv6->enabled);

  ASSERT_TRUE(c.patchConfig(api::DaemonConfigurationSpec{{{"debug", "true"}}, ""}).ok());
  EXPECT_EQ(c.getConfig()->spec->options["debug"], "true");
  EXPECT_TRUE(daemon_->config().snapshot().debug);
  setLogLevel("info");  // the PATCH changed the process-wide level

  auto immutable = c.patchConfig(api::DaemonConfigurationSpec{{{"state-dir", "/x"}}, ""});
  ASSERT_FALSE(immutable.ok());
  EXPECT_EQ(immutable.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(immutable.error().message(),
            "state-dir is immutable: it can only be set when the agent starts (current value " +
                dir_.file("run") + ")");
  auto policy = c.patchConfig(api::DaemonConfigurationSpec{{}, "always"});
  EXPECT_EQ(policy.error().message(),
            "enable-policy is immutable: it can only be set when the agent starts (current value "
            "default)");
  EXPECT_TRUE(c.patchConfig(api::DaemonConfigurationSpec{{}, "default"}).ok());

  auto raw = c.call("PATCH", "/v1/config", R"({"options": {"debug": 1}})");
  EXPECT_EQ(raw->status, 400);
  EXPECT_EQ(
      raw->body,
      R"("invalid DaemonConfigurationSpec: options.debug: expected a string, got an integer")");
  EXPECT_EQ(c.call("PATCH", "/v1/config", "{{")->status, 400);
  EXPECT_EQ(c.call("PATCH", "/v1/config", R"({"options": {"nope": "1"}})")->body,
            R"("nope: unknown option")");
  EXPECT_EQ(c.call("DELETE", "/v1/config")->status, 405);
}

TEST_F(DaemonTest, IpamOverTheApi) {
  startDaemon();
  auto c = client();
  auto a = c.ipamAllocate(IpFamily::kV4, "default/xwing");
  ASSERT_TRUE(a.ok()) << a.error().toString();
  EXPECT_EQ(a->address.ipv4, "10.200.0.2");
  EXPECT_EQ(a->ipv4->gateway, "10.200.0.1");
  EXPECT_EQ(a->ipv4->cidrs, std::vector<std::string>{"10.200.0.0/24"});
  EXPECT_EQ(a->host_addressing.ipv4->ip, "10.200.0.1");
  auto both = c.ipamAllocate(std::nullopt, "default/tiefighter");  // every enabled family
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->address.ipv4, "10.200.0.3");
  EXPECT_TRUE(both->address.ipv6.empty());

  auto v6 = c.ipamAllocate(IpFamily::kV6, "x");
  ASSERT_FALSE(v6.ok());
  EXPECT_EQ(v6.error().code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(v6.error().message(), "ipv6 allocation is disabled");
  auto fam = c.call("POST", "/v1/ipam?family=ipv5");
  EXPECT_EQ(fam->status, 400);
  EXPECT_EQ(fam->body, R"("family 'ipv5' is not one of ipv4, ipv6")");

  auto specific = c.ipamAllocateIp(*IpAddr::parse("10.200.0.50"), "container-1");
  ASSERT_TRUE(specific.ok()) << specific.error().toString();
  EXPECT_EQ(specific->address.ipv4, "10.200.0.50");
  auto taken = c.ipamAllocateIp(*IpAddr::parse("10.200.0.50"), "container-2");
  EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(taken.error().message(), "10.200.0.50 is already allocated to container-1");
  auto router = c.ipamAllocateIp(*IpAddr::parse("10.200.0.1"), "x");
  EXPECT_EQ(router.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.call("POST", "/v1/ipam/not-an-ip")->status, 400);

  ASSERT_TRUE(c.ipamRelease("10.200.0.50").ok());
  auto again = c.ipamRelease("10.200.0.50");
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(again.error().message(), "10.200.0.50 is not allocated");
  ASSERT_TRUE(c.ipamRelease("default/xwing").ok());  // by owner, '/' percent-encoded
  EXPECT_EQ(c.ipamRelease("default/xwing").error().message(),
            "owner default/xwing holds no address");
  EXPECT_EQ(client().healthz()->ipam->ipv4, std::vector<std::string>{"10.200.0.3"});
}

TEST_F(DaemonTest, IpamExhaustionAndAbsence) {
  startDaemon({"--ipv4-range=10.9.0.0/30"});
  ASSERT_TRUE(client().ipamAllocate(IpFamily::kV4, "a").ok());
  auto full = client().ipamAllocate(IpFamily::kV4, "b");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(full.error().message(), "no free address in 10.9.0.0/30: 1 of 1 in use");
  EXPECT_EQ(client().call("POST", "/v1/ipam")->status, 507);
  daemon_->stop();

  testing::TempDir other;
  auto cfg = testConfig(other, {"--ipv4-range=auto"});
  Daemon d(cfg, unprivileged());
  ASSERT_TRUE(d.start().ok());
  Client c(ClientOptions{other.file("run/cilium.sock"), std::chrono::seconds(5)});
  auto none = c.ipamAllocate(IpFamily::kV4, "a");
  EXPECT_EQ(none.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(none.error().message(),
            "IPAM is not ready: no pod CIDR is known yet (ipv4-range/ipv6-range are auto)");
  EXPECT_EQ(c.healthz()->ipam->status, "disabled: no pod CIDR is known");
}

TEST_F(DaemonTest, RestartRestoresIpamAndRemovesTheSocket) {
  startDaemon();
  ASSERT_TRUE(client().ipamAllocate(IpFamily::kV4, "default/xwing").ok());
  ASSERT_TRUE(client().ipamAllocateIp(*IpAddr::parse("10.200.0.77"), "c7").ok());
  daemon_->stop();
  struct stat st {};
  EXPECT_NE(::stat(dir_.file("run/cilium.sock").c_str(), &st), 0);
  EXPECT_EQ(client().healthz().error().code(), ErrorCode::kUnavailable);

  startDaemon();
  auto s = client().healthz();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ipam->allocations, (std::map<std::string, std::string>{
                                      {"10.200.0.2", "default/xwing"}, {"10.200.0.77", "c7"}}));
  EXPECT_EQ(client().ipamAllocate(IpFamily::kV4, "n")->address.ipv4, "10.200.0.3");
}

TEST_F(DaemonTest, ReservedPathsAnswer501NamingTheirModule) {
  startDaemon();
  auto eps = client().listEndpoints();
  ASSERT_FALSE(eps.ok());
  EXPECT_EQ(eps.error().code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(
      eps.error().message(),
      "GET /v1/endpoint is served by the endpoint manager, which this agent does not run yet");
  EXPECT_EQ(client().putEndpoint(*api::parseEndpointRef("container-id:abc"), {}).error().code(),
            ErrorCode::kUnimplemented);
  EXPECT_EQ(client().getPolicy().error().message(),
            "GET /v1/policy is served by the policy engine, which this agent does not run yet");
  EXPECT_EQ(client().call("GET", "/v1/nothing")->status, 404);
  for (const auto& r : contractRoutes())
    EXPECT_TRUE(daemon_->router().has(r.method, r.path)) << r.path;
}

TEST_F(DaemonTest, DebugInfo) {
  startDaemon();
  auto d = client().debugInfo();
  ASSERT_TRUE(d.ok()) << d.error().toString();
  EXPECT_EQ(d->cilium_version, std::string(version()));
  EXPECT_NE(d->kernel_version.find("Linux"), std::string::npos);
  EXPECT_EQ(d->cilium_status->cilium->state, api::StatusState::kOk);
  EXPECT_NE(d->subsystem["daemon"].find("ready=true"), std::string::npos);
}

// A module as the endpoint manager will be: routes, a status provider, a lifecycle.
class FakeComponent : public Component {
 public:
  FakeComponent(std::string name, std::vector<std::string>* events, bool fail = false)
      : name_(std::move(name)), events_(events), fail_(fail) {}
  std::string_view name() const override { return name_; }
  Status start(Host& d) override {
    events_->push_back("start " + name_);
    if (fail_) return Error(ErrorCode::kInternal, "boom");
    CILIUM_RETURN_IF_ERROR(d.router().add(
        api::Method::kGet, "/v1/identity/{id}", [](const api::Request& r) -> Result<api::Response> {
          return api::Response::json(
              api::encode(api::Identity{std::stoi(r.param("id")), {"k8s:app=x"}, ""}));
        }));
    d.addStatusProvider([](api::StatusResponse& s) {
      s.kubernetes = api::K8sStatus{api::StatusState::kFailure, "apiserver unreachable", {}};
    });
    d.addDebugInfoProvider([](api::DebugInfo& di) { di.subsystem["fake"] = "hello"; });
    return okStatus();
  }
  void stop() override { events_->push_back("stop " + name_); }

 private:
  std::string name_;
  std::vector<std::string>* events_;
  bool fail_;
};

TEST_F(DaemonTest, ComponentsPlugIn) {
  std::vector<std::string> events;
  daemon_ = std::make_unique<Daemon>(testConfig(dir_), unprivileged());
  daemon_->addComponent(std::make_unique<FakeComponent>("identity", &events));
  ASSERT_TRUE(daemon_->start().ok());
  EXPECT_EQ(client().getIdentity("300")->id, 300);
  // The component serves /identity/{id}; /identity stays reserved.
  EXPECT_EQ(client().listIdentities().error().code(), ErrorCode::kUnimplemented);
  auto s = client().healthz();
  EXPECT_EQ(s->cilium->state, api::StatusState::kFailure);
  EXPECT_EQ(s->cilium->msg, "kubernetes: apiserver unreachable");
  EXPECT_EQ(client().debugInfo()->subsystem["fake"], "hello");
  daemon_->stop();
  EXPECT_EQ(events, (std::vector<std::string>{"start identity", "stop identity"}));
}

// GET http://127.0.0.1:<port>/healthz as a kubelet's httpGet probe does: status and body.
std::pair<int, std::string> probe(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(std::chrono::seconds(5));
  auto r = c.Get("/healthz");
  if (!r) return {0, "no answer: " + httplib::to_string(r.error())};
  return {r->status, r->body};
}

TEST_F(DaemonTest, HealthPortAnswersProbesOverPlainHttp) {
  DaemonOptions o = unprivileged();
  o.serve_health_port = true;
  o.health_port_any = true;
  daemon_ = std::make_unique<Daemon>(testConfig(dir_), o);
  EXPECT_EQ(daemon_->healthProbe(), (std::pair<int, std::string>{503, "cilium: starting\n"}));
  ASSERT_TRUE(daemon_->start().ok());
  ASSERT_NE(daemon_->healthPort(), 0);
  EXPECT_EQ(probe(daemon_->healthPort()), (std::pair<int, std::string>{200, "ok\n"}));
  int port = daemon_->healthPort();
  daemon_->stop();
  EXPECT_EQ(probe(port).first, 0) << "closed once stopped";
}

TEST_F(DaemonTest, HealthPortNamesTheFailingPart) {
  std::vector<std::string> events;
  DaemonOptions o = unprivileged();
  o.serve_health_port = true;
  o.health_port_any = true;
  daemon_ = std::make_unique<Daemon>(testConfig(dir_), o);
  daemon_->addComponent(std::make_unique<FakeComponent>("k8s", &events));  // kubernetes fails
  ASSERT_TRUE(daemon_->start().ok());
  EXPECT_EQ(probe(daemon_->healthPort()),
            (std::pair<int, std::string>{503, "cilium: kubernetes: apiserver unreachable\n"}));
  daemon_->stop();  // before `events` goes
}

TEST_F(DaemonTest, HealthPortOffUnlessAsked) {
  startDaemon();
  EXPECT_EQ(daemon_->healthPort(), 0);
  daemon_.reset();
  Daemon off(testConfig(dir_, {"--agent-health-port=0"}), [] {
    DaemonOptions o = unprivileged();
    o.serve_health_port = true;
    return o;
  }());
  ASSERT_TRUE(off.start().ok());
  EXPECT_EQ(off.healthPort(), 0) << "agent-health-port=0 is off";
  off.stop();
}

TEST_F(DaemonTest, ConfigListsIgnoredKeys) {
  ASSERT_TRUE(makeDirs(dir_.file("cm")).ok());
  std::ofstream(dir_.file("cm/enable-hubble")) << "false";
  std::ofstream(dir_.file("cm/mesh-auth-enabled")) << "true";
  std::ofstream(dir_.file("cm/cluster-pool-ipv4-cidr")) << "10.0.0.0/8\n";
  startDaemon({"--config-dir=" + dir_.file("cm")});
  auto c = client().getConfig();
  ASSERT_TRUE(c.ok()) << c.error().toString();
  EXPECT_EQ(c->status->ignored_options,
            (api::ConfigurationMap{{"cluster-pool-ipv4-cidr", "10.0.0.0/8"},
                                   {"mesh-auth-enabled", "true"}}));
  EXPECT_EQ(c->status->immutable.count("mesh-auth-enabled"), 0u);
}

TEST_F(DaemonTest, AFailingComponentStopsWhatStarted) {
  std::vector<std::string> events;
  Daemon d(testConfig(dir_), unprivileged());
  d.addComponent(std::make_unique<FakeComponent>("first", &events));
  d.addComponent(std::make_unique<FakeComponent>("second", &events, /*fail=*/true));
  d.addComponent(std::make_unique<FakeComponent>("third", &events));
  auto st = d.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "start second: boom");
  EXPECT_EQ(events, (std::vector<std::string>{"start first", "start second", "stop first"}));
  struct stat sb {};
  EXPECT_NE(::stat(dir_.file("run/cilium.sock").c_str(), &sb), 0) << "no socket left behind";
}

TEST_F(DaemonTest, ADaemonStartsOnlyOnce) {
  startDaemon();
  daemon_->stop();
  auto again = daemon_->start();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message(), "a Daemon starts only once");
}

// A second agent on the same state is refused before any of its components starts (it would
// load programs over the first agent's datapath), naming the first one's pid.
TEST_F(DaemonTest, SecondAgentOnTheSameStateFailsBeforeStartingAnything) {
  startDaemon();
  std::vector<std::string> events;
  Daemon second(testConfig(dir_), unprivileged());
  second.addComponent(std::make_unique<FakeComponent>("first", &events));
  auto st = second.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(st.error().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << st.error().message();
  EXPECT_TRUE(events.empty()) << "a component of the second agent started";
  EXPECT_TRUE(client().healthz().ok());
  // Once the first agent stops, the state is free again.
  daemon_->stop();
  Daemon third(testConfig(dir_), unprivileged());
  EXPECT_TRUE(third.start().ok());
  third.stop();
}

TEST_F(DaemonTest, WritesCniConfigurationWhenReady) {
  ASSERT_TRUE(makeDirs(dir_.file("net.d")).ok());
  std::ofstream(dir_.file("net.d/10-flannel.conflist")) << "{}";
  std::ofstream(dir_.file("net.d/README")) << "keep";
  startDaemon(
      {"--write-cni-conf-when-ready=" + dir_.file("net.d/05-cilium.conflist"), "--cni-exclusive"});
  auto text = readFile(dir_.file("net.d/05-cilium.conflist"));
  ASSERT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["name"], "cilium");
  EXPECT_EQ(j["plugins"][0]["type"], "cilium-cni");
  EXPECT_EQ(j["plugins"][0]["log-file"], "/var/run/cilium/cilium-cni.log");
  EXPECT_TRUE(j["plugins"][0]["socket-path"].is_string());
  struct stat st {};
  EXPECT_NE(::stat(dir_.file("net.d/10-flannel.conflist").c_str(), &st), 0);
  EXPECT_EQ(::stat(dir_.file("net.d/10-flannel.conflist.cilium_bak").c_str(), &st), 0);
  EXPECT_EQ(::stat(dir_.file("net.d/README").c_str(), &st), 0);
}

}  // namespace
}  // namespace cilium::daemon
