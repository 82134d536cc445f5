// Fuzz target: what a container runtime hands cilium-cni: the CNI_* environment and the network
// configuration on stdin (with its prevResult), through the parsers of cni/spec.h.
//
// Input: environment lines "KEY=VALUE" up to the first empty line, then the stdin text.
// Beyond "never crash": rejections carry the code the specification reserves for them and a
// message, every error prints as JSON, an accepted environment holds what its command needs,
// and an accepted prevResult survives a trip through the result it encodes to.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cni/spec.h"

namespace {

using cilium::cni::AddResult;
using cilium::cni::CniError;
using cilium::cni::Code;
using cilium::cni::Command;

void checkError(const CniError& err, std::initializer_list<Code> allowed) {
  bool known = false;
  for (Code c : allowed) known = known || err.code == c;
  if (!known || err.msg.empty()) std::abort();
  if (!nlohmann::json::accept(err.toJson("1.1.0"))) std::abort();
}

void checkEnvironment(const std::map<std::string, std::string>& vars) {
  CniError err;
  auto env = cilium::cni::parseEnvironment(
      [&](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
      },
      err);
  if (!env) {
    checkError(err, {Code::kInvalidEnvironment});
    return;
  }
  // What the command needs is there (the runtime's contract, checked by the parser).
  bool add_check = env->command == Command::kAdd || env->command == Command::kCheck;
  if (add_check || env->command == Command::kDel) {
    if (env->container_id.empty() || env->ifname.empty() || env->ifname.size() > 15) std::abort();
  }
  if (add_check && env->netns.empty()) std::abort();
  if (env->command != Command::kVersion && env->path.empty()) std::abort();
  for (const auto& [k, v] : env->args)
    if (k.empty() || env->arg(k) != v) std::abort();
}

void checkPrevResult(const nlohmann::json& prev) {
  CniError err;
  auto r = AddResult::fromJson(prev, err);
  if (!r) {
    checkError(err, {Code::kDecodeFailure});
    return;
  }
  // Encoded in the newest version and read back: the same interfaces, addresses and routes.
  auto again = AddResult::fromJson(r->toJson("1.1.0"), err);
  if (!again || again->interfaces.size() != r->interfaces.size() ||
      again->ips.size() != r->ips.size() || again->routes.size() != r->routes.size())
    std::abort();
  for (size_t i = 0; i < r->interfaces.size(); i++) {
    const auto &a = r->interfaces[i], &b = again->interfaces[i];
    if (a.name != b.name || a.mac != b.mac || a.sandbox != b.sandbox ||
        b.mtu != (a.mtu > 0 ? a.mtu : 0))
      std::abort();
  }
  for (size_t i = 0; i < r->ips.size(); i++) {
    const auto &a = r->ips[i], &b = again->ips[i];
    if (a.address != b.address || a.gateway != b.gateway || a.interface != b.interface ||
        a.ipv6 != b.ipv6)
      std::abort();
  }
  for (size_t i = 0; i < r->routes.size(); i++)
    if (r->routes[i].dst != again->routes[i].dst || r->routes[i].gw != again->routes[i].gw)
      std::abort();
  // Every version we speak encodes it.
  for (const auto& v : cilium::cni::supportedVersions()) (void)r->toJson(v).dump();
}

void checkNetConf(std::string_view stdin_text) {
  CniError err;
  auto conf = cilium::cni::parseNetConf(stdin_text, err);
  if (!conf) {
    checkError(err, {Code::kDecodeFailure, Code::kInvalidNetworkConfig});
    return;
  }
  // (An empty "type" is accepted: the runtime has already picked the plugin by it.)
  if (conf->name.empty() || conf->cni_version.empty()) std::abort();
  if (conf->mtu != 0 && (conf->mtu < 576 || conf->mtu > 65535)) std::abort();
  if (!nlohmann::json::accept(cilium::cni::versionJson(conf->cni_version))) std::abort();
  // Version order is antisymmetric, whatever the text.
  for (const auto& v : cilium::cni::supportedVersions()) {
    if (cilium::cni::compareVersions(conf->cni_version, v) !=
        -cilium::cni::compareVersions(v, conf->cni_version))
      std::abort();
  }
  if (!conf->prev_result.is_null()) checkPrevResult(conf->prev_result);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> vars;
  while (!in.empty()) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (line.empty()) break;
    auto eq = line.find('=');
    // The environment cannot hold a NUL; getenv would stop there.
    std::string key(line.substr(0, eq)), value;
    if (eq != std::string_view::npos) value = std::string(line.substr(eq + 1));
    vars[key.substr(0, key.find('\0'))] = value.substr(0, value.find('\0'));
  }
  checkEnvironment(vars);
  checkNetConf(in);
  return 0;
}
