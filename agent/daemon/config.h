// The agent's configuration: the composition of every module's keys (each module declares its
// own, config::Registry in agent/config/config.h), and loading from defaults, a YAML file, a
// ConfigMap-style directory, the environment and flags.
//
// Precedence, lowest to highest: defaults < --config-file < --config-dir < CILIUM_<KEY>
// environment variables < flags. Every value from every source is validated, including values
// a higher source overrides; errors name the key, the value and the source. As Cilium's agent:
// an unknown flag is an error, while a key of the file or the directory (a cilium-config
// ConfigMap written for Cilium) that this agent does not implement is ignored and listed
// (DaemonConfig::ignored_options), unless it is one of Cilium's keys whose value changes what
// the agent must do (unhonouredKeys(): `enable-ipsec: "true"`, `policy-audit-mode: "true"`...),
// which fails as an invalid value does:
//   "--ipv4-range=10.0.0.0/33 (flag): prefix length 33 is not 0..32"
//   "ipv4-range=10.0.0.0/33 (config dir /etc/cilium): prefix length 33 is not 0..32"
// At run time, PATCH /config changes mutable keys through ConfigStore; every other key is fixed
// at start. Pure: no syscalls beyond reading the config file and directory.
// docs/configuration.md lists every key (tests/agent/daemon/config_doc_test.cc keeps it true).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/component/component.h"
#include "agent/config/config.h"
#include "agent/datapath/map_config.h"
#include "agent/health/config.h"
#include "agent/hubble/config.h"
#include "agent/k8s/config.h"
#include "agent/kvstore/config.h"
#include "agent/metrics/config.h"
#include "agent/policy/config.h"
#include "agent/proxy/config.h"
#include "agent/service/config.h"

namespace cilium::daemon {

// The daemon's own keys: address families and pod CIDRs, MTU, restore, logging, CNI.
struct DaemonConfig {
  bool enable_ipv4 = true;
  bool enable_ipv6 = false;
  std::optional<IpPrefix> ipv4_range;  // the node's pod CIDR; nullopt = "auto" (not known yet)
  std::optional<IpPrefix> ipv6_range;
  // cluster-pool | kubernetes: where an "auto" pod CIDR comes from (with the API server). A
  // given ipv4-range is the node's fixed range in every mode.
  std::string ipam = "cluster-pool";
  uint32_t mtu = 0;  // the network under the pods; 0 = 1500
  bool restore = true;
  // Logging
  std::string log_level = "info";
  bool debug = false;
  // CNI
  std::string write_cni_conf_when_ready;  // "" = do not write
  bool cni_exclusive = false;
  std::string cni_log_file = "/var/run/cilium/cilium-cni.log";
  // GET /healthz over plain HTTP on 127.0.0.1 (the DaemonSet's probes); 0 = off.
  uint32_t agent_health_port = 9879;

  // Not a key: what --config-file and --config-dir set that this agent does not implement
  // (key -> value as written), listed by GET /config (status.ignoredOptions) and cilium-dbg.
  std::map<std::string, std::string> ignored_options;

  // The spdlog level in force: "debug" when debug is set, else log-level.
  std::string effectiveLogLevel() const;
};
const config::Registry<DaemonConfig>& daemonConfigKeys();

// Every key of the agent: one part per module that declares keys. Field names are unique across
// the parts, so `cfg.enable_hubble` reads Hubble's part.
struct Config : component::NodeConfig,
                DaemonConfig,
                datapath::MapConfig,
                service::Config,
                policy::EnforcementConfig,
                proxy::Config,
                metrics::Config,
                hubble::Config,
                k8s::SourceConfig,
                kvstore::Config,
                health::Config {};

// Copies the part of `cfg` whose type is `part` (Config itself or one of its bases) into `out`;
// aborts for any other type (a component asked for a part the agent does not compose).
void copyConfigPart(const Config& cfg, const std::type_info& part, void* out);

enum class Source { kDefault, kConfigFile, kConfigDir, kEnv, kFlag, kApi };
std::string_view sourceName(Source s);

// One configuration key over the whole. `set` parses and validates text into the config; `get`
// renders the current value as typed JSON (GET /config's daemonConfigurationMap).
using ConfigKey = config::Key<Config>;

// Every module's registry, composed: the node's keys, the daemon's, then each module's.
const config::Registry<Config>& configRegistry();
// Every key, in documentation order.
const std::vector<ConfigKey>& configKeys();
// The environment variable a key is also read from: CILIUM_ + upper-cased name, '-' -> '_'.
std::string envName(std::string_view key);
// By name or alias; nullptr when unknown.
const ConfigKey* findConfigKey(std::string_view name);
// A key's value as text (strings as they are, "auto" for an unset CIDR, numbers and booleans
// as JSON prints them).
std::string configValueText(const ConfigKey& key, const Config& cfg);

// Cilium's keys that this agent does not implement but whose value matters: only `accepted`
// (what this agent does anyway) may be given in the file or the directory; any other value
// fails the start, as a key whose value cannot be honoured must.
struct UnhonouredKey {
  std::string name;
  std::vector<std::string> accepted;  // booleans as "true"/"false" (any boolean spelling matches)
  std::string why;                    // "IPsec encryption is not implemented"
};
const std::vector<UnhonouredKey>& unhonouredKeys();

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

// args excludes argv[0]. Flags (CLI11, agent/common/cli.h): --key=value, --key value, bare
// --key for booleans (= true), -D for --debug, --config-file (alias --config) and --config-dir,
// --help/-h, --version. Environment: CILIUM_<KEY> for every key (envName), K8S_NODE_NAME.
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
