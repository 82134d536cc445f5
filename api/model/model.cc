// JSON helpers and the format checks of the API models.
#include "api/model/model.h"

#include <cctype>
#include <charconv>

#include "agent/common/inet.h"

namespace cilium::api {

std::string_view jsonTypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::binary: return "binary data";
    case Json::value_t::discarded: return "invalid JSON";
  }
  return "unknown";
}

std::string joinPath(const std::string& base, std::string_view key) {
  if (base.empty()) return std::string(key);
  return base + "." + std::string(key);
}

Error typeError(const std::string& path, std::string_view want, const Json& got) {
  if (path.empty())
    return makeError(ErrorCode::kInvalidArgument, "expected {}, got {}", want, jsonTypeName(got));
  return makeError(ErrorCode::kInvalidArgument, "{}: expected {}, got {}", path, want,
                   jsonTypeName(got));
}

Status decodeInteger(const Json& j, const std::string& path, int64_t& out) {
  if (j.is_number_integer()) {
    out = j.get<int64_t>();
    return okStatus();
  }
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      return makeError(ErrorCode::kInvalidArgument, "{}: {} is out of range", path, u);
    out = static_cast<int64_t>(u);
    return okStatus();
  }
  return typeError(path, "an integer", j);
}

Status decodeUnsigned(const Json& j, const std::string& path, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return okStatus();
  }
  if (j.is_number_integer()) {
    int64_t i = j.get<int64_t>();
    if (i < 0) return makeError(ErrorCode::kInvalidArgument, "{}: {} is negative", path, i);
    out = static_cast<uint64_t>(i);
    return okStatus();
  }
  return typeError(path, "an integer", j);
}

Result<Json> parseJson(std::string_view text, std::string_view what) {
  try {
    // Depth is bounded by nlohmann's recursive parser only by the stack; reject absurd nesting
    // before parsing so that a hostile body cannot exhaust it.
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
      if (in_string) {
        if (escaped)
          escaped = false;
        else if (c == '\\')
          escaped = true;
        else if (c == '"')
          in_string = false;
        continue;
      }
      if (c == '"')
        in_string = true;
      else if (c == '{' || c == '[') {
        if (++depth > 64)
          return makeError(ErrorCode::kInvalidArgument, "{}: JSON nested deeper than 64 levels",
                           what);
      } else if (c == '}' || c == ']') {
        depth--;
      }
    }
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return makeError(ErrorCode::kInvalidArgument, "{}: malformed JSON at byte {}", what, e.byte);
  } catch (const Json::exception& e) {
    return makeError(ErrorCode::kInvalidArgument, "{}: malformed JSON: {}", what, e.what());
  }
}

bool isMac(std::string_view s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); i++) {
    if (i % 3 == 2) {
      if (s[i] != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

namespace {

Status checkAddress(const std::string& path, std::string_view key, const std::string& value,
                    IpFamily family) {
  if (value.empty()) return okStatus();
  auto ip = IpAddr::parse(value);
  if (!ip.ok() || ip->family() != family)
    return makeError(ErrorCode::kInvalidArgument, "{}: '{}' is not an {} address",
                     joinPath(path, key), value, family == IpFamily::kV4 ? "IPv4" : "IPv6");
  return okStatus();
}

Status checkMac(const std::string& path, std::string_view key, const std::string& value) {
  if (value.empty() || isMac(value)) return okStatus();
  return makeError(ErrorCode::kInvalidArgument, "{}: '{}' is not a MAC address (aa:bb:cc:dd:ee:ff)",
                   joinPath(path, key), value);
}

Status checkRange(const std::string& path, std::string_view key, int64_t v, int64_t lo,
                  int64_t hi) {
  if (v >= lo && v <= hi) return okStatus();
  return makeError(ErrorCode::kInvalidArgument, "{}: {} is not {}..{}", joinPath(path, key), v, lo,
                   hi);
}

}  // namespace

Status AddressPair::validate(const AddressPair& a, const std::string& path) {
  CILIUM_RETURN_IF_ERROR(checkAddress(path, "ipv4", a.ipv4, IpFamily::kV4));
  return checkAddress(path, "ipv6", a.ipv6, IpFamily::kV6);
}

Status EndpointChangeRequest::validate(const EndpointChangeRequest& r, const std::string& path) {
  CILIUM_RETURN_IF_ERROR(checkRange(path, "id", r.id, 0, 65535));
  CILIUM_RETURN_IF_ERROR(checkRange(path, "interface-index", r.interface_index, 0, INT32_MAX));
  CILIUM_RETURN_IF_ERROR(checkRange(path, "pid", r.pid, 0, INT32_MAX));
  CILIUM_RETURN_IF_ERROR(checkRange(path, "datapath-map-id", r.datapath_map_id, 0, UINT32_MAX));
  CILIUM_RETURN_IF_ERROR(checkMac(path, "mac", r.mac));
  CILIUM_RETURN_IF_ERROR(checkMac(path, "host-mac", r.host_mac));
  if (r.interface_name.size() > 15)
    return makeError(ErrorCode::kInvalidArgument, "{}: '{}' is longer than 15 characters",
                     joinPath(path, "interface-name"), r.interface_name);
  for (size_t i = 0; i < r.labels.size(); i++)
    if (r.labels[i].empty())
      return makeError(ErrorCode::kInvalidArgument, "{}[{}]: empty label", joinPath(path, "labels"),
                       i);
  return okStatus();
}

Status DaemonConfigurationSpec::validate(const DaemonConfigurationSpec& s,
                                         const std::string& path) {
  if (!s.policy_enforcement.empty() && s.policy_enforcement != "default" &&
      s.policy_enforcement != "always" && s.policy_enforcement != "never")
    return makeError(ErrorCode::kInvalidArgument, "{}: '{}' is not one of default, always, never",
                     joinPath(path, "policy-enforcement"), s.policy_enforcement);
  return okStatus();
}

// ---- Endpoint references -----------------------------------------------------------------

std::string EndpointRef::toString() const {
  switch (kind) {
    case Kind::kCiliumLocal: return std::to_string(local_id);
    case Kind::kContainerId: return "container-id:" + value;
    case Kind::kContainerName: return "container-name:" + value;
    case Kind::kPodName: return "pod-name:" + pod_namespace + "/" + pod_name;
    case Kind::kDockerEndpoint: return "docker-endpoint:" + value;
    case Kind::kCniAttachment: return "cni-attachment-id:" + value + ":" + interface;
  }
  return value;
}

Result<EndpointRef> parseEndpointRef(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return makeError(ErrorCode::kInvalidArgument, "endpoint id '{}': {}", text, why);
  };
  if (text.empty()) return bad("empty");
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("contains a control character");
  if (text.size() > 512) return bad("longer than 512 bytes");
  EndpointRef ref;
  std::string_view prefix;
  std::string_view rest = text;
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    prefix = text.substr(0, colon);
    rest = text.substr(colon + 1);
  }
  auto nonEmpty = [&](std::string_view v) -> Status {
    if (v.empty()) return bad("nothing after the prefix");
    return okStatus();
  };
  if (prefix.empty() || prefix == "cilium-local") {
    int64_t id = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), id);
    if (rest.empty() || ec != std::errc() || ptr != rest.data() + rest.size())
      return bad(prefix.empty() ? "not a number and no known prefix" : "not a number");
    if (id < 1 || id > 65535) return bad("endpoint ids are 1..65535");
    ref.kind = EndpointRef::Kind::kCiliumLocal;
    ref.local_id = id;
    ref.value = std::to_string(id);
    return ref;
  }
  if (prefix == "container-id" || prefix == "container-name" || prefix == "docker-endpoint") {
    CILIUM_RETURN_IF_ERROR(nonEmpty(rest));
    ref.kind = prefix == "container-id"     ? EndpointRef::Kind::kContainerId
               : prefix == "container-name" ? EndpointRef::Kind::kContainerName
                                            : EndpointRef::Kind::kDockerEndpoint;
    ref.value = std::string(rest);
    return ref;
  }
  if (prefix == "pod-name") {
    auto sep = rest.find('/');
    if (sep == std::string_view::npos) sep = rest.find(':');
    if (sep == std::string_view::npos || sep == 0 || sep + 1 == rest.size())
      return bad("pod-name takes <namespace>/<name>");
    ref.kind = EndpointRef::Kind::kPodName;
    ref.pod_namespace = std::string(rest.substr(0, sep));
    ref.pod_name = std::string(rest.substr(sep + 1));
    ref.value = ref.pod_namespace + "/" + ref.pod_name;
    return ref;
  }
  if (prefix == "cni-attachment-id") {
    auto sep = rest.rfind(':');
    if (sep == std::string_view::npos || sep == 0 || sep + 1 == rest.size())
      return bad("cni-attachment-id takes <container id>:<interface>");
    ref.kind = EndpointRef::Kind::kCniAttachment;
    ref.value = std::string(rest.substr(0, sep));
    ref.interface = std::string(rest.substr(sep + 1));
    return ref;
  }
  return bad(fmt::format("unknown prefix '{}'", prefix));
}

}  // namespace cilium::api
