// Value parsers and checks shared by every module's configuration keys.
#include "agent/config/config.h"

#include <cctype>
#include <charconv>

namespace cilium::config {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Status checkNoControl(std::string_view v) {
  for (char c : v)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return invalidValue("contains a control character");
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

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  auto bad = [&] {
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a duration (e.g. 60s, 500ms, 1m30s)",
                     text);
  };
  if (text.empty()) return bad();
  uint64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    uint64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1'000'000'000) return bad();
      n = n * 10 + static_cast<uint64_t>(text[i] - '0');
      i++;
      digits++;
    }
    if (digits == 0) return bad();
    uint64_t unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit = 1000;
      i++;
    } else if (i < text.size() && text[i] == 'm') {
      unit = 60'000;
      i++;
    } else if (i < text.size() && text[i] == 'h') {
      unit = 3'600'000;
      i++;
    } else {
      return bad();
    }
    total += n * unit;
    if (total > 1'000'000'000'000ULL) return bad();
  }
  return std::chrono::milliseconds(total);
}

std::string durationText(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms >= 3'600'000) out += std::to_string(ms / 3'600'000) + "h", ms %= 3'600'000;
  if (ms >= 60'000) out += std::to_string(ms / 60'000) + "m", ms %= 60'000;
  if (ms >= 1000) out += std::to_string(ms / 1000) + "s", ms %= 1000;
  if (ms > 0) out += std::to_string(ms) + "ms";
  return out;
}

Status checkAbsolutePath(std::string_view v, bool allow_empty) {
  if (v.empty()) {
    if (allow_empty) return okStatus();
    return invalidValue("must not be empty");
  }
  CILIUM_RETURN_IF_ERROR(checkNoControl(v));
  if (v[0] != '/') return makeError(ErrorCode::kInvalidArgument, "'{}' is not an absolute path", v);
  return okStatus();
}

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

Result<IpPrefix> parseNodeCidr(std::string_view v, IpFamily family) {
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
  return p;
}

Status checkSocketPathLength(std::string_view key, const std::string& path) {
  if (path.size() > 107)
    return makeError(ErrorCode::kInvalidArgument,
                     "{} {} is {} bytes long; Unix socket paths allow at most 107", key, path,
                     path.size());
  return okStatus();
}

}  // namespace cilium::config
