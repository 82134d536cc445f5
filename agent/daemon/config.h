// The agent's configuration: typed values, the table of keys (Cilium's names where Cilium has the
// option), and loading from defaults, a YAML file, a ConfigMap-style directory and flags.
//
// Precedence, lowest to highest: defaults < --config-file < --config-dir < flags. Every value
// from every source is validated, including values a higher source overrides, and unknown keys
// are errors everywhere; errors name the key, the value and the source:
//   "--ipv4-range=10.0.0.0/33 (flag): prefix length 33 is not 0..32"
//   "ipv4-range=10.0.0.0/33 (config dir /etc/cilium): prefix length 33 is not 0..32"
// At run time, PATCH /config changes mutable keys through ConfigStore; every other key is fixed
// at start. Pure: no syscalls beyond reading the config file and directory.
// docs/configuration.md lists every key.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::daemon {

struct Config {
  // Paths
  std::string state_dir =
      "/var/run/cilium";  // runtime state; persistent state in <state-dir>/state
  std::string bpf_root = "/sys/fs/bpf";
  std::string bpf_pin_dir;  // empty in the table = <bpf-root>/cilium (resolved by loadConfig)
  std::string cgroup_root = "/run/cilium/cgroupv2";
  std::string socket_path = "/var/run/cilium/cilium.sock";
  // Node
  std::string node_name;  // empty in the table = $K8S_NODE_NAME, else the hostname
  std::string cluster_name = "default";
  uint32_t cluster_id = 0;
  bool enable_ipv4 = true;
  bool enable_ipv6 = false;
  std::optional<IpPrefix> ipv4_range;  // the node's pod CIDR; nullopt = "auto" (not known yet)
  std::optional<IpPrefix> ipv6_range;
  uint32_t mtu = 0;  // 0 = auto
  // Native devices NodePort / externalIPs / LoadBalancer are served on, comma-separated
  // ("" = none); see devicesList().
  std::string devices;
  bool restore = true;
  // Logging
  std::string log_level = "info";
  bool debug = false;
  // Datapath sizes
  uint32_t bpf_ct_global_tcp_max = 524288;
  uint32_t bpf_ct_global_any_max = 262144;
  uint32_t bpf_policy_map_max = 16384;
  uint32_t bpf_lb_map_max = 65536;
  uint32_t bpf_nat_global_max = 524288;
  // Service load balancing
  std::string bpf_lb_algorithm = "random";   // random | maglev
  bool bpf_lb_algorithm_annotation = false;  // read service.cilium.io/lb-algorithm
  uint32_t bpf_lb_maglev_table_size = 16381;
  // Source of a pod's packets to itself through a Service (hairpin, docs/services.md).
  std::string ipv4_service_loopback_address = "169.254.42.1";
  std::string bpf_lb_acceleration = "disabled";  // native | best-effort | disabled: XDP
  std::string monitor_aggregation = "medium";
  // Policy
  std::string enable_policy = "default";  // default | always | never
  // Observability
  std::string prometheus_serve_addr;  // "" = off
  bool enable_hubble = false;
  std::string hubble_listen_address;  // "" = Unix socket only
  std::string hubble_socket_path = "/var/run/cilium/hubble.sock";
  uint32_t hubble_event_buffer_capacity = 4095;  // flows kept in Hubble's ring
  uint32_t hubble_event_queue_size = 0;          // events waiting for the decoder; 0 = auto
  std::string hubble_metrics_server;             // "" = off; Cilium's Helm default ":9965"
  // CNI
  std::string write_cni_conf_when_ready;  // "" = do not write
  bool cni_exclusive = false;
  std::string cni_log_file = "/var/run/cilium/cilium-cni.log";
  // Kubernetes
  std::string k8s_api_server;
  std::string k8s_kubeconfig_path;
  uint32_t k8s_sync_timeout = 180;                 // seconds
  std::string identity_allocation_mode = "local";  // local | crd
  std::string manifests_dir;                       // standalone source; "" = off

  // <state-dir>/state/<name>: where modules keep what must survive a restart.
  std::string stateFile(std::string_view name) const;
  std::string persistentStateDir() const { return state_dir + "/state"; }
  // `devices` split on commas, empty items dropped.
  std::vector<std::string> devicesList() const;
  // The spdlog level in force: "debug" when debug is set, else log-level.
  std::string effectiveLogLevel() const;
};

enum class Source { kDefault, kConfigFile, kConfigDir, kFlag, kApi };
std::string_view sourceName(Source s);

// One configuration key. `set` parses and validates text into the config; `get` renders the
// current value as typed JSON (GET /config's daemonConfigurationMap).
struct ConfigKey {
  std::string name;
  std::string type;  // "string", "path", "bool", "uint", "cidr", or "a|b|c"
  std::string description;
  bool mutable_at_runtime = false;
  std::vector<std::string> aliases;  // other accepted names (Cilium's option names, e.g. "Debug")
  std::function<Status(Config&, std::string_view)> set;
  std::function<nlohmann::json(const Config&)> get;
};

// Every key, in documentation order.
const std::vector<ConfigKey>& configKeys();
// By name or alias; nullptr when unknown.
const ConfigKey* findConfigKey(std::string_view name);
// A key's value as text (strings as they are, "auto" for an unset CIDR, numbers and booleans
// as JSON prints them).
std::string configValueText(const ConfigKey& key, const Config& cfg);

// Cross-key checks run after every source is applied (and after each PATCH).
Status validateConfig(const Config& cfg);

struct Environment {
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::function<std::string()> hostname;
  static Environment system();
};

struct LoadedConfig {
  Config config;
  std::map<std::string, Source> sources;  // keys set by a source other than the defaults
  std::string config_file;                // as given, or empty
  std::string config_dir;
  bool help = false;     // --help / -h: print usage and exit
  bool version = false;  // --version
};

// args excludes argv[0]. Flags: --key=value, --key value, bare --key for booleans (= true),
// -D for --debug, --config-file (alias --config) and --config-dir, --help/-h, --version.
Result<LoadedConfig> loadConfig(const std::vector<std::string>& args, const Environment& env);

// What --config-file does with a file's text: the defaults with the file's keys applied (no
// environment, no cross-key validation). `origin` names the file in errors. For tests and fuzzing.
Result<Config> configFromYaml(std::string_view text, const std::string& origin);

// The text `cilium-agent --help` prints.
std::string usage();

// The configuration in force while the agent runs. Thread-safe.
class ConfigStore {
 public:
  explicit ConfigStore(Config initial) : cfg_(std::move(initial)) {}

  Config snapshot() const;

  // Applies key -> value changes all or nothing, as PATCH /config does: unknown keys and
  // invalid values are kInvalidArgument naming the key; an immutable key is accepted only with
  // its current value ("state-dir is immutable: ..." otherwise). Listeners run after the change,
  // outside the lock, when a value actually changed.
  Status apply(const std::map<std::string, std::string>& changes);

  using Listener = std::function<void(const Config& before, const Config& after)>;
  void subscribe(Listener listener);

  std::map<std::string, std::string> mutableOptions() const;    // key -> text
  std::map<std::string, std::string> immutableOptions() const;  // key -> text
  std::map<std::string, nlohmann::json> allOptions() const;     // key -> typed value

 private:
  mutable std::mutex mu_;
  Config cfg_;
  std::vector<Listener> listeners_;
};

}  // namespace cilium::daemon
