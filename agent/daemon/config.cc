// The key table, value parsers, the three sources and the runtime store.
#include "agent/daemon/config.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include <yaml-cpp/yaml.h>

#include "agent/common/files.h"

namespace cilium::daemon {
namespace {

using nlohmann::json;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Error invalid(std::string_view fmt_text) {
  return Error(ErrorCode::kInvalidArgument, std::string(fmt_text));
}

Status checkNoControl(std::string_view v) {
  for (char c : v)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return invalid("contains a control character");
  return okStatus();
}

Result<bool> parseBool(std::string_view v) {
  std::string l = lower(v);
  if (l == "true" || l == "1" || l == "enabled") return true;
  if (l == "false" || l == "0" || l == "disabled") return false;
  return makeError(ErrorCode::kInvalidArgument, "'{}' is not a boolean (true or false)", v);
}

Result<uint64_t> parseUint(std::string_view v) {
  uint64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size())
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a non-negative integer", v);
  return out;
}

Status checkAbsolutePath(std::string_view v, bool allow_empty) {
  if (v.empty()) {
    if (allow_empty) return okStatus();
    return invalid("must not be empty");
  }
  CILIUM_RETURN_IF_ERROR(checkNoControl(v));
  if (v[0] != '/') return makeError(ErrorCode::kInvalidArgument, "'{}' is not an absolute path", v);
  return okStatus();
}

// "[host]:port", "host:port" or ":port"; empty allowed (off).
Status checkListenAddress(std::string_view v) {
  if (v.empty()) return okStatus();
  CILIUM_RETURN_IF_ERROR(checkNoControl(v));
  auto colon = v.rfind(':');
  if (colon == std::string_view::npos)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not host:port (e.g. :9962)", v);
  std::string_view host = v.substr(0, colon);
  if (!host.empty() && host.front() == '[') {
    if (host.back() != ']' || !IpAddr::parse(host.substr(1, host.size() - 2)).ok())
      return makeError(ErrorCode::kInvalidArgument, "'{}': '{}' is not a bracketed IPv6 address", v,
                       host);
  } else if (host.find(':') != std::string_view::npos) {
    return makeError(ErrorCode::kInvalidArgument, "'{}': write IPv6 hosts as [addr]:port", v);
  }
  auto port = parseUint(v.substr(colon + 1));
  if (!port.ok() || *port == 0 || *port > 65535)
    return makeError(ErrorCode::kInvalidArgument, "'{}': port '{}' is not 1..65535", v,
                     v.substr(colon + 1));
  return okStatus();
}

using Member = std::string Config::*;

ConfigKey stringKey(std::string name, std::string desc, Member m,
                    const std::function<Status(std::string_view)>& check = nullptr,
                    std::string type = "string") {
  ConfigKey k;
  k.name = std::move(name);
  k.type = std::move(type);
  k.description = std::move(desc);
  k.set = [m, check](Config& c, std::string_view v) -> Status {
    CILIUM_RETURN_IF_ERROR(checkNoControl(v));
    if (check) CILIUM_RETURN_IF_ERROR(check(v));
    c.*m = std::string(v);
    return okStatus();
  };
  k.get = [m](const Config& c) { return json(c.*m); };
  return k;
}

ConfigKey pathKey(std::string name, std::string desc, Member m, bool allow_empty = false) {
  return stringKey(
      std::move(name), std::move(desc), m,
      [allow_empty](std::string_view v) { return checkAbsolutePath(v, allow_empty); }, "path");
}

ConfigKey enumKey(std::string name, std::string desc, Member m,
                  const std::vector<std::string>& choices) {
  std::string type;
  for (const auto& c : choices) type += (type.empty() ? "" : "|") + c;
  ConfigKey k = stringKey(std::move(name), std::move(desc), m, nullptr, type);
  k.set = [m, choices](Config& c, std::string_view v) -> Status {
    std::string l = lower(v);
    if (std::find(choices.begin(), choices.end(), l) == choices.end())
      return makeError(ErrorCode::kInvalidArgument, "'{}' is not one of {}", v,
                       fmt::format("{}", fmt::join(choices, ", ")));
    c.*m = l;
    return okStatus();
  };
  return k;
}

ConfigKey boolKey(std::string name, std::string desc, bool Config::*m) {
  ConfigKey k;
  k.name = std::move(name);
  k.type = "bool";
  k.description = std::move(desc);
  k.set = [m](Config& c, std::string_view v) -> Status {
    CILIUM_ASSIGN_OR_RETURN(c.*m, parseBool(v));
    return okStatus();
  };
  k.get = [m](const Config& c) { return json(c.*m); };
  return k;
}

ConfigKey uintKey(std::string name, std::string desc, uint32_t Config::*m, uint32_t lo, uint32_t hi,
                  bool zero_ok = false) {
  ConfigKey k;
  k.name = std::move(name);
  k.type = "uint";
  k.description = std::move(desc);
  k.set = [m, lo, hi, zero_ok](Config& c, std::string_view v) -> Status {
    CILIUM_ASSIGN_OR_RETURN(uint64_t n, parseUint(v));
    if (!(zero_ok && n == 0) && (n < lo || n > hi))
      return makeError(ErrorCode::kInvalidArgument, "{} is not {}{}..{}", n, zero_ok ? "0 or " : "",
                       lo, hi);
    c.*m = static_cast<uint32_t>(n);
    return okStatus();
  };
  k.get = [m](const Config& c) { return json(c.*m); };
  return k;
}

ConfigKey cidrKey(std::string name, std::string desc, std::optional<IpPrefix> Config::*m,
                  IpFamily family) {
  ConfigKey k;
  k.name = std::move(name);
  k.type = "cidr";
  k.description = std::move(desc);
  k.set = [m, family](Config& c, std::string_view v) -> Status {
    if (v == "auto") {
      c.*m = std::nullopt;
      return okStatus();
    }
    CILIUM_ASSIGN_OR_RETURN(IpPrefix p, IpPrefix::parse(v));
    if (p.family() != family)
      return makeError(ErrorCode::kInvalidArgument, "'{}' is not an {} CIDR", v,
                       family == IpFamily::kV4 ? "IPv4" : "IPv6");
    // Network, router (and broadcast) must leave at least one endpoint address; IPAM counts
    // host bits in 64 bits.
    int max_len = family == IpFamily::kV4 ? 30 : 126;
    if (p.len() > max_len)
      return makeError(ErrorCode::kInvalidArgument,
                       "/{} leaves no address for endpoints (at most /{})", p.len(), max_len);
    if (family == IpFamily::kV6 && p.len() < 64)
      return makeError(ErrorCode::kInvalidArgument, "/{} is too large for a node (at least /64)",
                       p.len());
    c.*m = p;
    return okStatus();
  };
  k.get = [m](const Config& c) { return c.*m ? json((c.*m)->toString()) : json("auto"); };
  return k;
}

std::vector<ConfigKey> buildKeys() {
  std::vector<ConfigKey> keys;
  auto add = [&](ConfigKey k, bool is_mutable = false, std::vector<std::string> aliases = {}) {
    k.mutable_at_runtime = is_mutable;
    k.aliases = std::move(aliases);
    keys.push_back(std::move(k));
  };
  // Paths
  add(pathKey(
      "state-dir",
      "Directory for runtime state; what must survive a restart is kept in <state-dir>/state",
      &Config::state_dir));
  add(pathKey("bpf-root", "Path to the BPF filesystem (mounted there if it is not)",
              &Config::bpf_root));
  add(pathKey(
      "bpf-pin-dir",
      "Directory under bpf-root where maps and links are pinned (default <bpf-root>/cilium)",
      &Config::bpf_pin_dir, true));
  add(pathKey("cgroup-root", "Path to the cgroup2 filesystem for socket-level hooks",
              &Config::cgroup_root));
  add(pathKey("socket-path", "Unix socket the REST API is served on", &Config::socket_path));
  // Node
  add(stringKey("node-name", "Name of this node (default $K8S_NODE_NAME, else the hostname)",
                &Config::node_name, [](std::string_view v) -> Status {
                  if (v.size() > 253) return invalid("longer than 253 characters");
                  if (v.find_first_of(" /") != std::string_view::npos)
                    return invalid("contains a space or '/'");
                  return okStatus();
                }));
  add(stringKey("cluster-name", "Name of the cluster", &Config::cluster_name,
                [](std::string_view v) -> Status {
                  if (v.empty() || v.size() > 32) return invalid("must be 1..32 characters");
                  for (char c : v)
                    if (!(std::islower(static_cast<unsigned char>(c)) ||
                          std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
                      return invalid("may contain only lower-case letters, digits and '-'");
                  return okStatus();
                }));
  add(uintKey("cluster-id", "Unique identifier of the cluster (0..255)", &Config::cluster_id, 0,
              255));
  add(boolKey("enable-ipv4", "Enable IPv4", &Config::enable_ipv4));
  add(boolKey("enable-ipv6", "Enable IPv6", &Config::enable_ipv6));
  add(cidrKey(
      "ipv4-range",
      "The node's IPv4 pod CIDR, e.g. 10.200.0.0/24 (\"auto\": learned from the cluster later)",
      &Config::ipv4_range, IpFamily::kV4));
  add(cidrKey("ipv6-range",
              "The node's IPv6 pod CIDR, e.g. fd00:10:200::/112 (\"auto\": learned later)",
              &Config::ipv6_range, IpFamily::kV6));
  add(stringKey("devices",
                "Native devices for NodePort, externalIPs and LoadBalancer, comma-separated "
                "(\"\": none)",
                &Config::devices, [](std::string_view v) -> Status {
                  size_t start = 0;
                  while (start <= v.size()) {
                    size_t end = v.find(',', start);
                    if (end == std::string_view::npos) end = v.size();
                    std::string_view d = v.substr(start, end - start);
                    if (d.size() > 15) return invalid("a device name is longer than 15 characters");
                    if (d.find_first_of(" /:") != std::string_view::npos)
                      return invalid("a device name contains a space, '/' or ':'");
                    start = end + 1;
                  }
                  return okStatus();
                }));
  add(uintKey("mtu", "MTU of pod devices (0: auto-detect)", &Config::mtu, 576, 65535, true));
  add(boolKey("restore", "Restore state (IPAM allocations, later endpoints) from the previous run",
              &Config::restore));
  // Logging
  add(enumKey("log-level", "Log level", &Config::log_level,
              {"trace", "debug", "info", "warn", "warning", "error"}),
      true);
  add(boolKey("debug", "Debug logging (overrides log-level)", &Config::debug), true, {"Debug"});
  // Datapath sizes
  add(uintKey("bpf-ct-global-tcp-max", "Maximum entries in the TCP conntrack map",
              &Config::bpf_ct_global_tcp_max, 1 << 10, 1 << 24));
  add(uintKey("bpf-ct-global-any-max", "Maximum entries in the non-TCP conntrack map",
              &Config::bpf_ct_global_any_max, 1 << 10, 1 << 24));
  add(uintKey("bpf-policy-map-max", "Maximum entries in each endpoint's policy map",
              &Config::bpf_policy_map_max, 1 << 10, 1 << 16));
  add(uintKey("bpf-lb-map-max", "Maximum entries in the load-balancing maps",
              &Config::bpf_lb_map_max, 1 << 10, 1 << 24));
  add(uintKey("bpf-nat-global-max", "Maximum entries in the NAT map", &Config::bpf_nat_global_max,
              1 << 10, 1 << 24));
  add(stringKey("ipv4-service-loopback-address",
                "Source address of a pod's packets to itself through a Service (hairpin)",
                &Config::ipv4_service_loopback_address, [](std::string_view v) -> Status {
                  auto a = IpAddr::parse(v);
                  if (!a.ok() || !a->isV4() || a->v4NetworkOrder() == 0)
                    return invalid("is not an IPv4 unicast address");
                  return okStatus();
                }));
  add(enumKey("bpf-lb-acceleration",
              "XDP acceleration of NodePort to remote backends on the devices: native (a device "
              "without driver support fails the start), best-effort (such a device gets tc only) "
              "or disabled",
              &Config::bpf_lb_acceleration, {"disabled", "native", "best-effort"}));
  add(enumKey("bpf-lb-algorithm",
              "How a Service's backend is picked for a new connection: random, or maglev "
              "(consistent hashing of the client)",
              &Config::bpf_lb_algorithm, {"random", "maglev"}));
  add(boolKey("bpf-lb-algorithm-annotation",
              "Let a Service's service.cilium.io/lb-algorithm annotation (random, maglev) "
              "override bpf-lb-algorithm",
              &Config::bpf_lb_algorithm_annotation));
  {
    ConfigKey k = uintKey("bpf-lb-maglev-table-size",
                          "Entries in each Service's Maglev table (a prime: 251, 509, 1021, 2039, "
                          "4093, 8191, 16381, 32749, 65521)",
                          &Config::bpf_lb_maglev_table_size, 251, 65521);
    auto set = k.set;
    k.set = [set](Config& c, std::string_view v) -> Status {
      CILIUM_RETURN_IF_ERROR(set(c, v));
      for (uint32_t p : {251u, 509u, 1021u, 2039u, 4093u, 8191u, 16381u, 32749u, 65521u})
        if (c.bpf_lb_maglev_table_size == p) return okStatus();
      return invalid("is not one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521");
    };
    add(std::move(k));
  }
  add(enumKey("monitor-aggregation", "How much the datapath aggregates trace events",
              &Config::monitor_aggregation, {"none", "low", "medium", "maximum"}));
  // Policy
  add(enumKey("enable-policy", "Policy enforcement mode", &Config::enable_policy,
              {"default", "always", "never"}));
  // Observability
  add(stringKey("prometheus-serve-addr", "host:port to serve Prometheus metrics on (\"\": off)",
                &Config::prometheus_serve_addr, checkListenAddress));
  add(boolKey("enable-hubble", "Enable the Hubble server", &Config::enable_hubble));
  add(stringKey("hubble-listen-address",
                "Additional host:port for the Hubble server (\"\": socket only)",
                &Config::hubble_listen_address, checkListenAddress));
  add(pathKey("hubble-socket-path", "Unix socket of the Hubble server",
              &Config::hubble_socket_path));
  add(uintKey("hubble-event-buffer-capacity", "Number of flows kept in Hubble's ring buffer",
              &Config::hubble_event_buffer_capacity, 1, 1 << 20));
  add(uintKey("hubble-event-queue-size",
              "Datapath events waiting for Hubble's decoder before new ones are lost (0: auto)",
              &Config::hubble_event_queue_size, 0, 1 << 20));
  add(stringKey("hubble-metrics-server", "host:port to serve Hubble metrics on (\"\": off)",
                &Config::hubble_metrics_server, checkListenAddress));
  // CNI
  add(pathKey("write-cni-conf-when-ready",
              "Write the CNI configuration to this path once the agent is ready (\"\": do not)",
              &Config::write_cni_conf_when_ready, true));
  add(boolKey("cni-exclusive", "Rename other CNI configurations in that directory to *.cilium_bak",
              &Config::cni_exclusive));
  add(pathKey("cni-log-file", "Log file of cilium-cni, written into its configuration",
              &Config::cni_log_file));
  // Kubernetes
  add(stringKey("k8s-api-server", "Kubernetes API server URL", &Config::k8s_api_server,
                [](std::string_view v) -> Status {
                  if (v.empty() || v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0)
                    return okStatus();
                  return invalid("must start with http:// or https://");
                }));
  add(pathKey("k8s-kubeconfig-path", "Path of a kubeconfig file", &Config::k8s_kubeconfig_path,
              true));
  add(uintKey("k8s-sync-timeout",
              "Seconds to wait for the first full state from Kubernetes before failing to start",
              &Config::k8s_sync_timeout, 1, 3600));
  add(enumKey("identity-allocation-mode",
              "Where identities live: local (this node) or crd (CiliumIdentity objects)",
              &Config::identity_allocation_mode, {"local", "crd"}));
  add(pathKey("manifests-dir",
              "Standalone mode: read cluster state from this directory of Kubernetes YAML instead "
              "of the API server (\"\": off)",
              &Config::manifests_dir, true));
  return keys;
}

struct Setting {
  std::string key;
  std::string value;
  Source source;
  std::string origin;  // flag text, file path, directory path
};

std::string describe(const Setting& s) {
  switch (s.source) {
    case Source::kFlag: return fmt::format("--{}={} (flag)", s.key, s.value);
    case Source::kConfigFile:
      return fmt::format("{}={} (config file {})", s.key, s.value, s.origin);
    case Source::kConfigDir: return fmt::format("{}={} (config dir {})", s.key, s.value, s.origin);
    case Source::kApi: return fmt::format("{}={} (PATCH /config)", s.key, s.value);
    case Source::kDefault: return fmt::format("{}={} (default)", s.key, s.value);
  }
  return s.key;
}

Status applySetting(Config& cfg, const Setting& s) {
  const ConfigKey* key = findConfigKey(s.key);
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

Result<std::vector<Setting>> parseConfigYaml(std::string_view text, const std::string& path) {
  std::vector<Setting> out;
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return makeError(ErrorCode::kInvalidArgument, "config file {}: line {}, column {}: {}", path,
                     e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (doc.IsNull()) return out;
  if (!doc.IsMap())
    return makeError(ErrorCode::kInvalidArgument,
                     "config file {}: expected a mapping of key: value", path);
  for (const auto& kv : doc) {
    if (!kv.first.IsScalar())
      return makeError(ErrorCode::kInvalidArgument, "config file {}: line {}: keys must be scalars",
                       path, kv.first.Mark().line + 1);
    std::string key = kv.first.Scalar();
    if (kv.second.IsNull()) {
      out.push_back({key, "", Source::kConfigFile, path});
      continue;
    }
    if (!kv.second.IsScalar())
      return makeError(ErrorCode::kInvalidArgument,
                       "{} (config file {}, line {}): value must be a scalar", key, path,
                       kv.second.Mark().line + 1);
    out.push_back({key, kv.second.Scalar(), Source::kConfigFile, path});
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

}  // namespace

std::string Config::stateFile(std::string_view name) const {
  return persistentStateDir() + "/" + std::string(name);
}

std::vector<std::string> Config::devicesList() const {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= devices.size()) {
    size_t end = devices.find(',', start);
    if (end == std::string::npos) end = devices.size();
    if (end > start) out.push_back(devices.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string Config::effectiveLogLevel() const {
  if (debug) return "debug";
  if (log_level == "warning") return "warn";
  return log_level;
}

std::string_view sourceName(Source s) {
  switch (s) {
    case Source::kDefault: return "default";
    case Source::kConfigFile: return "config file";
    case Source::kConfigDir: return "config dir";
    case Source::kFlag: return "flag";
    case Source::kApi: return "api";
  }
  return "";
}

const std::vector<ConfigKey>& configKeys() {
  static const std::vector<ConfigKey>* keys = new std::vector<ConfigKey>(buildKeys());
  return *keys;
}

const ConfigKey* findConfigKey(std::string_view name) {
  for (const auto& k : configKeys()) {
    if (k.name == name) return &k;
    for (const auto& a : k.aliases)
      if (a == name) return &k;
  }
  return nullptr;
}

std::string configValueText(const ConfigKey& key, const Config& cfg) {
  json v = key.get(cfg);
  return v.is_string() ? v.get<std::string>() : v.dump();
}

Status validateConfig(const Config& cfg) {
  if (!cfg.enable_ipv4 && !cfg.enable_ipv6)
    return invalid("enable-ipv4 and enable-ipv6 are both false: at least one family is needed");
  auto under = [](const std::string& path, const std::string& root) {
    return path == root || path.rfind(root.back() == '/' ? root : root + "/", 0) == 0;
  };
  if (!cfg.bpf_pin_dir.empty() && !under(cfg.bpf_pin_dir, cfg.bpf_root))
    return makeError(ErrorCode::kInvalidArgument, "bpf-pin-dir {} is not inside bpf-root {}",
                     cfg.bpf_pin_dir, cfg.bpf_root);
  // sockaddr_un holds 108 bytes including the terminator.
  for (const auto& [name, path] :
       {std::pair<std::string, std::string>{"socket-path", cfg.socket_path},
        {"hubble-socket-path", cfg.hubble_socket_path}})
    if (path.size() > 107)
      return makeError(ErrorCode::kInvalidArgument,
                       "{} {} is {} bytes long; Unix socket paths allow at most 107", name, path,
                       path.size());
  if (cfg.node_name.empty()) return invalid("node-name is empty and no hostname was found");
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
  std::vector<Setting> flags;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "-D") {
      flags.push_back({"debug", "true", Source::kFlag, a});
      continue;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2)
      return makeError(ErrorCode::kInvalidArgument,
                       "unexpected argument '{}' (options look like --key=value)", a);
    std::string body = a.substr(2);
    std::string key = body;
    std::optional<std::string> value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      key = body.substr(0, eq);
      value = body.substr(eq + 1);
    }
    bool is_file = key == "config-file" || key == "config";
    if (is_file || key == "config-dir") {
      if (!value) {
        if (i + 1 >= args.size())
          return makeError(ErrorCode::kInvalidArgument, "--{} (flag): needs a value", key);
        value = args[++i];
      }
      (is_file ? out.config_file : out.config_dir) = *value;
      continue;
    }
    const ConfigKey* k = findConfigKey(key);
    if (k == nullptr)
      return makeError(ErrorCode::kInvalidArgument, "--{} (flag): unknown option", key);
    if (!value) {
      // Booleans stand alone (--debug); other options take the next argument (--state-dir /x).
      if (k->type == "bool") {
        value = "true";
      } else {
        if (i + 1 >= args.size())
          return makeError(ErrorCode::kInvalidArgument, "--{} (flag): needs a value", key);
        value = args[++i];
      }
    }
    flags.push_back({key, *value, Source::kFlag, a});
  }

  std::vector<Setting> settings;
  if (!out.config_file.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto file, readConfigFile(out.config_file));
    settings.insert(settings.end(), file.begin(), file.end());
  }
  if (!out.config_dir.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto dir, readConfigDir(out.config_dir));
    settings.insert(settings.end(), dir.begin(), dir.end());
  }
  settings.insert(settings.end(), flags.begin(), flags.end());

  for (const auto& s : settings) {
    CILIUM_RETURN_IF_ERROR(applySetting(out.config, s));
    out.sources[findConfigKey(s.key)->name] = s.source;
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

std::string usage() {
  std::string out =
      "Usage: cilium-agent [options]\n\n"
      "Runs the node agent. Options come from, lowest precedence first: defaults,\n"
      "--config-file <yaml> (key: value), --config-dir <dir> (one file per key, as a\n"
      "Kubernetes ConfigMap mounts), and flags (--key=value or --key value).\n\n"
      "  --config-file <path>   YAML file of key: value (alias --config)\n"
      "  --config-dir <path>    directory with one file per key\n"
      "  -D                     same as --debug\n"
      "  -h, --help             this text\n"
      "  --version              print the version\n\n";
  Config defaults;
  for (const auto& k : configKeys()) {
    std::string def = configValueText(k, defaults);
    out += fmt::format("  --{}={}{}\n      {}{}\n", k.name, k.type,
                       k.mutable_at_runtime ? " (mutable)" : "", k.description,
                       def.empty() ? "" : " [default " + def + "]");
  }
  return out;
}

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
