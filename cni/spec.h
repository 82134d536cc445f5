// The CNI specification as data: the environment a runtime passes, the network configuration on
// stdin, version negotiation, and results and errors encoded in the version the runtime asked for.
// Nothing here touches the system; cni/plugin.h runs the commands.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"

namespace cilium::cni {

// The error codes the specification reserves (SPEC.md, "Error"; 0-99 only with the meaning it
// gives them), and ours from 100. docs/cni.md says which the plugin uses when.
enum class Code : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,  // also: CNI_NETNS does not exist (the container is gone)
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  kNotAvailable = 50,
  kNotAvailableLimited = 51,
  kInternal = 999,
};

// What a plugin prints on stdout when it fails (and exits non-zero).
struct CniError {
  Code code = Code::kInternal;
  std::string msg;
  std::string details;
  std::string toJson(std::string_view cni_version) const;
};

enum class Command { kAdd, kDel, kCheck, kGc, kStatus, kVersion };
std::string_view commandName(Command c);

// The CNI_* variables, validated as the spec requires for the command.
struct Environment {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;  // may be empty on DEL
  std::string ifname;
  std::map<std::string, std::string> args;  // CNI_ARGS
  std::string path;

  // CNI_ARGS values Kubernetes runtimes pass ("" when absent).
  std::string arg(std::string_view key) const;
};

// `getenv` returns nullptr for an unset variable. Errors are kInvalidEnvironment naming every
// missing or malformed variable.
using Getenv = std::function<const char*(const char*)>;
std::optional<Environment> parseEnvironment(const Getenv& getenv, CniError& err);

// Versions this plugin speaks, oldest first.
const std::vector<std::string>& supportedVersions();
// Orders "a.b.c" strings; unparsable versions compare as 0.0.0.
int compareVersions(std::string_view a, std::string_view b);
bool versionSupported(std::string_view v);

// The network configuration on stdin (one plugin's entry of a conflist, as the runtime passes it).
struct NetConf {
  std::string cni_version;  // "0.1.0" when the config has none, as libcni assumes
  std::string name;
  std::string type;
  int mtu = 0;                    // 0: the plugin's default
  std::string log_file;           // "" = the default log file
  std::string socket_path;        // the agent's REST socket; "" = the default
  nlohmann::json prev_result;     // null when absent
  nlohmann::json runtime_config;  // null when absent
  nlohmann::json raw;             // the whole object, for keys like cni.dev/valid-attachments
};

// kDecodeFailure for bad JSON, kInvalidNetworkConfig for a config that is JSON but wrong.
std::optional<NetConf> parseNetConf(std::string_view stdin_text, CniError& err);

// A successful ADD result (SPEC.md "Success"), encoded per version.
struct Interface {
  std::string name;
  std::string mac;
  int mtu = 0;
  std::string sandbox;  // the netns path for interfaces inside the container
};
struct IpConfig {
  std::string address;  // CIDR form, e.g. 10.0.0.5/32
  std::string gateway;
  std::optional<int> interface;  // index into interfaces
  bool ipv6 = false;
};
struct Route {
  std::string dst;
  std::string gw;
};
struct AddResult {
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  nlohmann::json toJson(std::string_view cni_version) const;
  // Reads a prevResult back (any supported version); kDecodeFailure-style errors name the field.
  static std::optional<AddResult> fromJson(const nlohmann::json& j, CniError& err);
};

// The VERSION command's output.
std::string versionJson(std::string_view cni_version);

}  // namespace cilium::cni
