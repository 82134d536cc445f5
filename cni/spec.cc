// The CNI specification's data formats: environment, network configuration, results, errors.
#include "cni/spec.h"

#include <algorithm>
#include <charconv>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace cilium::cni {
namespace {

// SPEC.md: container ids and network names share this pattern.
bool validIdentifier(std::string_view s) {
  static const std::regex re("^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$");
  return std::regex_match(s.begin(), s.end(), re);
}

bool validIfname(std::string_view s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
  });
}

std::optional<Command> parseCommand(std::string_view s) {
  if (s == "ADD") return Command::kAdd;
  if (s == "DEL") return Command::kDel;
  if (s == "CHECK") return Command::kCheck;
  if (s == "GC") return Command::kGc;
  if (s == "STATUS") return Command::kStatus;
  if (s == "VERSION") return Command::kVersion;
  return std::nullopt;
}

struct Version {
  int major = 0, minor = 0, patch = 0;
};

Version parseVersion(std::string_view s) {
  Version v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  for (int* p : parts) {
    auto dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), *p);
    if (ec != std::errc() || ptr != part.data() + part.size()) return {};
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return v;
}

}  // namespace

std::string_view commandName(Command c) {
  switch (c) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kGc: return "GC";
    case Command::kStatus: return "STATUS";
    case Command::kVersion: return "VERSION";
  }
  return "?";
}

std::string CniError::toJson(std::string_view cni_version) const {
  nlohmann::json j = {{"cniVersion", cni_version}, {"code", static_cast<int>(code)}, {"msg", msg}};
  if (!details.empty()) j["details"] = details;
  // Messages quote the runtime's input (environment, a JSON parser's view of stdin), which need
  // not be UTF-8: dump() would throw and the plugin die without an answer.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Environment::arg(std::string_view key) const {
  auto it = args.find(std::string(key));
  return it == args.end() ? std::string() : it->second;
}

std::optional<Environment> parseEnvironment(const Getenv& getenv, CniError& err) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  std::vector<std::string> problems;
  Environment env;

  auto command = get("CNI_COMMAND");
  if (!command || command->empty()) {
    err = {Code::kInvalidEnvironment, "required environment variables missing: CNI_COMMAND", ""};
    return std::nullopt;
  }
  auto cmd = parseCommand(*command);
  if (!cmd) {
    err = {Code::kInvalidEnvironment, fmt::format("unknown CNI_COMMAND: {}", *command), ""};
    return std::nullopt;
  }
  env.command = *cmd;

  // Which variables each command needs (the skel package's table).
  const bool add_check = env.command == Command::kAdd || env.command == Command::kCheck;
  const bool del = env.command == Command::kDel;
  const bool needs_container = add_check || del;
  const bool needs_path = env.command != Command::kVersion;

  std::vector<std::string> missing;
  if (needs_container) {
    auto v = get("CNI_CONTAINERID");
    if (!v || v->empty()) {
      missing.push_back("CNI_CONTAINERID");
    } else if (!validIdentifier(*v)) {
      problems.push_back(
          fmt::format("CNI_CONTAINERID {:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", *v));
    } else {
      env.container_id = *v;
    }
    auto ifname = get("CNI_IFNAME");
    if (!ifname || ifname->empty()) {
      missing.push_back("CNI_IFNAME");
    } else if (!validIfname(*ifname)) {
      problems.push_back(fmt::format(
          "CNI_IFNAME {:?} must be 1-15 characters, not . or .., without / : or spaces", *ifname));
    } else {
      env.ifname = *ifname;
    }
    auto netns = get("CNI_NETNS");
    if (add_check && (!netns || netns->empty())) missing.push_back("CNI_NETNS");
    if (netns) env.netns = *netns;
  }
  if (needs_path) {
    auto v = get("CNI_PATH");
    if (!v || v->empty()) {
      missing.push_back("CNI_PATH");
    } else {
      env.path = *v;
    }
  }
  if (auto args = get("CNI_ARGS"); args && !args->empty()) {
    std::string_view rest = *args;
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      if (pair.empty()) continue;
      auto eq = pair.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        problems.push_back(fmt::format("CNI_ARGS: {:?} is not KEY=VALUE", pair));
        continue;
      }
      env.args[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
    }
  }
  if (!missing.empty()) {
    problems.insert(problems.begin(), fmt::format("required environment variables missing: {}",
                                                  fmt::join(missing, ", ")));
  }
  if (!problems.empty()) {
    err = {Code::kInvalidEnvironment, fmt::format("{}", fmt::join(problems, "; ")), ""};
    return std::nullopt;
  }
  return env;
}

const std::vector<std::string>& supportedVersions() {
  static const std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return versions;
}

int compareVersions(std::string_view a, std::string_view b) {
  Version x = parseVersion(a), y = parseVersion(b);
  if (x.major != y.major) return x.major < y.major ? -1 : 1;
  if (x.minor != y.minor) return x.minor < y.minor ? -1 : 1;
  if (x.patch != y.patch) return x.patch < y.patch ? -1 : 1;
  return 0;
}

bool versionSupported(std::string_view v) {
  const auto& all = supportedVersions();
  return std::find(all.begin(), all.end(), v) != all.end();
}

std::optional<NetConf> parseNetConf(std::string_view stdin_text, CniError& err) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(stdin_text);
  } catch (const nlohmann::json::exception& e) {
    err = {Code::kDecodeFailure, "network configuration on stdin is not valid JSON", e.what()};
    return std::nullopt;
  }
  if (!j.is_object()) {
    err = {Code::kDecodeFailure, "network configuration on stdin must be a JSON object", ""};
    return std::nullopt;
  }
  NetConf conf;
  conf.raw = j;
  auto string_field = [&](const char* key, std::string& out, bool required) -> bool {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) {
        err = {Code::kInvalidNetworkConfig,
               fmt::format("network configuration: {} is required", key), ""};
        return false;
      }
      return true;
    }
    if (!it->is_string()) {
      err = {Code::kDecodeFailure, fmt::format("network configuration: {} must be a string", key),
             ""};
      return false;
    }
    out = it->get<std::string>();
    return true;
  };
  if (!string_field("cniVersion", conf.cni_version, false)) return std::nullopt;
  if (conf.cni_version.empty()) conf.cni_version = "0.1.0";
  if (!string_field("name", conf.name, true) || !string_field("type", conf.type, true) ||
      !string_field("log-file", conf.log_file, false) ||
      !string_field("socket-path", conf.socket_path, false)) {
    return std::nullopt;
  }
  if (!validIdentifier(conf.name)) {
    err = {Code::kInvalidNetworkConfig,
           fmt::format("network configuration: name {:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
                       conf.name),
           ""};
    return std::nullopt;
  }
  if (auto it = j.find("mtu"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 576 || it->get<int64_t>() > 65535) {
      err = {Code::kInvalidNetworkConfig,
             "network configuration: mtu must be an integer from 576 to 65535", ""};
      return std::nullopt;
    }
    conf.mtu = it->get<int>();
  }
  if (auto it = j.find("prevResult"); it != j.end()) conf.prev_result = *it;
  if (auto it = j.find("runtimeConfig"); it != j.end()) conf.runtime_config = *it;
  return conf;
}

nlohmann::json AddResult::toJson(std::string_view cni_version) const {
  // 0.3.x and 0.4.0 carry a "version" per IP; 1.0.0 dropped it. 1.1.0 added interface mtu.
  const bool legacy = compareVersions(cni_version, "1.0.0") < 0;
  const bool has_mtu = compareVersions(cni_version, "1.1.0") >= 0;
  nlohmann::json j = {{"cniVersion", cni_version}};
  if (!interfaces.empty()) {
    auto& arr = j["interfaces"] = nlohmann::json::array();
    for (const auto& i : interfaces) {
      nlohmann::json o = {{"name", i.name}};
      if (!i.mac.empty()) o["mac"] = i.mac;
      if (has_mtu && i.mtu > 0) o["mtu"] = i.mtu;
      if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
      arr.push_back(std::move(o));
    }
  }
  auto& ips_arr = j["ips"] = nlohmann::json::array();
  for (const auto& ip : ips) {
    nlohmann::json o = {{"address", ip.address}};
    if (legacy) o["version"] = ip.ipv6 ? "6" : "4";
    if (!ip.gateway.empty()) o["gateway"] = ip.gateway;
    if (ip.interface) o["interface"] = *ip.interface;
    ips_arr.push_back(std::move(o));
  }
  auto& routes_arr = j["routes"] = nlohmann::json::array();
  for (const auto& r : routes) {
    nlohmann::json o = {{"dst", r.dst}};
    if (!r.gw.empty()) o["gw"] = r.gw;
    routes_arr.push_back(std::move(o));
  }
  j["dns"] = nlohmann::json::object();
  return j;
}

std::optional<AddResult> AddResult::fromJson(const nlohmann::json& j, CniError& err) {
  auto fail = [&](std::string what) {
    err = {Code::kDecodeFailure, fmt::format("prevResult: {}", what), ""};
    return std::nullopt;
  };
  if (!j.is_object()) return fail("must be an object");
  AddResult r;
  auto str = [](const nlohmann::json& o, const char* key) -> std::optional<std::string> {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (auto it = j.find("interfaces"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return fail("interfaces must be an array");
    for (size_t n = 0; n < it->size(); ++n) {
      const auto& o = (*it)[n];
      if (!o.is_object()) return fail(fmt::format("interfaces[{}] must be an object", n));
      Interface i;
      auto name = str(o, "name"), mac = str(o, "mac"), sandbox = str(o, "sandbox");
      if (!name || !mac || !sandbox) return fail(fmt::format("interfaces[{}]: bad field type", n));
      i.name = *name;
      i.mac = *mac;
      i.sandbox = *sandbox;
      if (auto m = o.find("mtu"); m != o.end() && m->is_number_integer()) i.mtu = m->get<int>();
      r.interfaces.push_back(std::move(i));
    }
  }
  if (auto it = j.find("ips"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return fail("ips must be an array");
    for (size_t n = 0; n < it->size(); ++n) {
      const auto& o = (*it)[n];
      if (!o.is_object()) return fail(fmt::format("ips[{}] must be an object", n));
      IpConfig ip;
      auto address = str(o, "address"), gateway = str(o, "gateway");
      if (!address || address->empty()) return fail(fmt::format("ips[{}].address is required", n));
      if (!gateway) return fail(fmt::format("ips[{}].gateway must be a string", n));
      ip.address = *address;
      ip.gateway = *gateway;
      ip.ipv6 = ip.address.find(':') != std::string::npos;
      if (auto i = o.find("interface"); i != o.end() && !i->is_null()) {
        if (!i->is_number_integer())
          return fail(fmt::format("ips[{}].interface must be a number", n));
        ip.interface = i->get<int>();
      }
      r.ips.push_back(std::move(ip));
    }
  }
  if (auto it = j.find("routes"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return fail("routes must be an array");
    for (size_t n = 0; n < it->size(); ++n) {
      const auto& o = (*it)[n];
      if (!o.is_object()) return fail(fmt::format("routes[{}] must be an object", n));
      auto dst = str(o, "dst"), gw = str(o, "gw");
      if (!dst || dst->empty() || !gw) return fail(fmt::format("routes[{}]: bad dst or gw", n));
      r.routes.push_back({*dst, *gw});
    }
  }
  return r;
}

std::string versionJson(std::string_view cni_version) {
  nlohmann::json j = {{"cniVersion", cni_version}, {"supportedVersions", supportedVersions()}};
  return j.dump();
}

}  // namespace cilium::cni
