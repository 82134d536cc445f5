// The L7 policy: JSON codec, compilation (RE2) and request decisions.
#include "agent/proxy/l7_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

namespace cilium::proxy {
namespace {

using json = nlohmann::json;

Error invalid(std::string msg) { return Error(ErrorCode::kInvalidArgument, std::move(msg)); }

std::string_view mismatchText(HeaderMatch::Mismatch m) {
  switch (m) {
    case HeaderMatch::Mismatch::kNone: return "";
    case HeaderMatch::Mismatch::kLog: return "LOG";
    case HeaderMatch::Mismatch::kAdd: return "ADD";
    case HeaderMatch::Mismatch::kDelete: return "DELETE";
    case HeaderMatch::Mismatch::kReplace: return "REPLACE";
  }
  return "";
}

// Typed reads that turn a wrong type into an error naming the field (nlohmann would throw).
Result<std::string> str(const json& j, std::string_view key, std::string_view path) {
  auto it = j.find(key);
  if (it == j.end()) return std::string();
  if (!it->is_string()) return invalid(fmt::format("{}.{}: not a string", path, key));
  return it->get<std::string>();
}

Result<uint64_t> num(const json& j, std::string_view key, std::string_view path, uint64_t max) {
  auto it = j.find(key);
  if (it == j.end()) return uint64_t{0};
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
    return invalid(fmt::format("{}.{}: not an integer in 0..{}", path, key, max));
  return it->get<uint64_t>();
}

Result<std::vector<std::string>> strings(const json& j, std::string_view key,
                                         std::string_view path) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end()) return out;
  if (!it->is_array()) return invalid(fmt::format("{}.{}: not a list", path, key));
  for (const auto& v : *it) {
    if (!v.is_string()) return invalid(fmt::format("{}.{}: not a list of strings", path, key));
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::unique_ptr<re2::RE2> regex(const std::string& pattern, std::string& error) {
  if (pattern.empty()) return nullptr;
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  auto re = std::make_unique<re2::RE2>(pattern, o);
  if (!re->ok()) error = re->error();
  return re;
}

}  // namespace

json toJson(const PolicySnapshot& s) {
  json eps = json::array();
  for (const auto& e : s.endpoints) {
    json rules = json::array();
    for (const auto& r : e.rules) {
      json http = json::array();
      for (const auto& h : r.http) {
        json hm = json::array();
        for (const auto& m : h.header_matches)
          hm.push_back(
              {{"name", m.name}, {"value", m.value}, {"mismatch", mismatchText(m.mismatch)}});
        http.push_back({{"method", h.method},
                        {"path", h.path},
                        {"host", h.host},
                        {"headers", h.headers},
                        {"headerMatches", std::move(hm)}});
      }
      json dns = json::array();
      for (const auto& d : r.dns)
        dns.push_back({{"matchName", d.match_name}, {"matchPattern", d.match_pattern}});
      rules.push_back({{"direction", r.dir == Direction::kIngress ? "ingress" : "egress"},
                       {"protocol", r.proto},
                       {"port", r.port},
                       {"bits", r.bits},
                       {"identities", r.identities},
                       {"allowAll", r.allow_all},
                       {"http", std::move(http)},
                       {"dns", std::move(dns)}});
    }
    json ej = {
        {"id", e.id}, {"identity", e.identity}, {"ipv4", e.ipv4}, {"rules", std::move(rules)}};
    if (!e.ipv6.empty()) ej["ipv6"] = e.ipv6;
    eps.push_back(std::move(ej));
  }
  return {{"version", s.version},
          {"ports",
           {{"httpIngress", s.http_ingress_port},
            {"httpEgress", s.http_egress_port},
            {"dnsEgress", s.dns_egress_port}}},
          {"endpoints", std::move(eps)}};
}

Result<PolicySnapshot> snapshotFromJson(const json& j) {
  if (!j.is_object()) return invalid("policy: not an object");
  PolicySnapshot s;
  CILIUM_ASSIGN_OR_RETURN(s.version, num(j, "version", "policy", UINT64_MAX));
  if (auto ports = j.find("ports"); ports != j.end()) {
    if (!ports->is_object()) return invalid("policy.ports: not an object");
    CILIUM_ASSIGN_OR_RETURN(auto hi, num(*ports, "httpIngress", "policy.ports", 65535));
    CILIUM_ASSIGN_OR_RETURN(auto he, num(*ports, "httpEgress", "policy.ports", 65535));
    CILIUM_ASSIGN_OR_RETURN(auto de, num(*ports, "dnsEgress", "policy.ports", 65535));
    s.http_ingress_port = static_cast<uint16_t>(hi);
    s.http_egress_port = static_cast<uint16_t>(he);
    s.dns_egress_port = static_cast<uint16_t>(de);
  }
  auto eps = j.find("endpoints");
  if (eps == j.end()) return s;
  if (!eps->is_array()) return invalid("policy.endpoints: not a list");
  for (size_t i = 0; i < eps->size(); i++) {
    const json& ej = (*eps)[i];
    std::string path = fmt::format("policy.endpoints[{}]", i);
    if (!ej.is_object()) return invalid(path + ": not an object");
    EndpointPolicy e;
    CILIUM_ASSIGN_OR_RETURN(auto id, num(ej, "id", path, UINT16_MAX));
    e.id = static_cast<uint16_t>(id);
    CILIUM_ASSIGN_OR_RETURN(auto ident, num(ej, "identity", path, UINT32_MAX));
    e.identity = static_cast<uint32_t>(ident);
    CILIUM_ASSIGN_OR_RETURN(e.ipv4, str(ej, "ipv4", path));
    in_addr a{};
    if (!e.ipv4.empty() && ::inet_pton(AF_INET, e.ipv4.c_str(), &a) != 1)
      return invalid(fmt::format("{}.ipv4: \"{}\" is not an IPv4 address", path, e.ipv4));
    CILIUM_ASSIGN_OR_RETURN(e.ipv6, str(ej, "ipv6", path));
    in6_addr a6{};
    if (!e.ipv6.empty() && ::inet_pton(AF_INET6, e.ipv6.c_str(), &a6) != 1)
      return invalid(fmt::format("{}.ipv6: \"{}\" is not an IPv6 address", path, e.ipv6));
    auto rules = ej.find("rules");
    if (rules != ej.end() && !rules->is_array()) return invalid(path + ".rules: not a list");
    for (size_t k = 0; rules != ej.end() && k < rules->size(); k++) {
      const json& rj = (*rules)[k];
      std::string rpath = fmt::format("{}.rules[{}]", path, k);
      if (!rj.is_object()) return invalid(rpath + ": not an object");
      PortRule r;
      CILIUM_ASSIGN_OR_RETURN(auto dir, str(rj, "direction", rpath));
      if (dir == "ingress")
        r.dir = Direction::kIngress;
      else if (dir == "egress")
        r.dir = Direction::kEgress;
      else
        return invalid(fmt::format("{}.direction: \"{}\" is not ingress or egress", rpath, dir));
      CILIUM_ASSIGN_OR_RETURN(auto proto, num(rj, "protocol", rpath, 255));
      CILIUM_ASSIGN_OR_RETURN(auto port, num(rj, "port", rpath, 65535));
      CILIUM_ASSIGN_OR_RETURN(auto bits, num(rj, "bits", rpath, 16));
      r.proto = static_cast<uint8_t>(proto);
      r.port = static_cast<uint16_t>(port);
      r.bits = static_cast<uint8_t>(bits);
      auto ids = rj.find("identities");
      if (ids != rj.end()) {
        if (!ids->is_array()) return invalid(rpath + ".identities: not a list");
        for (const auto& v : *ids) {
          if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
            return invalid(rpath + ".identities: not a list of identities");
          r.identities.push_back(v.get<uint32_t>());
        }
        std::sort(r.identities.begin(), r.identities.end());
      }
      if (auto it = rj.find("allowAll"); it != rj.end()) {
        if (!it->is_boolean()) return invalid(rpath + ".allowAll: not a boolean");
        r.allow_all = it->get<bool>();
      }
      auto http = rj.find("http");
      if (http != rj.end() && !http->is_array()) return invalid(rpath + ".http: not a list");
      for (size_t n = 0; http != rj.end() && n < http->size(); n++) {
        const json& hj = (*http)[n];
        std::string hpath = fmt::format("{}.http[{}]", rpath, n);
        if (!hj.is_object()) return invalid(hpath + ": not an object");
        HttpRule h;
        CILIUM_ASSIGN_OR_RETURN(h.method, str(hj, "method", hpath));
        CILIUM_ASSIGN_OR_RETURN(h.path, str(hj, "path", hpath));
        CILIUM_ASSIGN_OR_RETURN(h.host, str(hj, "host", hpath));
        CILIUM_ASSIGN_OR_RETURN(h.headers, strings(hj, "headers", hpath));
        auto hm = hj.find("headerMatches");
        if (hm != hj.end() && !hm->is_array()) return invalid(hpath + ".headerMatches: not a list");
        for (size_t m = 0; hm != hj.end() && m < hm->size(); m++) {
          const json& mj = (*hm)[m];
          std::string mpath = fmt::format("{}.headerMatches[{}]", hpath, m);
          if (!mj.is_object()) return invalid(mpath + ": not an object");
          HeaderMatch match;
          CILIUM_ASSIGN_OR_RETURN(match.name, str(mj, "name", mpath));
          CILIUM_ASSIGN_OR_RETURN(match.value, str(mj, "value", mpath));
          CILIUM_ASSIGN_OR_RETURN(auto mm, str(mj, "mismatch", mpath));
          if (mm.empty())
            match.mismatch = HeaderMatch::Mismatch::kNone;
          else if (mm == "LOG")
            match.mismatch = HeaderMatch::Mismatch::kLog;
          else if (mm == "ADD")
            match.mismatch = HeaderMatch::Mismatch::kAdd;
          else if (mm == "DELETE")
            match.mismatch = HeaderMatch::Mismatch::kDelete;
          else if (mm == "REPLACE")
            match.mismatch = HeaderMatch::Mismatch::kReplace;
          else
            return invalid(fmt::format("{}.mismatch: \"{}\" is not an action", mpath, mm));
          if (match.name.empty()) return invalid(mpath + ".name: required");
          h.header_matches.push_back(std::move(match));
        }
        r.http.push_back(std::move(h));
      }
      auto dns = rj.find("dns");
      if (dns != rj.end() && !dns->is_array()) return invalid(rpath + ".dns: not a list");
      for (size_t n = 0; dns != rj.end() && n < dns->size(); n++) {
        const json& dj = (*dns)[n];
        std::string dpath = fmt::format("{}.dns[{}]", rpath, n);
        if (!dj.is_object()) return invalid(dpath + ": not an object");
        DnsRule d;
        CILIUM_ASSIGN_OR_RETURN(d.match_name, str(dj, "matchName", dpath));
        CILIUM_ASSIGN_OR_RETURN(d.match_pattern, str(dj, "matchPattern", dpath));
        r.dns.push_back(std::move(d));
      }
      e.rules.push_back(std::move(r));
    }
    s.endpoints.push_back(std::move(e));
  }
  return s;
}

// --- Compiled form ----------------------------------------------------------------------------

struct CompiledPolicy::CompiledHttp {
  std::unique_ptr<re2::RE2> method, path, host;
  // "Name" (value empty, present) or "Name: value" (exact value).
  struct Header {
    std::string name, value;
    bool has_value = false;
  };
  std::vector<Header> headers;
  std::vector<HeaderMatch> matches;
};

struct CompiledPolicy::CompiledRule {
  Direction dir;
  uint8_t proto;
  uint16_t port;
  uint16_t mask;
  std::vector<uint32_t> identities;  // sorted; 0 = any
  bool allow_all;
  std::vector<CompiledHttp> http;

  bool covers(Direction d, uint8_t p, uint16_t dport, uint32_t remote) const {
    if (d != dir) return false;
    if (proto != 0 && proto != p) return false;
    if ((dport & mask) != (port & mask)) return false;
    if (!identities.empty() && identities.front() == 0) return true;
    return std::binary_search(identities.begin(), identities.end(), remote);
  }
};

struct CompiledPolicy::CompiledEndpoint {
  uint16_t id;
  uint32_t identity;
  std::vector<CompiledRule> rules;
};

CompiledPolicy::~CompiledPolicy() = default;

Result<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::compile(const PolicySnapshot& s) {
  std::shared_ptr<CompiledPolicy> out(new CompiledPolicy());
  out->version_ = s.version;
  for (const auto& e : s.endpoints) {
    CompiledEndpoint ce{e.id, e.identity, {}};
    for (const auto& r : e.rules) {
      CompiledRule cr;
      cr.dir = r.dir;
      cr.proto = r.proto;
      cr.port = r.port;
      cr.mask =
          r.bits == 0 ? 0 : static_cast<uint16_t>(0xffffu << (16 - std::min<uint8_t>(r.bits, 16)));
      cr.identities = r.identities;
      std::sort(cr.identities.begin(), cr.identities.end());
      cr.allow_all = r.allow_all;
      for (const auto& h : r.http) {
        CompiledHttp ch;
        std::string err;
        ch.method = regex(h.method, err);
        if (err.empty()) ch.path = regex(h.path, err);
        if (err.empty()) ch.host = regex(h.host, err);
        if (!err.empty())
          return invalid(fmt::format("endpoint {}: HTTP rule regex: {}", e.id, err));
        for (const auto& hd : h.headers) {
          CompiledHttp::Header x;
          auto sp = hd.find(' ');
          x.name = hd.substr(0, sp);
          if (!x.name.empty() && x.name.back() == ':') x.name.pop_back();
          if (sp != std::string::npos) {
            x.value = hd.substr(sp + 1);
            x.has_value = true;
          }
          ch.headers.push_back(std::move(x));
        }
        ch.matches = h.header_matches;
        cr.http.push_back(std::move(ch));
      }
      ce.rules.push_back(std::move(cr));
    }
    for (const auto* text : {&e.ipv4, &e.ipv6}) {
      if (text->empty()) continue;
      auto ip = IpAddr::parse(*text);
      if (!ip.ok()) return invalid(fmt::format("endpoint {}: {}", e.id, ip.error().message()));
      out->by_addr_.emplace_back(*ip, out->endpoints_.size());
    }
    out->endpoints_.push_back(std::move(ce));
  }
  std::sort(out->by_addr_.begin(), out->by_addr_.end());
  return std::shared_ptr<const CompiledPolicy>(std::move(out));
}

std::optional<CompiledPolicy::EndpointRef> CompiledPolicy::endpointByAddress(
    const IpAddr& ip) const {
  auto it = std::lower_bound(by_addr_.begin(), by_addr_.end(), std::pair<IpAddr, size_t>{ip, 0});
  if (it == by_addr_.end() || it->first != ip) return std::nullopt;
  const auto& e = endpoints_[it->second];
  return EndpointRef{e.id, e.identity, it->second};
}

bool CompiledPolicy::covers(const EndpointRef& ep, Direction dir, uint8_t proto, uint16_t port,
                            uint32_t remote) const {
  if (ep.index >= endpoints_.size()) return false;
  for (const auto& r : endpoints_[ep.index].rules)
    if (r.covers(dir, proto, port, remote)) return true;
  return false;
}

namespace {

const std::string_view* findHeader(const RequestView& req, std::string_view name,
                                   std::string_view* value) {
  for (const auto& [k, v] : req.headers) {
    if (iequals(k, name)) {
      *value = v;
      return value;
    }
  }
  return nullptr;
}

bool fullMatch(const std::unique_ptr<re2::RE2>& re, std::string_view v) {
  return !re || re2::RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *re);
}

}  // namespace

Decision CompiledPolicy::decide(const EndpointRef& ep, Direction dir, uint8_t proto, uint16_t port,
                                uint32_t remote, const RequestView& req) const {
  Decision d;
  if (ep.index >= endpoints_.size()) return d;
  for (const auto& r : endpoints_[ep.index].rules) {
    if (!r.covers(dir, proto, port, remote)) continue;
    if (r.allow_all) {
      d.allowed = true;
      d.actions.clear();
      return d;
    }
    for (const auto& h : r.http) {
      if (!fullMatch(h.method, req.method) || !fullMatch(h.path, req.path) ||
          !fullMatch(h.host, req.host))
        continue;
      bool ok = true;
      for (const auto& hd : h.headers) {
        std::string_view v;
        if (!findHeader(req, hd.name, &v) || (hd.has_value && v != hd.value)) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      std::vector<HeaderAction> actions;
      for (const auto& m : h.matches) {
        std::string_view v;
        bool present = findHeader(req, m.name, &v) != nullptr;
        bool match = present && (m.value.empty() || v == m.value);
        if (match) continue;
        switch (m.mismatch) {
          case HeaderMatch::Mismatch::kNone: ok = false; break;
          case HeaderMatch::Mismatch::kLog:
            actions.push_back({HeaderAction::Kind::kLog, m.name, m.value});
            break;
          case HeaderMatch::Mismatch::kAdd:
            actions.push_back({HeaderAction::Kind::kAdd, m.name, m.value});
            break;
          case HeaderMatch::Mismatch::kDelete:
            if (present) actions.push_back({HeaderAction::Kind::kDelete, m.name, ""});
            break;
          case HeaderMatch::Mismatch::kReplace:
            actions.push_back({HeaderAction::Kind::kReplace, m.name, m.value});
            break;
        }
        if (!ok) break;
      }
      if (!ok) continue;
      // The first matching rule without header changes wins; else the first match's actions.
      if (!d.allowed || (!d.actions.empty() && actions.empty())) {
        d.allowed = true;
        d.actions = std::move(actions);
        if (d.actions.empty()) return d;
      }
    }
  }
  return d;
}

}  // namespace cilium::proxy
