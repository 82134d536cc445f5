// The agent <-> proxy protocol: frames and access records.
#include "agent/proxy/wire.h"

#include <algorithm>

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

Result<std::optional<std::string>> FrameReader::nextBody() {
  if (buf_.size() < 4) return std::optional<std::string>();
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(buf_[i])); };
  size_t n = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  if (n > kMaxFrame)
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("frame of {} bytes is larger than {}", n, kMaxFrame));
  if (buf_.size() < 4 + n) return std::optional<std::string>();
  std::string body = buf_.substr(4, n);
  buf_.erase(0, 4 + n);
  return std::optional<std::string>(std::move(body));
}

Result<std::optional<nlohmann::json>> FrameReader::next() {
  CILIUM_ASSIGN_OR_RETURN(auto body, nextBody());
  if (!body) return std::optional<nlohmann::json>();
  auto j = nlohmann::json::parse(*body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(ErrorCode::kInvalidArgument, "frame is not a JSON object");
  return std::optional<nlohmann::json>(std::move(j));
}

namespace {

template <typename T>
void put(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); i++)
    out.push_back(static_cast<char>(static_cast<uint64_t>(v) >> (8 * i)));
}

void putString(std::string& out, std::string_view s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Bounds-checked reads of a record body; any overrun sets `bad` and yields zeroes.
struct Reader {
  std::string_view in;
  bool bad = false;
  template <typename T>
  T get() {
    if (in.size() < sizeof(T)) {
      bad = true;
      in = {};
      return T{};
    }
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); i++)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    in.remove_prefix(sizeof(T));
    return static_cast<T>(v);
  }
  std::string string() {
    uint32_t n = get<uint32_t>();
    if (bad || in.size() < n) {
      bad = true;
      in = {};
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

constexpr uint8_t kIngressFlag = 1, kParseErrorFlag = 2, kDnsFlag = 4;
// At most this many entries in one of a DNS record's lists.
constexpr uint16_t kMaxList = 0xffff;

void putList(std::string& out, const std::vector<std::string>& l) {
  size_t n = std::min<size_t>(l.size(), kMaxList);
  put<uint16_t>(out, static_cast<uint16_t>(n));
  for (size_t i = 0; i < n; i++) putString(out, l[i]);
}

std::vector<std::string> getList(Reader& rd) {
  std::vector<std::string> l;
  auto n = rd.get<uint16_t>();
  for (uint16_t i = 0; i < n && !rd.bad; i++) l.push_back(rd.string());
  return l;
}

}  // namespace

void encodeRecord(const AccessRecord& r, std::string& out) {
  put<uint8_t>(out, static_cast<uint8_t>(r.type));
  put<uint8_t>(out, static_cast<uint8_t>(r.verdict));
  put<uint8_t>(out, (r.ingress ? kIngressFlag : 0) | (r.parse_error ? kParseErrorFlag : 0) |
                        (r.dns ? kDnsFlag : 0));
  put<uint8_t>(out, r.l4_protocol);
  put<int64_t>(out, r.time_ns);
  put<uint16_t>(out, r.endpoint_id);
  put<uint16_t>(out, r.src_port);
  put<uint16_t>(out, r.dst_port);
  put<uint32_t>(out, r.src_identity);
  put<uint32_t>(out, r.dst_identity);
  put<uint16_t>(out, r.proxy_port);
  put<uint32_t>(out, r.code);
  put<uint64_t>(out, r.latency_ns);
  putString(out, r.src_ip);
  putString(out, r.dst_ip);
  putString(out, r.method);
  putString(out, r.url);
  putString(out, r.protocol);
  put<uint16_t>(out, static_cast<uint16_t>(std::min<size_t>(r.headers.size(), 0xffff)));
  for (size_t i = 0; i < r.headers.size() && i < 0xffff; i++) {
    putString(out, r.headers[i].first);
    putString(out, r.headers[i].second);
  }
  if (r.dns) {
    const auto& d = *r.dns;
    putString(out, d.query);
    putList(out, d.ips);
    putList(out, d.cnames);
    putList(out, d.qtypes);
    putList(out, d.rrtypes);
    put<uint32_t>(out, d.ttl);
    put<uint8_t>(out, d.rcode);
    putString(out, d.observation_source);
  }
}

Result<std::vector<AccessRecord>> decodeRecords(std::string_view body) {
  if (body.empty() || body[0] != kRecordsTag)
    return Error(ErrorCode::kInvalidArgument, "not an access-record frame");
  Reader rd{body.substr(1)};
  std::vector<AccessRecord> out;
  while (!rd.in.empty() && !rd.bad) {
    AccessRecord r;
    auto type = rd.get<uint8_t>();
    auto verdict = rd.get<uint8_t>();
    auto flags = rd.get<uint8_t>();
    if (type > static_cast<uint8_t>(AccessRecord::Type::kResponse) ||
        verdict > static_cast<uint8_t>(AccessRecord::Verdict::kError) ||
        (flags & ~(kIngressFlag | kParseErrorFlag | kDnsFlag)) != 0)
      return Error(ErrorCode::kInvalidArgument, "access record: bad type, verdict or flags");
    r.type = static_cast<AccessRecord::Type>(type);
    r.verdict = static_cast<AccessRecord::Verdict>(verdict);
    r.ingress = (flags & kIngressFlag) != 0;
    r.parse_error = (flags & kParseErrorFlag) != 0;
    r.l4_protocol = rd.get<uint8_t>();
    r.time_ns = rd.get<int64_t>();
    r.endpoint_id = rd.get<uint16_t>();
    r.src_port = rd.get<uint16_t>();
    r.dst_port = rd.get<uint16_t>();
    r.src_identity = rd.get<uint32_t>();
    r.dst_identity = rd.get<uint32_t>();
    r.proxy_port = rd.get<uint16_t>();
    r.code = rd.get<uint32_t>();
    r.latency_ns = rd.get<uint64_t>();
    r.src_ip = rd.string();
    r.dst_ip = rd.string();
    r.method = rd.string();
    r.url = rd.string();
    r.protocol = rd.string();
    auto headers = rd.get<uint16_t>();
    for (uint16_t i = 0; i < headers && !rd.bad; i++) {
      auto k = rd.string();
      auto v = rd.string();
      r.headers.emplace_back(std::move(k), std::move(v));
    }
    if (flags & kDnsFlag) {
      AccessRecord::Dns d;
      d.query = rd.string();
      d.ips = getList(rd);
      d.cnames = getList(rd);
      d.qtypes = getList(rd);
      d.rrtypes = getList(rd);
      d.ttl = rd.get<uint32_t>();
      d.rcode = rd.get<uint8_t>();
      d.observation_source = rd.string();
      r.dns = std::move(d);
    }
    if (rd.bad) break;
    out.push_back(std::move(r));
  }
  if (rd.bad) return Error(ErrorCode::kInvalidArgument, "access record: truncated");
  return out;
}

}  // namespace cilium::proxy
