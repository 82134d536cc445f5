// The composed key table, the sources (file, directory, environment, flags) and the runtime
// store.
#include "agent/daemon/config.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "agent/common/cli.h"
#include "agent/common/files.h"
#include "agent/common/yaml.h"

namespace cilium::daemon {
namespace {

using nlohmann::json;

config::Registry<DaemonConfig>* buildDaemonKeys() {
  auto* r = new config::Registry<DaemonConfig>;
  r->boolean("enable-ipv4", "Enable IPv4", &DaemonConfig::enable_ipv4);
  r->boolean("enable-ipv6", "Enable IPv6", &DaemonConfig::enable_ipv6);
  r->cidr("ipv4-range",
          "The node's IPv4 pod CIDR, e.g. 10.200.0.0/24 (\"auto\": learned from the cluster later)",
          &DaemonConfig::ipv4_range, IpFamily::kV4);
  r->cidr("ipv6-range",
          "The node's IPv6 pod CIDR, e.g. fd00:10:200::/112 (\"auto\": learned later)",
          &DaemonConfig::ipv6_range, IpFamily::kV6);
  r->choice("ipam",
            "Where the node's pod CIDR comes from when ipv4-range is auto: cluster-pool (the "
            "operator writes it into this node's CiliumNode) or kubernetes (Node.spec.podCIDRs)",
            &DaemonConfig::ipam, {"cluster-pool", "kubernetes"});
  r->uint("mtu",
          "MTU of the network under the pods (0: 1500); pod devices get it less the VXLAN "
          "headers in routing-mode=tunnel",
          &DaemonConfig::mtu, 576, 65535, true);
  r->boolean("restore", "Restore state (IPAM allocations, later endpoints) from the previous run",
             &DaemonConfig::restore);
  r->choice("log-level", "Log level", &DaemonConfig::log_level,
            {"trace", "debug", "info", "warn", "warning", "error"})
      .mutableAtRuntime();
  r->boolean("debug", "Debug logging (overrides log-level)", &DaemonConfig::debug)
      .mutableAtRuntime()
      .alias("Debug");
  r->path("write-cni-conf-when-ready",
          "Write the CNI configuration to this path once the agent is ready (\"\": do not)",
          &DaemonConfig::write_cni_conf_when_ready, true)
      .defaultNote("do not write");
  r->boolean("cni-exclusive", "Rename other CNI configurations in that directory to *.cilium_bak",
             &DaemonConfig::cni_exclusive);
  r->path("cni-log-file", "Log file of cilium-cni, written into its configuration",
          &DaemonConfig::cni_log_file);
  r->uint("agent-health-port",
          "TCP port of GET /healthz on 127.0.0.1 (plain HTTP, for liveness and readiness "
          "probes; 0: off)",
          &DaemonConfig::agent_health_port, 1, 65535, true);
  r->check([](const DaemonConfig& c) -> Status {
    if (!c.enable_ipv4 && !c.enable_ipv6)
      return config::invalidValue(
          "enable-ipv4 and enable-ipv6 are both false: at least one family is needed");
    return okStatus();
  });
  return r;
}

config::Registry<Config>* buildRegistry() {
  auto* r = new config::Registry<Config>;
  r->include(component::nodeConfigKeys());
  r->include(daemonConfigKeys());
  r->include(datapath::mapConfigKeys());
  r->include(service::configKeys());
  r->include(policy::configKeys());
  r->include(proxy::configKeys());
  r->include(metrics::configKeys());
  r->include(hubble::configKeys());
  r->include(k8s::configKeys());
  r->include(kvstore::configKeys());
  r->include(health::configKeys());
  r->check([](const Config& c) -> Status {
    if (c.identity_allocation_mode == "kvstore" && c.kvstore.empty())
      return Error(ErrorCode::kInvalidArgument,
                   "identity-allocation-mode=kvstore needs kvstore=etcd");
    // As Cilium: pods' packets to other nodes' pods leave unencapsulated in native routing, so
    // masquerade must know which destinations are the pod network, or it rewrites them.
    if (c.routing_mode == "native" && c.bpfMasquerade() && c.ipv4_native_routing_cidr.empty())
      return Error(ErrorCode::kInvalidArgument,
                   "routing-mode=native with masquerading (enable-bpf-masquerade, "
                   "enable-ipv4-masquerade) needs ipv4-native-routing-cidr: the CIDR of the pod "
                   "network that is reached without masquerading (e.g. the cluster pool)");
    if (c.routing_mode == "native" && c.enable_ipv6 && c.bpfMasquerade6() &&
        c.ipv6_native_routing_cidr.empty())
      return Error(ErrorCode::kInvalidArgument,
                   "routing-mode=native with IPv6 masquerading (enable-bpf-masquerade, "
                   "enable-ipv6-masquerade, enable-ipv6) needs ipv6-native-routing-cidr: the IPv6 "
                   "CIDR of the pod network that is reached without masquerading");
    // The option travels in the pod network's own packets; in a tunnel the backend's node would
    // have to find it inside VXLAN, which Cilium does with Geneve options (absent here).
    if (c.dsr() && c.routing_mode != "native")
      return makeError(ErrorCode::kInvalidArgument,
                       "bpf-lb-mode={} needs routing-mode=native (routing-mode={}: DSR with a "
                       "tunnel needs Geneve, which this kernel lacks)",
                       c.bpf_lb_mode, c.routing_mode);
    return okStatus();
  });
  return r;
}

struct Setting {
  std::string key;
  std::string value;
  Source source;
  std::string origin;  // flag text, file path, directory path, variable name
};

std::string describe(const Setting& s) {
  switch (s.source) {
    case Source::kFlag: return fmt::format("--{}={} (flag)", s.key, s.value);
    case Source::kConfigFile:
      return fmt::format("{}={} (config file {})", s.key, s.value, s.origin);
    case Source::kConfigDir: return fmt::format("{}={} (config dir {})", s.key, s.value, s.origin);
    case Source::kEnv: return fmt::format("{}={} (environment)", s.origin, s.value);
    case Source::kApi: return fmt::format("{}={} (PATCH /config)", s.key, s.value);
    case Source::kDefault: return fmt::format("{}={} (default)", s.key, s.value);
  }
  return s.key;
}

const UnhonouredKey* findUnhonoured(std::string_view name) {
  for (const auto& k : unhonouredKeys())
    if (k.name == name) return &k;
  return nullptr;
}

bool acceptedValue(const UnhonouredKey& k, std::string_view value) {
  auto b = config::parseBool(value);
  for (const auto& a : k.accepted) {
    if (a == "true" || a == "false") {
      if (b.ok() && *b == (a == "true")) return true;
    } else if (config::lower(value) == a) {
      return true;
    }
  }
  return false;
}

Status applySetting(Config& cfg, const Setting& s) {
  const ConfigKey* key = findConfigKey(s.key);
  if (key == nullptr && (s.source == Source::kConfigFile || s.source == Source::kConfigDir)) {
    // A ConfigMap written for Cilium: what we do not implement is ignored and listed, unless
    // its value asks for something this agent would not do.
    if (const UnhonouredKey* u = findUnhonoured(s.key); u && !acceptedValue(*u, s.value))
      return makeError(ErrorCode::kInvalidArgument, "{}: not supported by this agent ({}; only {})",
                       describe(s), u->why, fmt::join(u->accepted, ", "));
    cfg.ignored_options[s.key] = s.value;
    return okStatus();
  }
  if (key == nullptr) {
    std::string where = s.source == Source::kFlag ? "--" + s.key + " (flag)"
                        : s.source == Source::kConfigFile
                            ? s.key + " (config file " + s.origin + ")"
                            : s.key + " (config dir " + s.origin + ")";
    return makeError(ErrorCode::kInvalidArgument, "{}: unknown option", where);
  }
  auto st = key->set(cfg, s.value);
  if (!st.ok())
    return makeError(ErrorCode::kInvalidArgument, "{}: {}", describe(s), st.error().message());
  return okStatus();
}

// libyaml through yaml::flatMapping (the one YAML library: it refuses what yaml-cpp hangs on).
Result<std::vector<Setting>> parseConfigYaml(std::string_view text, const std::string& path) {
  auto entries = yaml::flatMapping(text);
  if (!entries.ok())
    return makeError(ErrorCode::kInvalidArgument, "config file {}: {}", path,
                     entries.error().message());
  std::vector<Setting> out;
  for (const auto& e : *entries) {
    if (!e.scalar)
      return makeError(ErrorCode::kInvalidArgument,
                       "{} (config file {}, line {}): value must be a scalar", e.key, path, e.line);
    out.push_back({e.key, e.value, Source::kConfigFile, path});
  }
  return out;
}

Result<std::vector<Setting>> readConfigFile(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) return text.error().withContext("--config-file");
  return parseConfigYaml(*text, path);
}

Result<std::vector<Setting>> readConfigDir(const std::string& dir) {
  std::vector<Setting> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errnoError(errno, "--config-dir: open " + dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // Kubernetes mounts a ConfigMap as key files that are symlinks into "..data" and timestamped
    // "..2024_..." directories: everything starting with a dot is bookkeeping.
    if (name.empty() || name[0] == '.') continue;
    names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string path = dir + "/" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errnoError(errno, "config dir " + dir + ": " + name);
    if (S_ISDIR(st.st_mode)) continue;
    CILIUM_ASSIGN_OR_RETURN(std::string value, readFile(path));
    // ConfigMap values often end with a newline (YAML block scalars); spaces around a value
    // are never part of it.
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
      value.pop_back();
    size_t lead = 0;
    while (lead < value.size() && std::isspace(static_cast<unsigned char>(value[lead]))) lead++;
    value.erase(0, lead);
    out.push_back({name, std::move(value), Source::kConfigDir, dir});
  }
  return out;
}

// The command line: CLI11 with one option per key (its aliases as more names), flags for
// booleans. Values stay text: the keys' own parsers validate them, as for every other source.
struct CommandLine {
  std::unique_ptr<CLI::App> app;
  std::vector<std::pair<const ConfigKey*, CLI::Option*>> keys;
  CLI::Option* config_file = nullptr;
  CLI::Option* config_dir = nullptr;
  CLI::Option* version = nullptr;
};

CommandLine commandLine() {
  CommandLine c;
  c.app = cli::makeApp(
      "Runs the node agent. Options come from, lowest precedence first: defaults,\n"
      "--config-file <yaml> (key: value), --config-dir <dir> (one file per key, as a\n"
      "Kubernetes ConfigMap mounts), CILIUM_<KEY> environment variables (CILIUM_DEBUG=true,\n"
      "CILIUM_IPV4_RANGE=...), and flags (--key=value or --key value).",
      "cilium-agent");
  auto& fmt = cli::formatterOf(*c.app);
  c.config_file = c.app->add_option("--config-file,--config", "YAML file of key: value")
                      ->type_name("path")
                      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  c.config_dir = c.app->add_option("--config-dir", "Directory with one file per key")
                     ->type_name("path")
                     ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  c.version = c.app->add_flag("--version")->description("Print the version and exit");
  Config defaults;
  for (const auto& k : configKeys()) {
    std::string names = "--" + k.name;
    if (k.name == "debug") names = "-D," + names;
    for (const auto& a : k.aliases) names += ",--" + a;
    std::string type = k.type + (k.mutable_at_runtime ? " (mutable)" : "");
    CLI::Option* opt =
        k.type == "bool" ? c.app->add_flag(names)->description(k.description)
                         : c.app->add_option(names, k.description)->allow_extra_args(false);
    opt->type_name(type)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    std::string def = config::valueText(k, defaults);
    if (!k.default_note.empty()) def = k.default_note;
    if (!def.empty()) opt->default_str(def);
    fmt.env(k.name, envName(k.name));
    c.keys.emplace_back(&k, opt);
  }
  return c;
}

}  // namespace

std::string DaemonConfig::effectiveLogLevel() const {
  if (debug) return "debug";
  if (log_level == "warning") return "warn";
  return log_level;
}

const config::Registry<DaemonConfig>& daemonConfigKeys() {
  static const auto* r = buildDaemonKeys();
  return *r;
}

const config::Registry<Config>& configRegistry() {
  static const auto* r = buildRegistry();
  return *r;
}

void copyConfigPart(const Config& cfg, const std::type_info& part, void* out) {
  auto copy = [&]<class P>(P*) {
    if (part != typeid(P)) return false;
    *static_cast<P*>(out) = static_cast<const P&>(cfg);
    return true;
  };
  if (copy(static_cast<Config*>(nullptr)) || copy(static_cast<component::NodeConfig*>(nullptr)) ||
      copy(static_cast<DaemonConfig*>(nullptr)) ||
      copy(static_cast<datapath::MapConfig*>(nullptr)) ||
      copy(static_cast<service::Config*>(nullptr)) ||
      copy(static_cast<policy::EnforcementConfig*>(nullptr)) ||
      copy(static_cast<proxy::Config*>(nullptr)) ||
      copy(static_cast<metrics::Config*>(nullptr)) ||
      copy(static_cast<hubble::Config*>(nullptr)) ||
      copy(static_cast<k8s::SourceConfig*>(nullptr)) ||
      copy(static_cast<kvstore::Config*>(nullptr)) ||
      copy(static_cast<health::Config*>(nullptr)))
    return;
  std::abort();  // a part the agent does not compose: a bug in the component
}

std::string_view sourceName(Source s) {
  switch (s) {
    case Source::kDefault: return "default";
    case Source::kConfigFile: return "config file";
    case Source::kConfigDir: return "config dir";
    case Source::kEnv: return "environment";
    case Source::kFlag: return "flag";
    case Source::kApi: return "api";
  }
  return "";
}

const std::vector<ConfigKey>& configKeys() { return configRegistry().keys(); }

const std::vector<UnhonouredKey>& unhonouredKeys() {
  // Cilium 1.16/1.17 keys (install/kubernetes/cilium/templates/cilium-configmap.yaml) that
  // switch on a feature this agent does not have. Ignoring them would leave a user believing
  // traffic is encrypted, audited, announced or redirected when it is not.
  static const std::vector<UnhonouredKey> keys = {
      {"enable-ipsec", {"false"}, "IPsec encryption is not implemented"},
      {"enable-wireguard", {"false"}, "WireGuard encryption is not implemented"},
      {"encrypt-node", {"false"}, "node encryption is not implemented"},
      {"policy-audit-mode", {"false"}, "policy audit mode is not implemented: policy is enforced"},
      {"enable-host-firewall", {"false"}, "the host firewall is not implemented"},
      {"enable-k8s-networkpolicy", {"true"}, "NetworkPolicy is always enforced"},
      {"enable-l2-announcements", {"false"}, "L2 announcements are not implemented"},
      {"enable-bgp-control-plane", {"false"}, "BGP is not implemented"},
      {"enable-ipv4-egress-gateway", {"false"}, "the egress gateway is not implemented"},
      {"enable-local-redirect-policy", {"false"}, "local redirect policy is not implemented"},
      {"enable-endpoint-routes", {"false"}, "per-endpoint routes are not implemented"},
      {"enable-envoy-config", {"false"}, "CiliumEnvoyConfig is not implemented"},
      {"enable-ingress-controller", {"false"}, "the ingress controller is not implemented"},
      {"enable-gateway-api", {"false"}, "Gateway API is not implemented"},
      {"enable-bandwidth-manager", {"false"}, "the bandwidth manager is not implemented"},
      {"enable-cilium-endpoint-slice", {"false"}, "CiliumEndpointSlices are not implemented"},
      {"enable-vtep", {"false"}, "VTEP integration is not implemented"},
      {"enable-srv6", {"false"}, "SRv6 is not implemented"},
      {"enable-ipv6-ndp", {"false"}, "IPv6 NDP proxy is not implemented"},
      {"enable-node-selector-labels", {"false"}, "node selector labels are not implemented"},
      {"datapath-mode",
       {"veth"},
       "pods are attached with veth pairs (netkit is not in this kernel)"},
      {"cni-chaining-mode", {"none", ""}, "CNI chaining is not implemented"},
      {"tunnel", {"vxlan"}, "removed in Cilium 1.15: use routing-mode and tunnel-protocol"},
  };
  return keys;
}

const ConfigKey* findConfigKey(std::string_view name) { return configRegistry().find(name); }

std::string configValueText(const ConfigKey& key, const Config& cfg) {
  return config::valueText(key, cfg);
}

std::string envName(std::string_view key) {
  std::string out = "CILIUM_";
  for (char c : key)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Status validateConfig(const Config& cfg) {
  CILIUM_RETURN_IF_ERROR(configRegistry().validate(cfg));
  if (cfg.node_name.empty())
    return config::invalidValue("node-name is empty and no hostname was found");
  if (auto m = datapath::podMtu(cfg.mtu != 0 ? cfg.mtu : datapath::kDefaultBaseMtu,
                                cfg.routing_mode == "tunnel");
      !m.ok())
    return config::invalidValue(fmt::format("mtu={}: {}", cfg.mtu, m.error().message()));
  return okStatus();
}

Environment Environment::system() {
  Environment e;
  e.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  e.hostname = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0) return std::string();
    return std::string(buf);
  };
  return e;
}

Result<LoadedConfig> loadConfig(const std::vector<std::string>& args, const Environment& env) {
  LoadedConfig out;
  for (const auto& a : args) {
    out.help = out.help || a == "-h" || a == "--help";
    out.version = out.version || a == "--version";
  }
  if (out.help || out.version) return out;

  // "--key=" sets the empty value, which CLI11 reads as a missing one: hand it over as
  // "--key" "". A boolean takes no separate value, and "" is no boolean anyway: it goes straight
  // to its parser below.
  std::vector<std::string> cli_args;
  std::vector<Setting> empty_booleans;
  for (const auto& a : args) {
    const ConfigKey* k = a.size() > 3 && a.rfind("--", 0) == 0 && a.back() == '=' &&
                                 a.find('=') == a.size() - 1
                             ? findConfigKey(a.substr(2, a.size() - 3))
                             : nullptr;
    if (k == nullptr) {
      cli_args.push_back(a);
    } else if (k->type == "bool") {
      empty_booleans.push_back({k->name, "", Source::kFlag, a});
    } else {
      cli_args.push_back(a.substr(0, a.size() - 1));
      cli_args.emplace_back();
    }
  }
  CommandLine cl = commandLine();
  auto parsed = cli::parse(*cl.app, cli_args);
  if (!parsed.ok()) {
    // The agent's own wording, which names the source like every other error.
    std::string msg = parsed.error().message();
    if (msg.rfind("unknown flag --", 0) == 0)
      return makeError(ErrorCode::kInvalidArgument, "{} (flag): unknown option", msg.substr(13));
    if (msg.rfind("unknown flag ", 0) == 0 || msg.rfind("unexpected argument '", 0) == 0) {
      std::string arg = msg.rfind("unknown flag ", 0) == 0 ? msg.substr(13) : msg.substr(21);
      if (!arg.empty() && arg.back() == '\'') arg.pop_back();
      return makeError(ErrorCode::kInvalidArgument,
                       "unexpected argument '{}' (options look like --key=value)", arg);
    }
    if (auto pos = msg.find(": needs a value"); pos != std::string::npos) {
      std::string opt = msg.substr(0, pos);
      // CLI11 names an option by its first name; the config file's is --config-file.
      if (opt == "--config") opt = "--config-file";
      if (const ConfigKey* k = opt.rfind("--", 0) == 0 ? findConfigKey(opt.substr(2)) : nullptr)
        opt = "--" + k->name;
      return makeError(ErrorCode::kInvalidArgument, "{} (flag): needs a value", opt);
    }
    return makeError(ErrorCode::kInvalidArgument, "{}", msg);
  }
  if (cl.config_file->count() > 0) out.config_file = cl.config_file->results().back();
  if (cl.config_dir->count() > 0) out.config_dir = cl.config_dir->results().back();

  std::vector<Setting> settings;
  if (!out.config_file.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto file, readConfigFile(out.config_file));
    settings.insert(settings.end(), file.begin(), file.end());
  }
  if (!out.config_dir.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto dir, readConfigDir(out.config_dir));
    settings.insert(settings.end(), dir.begin(), dir.end());
  }
  // As Cilium's agent: CILIUM_<KEY> for every key; other CILIUM_* variables are not ours to judge.
  if (env.getenv)
    for (const auto& k : configKeys())
      if (auto v = env.getenv(envName(k.name)))
        settings.push_back({k.name, *v, Source::kEnv, envName(k.name)});
  settings.insert(settings.end(), empty_booleans.begin(), empty_booleans.end());
  for (const auto& [key, opt] : cl.keys)
    for (const auto& v : opt->results())
      settings.push_back({key->name, v, Source::kFlag, "--" + key->name});

  for (const auto& s : settings) {
    CILIUM_RETURN_IF_ERROR(applySetting(out.config, s));
    if (const ConfigKey* k = findConfigKey(s.key)) out.sources[k->name] = s.source;
  }
  Config& cfg = out.config;
  if (cfg.node_name.empty()) {
    if (auto n = env.getenv ? env.getenv("K8S_NODE_NAME") : std::nullopt; n && !n->empty())
      cfg.node_name = *n;
    else if (env.hostname)
      cfg.node_name = env.hostname();
    if (auto st = findConfigKey("node-name")->set(cfg, cfg.node_name); !st.ok())
      return makeError(ErrorCode::kInvalidArgument, "node name '{}' (from the environment): {}",
                       cfg.node_name, st.error().message());
  }
  if (cfg.bpf_pin_dir.empty())
    cfg.bpf_pin_dir = cfg.bpf_root + (cfg.bpf_root.back() == '/' ? "" : "/") + "cilium";
  CILIUM_RETURN_IF_ERROR(validateConfig(cfg));
  return out;
}

Result<Config> configFromYaml(std::string_view text, const std::string& origin) {
  CILIUM_ASSIGN_OR_RETURN(auto settings, parseConfigYaml(text, origin));
  Config cfg;
  for (const auto& s : settings) CILIUM_RETURN_IF_ERROR(applySetting(cfg, s));
  return cfg;
}

std::string usage() { return commandLine().app->help(); }

// ---- ConfigStore ------------------------------------------------------------------------------

Config ConfigStore::snapshot() const {
  std::lock_guard lock(mu_);
  return cfg_;
}

Status ConfigStore::apply(const std::map<std::string, std::string>& changes) {
  std::vector<Listener> listeners;
  Config before;
  Config after;
  {
    std::lock_guard lock(mu_);
    before = cfg_;
    after = cfg_;
    for (const auto& [name, value] : changes) {
      const ConfigKey* key = findConfigKey(name);
      if (key == nullptr) return makeError(ErrorCode::kInvalidArgument, "{}: unknown option", name);
      Setting s{key->name, value, Source::kApi, ""};
      Config trial = after;
      auto st = key->set(trial, value);
      if (!st.ok())
        return makeError(ErrorCode::kInvalidArgument, "{}: {}", describe(s), st.error().message());
      if (!key->mutable_at_runtime) {
        if (key->get(trial) != key->get(after))
          return makeError(ErrorCode::kInvalidArgument,
                           "{} is immutable: it can only be set when the agent starts (current "
                           "value {})",
                           key->name, configValueText(*key, after));
        continue;
      }
      after = std::move(trial);
    }
    CILIUM_RETURN_IF_ERROR(validateConfig(after));
    bool changed = false;
    for (const auto& k : configKeys()) changed = changed || k.get(before) != k.get(after);
    if (!changed) return okStatus();
    cfg_ = after;
    listeners = listeners_;
  }
  for (const auto& l : listeners) l(before, after);
  return okStatus();
}

void ConfigStore::subscribe(Listener listener) {
  std::lock_guard lock(mu_);
  listeners_.push_back(std::move(listener));
}

std::map<std::string, std::string> ConfigStore::mutableOptions() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& k : configKeys())
    if (k.mutable_at_runtime) out[k.name] = configValueText(k, cfg_);
  return out;
}

std::map<std::string, std::string> ConfigStore::immutableOptions() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& k : configKeys())
    if (!k.mutable_at_runtime) out[k.name] = configValueText(k, cfg_);
  return out;
}

std::map<std::string, json> ConfigStore::allOptions() const {
  std::lock_guard lock(mu_);
  std::map<std::string, json> out;
  for (const auto& k : configKeys()) out[k.name] = k.get(cfg_);
  return out;
}

}  // namespace cilium::daemon
