// The agent <-> proxy protocol: frames and access records.
#include "agent/proxy/wire.h"

#include <fmt/format.h>

namespace cilium::proxy {

std::string encodeFrame(const nlohmann::json& msg) {
  // Invalid UTF-8 (a request's bytes in a record) is replaced, never thrown.
  std::string body = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string out(4, '\0');
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out += body;
  return out;
}

Result<std::optional<nlohmann::json>> FrameReader::next() {
  if (buf_.size() < 4) return std::optional<nlohmann::json>();
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(buf_[i])); };
  size_t n = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  if (n > kMaxFrame)
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("frame of {} bytes is larger than {}", n, kMaxFrame));
  if (buf_.size() < 4 + n) return std::optional<nlohmann::json>();
  auto j = nlohmann::json::parse(buf_.begin() + 4, buf_.begin() + 4 + static_cast<long>(n), nullptr,
                                 false);
  buf_.erase(0, 4 + n);
  if (j.is_discarded() || !j.is_object())
    return Error(ErrorCode::kInvalidArgument, "frame is not a JSON object");
  return std::optional<nlohmann::json>(std::move(j));
}

nlohmann::json toJson(const AccessRecord& r) {
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [k, v] : r.headers) headers.push_back({k, v});
  nlohmann::json out = {
      {"type", r.type == AccessRecord::Type::kRequest ? "request" : "response"},
      {"verdict", r.verdict == AccessRecord::Verdict::kForwarded ? "forwarded"
                  : r.verdict == AccessRecord::Verdict::kDenied  ? "denied"
                                                                 : "error"},
      {"ingress", r.ingress},
      {"time", r.time_ns},
      {"endpoint", r.endpoint_id},
      {"src", {{"ip", r.src_ip}, {"port", r.src_port}, {"identity", r.src_identity}}},
      {"dst", {{"ip", r.dst_ip}, {"port", r.dst_port}, {"identity", r.dst_identity}}},
      {"proxyPort", r.proxy_port},
      {"http",
       {{"method", r.method},
        {"url", r.url},
        {"protocol", r.protocol},
        {"code", r.code},
        {"headers", std::move(headers)}}},
      {"latency", r.latency_ns},
      {"parseError", r.parse_error},
      {"l4", r.l4_protocol}};
  if (r.dns) {
    const auto& d = *r.dns;
    out["dns"] = {{"query", d.query},     {"ips", d.ips},
                  {"cnames", d.cnames},   {"qtypes", d.qtypes},
                  {"rrtypes", d.rrtypes}, {"ttl", d.ttl},
                  {"rcode", d.rcode},     {"source", d.observation_source}};
  }
  return out;
}

namespace {

template <typename T>
bool get(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return true;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else if constexpr (std::is_signed_v<T>) {
    if (!it->is_number_integer()) return false;
  } else {
    if (!it->is_number_unsigned() || it->template get<uint64_t>() > std::numeric_limits<T>::max())
      return false;
  }
  out = it->template get<T>();
  return true;
}

}  // namespace

Result<AccessRecord> recordFromJson(const nlohmann::json& j) {
  auto bad = [](const char* what) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("access record: bad {}", what));
  };
  if (!j.is_object()) return bad("record");
  AccessRecord r;
  std::string type, verdict;
  if (!get(j, "type", type)) return bad("type");
  r.type = type == "response" ? AccessRecord::Type::kResponse : AccessRecord::Type::kRequest;
  if (!get(j, "verdict", verdict)) return bad("verdict");
  r.verdict = verdict == "denied"  ? AccessRecord::Verdict::kDenied
              : verdict == "error" ? AccessRecord::Verdict::kError
                                   : AccessRecord::Verdict::kForwarded;
  if (!get(j, "ingress", r.ingress) || !get(j, "time", r.time_ns) ||
      !get(j, "endpoint", r.endpoint_id) || !get(j, "proxyPort", r.proxy_port) ||
      !get(j, "latency", r.latency_ns) || !get(j, "parseError", r.parse_error))
    return bad("field");
  for (const char* side : {"src", "dst"}) {
    auto it = j.find(side);
    if (it == j.end()) continue;
    if (!it->is_object()) return bad(side);
    bool src = side[0] == 's';
    if (!get(*it, "ip", src ? r.src_ip : r.dst_ip) ||
        !get(*it, "port", src ? r.src_port : r.dst_port) ||
        !get(*it, "identity", src ? r.src_identity : r.dst_identity))
      return bad(side);
  }
  if (auto it = j.find("http"); it != j.end()) {
    if (!it->is_object()) return bad("http");
    if (!get(*it, "method", r.method) || !get(*it, "url", r.url) ||
        !get(*it, "protocol", r.protocol) || !get(*it, "code", r.code))
      return bad("http");
    if (auto h = it->find("headers"); h != it->end()) {
      if (!h->is_array()) return bad("headers");
      for (const auto& kv : *h) {
        if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string())
          return bad("headers");
        r.headers.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
      }
    }
  }
  if (!get(j, "l4", r.l4_protocol)) return bad("l4");
  if (auto it = j.find("dns"); it != j.end()) {
    if (!it->is_object()) return bad("dns");
    AccessRecord::Dns d;
    if (!get(*it, "query", d.query) || !get(*it, "ttl", d.ttl) || !get(*it, "rcode", d.rcode) ||
        !get(*it, "source", d.observation_source))
      return bad("dns");
    for (auto [key, out] : {std::pair{"ips", &d.ips}, std::pair{"cnames", &d.cnames},
                            std::pair{"qtypes", &d.qtypes}, std::pair{"rrtypes", &d.rrtypes}}) {
      auto l = it->find(key);
      if (l == it->end()) continue;
      if (!l->is_array()) return bad("dns");
      for (const auto& s : *l) {
        if (!s.is_string()) return bad("dns");
        out->push_back(s.get<std::string>());
      }
    }
    r.dns = std::move(d);
  }
  return r;
}

}  // namespace cilium::proxy
