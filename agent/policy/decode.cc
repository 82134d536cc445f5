// Policy decoding: YAML/JSON text -> Kubernetes objects -> the rule model, with namespace
// scoping as Cilium applies it and errors that name the offending field.
#include "agent/policy/decode.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "agent/common/yaml.h"
#include "agent/labels/k8s.h"
#include "agent/policy/fqdn_pattern.h"

namespace cilium::policy {

namespace {

using labels::LabelSelector;
using labels::Source;
using nlohmann::json;

template <typename... Args>
Error invalid(fmt::format_string<Args...> f, Args&&... args) {
  return makeError(ErrorCode::kInvalidArgument, f, std::forward<Args>(args)...);
}
template <typename... Args>
Error unsupported(fmt::format_string<Args...> f, Args&&... args) {
  return makeError(ErrorCode::kUnimplemented, f, std::forward<Args>(args)...);
}

std::string join(std::string_view path, std::string_view field) {
  if (path.empty()) return std::string(field);
  return fmt::format("{}.{}", path, field);
}
std::string index(std::string_view path, size_t i) { return fmt::format("{}[{}]", path, i); }

// Bracket nesting of the raw text, so that pathological input never reaches a recursive parser.
Status checkNesting(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\' && quote == '"') {
        i++;
      } else if (c == quote) {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth)
        return invalid("document nests deeper than {} levels", kMaxNestingDepth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return okStatus();
}

// --- Field helpers -------------------------------------------------------------------------------

Status requireObject(const json& j, std::string_view path) {
  if (!j.is_object()) return invalid("{}: must be an object", path.empty() ? "rule" : path);
  return okStatus();
}

Result<const json*> listField(const json& parent, const char* key, std::string_view path) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return static_cast<const json*>(nullptr);
  if (!it->is_array()) return invalid("{}: must be a list", join(path, key));
  return &*it;
}

Result<std::string> stringField(const json& j, std::string_view path) {
  if (!j.is_string()) return invalid("{}: must be a string", path);
  return j.get<std::string>();
}

// --- Ports ---------------------------------------------------------------------------------------

// An IANA service name (RFC 6335): 1-15 characters of letters, digits and '-', at least one
// letter, no leading, trailing or doubled '-'. Kubernetes (IANA_SVC_NAME) takes lowercase only;
// Cilium accepts uppercase and lowercases it.
bool isServiceName(std::string_view s, bool lowercase_only) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  bool letter = false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (lowercase_only && c >= 'A' && c <= 'Z') return false;
    if (std::isalpha(static_cast<unsigned char>(c))) {
      letter = true;
    } else if (c == '-') {
      if (s[i - 1] == '-') return false;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return letter;
}

// A port given as a number or a string: numeric -> port; a service name -> named port.
Status decodePort(const json& j, std::string_view path, PortProtocol& out) {
  if (j.is_number_integer()) {
    auto v = j.get<int64_t>();
    if (v < 0 || v > 65535) return invalid("{}: {} is not a valid port", path, v);
    out.port = static_cast<uint16_t>(v);
    return okStatus();
  }
  if (!j.is_string()) return invalid("{}: {} is not a valid port", path, j.dump());
  const auto& s = j.get_ref<const std::string&>();
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || v > 65535) return invalid("{}: \"{}\" is not a valid port", path, s);
    out.port = static_cast<uint16_t>(v);
    return okStatus();
  }
  if (!isServiceName(s, false)) return invalid("{}: \"{}\" is not a valid port", path, s);
  out.name = s;
  std::transform(out.name.begin(), out.name.end(), out.name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return okStatus();
}

Result<Protocol> decodeProtocol(const json& j, std::string_view path, bool allow_any) {
  if (!j.is_string()) return invalid("{}: must be a string", path);
  std::string s = j.get<std::string>();
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (s == "TCP") return Protocol::kTcp;
  if (s == "UDP") return Protocol::kUdp;
  if (s == "SCTP") return Protocol::kSctp;
  if (s == "ANY" && allow_any) return Protocol::kAny;
  if (s == "ICMP" || s == "ICMPV6")
    return unsupported("{}: protocol \"{}\" is not supported", path, j.get<std::string>());
  return invalid("{}: \"{}\" is not one of TCP, UDP, SCTP{}", path, j.get<std::string>(),
                 allow_any ? ", ANY" : "");
}

Status decodeEndPort(const json& j, std::string_view path, PortProtocol& p) {
  if (j.is_null()) return okStatus();
  if (!j.is_number_integer()) return invalid("{}: must be a number", path);
  auto v = j.get<int64_t>();
  if (v < 0 || v > 65535) return invalid("{}: {} is not a valid port", path, v);
  if (!p.name.empty()) return invalid("{}: a port range needs a numeric port", path);
  if (v == 0) return okStatus();
  if (p.port == 0) return invalid("{}: a port range needs a start port", path);
  if (v < p.port) return invalid("{}: {} is below port {}", path, v, p.port);
  p.end_port = static_cast<uint16_t>(v);
  return okStatus();
}

constexpr size_t kMaxPorts = 40;  // per toPorts element, as Cilium

Result<PortProtocol> decodePortProtocol(const json& j, std::string_view path) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  PortProtocol p;
  bool have_port = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "port") {
      CILIUM_RETURN_IF_ERROR(decodePort(v, join(path, k), p));
      have_port = true;
    } else if (k == "protocol") {
      CILIUM_ASSIGN_OR_RETURN(p.protocol, decodeProtocol(v, join(path, k), true));
    } else if (k != "endPort") {
      return invalid("{}: unknown field", join(path, k));
    }
  }
  if (!have_port) return invalid("{}: required", join(path, "port"));
  if (auto it = j.find("endPort"); it != j.end())
    CILIUM_RETURN_IF_ERROR(decodeEndPort(*it, join(path, "endPort"), p));
  return p;
}

// HTTP rule regexes are RE2 (what Envoy matches Cilium's rules with); one that does not compile
// is refused at import, never at the proxy.
Status checkRegex(const std::string& re, std::string_view path) {
  if (re.size() > 4096) return invalid("{}: regular expression longer than 4096 bytes", path);
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  RE2 compiled(re, o);
  if (!compiled.ok()) return invalid("{}: not a valid regular expression: {}", path, compiled.error());
  return okStatus();
}

// A header name as HTTP defines it (a token), lowercase or not.
bool isHeaderName(std::string_view n) {
  if (n.empty() || n.size() > 256) return false;
  for (char c : n) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos)
      return false;
  }
  return true;
}

// `headers` entries: "Name" or "Name: value" (Cilium splits at the first space; a ':' ending the
// name is dropped).
Status checkHeaderRule(const std::string& h, std::string_view path) {
  auto sp = h.find(' ');
  std::string_view name = std::string_view(h).substr(0, sp);
  if (sp != std::string::npos && !name.empty() && name.back() == ':') name.remove_suffix(1);
  if (!isHeaderName(name)) return invalid("{}: \"{}\" does not start with a header name", path, h);
  if (h.size() > 8192) return invalid("{}: longer than 8192 bytes", path);
  return okStatus();
}

Result<HeaderMatch> decodeHeaderMatch(const json& j, std::string_view path) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  HeaderMatch m;
  for (const auto& [k, v] : j.items()) {
    std::string kpath = join(path, k);
    if (k == "name") {
      CILIUM_ASSIGN_OR_RETURN(m.name, stringField(v, kpath));
      if (!isHeaderName(m.name)) return invalid("{}: \"{}\" is not a header name", kpath, m.name);
    } else if (k == "value") {
      CILIUM_ASSIGN_OR_RETURN(m.value, stringField(v, kpath));
      if (m.value.size() > 8192 || m.value.find_first_of("\r\n") != std::string::npos)
        return invalid("{}: not a header value (line breaks or longer than 8192 bytes)", kpath);
    } else if (k == "mismatch") {
      CILIUM_ASSIGN_OR_RETURN(auto a, stringField(v, kpath));
      if (a == "LOG") m.mismatch = HeaderMatch::Mismatch::kLog;
      else if (a == "ADD") m.mismatch = HeaderMatch::Mismatch::kAdd;
      else if (a == "DELETE") m.mismatch = HeaderMatch::Mismatch::kDelete;
      else if (a == "REPLACE") m.mismatch = HeaderMatch::Mismatch::kReplace;
      else if (!a.empty())
        return invalid("{}: \"{}\" is not LOG, ADD, DELETE or REPLACE", kpath, a);
    } else if (k == "secret") {
      return unsupported("{}: header values from secrets are not supported", kpath);
    } else {
      return invalid("{}: unknown field", kpath);
    }
  }
  if (m.name.empty()) return invalid("{}: required", join(path, "name"));
  return m;
}

Result<L7Rules> decodeL7(const json& j, std::string_view path, Direction dir,
                         const std::vector<PortProtocol>& ports) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  L7Rules out;
  int kinds = 0;
  for (const auto& [k, v] : j.items()) {
    std::string fpath = join(path, k);
    if (k == "http") {
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      kinds++;
      for (size_t i = 0; i < v.size(); i++) {
        std::string hpath = index(fpath, i);
        CILIUM_RETURN_IF_ERROR(requireObject(v[i], hpath));
        HttpRule h;
        for (const auto& [hk, hv] : v[i].items()) {
          std::string kpath = join(hpath, hk);
          if (hk == "method") {
            CILIUM_ASSIGN_OR_RETURN(h.method, stringField(hv, kpath));
            CILIUM_RETURN_IF_ERROR(checkRegex(h.method, kpath));
          } else if (hk == "path") {
            CILIUM_ASSIGN_OR_RETURN(h.path, stringField(hv, kpath));
            CILIUM_RETURN_IF_ERROR(checkRegex(h.path, kpath));
          } else if (hk == "host") {
            CILIUM_ASSIGN_OR_RETURN(h.host, stringField(hv, kpath));
            CILIUM_RETURN_IF_ERROR(checkRegex(h.host, kpath));
          } else if (hk == "headers") {
            if (!hv.is_array()) return invalid("{}: must be a list of strings", kpath);
            for (size_t n = 0; n < hv.size(); n++) {
              CILIUM_ASSIGN_OR_RETURN(auto s, stringField(hv[n], index(kpath, n)));
              CILIUM_RETURN_IF_ERROR(checkHeaderRule(s, index(kpath, n)));
              h.headers.push_back(std::move(s));
            }
          } else if (hk == "headerMatches") {
            if (!hv.is_array()) return invalid("{}: must be a list", kpath);
            for (size_t n = 0; n < hv.size(); n++) {
              CILIUM_ASSIGN_OR_RETURN(auto m, decodeHeaderMatch(hv[n], index(kpath, n)));
              h.header_matches.push_back(std::move(m));
            }
          } else {
            return invalid("{}: unknown field", kpath);
          }
        }
        out.http.push_back(std::move(h));
      }
    } else if (k == "dns") {
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      if (dir == Direction::kIngress)
        return invalid("{}: DNS rules are not allowed on ingress", fpath);
      kinds++;
      for (size_t i = 0; i < v.size(); i++) {
        std::string dpath = index(fpath, i);
        CILIUM_RETURN_IF_ERROR(requireObject(v[i], dpath));
        DnsRule d;
        for (const auto& [dk, dv] : v[i].items()) {
          std::string kpath = join(dpath, dk);
          if (dk == "matchName" || dk == "matchPattern") {
            CILIUM_ASSIGN_OR_RETURN(auto text, stringField(dv, kpath));
            auto n = normalizeFqdnMatch(text, dk == "matchPattern");
            if (!n.ok()) return invalid("{}: {}", kpath, n.error().message());
            (dk == "matchName" ? d.match_name : d.match_pattern) = *n;
          } else {
            return invalid("{}: unknown field", kpath);
          }
        }
        if (d.match_name.empty() == d.match_pattern.empty())
          return invalid("{}: set exactly one of matchName and matchPattern", dpath);
        out.dns.push_back(std::move(d));
      }
    } else if (k == "kafka" || k == "l7proto" || k == "l7") {
      return unsupported("{}: not supported", fpath);
    } else {
      return invalid("{}: unknown field", fpath);
    }
  }
  if (kinds > 1) return invalid("{}: only one L7 protocol per port rule", path);
  if (out.empty()) return out;
  if (ports.empty()) return invalid("{}: L7 rules need ports", path);
  for (const auto& p : ports) {
    if (p.port == 0 && p.name.empty()) return invalid("{}: L7 rules cannot apply to port 0", path);
    if (!out.http.empty() && p.protocol != Protocol::kTcp)
      return invalid("{}: HTTP rules need protocol TCP (not {})", path, protocolName(p.protocol));
    if (!out.dns.empty() && p.end_port > p.port)
      return invalid("{}: DNS rules do not support port ranges", path);
  }
  return out;
}

Result<PortRule> decodePortRule(const json& j, std::string_view path, Direction dir, bool deny) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  PortRule pr;
  CILIUM_ASSIGN_OR_RETURN(const json* ports, listField(j, "ports", path));
  if (ports == nullptr || ports->empty()) return invalid("{}: required", join(path, "ports"));
  {
    if (ports->size() > kMaxPorts)
      return invalid("{}: too many ports ({}), at most {}", join(path, "ports"), ports->size(),
                     kMaxPorts);
    for (size_t i = 0; i < ports->size(); i++) {
      CILIUM_ASSIGN_OR_RETURN(auto p,
                              decodePortProtocol((*ports)[i], index(join(path, "ports"), i)));
      pr.ports.push_back(std::move(p));
    }
  }
  for (const auto& [k, v] : j.items()) {
    if (k == "ports") continue;
    std::string fpath = join(path, k);
    if (k == "rules" && !deny) {
      if (v.is_null()) continue;
      CILIUM_ASSIGN_OR_RETURN(pr.rules, decodeL7(v, fpath, dir, pr.ports));
    } else if (k == "rules") {
      return invalid("{}: deny rules take ports only, no L7 rules", fpath);
    } else if (k == "terminatingTLS" || k == "originatingTLS" || k == "serverNames" ||
               k == "listener") {
      return unsupported("{}: not supported", fpath);
    } else {
      return invalid("{}: unknown field", fpath);
    }
  }
  return pr;
}

// --- Peers ---------------------------------------------------------------------------------------

// How selectors of the rule being decoded are scoped (pkg/k8s/apis/cilium.io/utils in Cilium).
struct Scope {
  enum class Kind { kRaw, kNamespaced, kClusterwide } kind = Kind::kRaw;
  std::string ns;
  bool subject_is_init = false;  // the endpointSelector selects reserved:init

  // Selectors of CNP/CCNP objects are checked as Cilium checks them (Kubernetes label keys with
  // an optional source); bare rules are the listing format, which holds keys the decoders built.
  labels::KeySyntax keys() const {
    return kind == Kind::kRaw ? labels::KeySyntax::kUnchecked : labels::KeySyntax::kCilium;
  }
};

void scopePeerSelector(LabelSelector& sel, const Scope& scope) {
  if (scope.kind == Scope::Kind::kRaw) return;
  // Selectors of reserved identities (host, world, ...) are never namespace-bound.
  if (sel.hasSource(Source::kReserved)) return;
  const std::string ns_key(labels::kPodNamespaceLabel);
  if (sel.hasKey(Source::kK8s, ns_key) || sel.hasKey(Source::kAny, ns_key)) return;
  if (scope.kind == Scope::Kind::kClusterwide) {
    // Only endpoints with a namespace (Cilium-managed pods), so "{}" does not mean "anything".
    if (!scope.subject_is_init)
      sel.addRequirement({Source::kK8s, ns_key, labels::Operator::kExists, {}});
    return;
  }
  const std::string prefix(labels::kNamespaceLabelsPrefix);
  if (sel.hasKeyPrefix(Source::kK8s, prefix) || sel.hasKeyPrefix(Source::kAny, prefix)) return;
  sel.addMatch(Source::kK8s, ns_key, scope.ns);
}

// A Cilium CIDR rule (fromCIDRSet / toCIDRSet). `selectsPods` (a NetworkPolicy ipBlock as the
// rule listing shows it) is accepted only in bare rules, where listings are read back.
Result<CidrRule> decodeCidrRule(const json& j, std::string_view path, bool raw) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  CidrRule r;
  bool have = false;
  for (const auto& [k, v] : j.items()) {
    std::string fpath = join(path, k);
    if (k == "cidr") {
      CILIUM_ASSIGN_OR_RETURN(auto s, stringField(v, fpath));
      auto p = IpPrefix::parseMasked(s);
      if (!p.ok()) return invalid("{}: \"{}\" is not a CIDR prefix", fpath, s);
      r.cidr = *p;
      have = true;
    } else if (k == "except") {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto s, stringField(v[i], index(fpath, i)));
        auto p = IpPrefix::parseMasked(s);
        if (!p.ok()) return invalid("{}: \"{}\" is not a CIDR prefix", index(fpath, i), s);
        r.except.push_back(*p);
      }
    } else if (k == "cidrGroupRef" || k == "cidrGroupSelector") {
      return unsupported("{}: not supported", fpath);
    } else if (k == "selectsPods" && raw) {
      if (!v.is_boolean()) return invalid("{}: must be true or false", fpath);
      r.selects_pods = v.get<bool>();
    } else {
      return invalid("{}: unknown field", fpath);
    }
  }
  if (!have) return invalid("{}: required", join(path, "cidr"));
  // As Cilium: an except may equal the CIDR (it then excludes all of it).
  for (size_t i = 0; i < r.except.size(); i++)
    if (!r.cidr.contains(r.except[i]))
      return invalid("{}: {} is not inside {}", index(join(path, "except"), i),
                     r.except[i].toString(), r.cidr.toString());
  return r;
}

Result<PeerRule> decodePeerRule(const json& j, std::string_view path, Direction dir, bool deny,
                                const Scope& scope) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  bool in = dir == Direction::kIngress;
  const char* f_endpoints = in ? "fromEndpoints" : "toEndpoints";
  const char* f_entities = in ? "fromEntities" : "toEntities";
  const char* f_cidr = in ? "fromCIDR" : "toCIDR";
  const char* f_cidrset = in ? "fromCIDRSet" : "toCIDRSet";
  static const char* const kUnsupportedIn[] = {"fromRequires", "fromGroups", "fromNodes", "icmps",
                                               "authentication"};
  static const char* const kUnsupportedOut[] = {
      "toRequires", "toServices", "toGroups", "toNodes", "icmps", "authentication"};
  PeerRule pr;
  for (const auto& [k, v] : j.items()) {
    std::string fpath = join(path, k);
    if (k == f_endpoints) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto sel, LabelSelector::fromJson(v[i], index(fpath, i),
                                                                  Source::kAny, {}, scope.keys()));
        scopePeerSelector(sel, scope);
        pr.endpoints.push_back(std::move(sel));
      }
    } else if (k == f_entities) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto s, stringField(v[i], index(fpath, i)));
        auto e = parseEntity(s);
        if (!e) return invalid("{}: unknown entity \"{}\"", index(fpath, i), s);
        pr.entities.push_back(*e);
      }
    } else if (k == f_cidr) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto s, stringField(v[i], index(fpath, i)));
        auto p = IpPrefix::parseMasked(s, /*allow_bare_ip=*/true);
        if (!p.ok()) return invalid("{}: \"{}\" is not a CIDR prefix", index(fpath, i), s);
        pr.cidrs.push_back(*p);
      }
    } else if (k == f_cidrset) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(
            auto c, decodeCidrRule(v[i], index(fpath, i), scope.kind == Scope::Kind::kRaw));
        pr.cidr_sets.push_back(std::move(c));
      }
    } else if (k == "toFQDNs" && !in) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      if (deny) return unsupported("{}: not supported in egressDeny (as Cilium)", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        std::string dpath = index(fpath, i);
        CILIUM_RETURN_IF_ERROR(requireObject(v[i], dpath));
        FqdnSelector f;
        for (const auto& [fk, fv] : v[i].items()) {
          std::string kpath = join(dpath, fk);
          if (fk != "matchName" && fk != "matchPattern") return invalid("{}: unknown field", kpath);
          CILIUM_ASSIGN_OR_RETURN(auto text, stringField(fv, kpath));
          auto n = normalizeFqdnMatch(text, fk == "matchPattern");
          if (!n.ok()) return invalid("{}: {}", kpath, n.error().message());
          (fk == "matchName" ? f.match_name : f.match_pattern) = *n;
        }
        if (f.match_name.empty() == f.match_pattern.empty())
          return invalid("{}: set exactly one of matchName and matchPattern", dpath);
        pr.fqdns.push_back(std::move(f));
      }
    } else if (k == "toPorts") {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto p, decodePortRule(v[i], index(fpath, i), dir, deny));
        pr.ports.push_back(std::move(p));
      }
    } else {
      const auto& unsup =
          in ? std::vector<std::string>(std::begin(kUnsupportedIn), std::end(kUnsupportedIn))
             : std::vector<std::string>(std::begin(kUnsupportedOut), std::end(kUnsupportedOut));
      if (std::find(unsup.begin(), unsup.end(), k) != unsup.end())
        return unsupported("{}: not supported", fpath);
      return invalid("{}: unknown field", fpath);
    }
  }
  return pr;
}

Result<Rule> decodeRule(const json& j, std::string_view path, Scope scope) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  Rule r;
  if (j.contains("nodeSelector"))
    return unsupported("{}: host policies (nodeSelector) are not supported",
                       join(path, "nodeSelector"));
  auto es = j.find("endpointSelector");
  if (es == j.end()) return invalid("{}: required", join(path, "endpointSelector"));
  CILIUM_ASSIGN_OR_RETURN(
      r.endpoint_selector,
      LabelSelector::fromJson(*es, join(path, "endpointSelector"), Source::kAny, {}, scope.keys()));
  const std::string ns_key(labels::kPodNamespaceLabel);
  if (scope.kind == Scope::Kind::kNamespaced) {
    // The rule applies in its own namespace, whatever the selector says.
    r.endpoint_selector.removeKey(ns_key);
    r.endpoint_selector.addMatch(Source::kK8s, ns_key, scope.ns);
  }
  scope.subject_is_init = r.endpoint_selector.hasKey(Source::kReserved, "init");

  struct ListSpec {
    const char* key;
    Direction dir;
    bool deny;
    std::vector<PeerRule>* out;
  } lists[] = {{"ingress", Direction::kIngress, false, &r.ingress},
               {"ingressDeny", Direction::kIngress, true, &r.ingress_deny},
               {"egress", Direction::kEgress, false, &r.egress},
               {"egressDeny", Direction::kEgress, true, &r.egress_deny}};
  for (const auto& [k, v] : j.items()) {
    std::string fpath = join(path, k);
    if (k == "endpointSelector") continue;
    const ListSpec* spec = nullptr;
    for (const auto& l : lists)
      if (k == l.key) spec = &l;
    if (spec != nullptr) {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(
            auto pr, decodePeerRule(v[i], index(fpath, i), spec->dir, spec->deny, scope));
        spec->out->push_back(std::move(pr));
      }
    } else if (k == "labels") {
      if (v.is_null()) continue;
      CILIUM_ASSIGN_OR_RETURN(auto l, labels::Labels::fromJson(v, fpath, Source::kUnspec));
      r.labels.merge(l);
    } else if (k == "description") {
      CILIUM_ASSIGN_OR_RETURN(r.description, stringField(v, fpath));
    } else if (k == "enableDefaultDeny") {
      CILIUM_RETURN_IF_ERROR(requireObject(v, fpath));
      for (const auto& [dk, dv] : v.items()) {
        if (dk != "ingress" && dk != "egress") return invalid("{}: unknown field", join(fpath, dk));
        if (dv.is_null()) continue;
        if (!dv.is_boolean()) return invalid("{}: must be true or false", join(fpath, dk));
        (dk == "ingress" ? r.default_deny_ingress : r.default_deny_egress) = dv.get<bool>();
      }
    } else {
      return invalid("{}: unknown field", fpath);
    }
  }
  return r;
}

// --- Kubernetes NetworkPolicy ------------------------------------------------------------------
// Validated as the API server validates NetworkPolicy (k8s.io/kubernetes
// pkg/apis/networking/validation), so that an object the API server would refuse never turns
// into a rule here: the manifests source and hand-written objects reach us without it.

Result<Protocol> decodeKnpProtocol(const json& j, std::string_view path) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "TCP") return Protocol::kTcp;
    if (s == "UDP") return Protocol::kUdp;
    if (s == "SCTP") return Protocol::kSctp;
  }
  return invalid("{}: {} is not one of TCP, UDP, SCTP", path, j.dump());
}

// One NetworkPolicyPort: protocol (default TCP), port (1-65535 or an IANA_SVC_NAME), endPort
// (1-65535, >= port, only with a numeric port).
Result<PortProtocol> decodeKnpPort(const json& j, std::string_view path) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  PortProtocol p;
  p.protocol = Protocol::kTcp;
  const json* port = nullptr;
  const json* end = nullptr;
  for (const auto& [k, v] : j.items()) {
    if (k != "port" && k != "endPort" && k != "protocol")
      return invalid("{}: unknown field", join(path, k));
    if (v.is_null()) continue;
    if (k == "port") {
      port = &v;
    } else if (k == "endPort") {
      end = &v;
    } else {
      CILIUM_ASSIGN_OR_RETURN(p.protocol, decodeKnpProtocol(v, join(path, k)));
    }
  }
  std::string port_path = join(path, "port");
  if (port != nullptr && port->is_number_integer()) {
    auto v = port->get<int64_t>();
    if (v < 1 || v > 65535)
      return invalid("{}: {} is not a valid port number (1-65535)", port_path, v);
    p.port = static_cast<uint16_t>(v);
  } else if (port != nullptr && port->is_string()) {
    const auto& s = port->get_ref<const std::string&>();
    if (!isServiceName(s, true))
      return invalid(
          "{}: \"{}\" is not a valid port name (IANA_SVC_NAME: 1-15 lowercase letters, digits "
          "and '-', at least one letter, no '-' at either end or twice in a row)",
          port_path, s);
    p.name = s;
  } else if (port != nullptr) {
    return invalid("{}: {} is not a valid port", port_path, port->dump());
  }
  if (end == nullptr) return p;
  std::string end_path = join(path, "endPort");
  if (!end->is_number_integer()) return invalid("{}: must be a number", end_path);
  if (port == nullptr) return invalid("{}: may not be specified without port", end_path);
  if (!p.name.empty()) return invalid("{}: may not be specified with a named port", end_path);
  auto v = end->get<int64_t>();
  if (v < 1 || v > 65535)
    return invalid("{}: {} is not a valid port number (1-65535)", end_path, v);
  if (v < p.port) return invalid("{}: {} is below port {}", end_path, v, p.port);
  if (v > p.port) p.end_port = static_cast<uint16_t>(v);
  return p;
}

Result<std::vector<PortRule>> decodeKnpPorts(const json& j, std::string_view path) {
  std::vector<PortRule> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return invalid("{}: must be a list", path);
  if (j.empty()) return out;
  PortRule pr;
  for (size_t i = 0; i < j.size(); i++) {
    CILIUM_ASSIGN_OR_RETURN(auto p, decodeKnpPort(j[i], index(path, i)));
    pr.ports.push_back(std::move(p));
  }
  // One port rule holding every port: the peers are allowed on any of them.
  out.push_back(std::move(pr));
  return out;
}

// An ipBlock: a CIDR, and excepts strictly inside it (an except equal to the CIDR is refused).
Result<CidrRule> decodeIpBlock(const json& j, std::string_view path) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  CidrRule r;
  r.selects_pods = true;
  bool have = false;
  auto prefix = [](const json& v, const std::string& fpath) -> Result<IpPrefix> {
    CILIUM_ASSIGN_OR_RETURN(auto s, stringField(v, fpath));
    auto p = IpPrefix::parseMasked(s);
    if (!p.ok()) return invalid("{}: \"{}\" is not a CIDR prefix", fpath, s);
    return *p;
  };
  for (const auto& [k, v] : j.items()) {
    std::string fpath = join(path, k);
    if (k == "cidr") {
      CILIUM_ASSIGN_OR_RETURN(r.cidr, prefix(v, fpath));
      have = true;
    } else if (k == "except") {
      if (v.is_null()) continue;
      if (!v.is_array()) return invalid("{}: must be a list", fpath);
      for (size_t i = 0; i < v.size(); i++) {
        CILIUM_ASSIGN_OR_RETURN(auto e, prefix(v[i], index(fpath, i)));
        r.except.push_back(e);
      }
    } else {
      return invalid("{}: unknown field", fpath);
    }
  }
  if (!have) return invalid("{}: required", join(path, "cidr"));
  for (size_t i = 0; i < r.except.size(); i++) {
    const auto& e = r.except[i];
    if (!r.cidr.contains(e) || e.len() <= r.cidr.len())
      return invalid("{}: {} is not strictly inside {}", index(join(path, "except"), i),
                     e.toString(), r.cidr.toString());
  }
  return r;
}

constexpr labels::KeySyntax kKnpKeys = labels::KeySyntax::kKubernetes;

Result<PeerRule> decodeKnpPeer(const json& j, std::string_view path, const std::string& ns) {
  CILIUM_RETURN_IF_ERROR(requireObject(j, path));
  const json* pod = nullptr;
  const json* nsel = nullptr;
  const json* ipblock = nullptr;
  for (const auto& [k, v] : j.items()) {
    if (k == "podSelector")
      pod = &v;
    else if (k == "namespaceSelector")
      nsel = &v;
    else if (k == "ipBlock")
      ipblock = &v;
    else
      return invalid("{}: unknown field", join(path, k));
  }
  if (pod && pod->is_null()) pod = nullptr;
  if (nsel && nsel->is_null()) nsel = nullptr;
  if (ipblock && ipblock->is_null()) ipblock = nullptr;
  PeerRule pr;
  if (ipblock) {
    if (pod || nsel)
      return invalid("{}: ipBlock cannot be combined with podSelector or namespaceSelector", path);
    CILIUM_ASSIGN_OR_RETURN(auto c, decodeIpBlock(*ipblock, join(path, "ipBlock")));
    pr.cidr_sets.push_back(std::move(c));
    return pr;
  }
  if (!pod && !nsel) return invalid("{}: set podSelector, namespaceSelector or ipBlock", path);
  const std::string ns_key(labels::kPodNamespaceLabel);
  LabelSelector sel;
  if (pod) {
    CILIUM_ASSIGN_OR_RETURN(
        sel, LabelSelector::fromJson(*pod, join(path, "podSelector"), Source::kK8s, {}, kKnpKeys));
  }
  if (nsel) {
    // Namespace labels are on the pods as io.cilium.k8s.namespace.labels.<key>.
    CILIUM_ASSIGN_OR_RETURN(
        auto nss, LabelSelector::fromJson(*nsel, join(path, "namespaceSelector"), Source::kK8s,
                                          labels::kNamespaceLabelsPrefix, kKnpKeys));
    if (nss.empty())  // every namespace: any pod, but nothing without a namespace (host, world)
      nss.addRequirement({Source::kK8s, ns_key, labels::Operator::kExists, {}});
    sel.merge(nss);
  } else {
    sel.removeKey(ns_key);
    sel.addMatch(Source::kK8s, ns_key, ns);
  }
  pr.endpoints.push_back(std::move(sel));
  return pr;
}

Result<Rule> decodeKnp(const json& spec, const std::string& ns) {
  CILIUM_RETURN_IF_ERROR(requireObject(spec, "spec"));
  Rule r;
  const json* types = nullptr;
  const json* ingress = nullptr;
  const json* egress = nullptr;
  bool have_pod_selector = false;
  for (const auto& [k, v] : spec.items()) {
    if (k == "podSelector") {
      CILIUM_ASSIGN_OR_RETURN(
          r.endpoint_selector,
          LabelSelector::fromJson(v, "spec.podSelector", Source::kK8s, {}, kKnpKeys));
      have_pod_selector = true;
    } else if (k == "policyTypes") {
      types = &v;
    } else if (k == "ingress") {
      ingress = &v;
    } else if (k == "egress") {
      egress = &v;
    } else {
      return invalid("spec.{}: unknown field", k);
    }
  }
  if (!have_pod_selector) return invalid("spec.podSelector: required");
  const std::string ns_key(labels::kPodNamespaceLabel);
  r.endpoint_selector.removeKey(ns_key);
  r.endpoint_selector.addMatch(Source::kK8s, ns_key, ns);

  for (const auto* list : {ingress, egress})
    if (list && !list->is_null() && !list->is_array())
      return invalid("spec.{}: must be a list", list == ingress ? "ingress" : "egress");
  bool has_egress_rules = egress && egress->is_array() && !egress->empty();
  bool ingress_on = true;
  bool egress_on = has_egress_rules;
  if (types && !types->is_null()) {
    if (!types->is_array()) return invalid("spec.policyTypes: must be a list");
    // An empty list is defaulted by the API server as if absent.
    if (!types->empty()) ingress_on = egress_on = false;
    for (size_t i = 0; i < types->size(); i++) {
      const auto& t = (*types)[i];
      bool& on = t == "Ingress" ? ingress_on : egress_on;
      if (t != "Ingress" && t != "Egress")
        return invalid("spec.policyTypes[{}]: {} is not Ingress or Egress", i, t.dump());
      if (on) return invalid("spec.policyTypes[{}]: duplicate {}", i, t.dump());
      on = true;
    }
  }
  r.default_deny_ingress = ingress_on;
  r.default_deny_egress = egress_on;

  struct Side {
    const json* list;
    const char* name;
    const char* peers;
    bool on;
    std::vector<PeerRule>* out;
  } sides[] = {{ingress, "ingress", "from", ingress_on, &r.ingress},
               {egress, "egress", "to", egress_on, &r.egress}};
  for (const auto& side : sides) {
    if (!side.list || side.list->is_null()) continue;
    for (size_t i = 0; i < side.list->size(); i++) {
      std::string rpath = fmt::format("spec.{}[{}]", side.name, i);
      const json& rule = (*side.list)[i];
      CILIUM_RETURN_IF_ERROR(requireObject(rule, rpath));
      const json* peers = nullptr;
      std::vector<PortRule> ports;
      for (const auto& [k, v] : rule.items()) {
        if (k == side.peers) {
          peers = &v;
        } else if (k == "ports") {
          CILIUM_ASSIGN_OR_RETURN(ports, decodeKnpPorts(v, join(rpath, k)));
        } else {
          return invalid("{}: unknown field", join(rpath, k));
        }
      }
      std::vector<PeerRule> translated;
      if (peers && !peers->is_null() && !peers->is_array())
        return invalid("{}: must be a list", join(rpath, side.peers));
      if (!peers || peers->is_null() || peers->empty()) {
        // No peers listed: every source (or destination), in the cluster or not.
        PeerRule all;
        all.entities.push_back(Entity::kAll);
        translated.push_back(std::move(all));
      } else {
        for (size_t p = 0; p < peers->size(); p++) {
          CILIUM_ASSIGN_OR_RETURN(
              auto pr, decodeKnpPeer((*peers)[p], index(join(rpath, side.peers), p), ns));
          translated.push_back(std::move(pr));
        }
      }
      if (!side.on) continue;  // policyTypes leaves this direction out: its rules do not apply
      for (auto& pr : translated) {
        pr.ports = ports;
        side.out->push_back(std::move(pr));
      }
    }
  }
  return r;
}

// --- Objects -------------------------------------------------------------------------------------

struct Meta {
  std::string name, ns, uid;
};

Result<Meta> decodeMeta(const json& obj, bool namespaced) {
  auto it = obj.find("metadata");
  if (it == obj.end() || !it->is_object()) return invalid("metadata: required");
  Meta m;
  auto name = it->find("name");
  if (name == it->end() || !name->is_string() || name->get_ref<const std::string&>().empty())
    return invalid("metadata.name: required");
  m.name = name->get<std::string>();
  if (auto ns = it->find("namespace"); ns != it->end() && !ns->is_null()) {
    CILIUM_ASSIGN_OR_RETURN(m.ns, stringField(*ns, "metadata.namespace"));
  }
  if (!namespaced)
    m.ns.clear();
  else if (m.ns.empty())
    m.ns = "default";
  if (auto uid = it->find("uid"); uid != it->end() && !uid->is_null()) {
    CILIUM_ASSIGN_OR_RETURN(m.uid, stringField(*uid, "metadata.uid"));
  }
  return m;
}

Status checkApiVersion(const json& obj, std::string_view want) {
  auto it = obj.find("apiVersion");
  if (it == obj.end()) return okStatus();
  if (!it->is_string() || it->get_ref<const std::string&>() != want)
    return invalid("apiVersion: {} is not {}", it->dump(), want);
  return okStatus();
}

Result<PolicyObject> decodeObject(const json& obj) {
  const auto& kind = obj["kind"].get_ref<const std::string&>();
  PolicyObject po;
  po.kind = kind;
  for (const auto& [k, v] : obj.items()) {
    static const char* const kTop[] = {"apiVersion", "kind", "metadata", "spec", "specs", "status"};
    if (std::find(std::begin(kTop), std::end(kTop), k) == std::end(kTop))
      return invalid("{}: unknown field", k);
  }
  if (kind == kKindKnp) {
    CILIUM_RETURN_IF_ERROR(checkApiVersion(obj, "networking.k8s.io/v1"));
    CILIUM_ASSIGN_OR_RETURN(Meta m, decodeMeta(obj, true));
    po.name = m.name;
    po.namespace_name = m.ns;
    po.uid = m.uid;
    if (obj.contains("specs")) return invalid("specs: unknown field");
    auto spec = obj.find("spec");
    if (spec == obj.end()) return invalid("spec: required");
    CILIUM_ASSIGN_OR_RETURN(Rule r, decodeKnp(*spec, m.ns));
    r.labels = labels::policyLabels(kind, m.ns, m.name, m.uid);
    po.rules.push_back(std::move(r));
    return po;
  }
  CILIUM_RETURN_IF_ERROR(checkApiVersion(obj, "cilium.io/v2"));
  bool namespaced = kind == kKindCnp;
  CILIUM_ASSIGN_OR_RETURN(Meta m, decodeMeta(obj, namespaced));
  po.name = m.name;
  po.namespace_name = m.ns;
  po.uid = m.uid;
  Scope scope;
  scope.kind = namespaced ? Scope::Kind::kNamespaced : Scope::Kind::kClusterwide;
  scope.ns = m.ns;
  auto spec = obj.find("spec");
  auto specs = obj.find("specs");
  bool have_spec = spec != obj.end() && !spec->is_null();
  bool have_specs = specs != obj.end() && !specs->is_null();
  if (!have_spec && !have_specs) return invalid("spec: a policy needs spec or specs");
  labels::Labels derived = labels::policyLabels(kind, m.ns, m.name, m.uid);
  if (have_spec) {
    CILIUM_ASSIGN_OR_RETURN(Rule r, decodeRule(*spec, "spec", scope));
    r.labels.merge(derived);
    po.rules.push_back(std::move(r));
  }
  if (have_specs) {
    if (!specs->is_array()) return invalid("specs: must be a list");
    for (size_t i = 0; i < specs->size(); i++) {
      CILIUM_ASSIGN_OR_RETURN(Rule r, decodeRule((*specs)[i], index("specs", i), scope));
      r.labels.merge(derived);
      po.rules.push_back(std::move(r));
    }
  }
  return po;
}

std::string describe(const json& obj) {
  std::string kind =
      obj.contains("kind") && obj["kind"].is_string() ? obj["kind"].get<std::string>() : "";
  std::string name, ns;
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
    if (auto n = m->find("name"); n != m->end() && n->is_string()) name = n->get<std::string>();
    if (auto n = m->find("namespace"); n != m->end() && n->is_string()) ns = n->get<std::string>();
  }
  if (name.empty()) return kind;
  return fmt::format("{} {}{}{}", kind, ns, ns.empty() ? "" : "/", name);
}

// One top-level document: an object of a policy kind, a List of them, a bare rule or a rule array.
Status decodeDocument(const json& doc, std::vector<PolicyObject>& out) {
  if (doc.is_array()) {
    CILIUM_ASSIGN_OR_RETURN(auto rules, decodeRules(doc, ""));
    PolicyObject po;
    po.rules = std::move(rules);
    out.push_back(std::move(po));
    return okStatus();
  }
  if (!doc.is_object()) return invalid("a policy document must be an object or a list of rules");
  auto kind = doc.find("kind");
  if (kind == doc.end()) {
    if (doc.contains("endpointSelector") || doc.contains("nodeSelector")) {
      CILIUM_ASSIGN_OR_RETURN(Rule r, decodeRule(doc, "", Scope{}));
      PolicyObject po;
      po.rules.push_back(std::move(r));
      out.push_back(std::move(po));
      return okStatus();
    }
    return invalid("kind: required");
  }
  if (!kind->is_string()) return invalid("kind: must be a string");
  const auto& k = kind->get_ref<const std::string&>();
  if (k == "List" || k == "CiliumNetworkPolicyList" || k == "CiliumClusterwideNetworkPolicyList" ||
      k == "NetworkPolicyList") {
    auto items = doc.find("items");
    if (items == doc.end() || !items->is_array()) return invalid("items: must be a list");
    for (size_t i = 0; i < items->size(); i++) {
      const json& item = (*items)[i];
      if (!item.is_object() || !item.contains("kind")) {
        if (k == "List") return invalid("items[{}].kind: required", i);
      }
      json copy = item;
      if (!copy.contains("kind") && item.is_object())
        copy["kind"] = k.substr(0, k.size() - 4);  // "...List" -> the item kind
      auto st = decodeDocument(copy, out);
      if (!st.ok()) return st.error().withContext(fmt::format("items[{}]", i));
    }
    return okStatus();
  }
  if (k != kKindCnp && k != kKindCcnp && k != kKindKnp)
    return invalid("kind: \"{}\" is not a policy kind ({}, {}, {})", k, kKindCnp, kKindCcnp,
                   kKindKnp);
  CILIUM_ASSIGN_OR_RETURN(PolicyObject po, decodeObject(doc));
  out.push_back(std::move(po));
  return okStatus();
}

}  // namespace

labels::Labels PolicyObject::objectLabels() const {
  if (kind.empty()) return {};
  return labels::policyLabels(kind, namespace_name, name, "");
}

Result<std::vector<json>> yamlToJson(std::string_view text) {
  if (text.size() > kMaxPolicyBytes)
    return invalid("policy text is {} bytes, more than the {} allowed", text.size(),
                   kMaxPolicyBytes);
  return yaml::toJson(text,
                      yaml::Limits{.max_bytes = kMaxPolicyBytes, .max_depth = kMaxNestingDepth});
}

Result<std::vector<PolicyObject>> decodePolicies(std::string_view text) {
  CILIUM_ASSIGN_OR_RETURN(auto docs, yamlToJson(text));
  if (docs.empty()) return invalid("no policy in the text");
  std::vector<PolicyObject> out;
  for (size_t i = 0; i < docs.size(); i++) {
    auto st = decodeDocument(docs[i], out);
    if (st.ok()) continue;
    if (docs.size() == 1) return st.error();
    std::string what = docs[i].is_object() ? describe(docs[i]) : std::string();
    return st.error().withContext(what.empty() ? fmt::format("document {}", i + 1)
                                               : fmt::format("document {} ({})", i + 1, what));
  }
  return out;
}

Result<std::vector<PolicyObject>> decodePolicyJson(const json& document) {
  std::vector<PolicyObject> out;
  CILIUM_RETURN_IF_ERROR(decodeDocument(document, out));
  return out;
}

Result<std::vector<Rule>> decodeRules(const json& array, std::string_view path) {
  if (!array.is_array())
    return invalid("{}: must be a list of rules", path.empty() ? "policy" : path);
  std::vector<Rule> out;
  for (size_t i = 0; i < array.size(); i++) {
    CILIUM_ASSIGN_OR_RETURN(Rule r, decodeRule(array[i], index(path, i), Scope{}));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<Rule>> decodeRules(std::string_view json_text) {
  if (json_text.size() > kMaxPolicyBytes)
    return invalid("policy text is {} bytes, more than the {} allowed", json_text.size(),
                   kMaxPolicyBytes);
  CILIUM_RETURN_IF_ERROR(checkNesting(json_text));
  auto j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid("policy is not valid JSON");
  return decodeRules(j, "");
}

Result<PolicyObject> failClosedPolicy(const json& obj, std::string_view reason) {
  if (!obj.is_object()) return invalid("a policy object must be an object");
  auto kind_it = obj.find("kind");
  if (kind_it == obj.end() || !kind_it->is_string()) return invalid("kind: required");
  const auto& kind = kind_it->get_ref<const std::string&>();
  if (kind != kKindCnp && kind != kKindCcnp && kind != kKindKnp)
    return invalid("kind: \"{}\" is not a policy kind", kind);
  const bool namespaced = kind != kKindCcnp;
  CILIUM_ASSIGN_OR_RETURN(Meta m, decodeMeta(obj, namespaced));
  PolicyObject po;
  po.kind = kind;
  po.namespace_name = m.ns;
  po.name = m.name;
  po.uid = m.uid;
  const std::string ns_key(labels::kPodNamespaceLabel);
  // Every endpoint the object could select: its namespace's pods, or every pod for a CCNP.
  auto everything = [&] {
    LabelSelector sel;
    if (namespaced)
      sel.addMatch(Source::kK8s, ns_key, m.ns);
    else
      sel.addRequirement({Source::kK8s, ns_key, labels::Operator::kExists, {}});
    return sel;
  };
  // Allow rules that cannot be read are left out: the selected endpoints are put in default
  // deny, and only what other rules allow stays allowed. Deny rules that cannot be read (or a
  // spec that cannot be read at all, which may hold some) deny everything in their direction.
  auto stub = [&](LabelSelector sel, bool ingress, bool egress, bool deny_ingress = false,
                  bool deny_egress = false) {
    Rule r;
    r.endpoint_selector = std::move(sel);
    r.default_deny_ingress = ingress || deny_ingress;
    r.default_deny_egress = egress || deny_egress;
    PeerRule all;
    all.entities.push_back(Entity::kAll);
    if (deny_ingress) r.ingress_deny.push_back(all);
    if (deny_egress) r.egress_deny.push_back(all);
    r.labels = labels::policyLabels(kind, m.ns, m.name, m.uid);
    r.description = fmt::format("fail-closed: {}", reason.substr(0, 200));
    po.rules.push_back(std::move(r));
  };
  auto has = [](const json& spec, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (auto it = spec.find(k); it != spec.end() && !it->is_null()) return true;
    return false;
  };

  if (kind == kKindKnp) {
    const json* spec = obj.contains("spec") && obj["spec"].is_object() ? &obj["spec"] : nullptr;
    LabelSelector sel = everything();
    if (spec && spec->contains("podSelector")) {
      auto ps = LabelSelector::fromJson((*spec)["podSelector"], "spec.podSelector", Source::kK8s);
      if (ps.ok()) {
        sel = std::move(*ps);
        sel.removeKey(ns_key);
        sel.addMatch(Source::kK8s, ns_key, m.ns);
      }
    }
    bool ingress = true, egress = true;  // unless the policy types say otherwise
    if (spec && spec->contains("policyTypes") && (*spec)["policyTypes"].is_array()) {
      bool in = false, eg = false, readable = true;
      for (const auto& t : (*spec)["policyTypes"]) {
        if (t == "Ingress")
          in = true;
        else if (t == "Egress")
          eg = true;
        else
          readable = false;
      }
      if (readable && (in || eg)) ingress = in, egress = eg;
    } else if (spec && !spec->contains("policyTypes")) {
      egress = has(*spec, {"egress"});  // the API server's default
    }
    stub(std::move(sel), ingress, egress);
    return po;
  }

  Scope scope;
  scope.kind = namespaced ? Scope::Kind::kNamespaced : Scope::Kind::kClusterwide;
  scope.ns = m.ns;
  std::vector<const json*> specs;
  if (auto it = obj.find("spec"); it != obj.end() && !it->is_null()) specs.push_back(&*it);
  if (auto it = obj.find("specs"); it != obj.end() && it->is_array())
    for (const auto& s : *it) specs.push_back(&s);
  if (specs.empty()) {
    stub(everything(), true, true, true, true);
    return po;
  }
  for (const json* spec : specs) {
    if (!spec->is_object()) {
      stub(everything(), true, true, true, true);
      continue;
    }
    LabelSelector sel = everything();
    auto es = spec->contains("endpointSelector")
                  ? LabelSelector::fromJson((*spec)["endpointSelector"], "endpointSelector",
                                            Source::kAny)
                  : Result<LabelSelector>(Error(ErrorCode::kInvalidArgument, "none"));
    if (es.ok()) {
      sel = std::move(*es);
      if (namespaced) {
        sel.removeKey(ns_key);
        sel.addMatch(Source::kK8s, ns_key, m.ns);
      }
    }
    bool ingress = has(*spec, {"ingress"}), egress = has(*spec, {"egress"});
    bool deny_ingress = has(*spec, {"ingressDeny"}), deny_egress = has(*spec, {"egressDeny"});
    if (!ingress && !egress && !deny_ingress && !deny_egress) ingress = egress = true;
    stub(std::move(sel), ingress, egress, deny_ingress, deny_egress);
  }
  return po;
}

}  // namespace cilium::policy
