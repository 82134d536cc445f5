// cilium-dbg: REST-backed commands against an in-process agent (the real Daemon plus a fake of
// the modules that will serve /endpoint, /identity, /policy and /monitor), and the BPF map
// printers against fake maps.
#include "agent/dbg/dbg.h"

#include <arpa/inet.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/bpf/fake_map.h"
#include "agent/common/log.h"
#include "agent/daemon/daemon.h"
#include "agent/dbg/bpf_maps.h"
#include "agent/dbg/table.h"
#include "tests/harness/temp_dir.h"

namespace cilium::dbg {
namespace {

using api::Json;

// Serves the endpoint manager's, identity allocator's and policy engine's paths with fixed data,
// and records what it was sent.
class FakeModules : public daemon::Component {
 public:
  std::string_view name() const override { return "fake-modules"; }
  Status start(daemon::Host& d) override {
    auto& r = d.router();
    CILIUM_RETURN_IF_ERROR(
        r.add(api::Method::kGet, "/v1/endpoint", [](const api::Request&) -> Result<api::Response> {
          return api::Response::json(api::encodeList(endpoints()));
        }));
    CILIUM_RETURN_IF_ERROR(
        r.add(api::Method::kGet, "/v1/endpoint/{id}",
              [this](const api::Request& req) -> Result<api::Response> {
                last_endpoint_id = req.param("id");
                CILIUM_ASSIGN_OR_RETURN(auto ref, api::parseEndpointRef(req.param("id")));
                for (const auto& ep : endpoints())
                  if (ref.kind == api::EndpointRef::Kind::kCiliumLocal
                          ? ep.id == ref.local_id
                          : ep.status->external_identifiers->pod_name == ref.value)
                    return api::Response::json(api::encode(ep));
                return Error(ErrorCode::kNotFound, "endpoint " + req.param("id") + " not found");
              }));
    CILIUM_RETURN_IF_ERROR(
        r.add(api::Method::kGet, "/v1/identity", [](const api::Request&) -> Result<api::Response> {
          return api::Response::json(api::encodeList(std::vector<api::Identity>{
              {12345, {"k8s:org=alliance", "k8s:class=xwing"}, ""}, {1, {"reserved:host"}, ""}}));
        }));
    CILIUM_RETURN_IF_ERROR(r.add(
        api::Method::kGet, "/v1/identity/{id}",
        [](const api::Request& req) -> Result<api::Response> {
          if (req.param("id") != "12345")
            return Error(ErrorCode::kNotFound, "identity " + req.param("id") + " not found");
          return api::Response::json(api::encode(api::Identity{12345, {"k8s:org=alliance"}, ""}));
        }));
    CILIUM_RETURN_IF_ERROR(r.add(
        api::Method::kGet, "/v1/policy", [this](const api::Request& req) -> Result<api::Response> {
          last_labels = req.queryValues("labels");
          return api::Response::json(api::encode(
              api::Policy{7, R"([{"endpointSelector":{"matchLabels":{"org":"empire"}}}])"}));
        }));
    CILIUM_RETURN_IF_ERROR(r.add(
        api::Method::kPut, "/v1/policy", [this](const api::Request& req) -> Result<api::Response> {
          imported = req.body;
          return api::Response::json(api::encode(api::Policy{8, req.body}));
        }));
    CILIUM_RETURN_IF_ERROR(r.add(api::Method::kDelete, "/v1/policy",
                                 [this](const api::Request& req) -> Result<api::Response> {
                                   deleted_body = req.body;
                                   return api::Response::json(api::encode(api::Policy{9, ""}));
                                 }));
    CILIUM_RETURN_IF_ERROR(r.add(api::Method::kGet, "/v1/policy/selectors",
                                 [](const api::Request&) -> Result<api::Response> {
                                   return api::Response::json(api::encodeList(api::SelectorCache{
                                       {"&LabelSelector{MatchLabels:{org: empire}}",
                                        {12345, 23456},
                                        2,
                                        {"k8s:policy=rule1"}}}));
                                 }));
    CILIUM_RETURN_IF_ERROR(r.add(api::Method::kGet, "/v1/monitor",
                                 [this](const api::Request& req) -> Result<api::Response> {
                                   monitor_types = req.queryValues("type");
                                   return api::Response::streaming(std::make_shared<Events>());
                                 }));
    return okStatus();
  }

  static std::vector<api::Endpoint> endpoints() {
    std::vector<api::Endpoint> out;
    for (int i : {2, 1}) {
      api::Endpoint ep;
      ep.id = 100 + i;
      api::EndpointStatus st;
      st.state = i == 1 ? api::EndpointState::kReady : api::EndpointState::kRegenerating;
      st.identity =
          api::Identity{12344 + i, {"k8s:org=alliance", "k8s:class=xwing" + std::to_string(i)}, ""};
      st.networking = api::EndpointNetworking{
          {api::AddressPair{.ipv4 = "10.200.0." + std::to_string(i + 1)}}, {}, "", "", "", 0, ""};
      st.external_identifiers =
          api::EndpointIdentifiers{.pod_name = "default/xwing" + std::to_string(i)};
      api::EndpointPolicy pol;
      pol.policy_enabled =
          i == 1 ? api::EndpointPolicyEnabled::kIngress : api::EndpointPolicyEnabled::kAuditEgress;
      st.policy = api::EndpointPolicyStatus{pol, pol, 0};
      ep.status = st;
      out.push_back(ep);
    }
    return out;
  }

  // Two events, then the end of the stream.
  class Events : public api::StreamSource {
   public:
    std::optional<Json> next(std::chrono::milliseconds) override {
      api::MonitorEvent ev;
      if (sent_ == 0) {
        ev.type = "drop";
        ev.drop_reason = 133;
        ev.drop_reason_desc = "Policy denied";
        ev.ifindex = 7;
        ev.file = "bpf_lxc.c";
        ev.line = 120;
        ev.src_identity = 12345;
        ev.dst_identity = 23456;
        ev.tuple = api::MonitorTuple{"10.200.0.2", "10.200.0.3", 43210, 80, "tcp", "SYN", 0, 0};
      } else {
        ev.type = "policy-verdict";
        ev.source = 101;
        ev.direction = "ingress";
        ev.verdict = "allow";
        ev.match_type = "l3-l4";
        ev.src_identity = 23456;
        ev.tuple = api::MonitorTuple{"10.200.0.3", "10.200.0.2", 5555, 80, "tcp", "SYN", 0, 0};
      }
      sent_++;
      return api::encode(ev);
    }
    bool finished() const override { return sent_ >= 2; }

   private:
    int sent_ = 0;
  };

  std::string last_endpoint_id;
  std::vector<std::string> last_labels;
  std::string imported;
  std::string deleted_body;
  std::vector<std::string> monitor_types;
};

class DbgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = daemon::loadConfig({"--state-dir=" + dir_.file("run"), "--socket-path=" + sock(),
                                      "--ipv4-range=10.200.0.0/24", "--node-name=node-1"},
                                     daemon::Environment::system());
    ASSERT_TRUE(loaded.ok());
    daemon::DaemonOptions opts;
    opts.manage_bpffs = false;
    daemon_ = std::make_unique<daemon::Daemon>(loaded->config, opts);
    auto mods = std::make_unique<FakeModules>();
    modules_ = mods.get();
    daemon_->addComponent(std::move(mods));
    ASSERT_TRUE(daemon_->start().ok());
  }

  std::string sock() const { return dir_.file("run/cilium.sock"); }

  struct Run {
    int rc;
    std::string out;
    std::string err;
  };
  Run run(std::vector<std::string> args) {
    args.insert(args.begin(), {"-H", "unix://" + sock()});
    std::ostringstream out, err;
    DbgEnv env = DbgEnv::system();
    int rc = runDbg(args, out, err, env);
    return {rc, out.str(), err.str()};
  }

  testing::TempDir dir_;
  std::unique_ptr<daemon::Daemon> daemon_;
  FakeModules* modules_ = nullptr;
};

TEST_F(DbgTest, Status) {
  auto r = run({"status"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("KVStore:                 Disabled\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Cilium:                  Ok   0.1.0 (node-1)\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("IPAM:                    IPv4: 0/253 allocated from 10.200.0.0/24\n"),
            std::string::npos);
  EXPECT_NE(r.out.find("Global Identity Range:   min 256, max 65535\n"), std::string::npos);
  EXPECT_NE(r.out.find("Routing:                 Network: Tunnel [vxlan]   Host: BPF\n"),
            std::string::npos)
      << "tunnel is the default routing mode, as in Cilium\n"
      << r.out;
  auto brief = run({"status", "--brief"});
  EXPECT_EQ(brief.rc, 0);
  EXPECT_EQ(brief.out, "OK\n");
  auto json = run({"status", "-o", "json"});
  ASSERT_EQ(json.rc, 0);
  EXPECT_EQ(Json::parse(json.out)["cilium"]["state"], "Ok");
}

TEST_F(DbgTest, UnreachableAgent) {
  std::ostringstream out, err;
  int rc = runDbg({"-H", dir_.file("none.sock"), "status"}, out, err, DbgEnv::system());
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(err.str(), "Error: cannot get the agent's status: cannot reach the agent at " +
                           dir_.file("none.sock") +
                           ": connection failed (is cilium-agent running?)\n");
  // CILIUM_SOCK is the fallback for -H.
  DbgEnv env = DbgEnv::system();
  env.getenv = [this](const std::string& n) -> std::optional<std::string> {
    if (n == "CILIUM_SOCK") return sock();
    return std::nullopt;
  };
  std::ostringstream o2, e2;
  EXPECT_EQ(runDbg({"status", "--brief"}, o2, e2, env), 0) << e2.str();
}

TEST_F(DbgTest, Config) {
  auto r = run({"config"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "KEY                  VALUE\n"
            "debug                false\n"
            "log-level            info\n"
            "policy-enforcement   default\n");
  auto all = run({"config", "-a"});
  // The column is as wide as the longest key (tofqdns-endpoint-max-ip-per-hostname) plus 3.
  EXPECT_NE(all.out.find("\nbpf-ct-global-tcp-max                  524288\n"), std::string::npos)
      << all.out;
  auto set = run({"config", "log-level=warn"});
  EXPECT_EQ(set.rc, 0) << set.err;
  EXPECT_EQ(set.out, "OK\n");
  EXPECT_EQ(daemon_->config().snapshot().log_level, "warn");
  setLogLevel("info");
  auto bad = run({"config", "ipv4-range=10.1.0.0/24"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_EQ(bad.err,
            "Error: cannot change the configuration: ipv4-range is immutable: it can only be set "
            "when the "
            "agent starts (current value 10.200.0.0/24)\n");
  EXPECT_EQ(run({"config", "novalue"}).rc, 2);
}

TEST_F(DbgTest, EndpointList) {
  auto r = run({"endpoint", "list"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "ENDPOINT   POLICY (ingress)   POLICY (egress)    IDENTITY   LABELS (source:key[=value])   "
      "IPv6   IPv4         STATUS\n"
      "           ENFORCEMENT        ENFORCEMENT\n"
      "101        Enabled            Disabled           12345      k8s:class=xwing1              "
      "       10.200.0.2   ready\n"
      "                                                            k8s:org=alliance\n"
      "102        Disabled           Disabled (Audit)   12346      k8s:class=xwing2              "
      "       10.200.0.3   regenerating\n"
      "                                                            k8s:org=alliance\n");
  auto json = run({"endpoint", "list", "-o", "json"});
  EXPECT_EQ(Json::parse(json.out).size(), 2u);
}

TEST_F(DbgTest, EndpointGet) {
  auto r = run({"endpoint", "get", "pod-name:default/xwing2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(modules_->last_endpoint_id, "pod-name:default/xwing2");
  EXPECT_EQ(Json::parse(r.out)["id"], 102);
  auto missing = run({"endpoint", "get", "7"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_EQ(missing.err, "Error: cannot get endpoint 7: endpoint 7 not found\n");
  auto bad = run({"endpoint", "get", "pod:x"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("unknown prefix 'pod'"), std::string::npos);
}

TEST_F(DbgTest, Identities) {
  auto r = run({"identity", "list"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID      LABELS\n"
            "1       reserved:host\n"
            "12345   k8s:class=xwing\n"
            "        k8s:org=alliance\n");
  auto one = run({"identity", "get", "12345"});
  EXPECT_EQ(one.out, "ID      LABELS\n12345   k8s:org=alliance\n");
  EXPECT_EQ(run({"identity", "get", "99"}).err,
            "Error: cannot get identity 99: identity 99 not found\n");
}

TEST_F(DbgTest, Policy) {
  auto get = run({"policy", "get", "k8s:app=web"});
  ASSERT_EQ(get.rc, 0) << get.err;
  EXPECT_EQ(modules_->last_labels, std::vector<std::string>{"k8s:app=web"});
  EXPECT_NE(get.out.find("\"org\": \"empire\""), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("Revision: 7\n"), std::string::npos);

  std::ofstream(dir_.file("rules.json")) << R"([{"endpointSelector": {}}])";
  auto imp = run({"policy", "import", dir_.file("rules.json")});
  ASSERT_EQ(imp.rc, 0) << imp.err;
  EXPECT_EQ(imp.out, "Revision: 8\n");
  EXPECT_EQ(modules_->imported, R"([{"endpointSelector": {}}])");
  EXPECT_EQ(run({"policy", "import", dir_.file("missing.json")}).rc, 1);

  auto del = run({"policy", "delete", "k8s:policy=rule1"});
  EXPECT_EQ(del.out, "Revision: 9\n");
  EXPECT_EQ(modules_->deleted_body, R"(["k8s:policy=rule1"])");
  auto all = run({"policy", "delete", "--all"});
  EXPECT_EQ(all.rc, 0);
  EXPECT_EQ(modules_->deleted_body, "");
  auto none = run({"policy", "delete"});
  EXPECT_EQ(none.rc, 2);
  EXPECT_NE(none.err.find("policy delete needs labels or --all"), std::string::npos);

  auto sel = run({"policy", "selectors"});
  EXPECT_EQ(sel.out,
            "SELECTOR                                    LABELS             USERS   IDENTITIES\n"
            "&LabelSelector{MatchLabels:{org: empire}}   k8s:policy=rule1   2       12345\n"
            "                                                                       23456\n");
}

TEST_F(DbgTest, Monitor) {
  auto r = run({"monitor", "--type", "drop", "--type=policy-verdict"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(modules_->monitor_types, (std::vector<std::string>{"drop", "policy-verdict"}));
  EXPECT_EQ(
      r.out,
      "Listening for events... Press Ctrl-C to quit\n"
      "xx drop (Policy denied) flow 0x0 to endpoint 0, ifindex 7, file bpf_lxc.c:120, identity "
      "12345->23456: 10.200.0.2:43210 -> 10.200.0.3:80 tcp SYN\n"
      "Policy verdict log: flow 0x0 local EP ID 101, remote ID 23456, proto tcp, ingress, action "
      "allow, match l3-l4: 10.200.0.3:5555 -> 10.200.0.2:80 tcp SYN\n");
  auto json = run({"monitor", "-o", "json"});
  std::istringstream lines(json.out);
  std::string first;
  std::getline(lines, first);
  EXPECT_EQ(Json::parse(first)["type"], "drop");
  EXPECT_EQ(run({"monitor", "--type", "l7"}).rc, 2);
}

TEST_F(DbgTest, Ipam) {
  auto a = run({"ipam", "allocate", "--owner", "default/xwing"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, "10.200.0.2 gateway 10.200.0.1\n");
  auto l = run({"ipam", "list"});
  EXPECT_EQ(l.out,
            "IPv4: 1/253 allocated from 10.200.0.0/24\n"
            "ADDRESS      OWNER\n"
            "10.200.0.2   default/xwing\n");
  EXPECT_EQ(run({"ipam", "release", "default/xwing"}).out, "Released default/xwing\n");
  auto again = run({"ipam", "release", "10.200.0.2"});
  EXPECT_EQ(again.rc, 1);
  EXPECT_EQ(again.err, "Error: cannot release 10.200.0.2: 10.200.0.2 is not allocated\n");
}

TEST_F(DbgTest, UsageErrors) {
  EXPECT_EQ(run({}).rc, 2);
  EXPECT_EQ(run({"--help"}).rc, 0);
  EXPECT_EQ(run({"frobnicate"}).rc, 2);
  EXPECT_EQ(run({"status", "--bogus"}).rc, 2);
  EXPECT_EQ(run({"status", "--bogus"}).err, "cilium-dbg: unknown flag --bogus\n");
  EXPECT_EQ(run({"-H"}).err, "cilium-dbg: --host: needs a value\n");
  auto help = run({"bpf", "--help"});
  EXPECT_EQ(help.rc, 0);
  EXPECT_EQ(help.out.rfind("Usage: cilium-dbg bpf", 0), 0u) << help.out;
  EXPECT_EQ(run({"status", "-o", "yaml"}).rc, 2);
  EXPECT_EQ(run({"bpf", "ct", "list", "local"}).rc, 2);
  EXPECT_EQ(run({"bpf", "policy", "get", "container-id:x"}).rc, 2);
}

// ---- Printers over fake maps --------------------------------------------------------------

uint32_t ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

TEST(BpfPrintTest, Endpoints) {
  bpf::FakeMap<endpoint_key, endpoint_info> m("cilium_lxc");
  endpoint_info pod{};
  pod.ifindex = 7;
  pod.lxc_id = 1234;
  pod.sec_id = 12345;
  const uint8_t mac[6] = {0x0a, 0x58, 0x0a, 0xc8, 0x00, 0x02};
  const uint8_t nodemac[6] = {0x3e, 0x1f, 0x00, 0xaa, 0xbb, 0xcc};
  std::memcpy(pod.mac, mac, 6);
  std::memcpy(pod.node_mac, nodemac, 6);
  endpoint_info host{};
  host.flags = ENDPOINT_F_HOST;
  ASSERT_TRUE(m.update(datapath::endpointKeyV4(ip4("10.200.0.2")), pod).ok());
  ASSERT_TRUE(m.update(datapath::endpointKeyV4(ip4("10.200.0.1")), host).ok());
  std::ostringstream out;
  ASSERT_TRUE(printEndpoints(m, false, out).ok());
  EXPECT_EQ(out.str(),
            "IP ADDRESS     LOCAL ENDPOINT INFO\n"
            "10.200.0.1:0   (localhost)\n"
            "10.200.0.2:0   id=1234  sec_id=12345 flags=0x0000 ifindex=7   mac=0a:58:0a:c8:00:02 "
            "nodemac=3e:1f:00:aa:bb:cc\n");
}

TEST(BpfPrintTest, Lb) {
  bpf::FakeMap<lb4_key, lb4_service> svcs("cilium_lb4_services");
  bpf::FakeMap<lb4_slot_key, uint32_t> slots("cilium_lb4_slots");
  bpf::FakeMap<uint32_t, lb4_backend> bes("cilium_lb4_backends");
  lb4_key k{};
  k.address = ip4("10.96.0.10");
  k.dport = htons(80);
  k.proto = 6;
  lb4_service v{};
  v.rev_nat_index = 3;
  v.count = 2;
  v.gen = 1;
  v.flags = SVC_F_AFFINITY;
  v.affinity_timeout = 60;
  ASSERT_TRUE(svcs.update(k, v).ok());
  lb4_backend b1{};
  b1.address = ip4("10.0.1.1");
  b1.port = htons(8080);
  b1.proto = 6;
  lb4_backend b2 = b1;
  b2.address = ip4("10.0.1.2");
  b2.state = LB_BACKEND_TERMINATING;
  ASSERT_TRUE(bes.update(11, b1).ok());
  ASSERT_TRUE(bes.update(12, b2).ok());
  ASSERT_TRUE(slots.update(lb4_slot_key{3, 1, 1}, 11).ok());
  ASSERT_TRUE(slots.update(lb4_slot_key{3, 1, 2}, 12).ok());
  ASSERT_TRUE(slots.update(lb4_slot_key{3, 0, 1}, 12).ok());  // an old generation: not shown
  std::ostringstream out;
  ASSERT_TRUE(printLb(svcs, slots, bes, false, out).ok());
  EXPECT_EQ(out.str(),
            "SERVICE ADDRESS     BACKEND ADDRESS (SERVICE ID) (SLOT)\n"
            "10.96.0.10:80/TCP   2 backends (3) [ClusterIP, affinity 60s]\n"
            "                    10.0.1.1:8080/TCP (3) (1)\n"
            "                    10.0.1.2:8080/TCP terminating (3) (2)\n");
}

TEST(BpfPrintTest, LbIpv6) {
  bpf::FakeMap<lb4_key, lb4_service> svcs("cilium_lb4_services");
  bpf::FakeMap<lb4_slot_key, uint32_t> slots("cilium_lb4_slots");
  bpf::FakeMap<uint32_t, lb4_backend> bes("cilium_lb4_backends");
  bpf::FakeMap<lb6_key, lb4_service> svcs6("cilium_lb6_services");
  bpf::FakeMap<uint32_t, lb6_backend> bes6("cilium_lb6_backends");
  lb6_key k{};
  auto v6 = *IpAddr::parse("fd00:96::10");
  std::memcpy(k.address.ip6, v6.bytes().data(), 16);
  k.dport = htons(80);
  k.proto = 6;
  lb4_service v{};
  v.rev_nat_index = 4;
  v.count = 1;
  ASSERT_TRUE(svcs6.update(k, v).ok());
  lb6_backend b{};
  auto bip = *IpAddr::parse("fd00:1::5");
  std::memcpy(b.address.ip6, bip.bytes().data(), 16);
  b.port = htons(8080);
  b.proto = 6;
  ASSERT_TRUE(bes6.update(21, b).ok());
  ASSERT_TRUE(slots.update(lb4_slot_key{4, 0, 1}, 21).ok());
  std::ostringstream out;
  ASSERT_TRUE(printLb(svcs, slots, bes, false, out, {&svcs6, &bes6}).ok());
  EXPECT_EQ(out.str(),
            "SERVICE ADDRESS        BACKEND ADDRESS (SERVICE ID) (SLOT)\n"
            "[fd00:96::10]:80/TCP   1 backends (4) [ClusterIP]\n"
            "                       [fd00:1::5]:8080/TCP (4) (1)\n");
}

TEST(BpfPrintTest, Ipcache) {
  bpf::FakeMap<ipcache_key, remote_endpoint_info> m("cilium_ipcache");
  remote_endpoint_info world{};
  world.sec_identity = 2;
  remote_endpoint_info pod{};
  pod.sec_identity = 12345;
  remote_endpoint_info remote{};
  remote.sec_identity = 6;
  remote.tunnel_endpoint.ip4 = ip4("172.30.0.2");
  remote.flags = IPCACHE_F_HAS_TUNNEL_EP;
  ASSERT_TRUE(m.update(datapath::ipcacheKeyV4(0, 0), world).ok());
  ASSERT_TRUE(m.update(datapath::ipcacheKeyV4(ip4("10.200.0.2"), 32), pod).ok());
  ASSERT_TRUE(m.update(datapath::ipcacheKeyV4(ip4("10.201.0.0"), 24), remote).ok());
  std::ostringstream out;
  ASSERT_TRUE(printIpcache(m, false, out).ok());
  EXPECT_EQ(
      out.str(),
      "IP PREFIX/ADDRESS   IDENTITY\n"
      "0.0.0.0/0           identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n"
      "10.200.0.2/32       identity=12345 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n"
      "10.201.0.0/24       identity=6 encryptkey=0 tunnelendpoint=172.30.0.2 flags=hastunnel\n");
  std::ostringstream tunnels;
  ASSERT_TRUE(printTunnels(m, false, tunnels).ok());
  EXPECT_EQ(tunnels.str(),
            "TUNNEL          VALUE\n"
            "10.201.0.0/24   172.30.0.2\n")
      << "only the entries with a tunnel endpoint";
  std::ostringstream json;
  ASSERT_TRUE(printTunnels(m, true, json).ok());
  EXPECT_EQ(
      Json::parse(json.str()),
      Json::parse(R"([{"prefix":"10.201.0.0/24","tunnel-endpoint":"172.30.0.2","identity":6}])"));
}

TEST(BpfPrintTest, Conntrack) {
  bpf::FakeMap<ct_key4, ct_entry> tcp("cilium_ct4_global");
  bpf::FakeMap<ct_key4, ct_entry> any("cilium_ct_any4_global");
  ct_key4 k{ip4("10.200.0.2"), ip4("10.200.0.3"), htons(43210), htons(80), 6, CT_KEY_EGRESS, 0};
  ct_entry e{};
  e.tx_packets = 3;
  e.tx_bytes = 180;
  e.rx_packets = 2;
  e.rx_bytes = 120;
  e.lifetime = 1100;
  e.flags = CT_F_SEEN_NON_SYN;
  e.tx_flags_seen = 0x12;
  e.src_sec_id = 12345;
  e.policy_rev = 4;
  ASSERT_TRUE(tcp.update(k, e).ok());
  ct_key4 u{ip4("10.200.0.3"), ip4("10.200.0.4"), htons(5353), htons(53), 17, CT_KEY_INGRESS, 0};
  ct_entry ue{};
  ue.lifetime = 900;
  ASSERT_TRUE(any.update(u, ue).ok());
  std::ostringstream out;
  ASSERT_TRUE(printConntrack(tcp, any, 1000, false, out).ok());
  EXPECT_EQ(
      out.str(),
      "TCP OUT 10.200.0.2:43210 -> 10.200.0.3:80 expires=1100 (remaining: 100 sec(s)) RxPackets=2 "
      "RxBytes=120 RxFlagsSeen=0x00 LastRxReport=0 TxPackets=3 TxBytes=180 TxFlagsSeen=0x12 "
      "LastTxReport=0 Flags=0x0010 [ SeenNonSyn ] RevNAT=0 SourceSecurityID=12345 "
      "PolicyRevision=4\n"
      "UDP IN 10.200.0.3:5353 -> 10.200.0.4:53 expires=900 (expired) RxPackets=0 RxBytes=0 "
      "RxFlagsSeen=0x00 LastRxReport=0 TxPackets=0 TxBytes=0 TxFlagsSeen=0x00 LastTxReport=0 "
      "Flags=0x0000 [ ] RevNAT=0 SourceSecurityID=0 PolicyRevision=0\n");
  std::ostringstream json;
  ASSERT_TRUE(printConntrack(tcp, any, 1000, true, json).ok());
  EXPECT_EQ(Json::parse(json.str())[0]["remaining"], 100);
}

TEST(BpfPrintTest, NatMasqueradeAndNodePortEntries) {
  bpf::FakeMap<nat4_key, nat4_entry> nat("cilium_snat_v4_external");
  nat4_key out{
      ip4("10.200.0.21"), ip4("192.168.77.100"), htons(40000), htons(80), 6, NAT_DIR_EGRESS, 0};
  nat4_entry xs{ip4("192.168.77.1"), htons(61234), NAT_F_MASQ, 0, 990};
  nat4_key in{
      ip4("192.168.77.100"), ip4("192.168.77.1"), htons(80), htons(61234), 6, NAT_DIR_INGRESS, 0};
  nat4_entry xd{ip4("10.200.0.21"), htons(40000), NAT_F_MASQ, 0, 990};
  nat4_key np{
      ip4("10.250.0.5"), ip4("192.168.77.1"), htons(8080), htons(61001), 17, NAT_DIR_INGRESS, 0};
  nat4_entry npv{ip4("192.168.77.100"), htons(5000), 0, 7, 1000};
  ASSERT_TRUE(nat.update(out, xs).ok());
  ASSERT_TRUE(nat.update(in, xd).ok());
  ASSERT_TRUE(nat.update(np, npv).ok());
  std::ostringstream text;
  ASSERT_TRUE(printNat(nat, 1000, false, text).ok());
  EXPECT_EQ(text.str(),
            "TCP OUT 10.200.0.21:40000 -> 192.168.77.100:80 XLATE_SRC 192.168.77.1:61234 "
            "Created=10sec ago Masquerade\n"
            "TCP IN 192.168.77.100:80 -> 192.168.77.1:61234 XLATE_DST 10.200.0.21:40000 "
            "Created=10sec ago Masquerade\n"
            "UDP IN 10.250.0.5:8080 -> 192.168.77.1:61001 XLATE_DST 192.168.77.100:5000 "
            "Created=0sec ago NodePort RevNAT=7\n");
  std::ostringstream json;
  ASSERT_TRUE(printNat(nat, 1000, true, json).ok());
  auto j = Json::parse(json.str());
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["xlate-src"], "192.168.77.1:61234");
  EXPECT_EQ(j[0]["masquerade"], true);
  EXPECT_EQ(j[2]["rev-nat"], 7);

  auto flushed = flushNat(nat);
  ASSERT_TRUE(flushed.ok());
  EXPECT_EQ(*flushed, 3u);
  EXPECT_EQ(*nat.count(), 0u);
}

TEST(BpfPrintTest, NatIpv6EntriesFollowIpv4InBrackets) {
  bpf::FakeMap<nat4_key, nat4_entry> nat("cilium_snat_v4_external");
  bpf::FakeMap<nat6_key, nat6_entry> nat6("cilium_snat_v6_external");
  auto a6 = [](const char* s) {
    v4v6_addr a{};
    inet_pton(AF_INET6, s, a.ip6);
    return a;
  };
  nat6_key out{};
  out.saddr = a6("fd00:200::21");
  out.daddr = a6("2001:db8::100");
  out.sport = htons(40000);
  out.dport = htons(80);
  out.proto = 6;
  out.dir = NAT_DIR_EGRESS;
  nat6_entry xs{};
  xs.to_addr = a6("2001:db8::1");
  xs.to_port = htons(61234);
  xs.flags = NAT_F_MASQ;
  xs.created = 995;
  ASSERT_TRUE(nat6.update(out, xs).ok());
  nat4_key np{
      ip4("10.250.0.5"), ip4("192.168.77.1"), htons(8080), htons(61001), 17, NAT_DIR_INGRESS, 0};
  nat4_entry npv{ip4("192.168.77.100"), htons(5000), 0, 7, 1000};
  ASSERT_TRUE(nat.update(np, npv).ok());
  std::ostringstream text;
  ASSERT_TRUE(printNat(nat, 1000, false, text, &nat6).ok());
  EXPECT_EQ(text.str(),
            "UDP IN 10.250.0.5:8080 -> 192.168.77.1:61001 XLATE_DST 192.168.77.100:5000 "
            "Created=0sec ago NodePort RevNAT=7\n"
            "TCP OUT [fd00:200::21]:40000 -> [2001:db8::100]:80 XLATE_SRC [2001:db8::1]:61234 "
            "Created=5sec ago Masquerade\n");
  auto flushed = flushNat6(nat6);
  ASSERT_TRUE(flushed.ok());
  EXPECT_EQ(*flushed, 1u);

  bpf::FakeMap<ipmasq_key4, uint8_t> m4("cilium_ipmasq_v4");
  bpf::FakeMap<ipmasq_key6, uint8_t> m6("cilium_ipmasq_v6");
  ASSERT_TRUE(m4.update({16, ip4("10.200.0.0")}, 1).ok());
  ipmasq_key6 k6{};
  k6.prefixlen = 64;
  k6.addr = a6("fd00:200::");
  ASSERT_TRUE(m6.update(k6, 1).ok());
  std::ostringstream masq;
  ASSERT_TRUE(printIpMasq(m4, false, masq, &m6).ok());
  EXPECT_EQ(masq.str(), "IP PREFIX\n10.200.0.0/16\nfd00:200::/64\n");
}

TEST(BpfPrintTest, IpMasq) {
  bpf::FakeMap<ipmasq_key4, uint8_t> m("cilium_ipmasq_v4");
  ASSERT_TRUE(m.update({16, ip4("10.200.0.0")}, 1).ok());
  ASSERT_TRUE(m.update({8, ip4("10.0.0.0")}, 1).ok());
  std::ostringstream out;
  ASSERT_TRUE(printIpMasq(m, false, out).ok());
  EXPECT_EQ(out.str(), "IP PREFIX\n10.0.0.0/8\n10.200.0.0/16\n");
}

TEST(BpfPrintTest, Metrics) {
  bpf::FakeMap<metrics_key, bpf::PerCpu<metrics_value>> m("cilium_metrics");
  metrics_key fwd{REASON_FORWARDED, METRIC_EGRESS, 0, 0, {}};
  metrics_key drop{DROP_POLICY, METRIC_INGRESS, 812, DROP_FILE_BPF_LXC, {}};
  ASSERT_TRUE(m.update(fwd, {{{10, 1000}, {5, 500}}}).ok());
  ASSERT_TRUE(m.update(drop, {{{1, 60}, {2, 120}}}).ok());
  std::ostringstream out;
  ASSERT_TRUE(printMetrics(m, false, out).ok());
  EXPECT_EQ(out.str(),
            "REASON          DIRECTION   PACKETS   BYTES   LINE   FILE\n"
            "Forwarded       EGRESS      15        1500    0\n"
            "Policy denied   INGRESS     3         180     812    bpf_lxc.c\n");
}

TEST(BpfPrintTest, PolicyOfOneEndpoint) {
  bpf::FakeMap<uint32_t, uint32_t> outer("cilium_policy_v2");
  auto inner = std::make_shared<bpf::FakeMap<policy_key, policy_entry>>("inner");
  ASSERT_TRUE(outer.update(25, 77).ok());
  policy_entry allow{};
  allow.prefix_len = POLICY_PREFIX_ANY_PROTO;
  policy_entry deny{};
  deny.flags = POLICY_F_DENY;
  ASSERT_TRUE(inner->update(datapath::policyKey(1, POLICY_INGRESS, 0, 0, 0), allow).ok());
  ASSERT_TRUE(inner->update(datapath::policyKey(12345, POLICY_INGRESS, 6, 80, 16), allow).ok());
  ASSERT_TRUE(inner->update(datapath::policyKey(0, POLICY_EGRESS, 17, 0, 0), allow).ok());
  ASSERT_TRUE(inner->update(datapath::policyKey(23456, POLICY_INGRESS, 6, 8080, 12), deny).ok());
  InnerMapOpener open = [&](uint32_t id) -> Result<std::unique_ptr<PolicyInnerMap>> {
    if (id != 77) return Error(ErrorCode::kNotFound, "no such map");
    // A view sharing the fake's entries.
    struct View : PolicyInnerMap {
      std::shared_ptr<bpf::FakeMap<policy_key, policy_entry>> m;
      const std::string& name() const override { return m->name(); }
      uint32_t maxEntries() const override { return m->maxEntries(); }
      Result<std::optional<policy_entry>> lookup(const policy_key& k) const override {
        return m->lookup(k);
      }
      Status update(const policy_key& k, const policy_entry& v, bpf::UpdateFlag f) override {
        return m->update(k, v, f);
      }
      Result<bool> remove(const policy_key& k) override { return m->remove(k); }
      Status forEach(
          const std::function<bool(const policy_key&, const policy_entry&)>& fn) const override {
        return m->forEach(fn);
      }
    };
    auto v = std::make_unique<View>();
    v->m = inner;
    return std::unique_ptr<PolicyInnerMap>(std::move(v));
  };
  IdentityLabeler labels = [](uint32_t id) -> std::string {
    if (id == 1) return "reserved:host";
    if (id == 12345) return "k8s:org=empire";
    return "";
  };
  std::ostringstream out;
  ASSERT_TRUE(
      printPolicy(outer, open, 25, "/sys/fs/bpf/cilium/cilium_policy_v2", labels, false, out).ok());
  EXPECT_EQ(out.str(),
            "Endpoint ID: 25\n"
            "Path: /sys/fs/bpf/cilium/cilium_policy_v2 [25] (inner map id 77)\n\n"
            "POLICY   DIRECTION   LABELS (source:key[=value])   PORT/PROTO      PROXY PORT   AUTH "
            "TYPE   PREFIX\n"
            "Allow    Ingress     reserved:host                 ANY             NONE         "
            "disabled    40\n"
            "Allow    Ingress     k8s:org=empire                80/TCP          NONE         "
            "disabled    64\n"
            "Deny     Ingress     identity=23456                8080-8095/TCP   NONE         "
            "disabled    60\n"
            "Allow    Egress      ANY                           ANY/UDP         NONE         "
            "disabled    48\n");
  std::ostringstream missing;
  auto st = printPolicy(outer, open, 26, "/p", labels, false, missing);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(st.error().message(),
            "endpoint 26 has no policy map in /p (its packets are dropped as not ready)");
}

TEST(TableTest, MultiLineCellsAndTrailingSpaces) {
  Table t({"A", "LONGER HEADER", "C"});
  t.add({"1", "x\ny", ""});
  t.add({"22", "", "z"});
  std::ostringstream out;
  t.print(out);
  EXPECT_EQ(out.str(),
            "A    LONGER HEADER   C\n"
            "1    x\n"
            "     y\n"
            "22                   z\n");
}

TEST(MonitorFormatTest, TraceAndOthers) {
  api::MonitorEvent ev;
  ev.type = "trace";
  ev.observation_point = "to-endpoint";
  ev.dst_endpoint = 1234;
  ev.src_identity = 1;
  ev.dst_identity = 12345;
  ev.ct_state = "new";
  ev.ifindex = 9;
  ev.tuple = api::MonitorTuple{"10.0.0.1", "10.0.0.2", 0, 0, "icmp", "", 8, 0};
  EXPECT_EQ(formatMonitorEvent(ev),
            "-> endpoint 1234 flow 0x0 , identity 1->12345 state new ifindex 9: 10.0.0.1 -> "
            "10.0.0.2 icmp type 8 code 0");
  ev.observation_point = "to-stack";
  ev.tuple.reset();
  EXPECT_EQ(formatMonitorEvent(ev), "-> stack flow 0x0 , identity 1->12345 state new ifindex 9");
  api::MonitorEvent lost;
  lost.type = "lost";
  lost.lost = 17;
  EXPECT_EQ(formatMonitorEvent(lost), "Lost 17 events");
  api::MonitorEvent agent;
  agent.type = "agent";
  agent.message = "policy updated";
  EXPECT_EQ(formatMonitorEvent(agent), ">> agent: policy updated");
}

}  // namespace
}  // namespace cilium::dbg
