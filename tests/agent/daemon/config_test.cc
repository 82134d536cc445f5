// Configuration: every source, precedence, every validation, and runtime changes.
#include "agent/daemon/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "tests/harness/temp_dir.h"

namespace cilium::daemon {
namespace {

Environment fakeEnv(std::map<std::string, std::string> vars = {}, std::string host = "host-1") {
  Environment e;
  e.getenv = [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  e.hostname = [host] { return host; };
  return e;
}

Result<LoadedConfig> load(std::vector<std::string> args, Environment env = fakeEnv()) {
  return loadConfig(args, env);
}

std::string loadError(std::vector<std::string> args) {
  auto r = load(std::move(args));
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.error().message();
}

void write(const std::string& path, const std::string& content) { std::ofstream(path) << content; }

TEST(ConfigTest, Defaults) {
  auto r = load({});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  const Config& c = r->config;
  EXPECT_EQ(c.state_dir, "/var/run/cilium");
  EXPECT_EQ(c.bpf_root, "/sys/fs/bpf");
  EXPECT_EQ(c.bpf_pin_dir, "/sys/fs/bpf/cilium");
  EXPECT_EQ(c.socket_path, "/var/run/cilium/cilium.sock");
  EXPECT_EQ(c.node_name, "host-1");
  EXPECT_FALSE(c.ipv4_range.has_value());
  EXPECT_EQ(c.bpf_ct_global_tcp_max, 524288u);
  EXPECT_EQ(c.bpf_policy_map_max, 16384u);
  EXPECT_EQ(c.stateFile("ipam.json"), "/var/run/cilium/state/ipam.json");
  EXPECT_TRUE(r->sources.empty());
  EXPECT_EQ(c.effectiveLogLevel(), "info");
}

TEST(ConfigTest, NodeNameFromEnvironment) {
  auto r = load({}, fakeEnv({{"K8S_NODE_NAME", "worker-7"}}));
  EXPECT_EQ(r->config.node_name, "worker-7");
  auto flag = load({"--node-name=explicit"}, fakeEnv({{"K8S_NODE_NAME", "worker-7"}}));
  EXPECT_EQ(flag->config.node_name, "explicit");
  auto bad = load({}, fakeEnv({{"K8S_NODE_NAME", "a/b"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "node name 'a/b' (from the environment): contains a space or '/'");
}

TEST(ConfigTest, Flags) {
  auto r = load({"--ipv4-range=10.200.0.0/24", "--state-dir", "/tmp/state", "--debug", "-D",
                 "--enable-ipv6=false", "--bpf-ct-global-any-max", "4096"});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.ipv4_range->toString(), "10.200.0.0/24");
  EXPECT_EQ(r->config.state_dir, "/tmp/state");
  EXPECT_TRUE(r->config.debug);
  EXPECT_EQ(r->config.effectiveLogLevel(), "debug");
  EXPECT_EQ(r->config.bpf_ct_global_any_max, 4096u);
  EXPECT_EQ(r->sources["ipv4-range"], Source::kFlag);
  EXPECT_EQ(r->sources["debug"], Source::kFlag);

  EXPECT_TRUE(load({"--help"})->help);
  EXPECT_TRUE(load({"--bogus", "-h"})->help);  // --help wins over everything else
  EXPECT_TRUE(load({"--version"})->version);

  EXPECT_EQ(loadError({"--bogus=1"}), "--bogus (flag): unknown option");
  EXPECT_EQ(loadError({"stray"}), "unexpected argument 'stray' (options look like --key=value)");
  EXPECT_EQ(loadError({"--debug", "false"}),
            "unexpected argument 'false' (options look like --key=value)");
  EXPECT_EQ(loadError({"--state-dir"}), "--state-dir (flag): needs a value");
  EXPECT_EQ(loadError({"--config-dir"}), "--config-dir (flag): needs a value");
}

TEST(ConfigTest, KubernetesClientRateLimit) {
  auto d = load({});
  ASSERT_TRUE(d.ok()) << d.error().toString();
  EXPECT_EQ(d->config.k8s_client_qps, 50u);
  EXPECT_EQ(d->config.k8s_client_burst, 100u);
  auto r = load({"--k8s-client-qps=0", "--k8s-client-burst=7"});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.k8s_client_qps, 0u);  // no limit
  EXPECT_EQ(r->config.k8s_client_burst, 7u);
  EXPECT_FALSE(load({"--k8s-client-burst=0"}).ok());
  EXPECT_FALSE(load({"--k8s-client-qps=-1"}).ok());
}

TEST(ConfigTest, ConfigFile) {
  testing::TempDir dir;
  write(dir.file("c.yaml"),
        "# agent config\n"
        "ipv4-range: 10.1.0.0/24\n"
        "debug: true\n"
        "bpf-policy-map-max: 2048\n"
        "prometheus-serve-addr: \":9962\"\n"
        "write-cni-conf-when-ready:\n");
  auto r = load({"--config-file", dir.file("c.yaml")});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.ipv4_range->toString(), "10.1.0.0/24");
  EXPECT_TRUE(r->config.debug);
  EXPECT_EQ(r->config.bpf_policy_map_max, 2048u);
  EXPECT_EQ(r->config.prometheus_serve_addr, ":9962");
  EXPECT_EQ(r->sources["ipv4-range"], Source::kConfigFile);
  EXPECT_EQ(load({"--config=" + dir.file("c.yaml")})->config.bpf_policy_map_max, 2048u);

  // A key this agent does not implement is listed, not fatal (a ConfigMap written for Cilium).
  write(dir.file("unknown.yaml"), "ipv4-range: 10.1.0.0/24\nbogus-key: 1\n");
  auto unknown = load({"--config-file", dir.file("unknown.yaml")});
  ASSERT_TRUE(unknown.ok()) << unknown.error().toString();
  EXPECT_EQ(unknown->config.ignored_options,
            (std::map<std::string, std::string>{{"bogus-key", "1"}}));
  EXPECT_EQ(unknown->sources.count("bogus-key"), 0u);
  write(dir.file("bad.yaml"), "ipv4-range: 10.0.0.0/33\n");
  EXPECT_EQ(loadError({"--config-file", dir.file("bad.yaml")}),
            "ipv4-range=10.0.0.0/33 (config file " + dir.file("bad.yaml") +
                "): prefix length 33 is not 0..32");
  write(dir.file("list.yaml"), "ipv4-range:\n  - 10.0.0.0/24\n");
  EXPECT_EQ(
      loadError({"--config-file", dir.file("list.yaml")}),
      "ipv4-range (config file " + dir.file("list.yaml") + ", line 2): value must be a scalar");
  write(dir.file("seq.yaml"), "- a\n- b\n");
  EXPECT_EQ(loadError({"--config-file", dir.file("seq.yaml")}),
            "config file " + dir.file("seq.yaml") + ": expected a mapping of key: value");
  write(dir.file("syntax.yaml"), "a: [1, 2\n");
  EXPECT_NE(loadError({"--config-file", dir.file("syntax.yaml")}).find("line 2"),
            std::string::npos);
  EXPECT_NE(loadError({"--config-file", dir.file("missing.yaml")}).find("No such file"),
            std::string::npos);
  write(dir.file("empty.yaml"), "");
  EXPECT_TRUE(load({"--config-file", dir.file("empty.yaml")}).ok());
}

TEST(ConfigTest, ConfigDirAsKubernetesMountsIt) {
  testing::TempDir dir;
  // Kubernetes layout: key -> ..data/key -> ..2024_01_01/key
  std::string ts = dir.file("..2024_01_01_00_00_00.1");
  ASSERT_EQ(::mkdir(ts.c_str(), 0755), 0);
  write(ts + "/ipv4-range", "10.2.0.0/24\n");
  write(ts + "/debug", "true");
  write(ts + "/bpf-lb-map-max", "  8192\n\n");
  ASSERT_EQ(::symlink("..2024_01_01_00_00_00.1", dir.file("..data").c_str()), 0);
  for (const char* k : {"ipv4-range", "debug", "bpf-lb-map-max"})
    ASSERT_EQ(::symlink((std::string("..data/") + k).c_str(), dir.file(k).c_str()), 0);
  write(dir.file(".hidden"), "anything");
  ASSERT_EQ(::mkdir(dir.file("subdir").c_str(), 0755), 0);

  auto r = load({"--config-dir", dir.path()});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.ipv4_range->toString(), "10.2.0.0/24");
  EXPECT_TRUE(r->config.debug);
  EXPECT_EQ(r->config.bpf_lb_map_max, 8192u);
  EXPECT_EQ(r->sources["bpf-lb-map-max"], Source::kConfigDir);

  write(dir.file("not-a-key"), "1\n");
  auto ignored = load({"--config-dir", dir.path()});
  ASSERT_TRUE(ignored.ok()) << ignored.error().toString();
  EXPECT_EQ(ignored->config.ignored_options,
            (std::map<std::string, std::string>{{"not-a-key", "1"}}));
  EXPECT_TRUE(r->config.ignored_options.empty());
  ::unlink(dir.file("not-a-key").c_str());
  write(dir.file("mtu"), "12");
  EXPECT_EQ(loadError({"--config-dir", dir.path()}),
            "mtu=12 (config dir " + dir.path() + "): 12 is not 0 or 576..65535");
  EXPECT_NE(loadError({"--config-dir", dir.file("nope")}).find("No such file"), std::string::npos);
}

// The data of a ConfigMap manifest, key -> value.
std::map<std::string, std::string> configMapData(const std::string& path) {
  auto text = readFile(path);
  EXPECT_TRUE(text.ok()) << path;
  auto docs = yaml::toJson(text.ok() ? *text : "");
  EXPECT_TRUE(docs.ok() && docs->size() == 1);
  std::map<std::string, std::string> out;
  if (docs.ok() && docs->size() == 1)
    for (const auto& [k, v] : (*docs)[0]["data"].items()) out[k] = v.get<std::string>();
  return out;
}

// Cilium 1.16's cilium-config as its chart renders it, mounted as Kubernetes mounts it and as a
// config file: accepted, the keys we implement taken, the others listed as ignored.
TEST(ConfigTest, CiliumConfigMapIsAccepted) {
  auto data = configMapData(std::string(CILIUM_SOURCE_DIR) +
                            "/tests/agent/daemon/testdata/cilium-config-1.16.yaml");
  ASSERT_GT(data.size(), 100u);
  testing::TempDir dir;
  std::string flat;
  for (const auto& [k, v] : data) {
    write(dir.file(k), v);
    flat += k + ": " + nlohmann::json(v).dump() + "\n";
  }
  write(dir.file("..config.yaml"), flat);  // a dot file: not read from the directory
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--config-dir", dir.path()}, {"--config-file", dir.file("..config.yaml")}}) {
    auto r = load(args);
    ASSERT_TRUE(r.ok()) << r.error().toString();
    const Config& c = r->config;
    EXPECT_TRUE(c.enable_hubble);
    EXPECT_EQ(c.hubble_listen_address, ":4244");
    EXPECT_EQ(c.hubble_tls_cert_file, "/var/lib/cilium/tls/hubble/server.crt");
    EXPECT_EQ(c.routing_mode, "tunnel");
    EXPECT_EQ(c.tunnel_protocol, "vxlan");
    EXPECT_FALSE(c.kube_proxy_replacement);
    EXPECT_EQ(c.ipam, "cluster-pool");
    EXPECT_EQ(c.identity_gc_interval, 900u);  // "15m0s"
    EXPECT_EQ(c.k8s_client_qps, 10u);
    EXPECT_TRUE(c.cni_exclusive);
    EXPECT_TRUE(c.enable_l7_proxy);
    EXPECT_EQ(c.write_cni_conf_when_ready, "/host/etc/cni/net.d/05-cilium.conflist");
    EXPECT_EQ(c.prometheus_serve_addr, ":9962");
    EXPECT_EQ(c.procfs, "/host/proc");
    EXPECT_EQ(c.sysctlPath("net/ipv4/conf/lo/accept_local"),
              "/host/proc/sys/net/ipv4/conf/lo/accept_local");
    // Operator keys and features we do not have: ignored, with their values, and listed.
    EXPECT_EQ(c.ignored_options.at("cluster-pool-ipv4-cidr"), "10.0.0.0/8");
    EXPECT_EQ(c.ignored_options.at("mesh-auth-enabled"), "true");
    EXPECT_EQ(c.ignored_options.at("enable-local-redirect-policy"), "false");
    EXPECT_EQ(c.ignored_options.at("controller-group-metrics"),
              "write-cni-file sync-host-ips sync-lb-maps-with-k8s-services");
    for (const auto& [k, v] : c.ignored_options)
      EXPECT_EQ(findConfigKey(k), nullptr) << k << " is a key and was ignored";
    for (const auto& [k, v] : data)
      EXPECT_TRUE(findConfigKey(k) != nullptr || c.ignored_options.count(k)) << k;
  }
}

// A value that asks for what this agent cannot do fails the start, naming the key and the value
// (main exits 2 with it), from the directory and the file alike.
TEST(ConfigTest, ValuesWeCannotHonourFail) {
  testing::TempDir dir;
  struct Case {
    std::string key, value, error;
  };
  for (const auto& c : std::vector<Case>{
           {"tunnel-protocol", "geneve",
            "geneve is not supported by this build (the kernel has no Geneve; only vxlan)"},
           {"kube-proxy-replacement", "partial",
            "'partial' is not supported (Cilium removed it in 1.14): true or false"},
           {"ipam", "eni", "'eni' is not one of cluster-pool, kubernetes"},
           {"enable-ipsec", "true",
            "not supported by this agent (IPsec encryption is not implemented; only false)"},
           {"policy-audit-mode", "TRUE",
            "not supported by this agent (policy audit mode is not implemented: policy is "
            "enforced; only false)"},
           {"enable-k8s-networkpolicy", "false",
            "not supported by this agent (NetworkPolicy is always enforced; only true)"},
           {"datapath-mode", "netkit",
            "not supported by this agent (pods are attached with veth pairs (netkit is not in "
            "this kernel); only veth)"},
           {"tunnel", "disabled",
            "not supported by this agent (removed in Cilium 1.15: use routing-mode and "
            "tunnel-protocol; only vxlan)"},
       }) {
    testing::TempDir cm;
    write(cm.file(c.key), c.value + "\n");
    EXPECT_EQ(loadError({"--config-dir", cm.path()}),
              c.key + "=" + c.value + " (config dir " + cm.path() + "): " + c.error);
    write(dir.file("c.yaml"), c.key + ": \"" + c.value + "\"\n");
    EXPECT_EQ(loadError({"--config-file", dir.file("c.yaml")}),
              c.key + "=" + c.value + " (config file " + dir.file("c.yaml") + "): " + c.error);
  }
  // Their accepted values (what this agent does anyway) are only listed.
  write(dir.file("ok.yaml"),
        "enable-ipsec: \"false\"\ndatapath-mode: veth\ncni-chaining-mode: none\n");
  auto ok = load({"--config-file", dir.file("ok.yaml")});
  ASSERT_TRUE(ok.ok()) << ok.error().toString();
  EXPECT_EQ(ok->config.ignored_options.size(), 3u);
}

// cilium-agent itself: a value it cannot honour stops it before anything starts, exit status 2,
// one line naming the key, the value and where it came from.
TEST(ConfigTest, AgentExitsWithStatus2NamingTheKey) {
  testing::TempDir cm;
  write(cm.file("kube-proxy-replacement"), "partial");
  write(cm.file("mesh-auth-enabled"), "true");
  auto r = run({CILIUM_AGENT_BINARY, "--config-dir=" + cm.path()});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_EQ(r->err, "cilium-agent: kube-proxy-replacement=partial (config dir " + cm.path() +
                        "): 'partial' is not supported (Cilium removed it in 1.14): true or "
                        "false\n");
}

// As Cilium's agent: flags stay strict, and only CILIUM_<KEY> of our keys is read.
TEST(ConfigTest, FlagsAndEnvironmentStayStrict) {
  EXPECT_EQ(loadError({"--enable-ipsec=true"}), "--enable-ipsec (flag): unknown option");
  EXPECT_EQ(loadError({"--mesh-auth-enabled=false"}), "--mesh-auth-enabled (flag): unknown option");
  auto env = load({}, fakeEnv({{"CILIUM_ENABLE_IPSEC", "true"}}));
  ASSERT_TRUE(env.ok());
  EXPECT_TRUE(env->config.ignored_options.empty());
}

// Every entry of the table is a key this agent does not implement (a module that implements one
// removes it from unhonouredKeys()).
TEST(ConfigTest, UnhonouredKeysAreNotKeys) {
  for (const auto& u : unhonouredKeys()) {
    EXPECT_EQ(findConfigKey(u.name), nullptr) << u.name << " is implemented now";
    EXPECT_FALSE(u.accepted.empty()) << u.name;
  }
}

TEST(ConfigTest, CiliumMeaningsOfKeys) {
  auto kpr = [](const std::string& v) {
    auto r = load({"--kube-proxy-replacement=" + v});
    EXPECT_TRUE(r.ok()) << v;
    return r.ok() && r->config.kube_proxy_replacement;
  };
  EXPECT_TRUE(kpr("true"));
  EXPECT_TRUE(kpr("strict"));  // Cilium < 1.14
  EXPECT_FALSE(kpr("false"));
  EXPECT_FALSE(kpr("disabled"));
  EXPECT_FALSE(load({})->config.kube_proxy_replacement);  // Cilium's default
  EXPECT_EQ(loadError({"--kube-proxy-replacement=maybe"}),
            "--kube-proxy-replacement=maybe (flag): 'maybe' is not true or false");
  // devices as Cilium's ConfigMap writes them (spaces) or as flags do (commas).
  auto dev = load({"--devices=eth0 eth1,eth2"});
  ASSERT_TRUE(dev.ok()) << dev.error().toString();
  EXPECT_EQ(dev->config.devicesList(), (std::vector<std::string>{"eth0", "eth1", "eth2"}));
  // Durations as Cilium writes them, or seconds.
  EXPECT_EQ(load({"--identity-gc-interval=15m0s"})->config.identity_gc_interval, 900u);
  EXPECT_EQ(load({"--identity-gc-interval=60"})->config.identity_gc_interval, 60u);
  EXPECT_EQ(load({"--k8s-sync-timeout=3m0s"})->config.k8s_sync_timeout, 180u);
  EXPECT_EQ(load({"--kvstore-lease-ttl=15m"})->config.kvstore_lease_ttl, 900u);
  EXPECT_EQ(loadError({"--identity-gc-interval=1500ms"}),
            "--identity-gc-interval=1500ms (flag): '1500ms' is not whole seconds");
  EXPECT_EQ(loadError({"--k8s-sync-timeout=2h"}),
            "--k8s-sync-timeout=2h (flag): 7200s is not 1..3600 seconds");
  EXPECT_EQ(loadError({"--k8s-sync-timeout=soon"}),
            "--k8s-sync-timeout=soon (flag): 'soon' is neither seconds nor a duration (e.g. 900, "
            "15m0s)");
  EXPECT_EQ(load({"--tunnel-protocol=vxlan"})->config.tunnel_protocol, "vxlan");
  EXPECT_EQ(load({})->config.agent_health_port, 9879u);
  EXPECT_EQ(load({"--agent-health-port=0"})->config.agent_health_port, 0u);
}

TEST(ConfigTest, PrecedenceFlagsOverDirOverFileOverDefaults) {
  testing::TempDir dir;
  write(dir.file("c.yaml"),
        "bpf-nat-global-max: 2000\nbpf-lb-map-max: 2000\nbpf-policy-map-max: 2000\n");
  ASSERT_EQ(::mkdir(dir.file("d").c_str(), 0755), 0);
  write(dir.file("d/bpf-lb-map-max"), "3000");
  write(dir.file("d/bpf-policy-map-max"), "3000");
  auto r = load({"--config-file", dir.file("c.yaml"), "--config-dir", dir.file("d"),
                 "--bpf-policy-map-max=4000"});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.bpf_ct_global_tcp_max, 524288u);  // default
  EXPECT_EQ(r->config.bpf_nat_global_max, 2000u);       // file
  EXPECT_EQ(r->config.bpf_lb_map_max, 3000u);           // dir over file
  EXPECT_EQ(r->config.bpf_policy_map_max, 4000u);       // flag over both
  EXPECT_EQ(r->sources["bpf-nat-global-max"], Source::kConfigFile);
  EXPECT_EQ(r->sources["bpf-lb-map-max"], Source::kConfigDir);
  EXPECT_EQ(r->sources["bpf-policy-map-max"], Source::kFlag);

  // A bad value is an error even when a higher source overrides it.
  write(dir.file("d/bpf-lb-map-max"), "lots");
  EXPECT_EQ(loadError({"--config-dir", dir.file("d"), "--bpf-lb-map-max=5000"}),
            "bpf-lb-map-max=lots (config dir " + dir.file("d") +
                "): 'lots' is not a non-negative integer");
}

TEST(ConfigTest, EveryValidation) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--ipv4-range=10.0.0.0/33"},
       "--ipv4-range=10.0.0.0/33 (flag): prefix length 33 is not 0..32"},
      {{"--ipv4-range=10.0.0.5/24"},
       "--ipv4-range=10.0.0.5/24 (flag): '10.0.0.5/24' has host bits set (did you mean "
       "10.0.0.0/24?)"},
      {{"--ipv4-range=fd00::/64"},
       "--ipv4-range=fd00::/64 (flag): 'fd00::/64' is not an IPv4 CIDR"},
      {{"--ipv4-range=10.0.0.0/31"},
       "--ipv4-range=10.0.0.0/31 (flag): /31 leaves no address for endpoints (at most /30)"},
      {{"--ipv4-range=banana"},
       "--ipv4-range=banana (flag): 'banana' is not a CIDR (missing /length)"},
      {{"--ipv6-range=fd00::/48"},
       "--ipv6-range=fd00::/48 (flag): /48 is too large for a node (at least /64)"},
      {{"--ipv6-range=fd00::/127"},
       "--ipv6-range=fd00::/127 (flag): /127 leaves no address for endpoints (at most /126)"},
      {{"--ipv6-range=10.0.0.0/24"},
       "--ipv6-range=10.0.0.0/24 (flag): '10.0.0.0/24' is not an IPv6 CIDR"},
      {{"--state-dir=relative"}, "--state-dir=relative (flag): 'relative' is not an absolute path"},
      {{"--procfs=host/proc"}, "--procfs=host/proc (flag): 'host/proc' is not an absolute path"},
      {{"--procfs="}, "--procfs= (flag): must not be empty"},
      {{"--state-dir="}, "--state-dir= (flag): must not be empty"},
      {{"--socket-path=/tmp/a\tb"}, "--socket-path=/tmp/a\tb (flag): contains a control character"},
      {{"--debug=maybe"}, "--debug=maybe (flag): 'maybe' is not a boolean (true or false)"},
      {{"--bpf-ct-global-tcp-max=100"},
       "--bpf-ct-global-tcp-max=100 (flag): 100 is not 1024..16777216"},
      {{"--bpf-ct-global-tcp-max=-5"},
       "--bpf-ct-global-tcp-max=-5 (flag): '-5' is not a non-negative integer"},
      {{"--bpf-policy-map-max=70000"},
       "--bpf-policy-map-max=70000 (flag): 70000 is not 1024..65536"},
      {{"--bpf-nat-global-max=99999999999"},
       "--bpf-nat-global-max=99999999999 (flag): 99999999999 is not 1024..16777216"},
      {{"--log-level=loud"},
       "--log-level=loud (flag): 'loud' is not one of trace, debug, info, warn, warning, error"},
      {{"--enable-policy=sometimes"},
       "--enable-policy=sometimes (flag): 'sometimes' is not one of default, always, never"},
      {{"--monitor-aggregation=all"},
       "--monitor-aggregation=all (flag): 'all' is not one of none, low, medium, maximum"},
      {{"--prometheus-serve-addr=9962"},
       "--prometheus-serve-addr=9962 (flag): '9962' is not host:port (e.g. :9962)"},
      {{"--prometheus-serve-addr=:99999"},
       "--prometheus-serve-addr=:99999 (flag): ':99999': port '99999' is not 1..65535"},
      {{"--hubble-listen-address=::1:4244"},
       "--hubble-listen-address=::1:4244 (flag): '::1:4244': write IPv6 hosts as [addr]:port"},
      {{"--hubble-listen-address=[zz]:4244"},
       "--hubble-listen-address=[zz]:4244 (flag): '[zz]:4244': '[zz]' is not a bracketed IPv6 "
       "address"},
      {{"--cluster-name=Prod_1"},
       "--cluster-name=Prod_1 (flag): may contain only lower-case letters, digits and '-'"},
      {{"--cluster-id=256"}, "--cluster-id=256 (flag): 256 is not 0..255"},
      {{"--ipv4-service-loopback-address=fd00::1"},
       "--ipv4-service-loopback-address=fd00::1 (flag): is not an IPv4 unicast address"},
      {{"--ipv6-service-loopback-address=169.254.42.1"},
       "--ipv6-service-loopback-address=169.254.42.1 (flag): is not an IPv6 unicast address"},
      {{"--ipv6-service-loopback-address=ff02::1"},
       "--ipv6-service-loopback-address=ff02::1 (flag): is not an IPv6 unicast address"},
      {{"--node-name=a b"}, "--node-name=a b (flag): contains a space or '/'"},
      {{"--mtu=100"}, "--mtu=100 (flag): 100 is not 0 or 576..65535"},
      {{"--k8s-api-server=10.0.0.1:6443"},
       "--k8s-api-server=10.0.0.1:6443 (flag): must start with http:// or https://"},
      {{"--write-cni-conf-when-ready=05-cilium.conflist"},
       "--write-cni-conf-when-ready=05-cilium.conflist (flag): '05-cilium.conflist' is not an "
       "absolute path"},
      {{"--enable-ip-masq-agent"},
       "enable-ip-masq-agent needs enable-bpf-masquerade and enable-ipv4-masquerade"},
      {{"--ip-masq-agent-config-path=ip-masq-agent"},
       "--ip-masq-agent-config-path=ip-masq-agent (flag): 'ip-masq-agent' is not an absolute "
       "path"},
      {{"--enable-bpf-masquerade"},
       "enable-bpf-masquerade needs the native devices it masquerades on (devices)"},
      {{"--ipv4-native-routing-cidr=fd00::/64"},
       "--ipv4-native-routing-cidr=fd00::/64 (flag): is not an IPv4 CIDR"},
      {{"--ipv4-native-routing-cidr=10.0.0.1/8"},
       "--ipv4-native-routing-cidr=10.0.0.1/8 (flag): '10.0.0.1/8' has host bits set (did you "
       "mean 10.0.0.0/8?)"},
      {{"--auto-direct-node-routes"},
       "auto-direct-node-routes needs routing-mode=native (routing-mode=tunnel encapsulates "
       "pods' packets to other nodes)"},
      {{"--routing-mode=native", "--enable-bpf-masquerade", "--devices=eth0"},
       "routing-mode=native with masquerading (enable-bpf-masquerade, enable-ipv4-masquerade) "
       "needs ipv4-native-routing-cidr: the CIDR of the pod network that is reached without "
       "masquerading (e.g. the cluster pool)"},
      {{"--routing-mode=native", "--enable-bpf-masquerade", "--devices=eth0",
        "--ipv4-native-routing-cidr=10.0.0.0/8", "--enable-ipv6"},
       "routing-mode=native with IPv6 masquerading (enable-bpf-masquerade, "
       "enable-ipv6-masquerade, enable-ipv6) needs ipv6-native-routing-cidr: the IPv6 CIDR of "
       "the pod network that is reached without masquerading"},
      {{"--ipv6-native-routing-cidr=10.0.0.0/8"},
       "--ipv6-native-routing-cidr=10.0.0.0/8 (flag): is not an IPv6 CIDR"},
      {{"--bpf-lb-mode=dsr"},
       "bpf-lb-mode=dsr needs routing-mode=native (routing-mode=tunnel: DSR with a tunnel needs "
       "Geneve, which this kernel lacks)"},
      {{"--bpf-lb-mode=hybrid", "--routing-mode=tunnel"},
       "bpf-lb-mode=hybrid needs routing-mode=native (routing-mode=tunnel: DSR with a tunnel "
       "needs Geneve, which this kernel lacks)"},
      {{"--bpf-lb-mode=direct"},
       "--bpf-lb-mode=direct (flag): 'direct' is not one of snat, dsr, hybrid"},
      {{"--bpf-lb-dsr-dispatch=geneve"},
       "--bpf-lb-dsr-dispatch=geneve (flag): is not supported: this kernel has no Geneve; use "
       "opt (an IPv4 option)"},
      {{"--bpf-lb-dsr-dispatch=ipip"},
       "--bpf-lb-dsr-dispatch=ipip (flag): is not supported: use opt (an IPv4 option)"},
      {{"--enable-ipv4=false"},
       "enable-ipv4 and enable-ipv6 are both false: at least one family is needed"},
      {{"--bpf-pin-dir=/tmp/pins"}, "bpf-pin-dir /tmp/pins is not inside bpf-root /sys/fs/bpf"},
      {{"--bpf-pin-dir=/sys/fs/bpfx"},
       "bpf-pin-dir /sys/fs/bpfx is not inside bpf-root /sys/fs/bpf"},
      {{"--socket-path=/" + std::string(110, 's')},
       "socket-path /" + std::string(110, 's') +
           " is 111 bytes long; Unix socket paths allow at most 107"},
  };
  for (const auto& c : cases) EXPECT_EQ(loadError(c.args), c.error) << c.args[0];

  // And the accepted forms next to them.
  EXPECT_FALSE(load({"--ipv4-range=auto"})->config.ipv4_range.has_value());
  EXPECT_EQ(load({"--ipv6-range=fd00:10::/112"})->config.ipv6_range->toString(), "fd00:10::/112");
  EXPECT_EQ(load({"--bpf-pin-dir=/sys/fs/bpf/node1"})->config.bpf_pin_dir, "/sys/fs/bpf/node1");
  EXPECT_EQ(load({"--bpf-root=/run/x/bpffs"})->config.bpf_pin_dir, "/run/x/bpffs/cilium");
  EXPECT_EQ(load({"--log-level=WARNING"})->config.effectiveLogLevel(), "warn");
  EXPECT_TRUE(load({"--debug=Enabled"})->config.debug);
  EXPECT_TRUE(load({"--prometheus-serve-addr=[::1]:9962"}).ok());
  EXPECT_TRUE(load({"--prometheus-serve-addr=127.0.0.1:9962"}).ok());
  EXPECT_TRUE(load({"--enable-ipv4=false", "--enable-ipv6"}).ok());
  EXPECT_EQ(load({"--mtu=0"})->config.mtu, 0u);
  EXPECT_TRUE(load({"--enable-bpf-masquerade", "--devices=eth0"})->config.bpfMasquerade());
  EXPECT_FALSE(
      load({"--enable-bpf-masquerade", "--enable-ipv4-masquerade=false"})->config.bpfMasquerade())
      << "masquerade off in general: no devices needed";
  EXPECT_EQ(load({"--ipv4-native-routing-cidr=10.0.0.0/8"})->config.ipv4_native_routing_cidr,
            "10.0.0.0/8");
  // Native routing: the CIDR is needed only when something is masqueraded.
  EXPECT_TRUE(load({"--routing-mode=native", "--enable-bpf-masquerade", "--devices=eth0",
                    "--ipv4-native-routing-cidr=10.0.0.0/8", "--auto-direct-node-routes"})
                  ->config.auto_direct_node_routes);
  EXPECT_TRUE(load({"--routing-mode=native", "--auto-direct-node-routes"}).ok())
      << "no masquerade: no native routing CIDR needed";
  EXPECT_FALSE(load({"--routing-mode=native"})->config.auto_direct_node_routes) << "off by default";
  EXPECT_EQ(load({})->config.bpf_lb_mode, "snat");
  EXPECT_TRUE(load({"--routing-mode=native", "--bpf-lb-mode=dsr"})->config.dsr());
  EXPECT_TRUE(load({"--routing-mode=native", "--bpf-lb-mode=hybrid", "--bpf-lb-dsr-dispatch=opt"})
                  ->config.dsr());
  EXPECT_FALSE(load({"--routing-mode=native"})->config.dsr());
}

TEST(ConfigTest, EnvironmentBetweenConfigDirAndFlags) {
  testing::TempDir dir;
  write(dir.file("bpf-lb-map-max"), "3000");
  write(dir.file("bpf-policy-map-max"), "3000");
  auto env = fakeEnv({{"CILIUM_BPF_LB_MAP_MAX", "4000"},
                      {"CILIUM_BPF_POLICY_MAP_MAX", "4000"},
                      {"CILIUM_DEBUG", "true"},
                      {"CILIUM_SOCK", "/elsewhere.sock"},  // not a key: not ours to judge
                      {"CILIUM_TEST_LOG", "debug"}});
  auto r = load({"--config-dir", dir.path(), "--bpf-policy-map-max=5000"}, env);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.bpf_lb_map_max, 4000u);      // environment over dir
  EXPECT_EQ(r->config.bpf_policy_map_max, 5000u);  // flag over environment
  EXPECT_TRUE(r->config.debug);
  EXPECT_EQ(r->sources["bpf-lb-map-max"], Source::kEnv);
  EXPECT_EQ(r->sources["bpf-policy-map-max"], Source::kFlag);
  EXPECT_EQ(envName("ipv4-service-loopback-address"), "CILIUM_IPV4_SERVICE_LOOPBACK_ADDRESS");

  // Validated like every source, and named.
  auto bad = load({}, fakeEnv({{"CILIUM_IPV4_RANGE", "10.0.0.0/33"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "CILIUM_IPV4_RANGE=10.0.0.0/33 (environment): prefix length 33 is not 0..32");
  // A bad value is an error even when a flag overrides it.
  EXPECT_FALSE(load({"--mtu=1500"}, fakeEnv({{"CILIUM_MTU", "12"}})).ok());
}

TEST(ConfigTest, ConfigFileValuesAreTextAsWritten) {
  testing::TempDir dir;
  // yaml-cpp 0.7 never returned from this one; libyaml refuses it.
  write(dir.file("hang.yaml"), "{a: 1},");
  EXPECT_NE(loadError({"--config-file", dir.file("hang.yaml")}).find("config file"),
            std::string::npos);
  // Values are the text written, not YAML's reading of it: 0x800 is not a decimal integer.
  write(dir.file("hex.yaml"), "bpf-policy-map-max: 0x800\n");
  EXPECT_EQ(loadError({"--config-file", dir.file("hex.yaml")}),
            "bpf-policy-map-max=0x800 (config file " + dir.file("hex.yaml") +
                "): '0x800' is not a non-negative integer");
  write(dir.file("quoted.yaml"), "node-name: 'null'\ncluster-name: \"prod\"\ndebug: ~\n");
  auto q = load({"--config-file", dir.file("quoted.yaml")});
  EXPECT_FALSE(q.ok());  // debug: ~ is the empty string, not a boolean
  write(dir.file("quoted.yaml"), "node-name: 'null'\ncluster-name: \"prod\"\n");
  q = load({"--config-file", dir.file("quoted.yaml")});
  ASSERT_TRUE(q.ok()) << q.error().toString();
  EXPECT_EQ(q->config.node_name, "null");
  EXPECT_EQ(q->config.cluster_name, "prod");
  write(dir.file("map.yaml"), "a: 1\nhubble:\n  enabled: true\n");
  EXPECT_EQ(loadError({"--config-file", dir.file("map.yaml")}),
            "hubble (config file " + dir.file("map.yaml") + ", line 3): value must be a scalar");
  write(dir.file("two.yaml"), "debug: true\n---\ndebug: false\n");
  EXPECT_EQ(loadError({"--config-file", dir.file("two.yaml")}),
            "config file " + dir.file("two.yaml") + ": expected one YAML document, found 2");
}

// docs/configuration.md's key tables agree with the registries: every key once, in the
// registry's order, with its type, default and mutability.
TEST(ConfigTest, DocumentationListsEveryKeyAsDeclared) {
  auto text = readFile(std::string(CILIUM_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(text.ok()) << text.error().toString();
  std::vector<std::string> rows;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("| `", 0) == 0) rows.push_back(line);
  Config defaults;
  ASSERT_EQ(rows.size(), configKeys().size());
  for (size_t i = 0; i < rows.size(); i++) {
    const ConfigKey& k = configKeys()[i];
    std::string type = k.type.find('|') != std::string::npos ? "enum" : k.type;
    std::string def = configValueText(k, defaults);
    std::string doc_default = !def.empty()            ? "`" + def + "`"
                              : !k.default_note.empty() ? "(" + k.default_note + ")"
                                                        : "`\"\"`";
    std::string mut = k.mutable_at_runtime ? "yes" : "";
    std::string want = "| `" + k.name + "` | " + type + " | " + doc_default + " | " + mut + " |";
    std::string listen = "| `" + k.name + "` | listen address | " + doc_default + " | " + mut + " |";
    bool is_listen = k.type == "string" && !k.set(defaults, "nohost").ok() &&
                     k.set(defaults, ":1").ok() && k.set(defaults, "").ok();
    defaults = Config{};
    EXPECT_EQ(rows[i].rfind(is_listen ? listen : want, 0), 0u)
        << "row " << i << ": " << rows[i] << "\nexpected to start with: "
        << (is_listen ? listen : want);
  }
}

TEST(ConfigTest, UsageListsEveryKey) {
  std::string u = usage();
  for (const auto& k : configKeys()) {
    EXPECT_NE(u.find("--" + k.name + "="), std::string::npos) << k.name;
    EXPECT_NE(u.find("[env " + envName(k.name) + "]"), std::string::npos) << k.name;
  }
  EXPECT_NE(u.find("--debug=bool (mutable)"), std::string::npos);
  EXPECT_EQ(u.rfind("Usage: cilium-agent [OPTIONS]", 0), 0u) << u;
}

Config loaded(std::vector<std::string> args) { return load(std::move(args))->config; }

TEST(ConfigStoreTest, MutableKeysChangeAndNotify) {
  ConfigStore store(loaded({"--ipv4-range=10.200.0.0/24"}));
  std::vector<std::pair<std::string, std::string>> seen;
  store.subscribe([&](const Config& before, const Config& after) {
    seen.emplace_back(before.effectiveLogLevel(), after.effectiveLogLevel());
  });
  ASSERT_TRUE(store.apply({{"debug", "true"}}).ok());
  EXPECT_TRUE(store.snapshot().debug);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], std::make_pair(std::string("info"), std::string("debug")));

  // Cilium's option name and value style.
  ASSERT_TRUE(store.apply({{"Debug", "Disabled"}}).ok());
  EXPECT_FALSE(store.snapshot().debug);
  ASSERT_TRUE(store.apply({{"log-level", "error"}}).ok());
  EXPECT_EQ(store.snapshot().effectiveLogLevel(), "error");
  EXPECT_EQ(seen.size(), 3u);

  // Nothing changed: no notification.
  ASSERT_TRUE(store.apply({{"log-level", "error"}}).ok());
  EXPECT_EQ(seen.size(), 3u);
}

TEST(ConfigStoreTest, ImmutableKeysAcceptOnlyTheirCurrentValue) {
  ConfigStore store(loaded({"--ipv4-range=10.200.0.0/24"}));
  EXPECT_TRUE(store.apply({{"ipv4-range", "10.200.0.0/24"}}).ok());
  auto st = store.apply({{"ipv4-range", "10.201.0.0/24"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(st.error().message(),
            "ipv4-range is immutable: it can only be set when the agent starts (current value "
            "10.200.0.0/24)");
  auto state = store.apply({{"state-dir", "/elsewhere"}});
  EXPECT_EQ(state.error().message(),
            "state-dir is immutable: it can only be set when the agent starts (current value "
            "/var/run/cilium)");
}

TEST(ConfigStoreTest, ChangesAreAllOrNothing) {
  ConfigStore store(loaded({}));
  auto st = store.apply({{"debug", "true"}, {"log-level", "loud"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "log-level=loud (PATCH /config): 'loud' is not one of trace, debug, info, warn, "
            "warning, error");
  EXPECT_FALSE(store.snapshot().debug);
  auto unknown = store.apply({{"debug", "true"}, {"nope", "1"}});
  EXPECT_EQ(unknown.error().message(), "nope: unknown option");
  EXPECT_FALSE(store.snapshot().debug);
}

TEST(ConfigStoreTest, RendersOptions) {
  ConfigStore store(loaded({"--ipv4-range=10.200.0.0/24"}));
  auto m = store.mutableOptions();
  EXPECT_EQ(m, (std::map<std::string, std::string>{{"debug", "false"}, {"log-level", "info"}}));
  auto im = store.immutableOptions();
  EXPECT_EQ(im["ipv4-range"], "10.200.0.0/24");
  EXPECT_EQ(im["ipv6-range"], "auto");
  EXPECT_EQ(im["bpf-ct-global-tcp-max"], "524288");
  EXPECT_EQ(im.count("debug"), 0u);
  auto all = store.allOptions();
  EXPECT_EQ(all["bpf-ct-global-tcp-max"], 524288);
  EXPECT_EQ(all["debug"], false);
  EXPECT_EQ(all["bpf-pin-dir"], "/sys/fs/bpf/cilium");
  EXPECT_EQ(all.size(), configKeys().size());
}

}  // namespace
}  // namespace cilium::daemon
