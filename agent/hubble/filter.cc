// Compiling flow.FlowFilter into predicates.
#include "agent/hubble/filter.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>

#include <re2/re2.h>

#include "agent/common/inet.h"
#include "agent/hubble/decoder.h"

namespace cilium::hubble {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error invalid(std::string_view field, std::string_view value, std::string_view why) {
  return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" {}", field, value, why);
}

// Splits at commas outside parentheses.
std::vector<std::string_view> splitTerms(std::string_view s) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (s[i] == ',' && depth == 0)) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    } else if (s[i] == '(') {
      ++depth;
    } else if (s[i] == ')') {
      --depth;
    }
  }
  return out;
}

Result<std::pair<labels::Source, std::string>> parseKey(std::string_view k) {
  k = trim(k);
  labels::Source src = labels::Source::kAny;
  auto colon = k.find(':');
  if (colon != std::string_view::npos) {
    auto s = labels::parseSource(k.substr(0, colon));
    if (!s) return makeError(ErrorCode::kInvalidArgument, "unknown label source in \"{}\"", k);
    src = *s;
    k = k.substr(colon + 1);
  }
  if (k.empty()) return makeError(ErrorCode::kInvalidArgument, "empty label key");
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == '/'))
      return makeError(ErrorCode::kInvalidArgument, "label key \"{}\" has '{}'", k, c);
  }
  return std::make_pair(src, std::string(k));
}

Result<std::vector<std::string>> parseSet(std::string_view s) {
  s = trim(s);
  if (s.size() < 2 || s.front() != '(' || s.back() != ')')
    return makeError(ErrorCode::kInvalidArgument, "expected (values) after in/notin");
  std::vector<std::string> out;
  std::string_view body = s.substr(1, s.size() - 2);
  size_t start = 0;
  for (size_t i = 0; i <= body.size(); ++i) {
    if (i == body.size() || body[i] == ',') {
      auto v = trim(body.substr(start, i - start));
      if (!v.empty()) out.emplace_back(v);
      start = i + 1;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

labels::Labels flowLabels(const flow::Endpoint& ep) {
  std::vector<labels::Label> ls;
  for (const auto& s : ep.labels()) {
    auto l = labels::Label::parse(s);
    if (l.ok()) ls.push_back(std::move(l).value());
  }
  return labels::Labels(std::move(ls));
}

Result<uint16_t> parsePort(std::string_view field, std::string_view v) {
  uint32_t port = 0;
  auto t = trim(v);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), port);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || port > 65535)
    return invalid(field, v, "is not a port (0..65535)");
  return static_cast<uint16_t>(port);
}

// Prefix matching is done here on the address bytes rather than with IpPrefix: agent/common has
// two IpPrefix classes with different layouts whose out-of-line members share symbol names.
struct Cidr {
  IpAddr addr;
  int len = 0;
  bool contains(const IpAddr& ip) const {
    if (ip.isV4() != addr.isV4()) return false;
    const auto& a = addr.bytes();
    const auto& b = ip.bytes();
    int full = len / 8, rest = len % 8;
    for (int i = 0; i < full; ++i)
      if (a[i] != b[i]) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
  }
};

struct IpMatcher {
  std::vector<IpAddr> exact;
  std::vector<Cidr> prefixes;
  bool matches(const std::string& text) const {
    auto ip = IpAddr::parse(text);
    if (!ip.ok()) return false;
    for (const auto& e : exact)
      if (e == *ip) return true;
    for (const auto& p : prefixes)
      if (p.contains(*ip)) return true;
    return false;
  }
};

Result<IpMatcher> compileIps(std::string_view field,
                             const google::protobuf::RepeatedPtrField<std::string>& values) {
  IpMatcher m;
  for (const auto& v : values) {
    if (v.find('/') != std::string::npos) {
      // Host bits are allowed here ("10.0.0.5/24" selects 10.0.0.0/24), as Hubble does.
      auto slash = v.find('/');
      auto addr = IpAddr::parse(trim(std::string_view(v).substr(0, slash)));
      if (!addr.ok()) return invalid(field, v, "is not an IP address or CIDR");
      auto len_text = std::string_view(v).substr(slash + 1);
      int len = -1;
      auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
      if (ec != std::errc() || p != len_text.data() + len_text.size() || len < 0 ||
          len > (addr->isV4() ? 32 : 128))
        return invalid(field, v, "has a bad prefix length");
      m.prefixes.push_back(Cidr{*addr, len});
    } else {
      auto addr = IpAddr::parse(trim(v));
      if (!addr.ok()) return invalid(field, v, "is not an IP address or CIDR");
      m.exact.push_back(*addr);
    }
  }
  return m;
}

struct PodPattern {
  std::optional<std::string> ns;  // nullopt = any namespace
  std::string prefix;
};

Result<std::vector<PodPattern>> compilePods(
    std::string_view field, const google::protobuf::RepeatedPtrField<std::string>& values) {
  std::vector<PodPattern> out;
  for (const auto& v : values) {
    PodPattern p;
    auto slash = v.find('/');
    if (slash == std::string::npos) {
      p.prefix = v;
    } else {
      p.ns = v.substr(0, slash);
      p.prefix = v.substr(slash + 1);
      if (p.prefix.find('/') != std::string::npos)
        return invalid(field, v, "has more than one '/' (namespace/pod-prefix)");
    }
    if (!p.ns && p.prefix.empty()) return invalid(field, v, "is empty");
    out.push_back(std::move(p));
  }
  return out;
}

bool podMatches(const std::vector<PodPattern>& pats, const flow::Endpoint& ep) {
  for (const auto& p : pats) {
    if (p.ns && *p.ns != ep.namespace_()) continue;
    // A pattern with a name only matches pods, never identities without a pod name.
    if (!p.prefix.empty() && (ep.pod_name().empty() || !ep.pod_name().starts_with(p.prefix)))
      continue;
    if (p.prefix.empty() && ep.namespace_().empty()) continue;
    return true;
  }
  return false;
}

bool globMatch(std::string_view pat, std::string_view s) {
  // Iterative '*' matching with backtracking to the last star.
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

// "namespace/name-prefix" over a Service (source_service, destination_service): the pod syntax.
bool serviceMatches(const std::vector<PodPattern>& pats, const flow::Service& svc) {
  if (svc.name().empty()) return false;
  for (const auto& p : pats) {
    if (p.ns && *p.ns != svc.namespace_()) continue;
    if (!p.prefix.empty() && !svc.name().starts_with(p.prefix)) continue;
    return true;
  }
  return false;
}

bool workloadMatches(const std::vector<flow::Workload>& want, const flow::Endpoint& ep) {
  for (const auto& w : ep.workloads())
    for (const auto& f : want)
      if ((f.name().empty() || f.name() == w.name()) && (f.kind().empty() || f.kind() == w.kind()))
        return true;
  return false;
}

Result<std::vector<flow::Workload>> compileWorkloads(
    std::string_view field, const google::protobuf::RepeatedPtrField<flow::Workload>& values) {
  std::vector<flow::Workload> out;
  for (const auto& w : values) {
    if (w.name().empty() && w.kind().empty())
      return invalid(field, "", "is empty (give a name, a kind or both)");
    out.push_back(w);
  }
  return out;
}

// FQDN patterns as Hubble's: lower case, '*' for any run of characters, a trailing dot ignored.
Result<std::vector<std::string>> compileFqdns(
    std::string_view field, const google::protobuf::RepeatedPtrField<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    std::string p(trim(v));
    if (!p.empty() && p.back() == '.') p.pop_back();
    if (p.empty()) return invalid(field, v, "is empty");
    for (auto& c : p) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
            c == '*'))
        return invalid(field, v, "is not a DNS name pattern (letters, digits, '-', '.', '*')");
    }
    out.push_back(std::move(p));
  }
  return out;
}

bool fqdnMatches(const std::vector<std::string>& pats,
                 const google::protobuf::RepeatedPtrField<std::string>& names) {
  for (std::string n : names) {
    if (!n.empty() && n.back() == '.') n.pop_back();
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& p : pats)
      if (globMatch(p, n)) return true;
  }
  return false;
}

// Compiled RE2 patterns (untrusted: RE2 matches in linear time and refuses what it cannot).
using Regexes = std::vector<std::shared_ptr<const re2::RE2>>;
Result<Regexes> compileRegexes(std::string_view field,
                               const google::protobuf::RepeatedPtrField<std::string>& values) {
  Regexes out;
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(1 << 20);
  for (const auto& v : values) {
    auto re = std::make_shared<re2::RE2>(v, opts);
    if (!re->ok()) return invalid(field, v, fmt::format("is not a regular expression: {}", re->error()));
    out.push_back(std::move(re));
  }
  return out;
}

bool anyRegexMatches(const Regexes& res, std::string_view text) {
  for (const auto& re : res)
    if (re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re)) return true;
  return false;
}

// "404" (one code) or "4+" / "40+" (every code starting with those digits), as Hubble's.
Result<std::vector<std::string>> compileStatusCodes(
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    std::string_view t = trim(v);
    bool plus = !t.empty() && t.back() == '+';
    std::string_view digits = plus ? t.substr(0, t.size() - 1) : t;
    bool ok = !digits.empty() && digits.size() <= 3 && (plus ? digits.size() < 3 : digits.size() == 3) &&
              std::all_of(digits.begin(), digits.end(),
                          [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
              digits.front() >= '1' && digits.front() <= '5';
    if (!ok) return invalid("http_status_code", v, "is not a status code (404) or prefix (4+, 40+)");
    out.push_back(plus ? std::string(digits) : std::string(t) + "$");
  }
  return out;
}

// The path of an HTTP URL ("http://host/a/b?q" -> "/a/b").
std::string_view urlPath(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    auto slash = url.find('/', scheme + 3);
    url = slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
  }
  auto q = url.find_first_of("?#");
  return q == std::string_view::npos ? url : url.substr(0, q);
}

// A nested filter message with fields this agent does not know: refused, as a FlowFilter's.
Status checkKnownMessage(const google::protobuf::Message& m, std::string_view field) {
  const auto& unknown = m.GetReflection()->GetUnknownFields(m);
  if (unknown.empty()) return okStatus();
  return makeError(ErrorCode::kInvalidArgument, "{}: field number {} is not known to this server",
                   field, unknown.field(0).number());
}

// FlowFilter fields this agent does not know (a newer client's) would be skipped by the parser,
// leaving a wider filter than the client asked for: such a filter is refused instead.
Status checkKnownFields(const flow::FlowFilter& f) {
  const auto& unknown = f.GetReflection()->GetUnknownFields(f);
  if (unknown.empty()) return okStatus();
  return makeError(ErrorCode::kInvalidArgument,
                   "field number {} is not a filter this server knows; refusing rather than "
                   "matching more flows than asked",
                   unknown.field(0).number());
}

}  // namespace

Result<labels::LabelSelector> parseSelectorText(std::string_view text) {
  labels::LabelSelector sel;
  if (trim(text).empty()) return makeError(ErrorCode::kInvalidArgument, "empty label selector");
  for (auto term : splitTerms(text)) {
    if (term.empty()) return makeError(ErrorCode::kInvalidArgument, "empty term in \"{}\"", text);
    labels::Requirement r;
    if (auto pos = term.find(" notin "); pos != std::string_view::npos) {
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term.substr(0, pos)));
      CILIUM_ASSIGN_OR_RETURN(r.values, parseSet(term.substr(pos + 7)));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kNotIn;
    } else if (auto pos2 = term.find(" in "); pos2 != std::string_view::npos) {
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term.substr(0, pos2)));
      CILIUM_ASSIGN_OR_RETURN(r.values, parseSet(term.substr(pos2 + 4)));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kIn;
    } else if (auto ne = term.find("!="); ne != std::string_view::npos) {
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term.substr(0, ne)));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kNotIn;
      r.values = {std::string(trim(term.substr(ne + 2)))};
    } else if (auto eq = term.find('='); eq != std::string_view::npos) {
      size_t vstart = eq + 1;
      if (vstart < term.size() && term[vstart] == '=') ++vstart;
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term.substr(0, eq)));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kIn;
      r.values = {std::string(trim(term.substr(vstart)))};
    } else if (term.front() == '!') {
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term.substr(1)));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kDoesNotExist;
    } else {
      CILIUM_ASSIGN_OR_RETURN(auto key, parseKey(term));
      r.source = key.first;
      r.key = key.second;
      r.op = labels::Operator::kExists;
    }
    if ((r.op == labels::Operator::kIn || r.op == labels::Operator::kNotIn) && r.values.empty())
      return makeError(ErrorCode::kInvalidArgument, "\"{}\" has no value", term);
    sel.addRequirement(std::move(r));
  }
  return sel;
}

Result<FlowPredicate> compileFilter(const flow::FlowFilter& f) {
  CILIUM_RETURN_IF_ERROR(checkKnownFields(f));
  for (const auto& e : f.event_type())
    CILIUM_RETURN_IF_ERROR(checkKnownMessage(e, "event_type"));
  for (const auto& t : f.tcp_flags()) CILIUM_RETURN_IF_ERROR(checkKnownMessage(t, "tcp_flags"));
  for (const auto& w : f.source_workload())
    CILIUM_RETURN_IF_ERROR(checkKnownMessage(w, "source_workload"));
  for (const auto& w : f.destination_workload())
    CILIUM_RETURN_IF_ERROR(checkKnownMessage(w, "destination_workload"));
  std::vector<FlowPredicate> preds;

  if (f.uuid_size() > 0) {
    std::vector<std::string> ids(f.uuid().begin(), f.uuid().end());
    preds.push_back([ids](const flow::Flow& fl) {
      return std::find(ids.begin(), ids.end(), fl.uuid()) != ids.end();
    });
  }
  if (f.source_ip_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto m, compileIps("source_ip", f.source_ip()));
    preds.push_back([m](const flow::Flow& fl) { return m.matches(fl.ip().source()); });
  }
  if (f.destination_ip_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto m, compileIps("destination_ip", f.destination_ip()));
    preds.push_back([m](const flow::Flow& fl) { return m.matches(fl.ip().destination()); });
  }
  if (f.source_pod_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compilePods("source_pod", f.source_pod()));
    preds.push_back([pats](const flow::Flow& fl) { return podMatches(pats, fl.source()); });
  }
  if (f.destination_pod_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compilePods("destination_pod", f.destination_pod()));
    preds.push_back([pats](const flow::Flow& fl) { return podMatches(pats, fl.destination()); });
  }
  auto labelPred = [](std::string_view field, const auto& values,
                      bool source) -> Result<FlowPredicate> {
    std::vector<labels::LabelSelector> sels;
    for (const auto& v : values) {
      auto s = parseSelectorText(v);
      if (!s.ok()) return s.error().withContext(fmt::format("{}: \"{}\"", field, v));
      sels.push_back(std::move(s).value());
    }
    return FlowPredicate([sels, source](const flow::Flow& fl) {
      auto ls = flowLabels(source ? fl.source() : fl.destination());
      for (const auto& s : sels)
        if (s.matches(ls)) return true;
      return false;
    });
  };
  if (f.source_label_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto p, labelPred("source_label", f.source_label(), true));
    preds.push_back(std::move(p));
  }
  if (f.destination_label_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto p, labelPred("destination_label", f.destination_label(), false));
    preds.push_back(std::move(p));
  }
  if (f.traffic_direction_size() > 0) {
    std::vector<int> v(f.traffic_direction().begin(), f.traffic_direction().end());
    preds.push_back([v](const flow::Flow& fl) {
      return std::find(v.begin(), v.end(), fl.traffic_direction()) != v.end();
    });
  }
  if (f.verdict_size() > 0) {
    std::vector<int> v(f.verdict().begin(), f.verdict().end());
    preds.push_back([v](const flow::Flow& fl) {
      return std::find(v.begin(), v.end(), fl.verdict()) != v.end();
    });
  }
  if (f.drop_reason_desc_size() > 0) {
    std::vector<int> v(f.drop_reason_desc().begin(), f.drop_reason_desc().end());
    preds.push_back([v](const flow::Flow& fl) {
      return fl.verdict() == flow::DROPPED &&
             std::find(v.begin(), v.end(), fl.drop_reason_desc()) != v.end();
    });
  }
  if (f.event_type_size() > 0) {
    std::vector<flow::EventTypeFilter> v(f.event_type().begin(), f.event_type().end());
    preds.push_back([v](const flow::Flow& fl) {
      for (const auto& e : v) {
        if (e.type() != fl.event_type().type()) continue;
        if (e.match_sub_type() && e.sub_type() != fl.event_type().sub_type()) continue;
        return true;
      }
      return false;
    });
  }
  if (f.protocol_size() > 0) {
    std::vector<std::string> protos;
    for (auto p : f.protocol()) {
      std::transform(p.begin(), p.end(), p.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (p == "icmp") {
        protos.push_back("icmpv4");
        protos.push_back("icmpv6");
      } else if (p == "tcp" || p == "udp" || p == "sctp" || p == "icmpv4" || p == "icmpv6" ||
                 p == "http" || p == "dns") {
        protos.push_back(p);
      } else {
        return invalid("protocol", p,
                       "is not one of tcp, udp, sctp, icmp, icmpv4, icmpv6, http, dns");
      }
    }
    preds.push_back([protos](const flow::Flow& fl) {
      auto has = [&](std::string_view name) {
        return std::find(protos.begin(), protos.end(), name) != protos.end();
      };
      if (fl.l7().has_http() && has("http")) return true;
      if (fl.l7().has_dns() && has("dns")) return true;
      return has(l4ProtocolName(fl));
    });
  }
  if (f.source_port_size() > 0) {
    std::vector<uint16_t> ports;
    for (const auto& p : f.source_port()) {
      CILIUM_ASSIGN_OR_RETURN(auto port, parsePort("source_port", p));
      ports.push_back(port);
    }
    preds.push_back([ports](const flow::Flow& fl) {
      if (fl.l4().protocol_case() == flow::Layer4::PROTOCOL_NOT_SET) return false;
      return std::find(ports.begin(), ports.end(), sourcePort(fl)) != ports.end();
    });
  }
  if (f.destination_port_size() > 0) {
    std::vector<uint16_t> ports;
    for (const auto& p : f.destination_port()) {
      CILIUM_ASSIGN_OR_RETURN(auto port, parsePort("destination_port", p));
      ports.push_back(port);
    }
    preds.push_back([ports](const flow::Flow& fl) {
      if (fl.l4().protocol_case() == flow::Layer4::PROTOCOL_NOT_SET) return false;
      return std::find(ports.begin(), ports.end(), destinationPort(fl)) != ports.end();
    });
  }
  if (f.reply_size() > 0) {
    std::vector<bool> v(f.reply().begin(), f.reply().end());
    preds.push_back([v](const flow::Flow& fl) {
      if (!fl.has_is_reply()) return false;
      return std::find(v.begin(), v.end(), fl.is_reply().value()) != v.end();
    });
  }
  if (f.source_identity_size() > 0) {
    std::vector<uint32_t> v(f.source_identity().begin(), f.source_identity().end());
    preds.push_back([v](const flow::Flow& fl) {
      return std::find(v.begin(), v.end(), fl.source().identity()) != v.end();
    });
  }
  if (f.destination_identity_size() > 0) {
    std::vector<uint32_t> v(f.destination_identity().begin(), f.destination_identity().end());
    preds.push_back([v](const flow::Flow& fl) {
      return std::find(v.begin(), v.end(), fl.destination().identity()) != v.end();
    });
  }
  if (f.tcp_flags_size() > 0) {
    std::vector<flow::TCPFlags> v(f.tcp_flags().begin(), f.tcp_flags().end());
    preds.push_back([v](const flow::Flow& fl) {
      if (fl.l4().protocol_case() != flow::Layer4::kTCP) return false;
      const auto& got = fl.l4().tcp().flags();
      for (const auto& want : v) {
        // Every flag the filter sets must be on in the flow.
        if ((want.fin() && !got.fin()) || (want.syn() && !got.syn()) ||
            (want.rst() && !got.rst()) || (want.psh() && !got.psh()) ||
            (want.ack() && !got.ack()) || (want.urg() && !got.urg()) ||
            (want.ece() && !got.ece()) || (want.cwr() && !got.cwr()) || (want.ns() && !got.ns()))
          continue;
        return true;
      }
      return false;
    });
  }
  if (f.node_name_size() > 0) {
    std::vector<std::string> v(f.node_name().begin(), f.node_name().end());
    preds.push_back([v](const flow::Flow& fl) {
      for (const auto& p : v)
        if (globMatch(p, fl.node_name())) return true;
      return false;
    });
  }
  if (f.ip_version_size() > 0) {
    std::vector<int> v(f.ip_version().begin(), f.ip_version().end());
    preds.push_back([v](const flow::Flow& fl) {
      return std::find(v.begin(), v.end(), fl.ip().ipversion()) != v.end();
    });
  }
  if (f.source_fqdn_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compileFqdns("source_fqdn", f.source_fqdn()));
    preds.push_back([pats](const flow::Flow& fl) { return fqdnMatches(pats, fl.source_names()); });
  }
  if (f.destination_fqdn_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compileFqdns("destination_fqdn", f.destination_fqdn()));
    preds.push_back(
        [pats](const flow::Flow& fl) { return fqdnMatches(pats, fl.destination_names()); });
  }
  if (f.source_service_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compilePods("source_service", f.source_service()));
    preds.push_back(
        [pats](const flow::Flow& fl) { return serviceMatches(pats, fl.source_service()); });
  }
  if (f.destination_service_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto pats, compilePods("destination_service", f.destination_service()));
    preds.push_back(
        [pats](const flow::Flow& fl) { return serviceMatches(pats, fl.destination_service()); });
  }
  if (f.source_workload_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto w, compileWorkloads("source_workload", f.source_workload()));
    preds.push_back([w](const flow::Flow& fl) { return workloadMatches(w, fl.source()); });
  }
  if (f.destination_workload_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto w,
                            compileWorkloads("destination_workload", f.destination_workload()));
    preds.push_back([w](const flow::Flow& fl) { return workloadMatches(w, fl.destination()); });
  }
  // L7 fields match L7 records only: a flow without one (every L3/L4 flow) never matches.
  if (f.http_status_code_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto codes, compileStatusCodes(f.http_status_code()));
    preds.push_back([codes](const flow::Flow& fl) {
      if (!fl.l7().has_http() || fl.l7().http().code() == 0) return false;
      std::string code = std::to_string(fl.l7().http().code()) + "$";
      for (const auto& c : codes)
        if (code.starts_with(c)) return true;
      return false;
    });
  }
  if (f.http_method_size() > 0) {
    std::vector<std::string> methods;
    for (const auto& m : f.http_method()) {
      if (trim(m).empty()) return invalid("http_method", m, "is empty");
      std::string up(trim(m));
      for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      methods.push_back(std::move(up));
    }
    preds.push_back([methods](const flow::Flow& fl) {
      if (!fl.l7().has_http()) return false;
      std::string got = fl.l7().http().method();
      for (auto& c : got) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return std::find(methods.begin(), methods.end(), got) != methods.end();
    });
  }
  if (f.http_path_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto res, compileRegexes("http_path", f.http_path()));
    preds.push_back([res](const flow::Flow& fl) {
      return fl.l7().has_http() && anyRegexMatches(res, urlPath(fl.l7().http().url()));
    });
  }
  if (f.dns_query_size() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto res, compileRegexes("dns_query", f.dns_query()));
    preds.push_back([res](const flow::Flow& fl) {
      return fl.l7().has_dns() && anyRegexMatches(res, fl.l7().dns().query());
    });
  }
  if (f.trace_id_size() > 0) {
    std::vector<std::string> ids;
    for (const auto& t : f.trace_id()) {
      if (trim(t).empty()) return invalid("trace_id", t, "is empty");
      ids.emplace_back(trim(t));
    }
    preds.push_back([ids](const flow::Flow& fl) {
      const auto& id = fl.trace_context().parent().trace_id();
      return !id.empty() && std::find(ids.begin(), ids.end(), id) != ids.end();
    });
  }

  return FlowPredicate([preds = std::move(preds)](const flow::Flow& fl) {
    for (const auto& p : preds)
      if (!p(fl)) return false;
    return true;
  });
}

Result<FlowFilters> FlowFilters::compile(
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist) {
  FlowFilters out;
  for (int i = 0; i < whitelist.size(); ++i) {
    auto p = compileFilter(whitelist[i]);
    if (!p.ok()) return p.error().withContext(fmt::format("whitelist[{}]", i));
    out.whitelist_.push_back(std::move(p).value());
  }
  for (int i = 0; i < blacklist.size(); ++i) {
    auto p = compileFilter(blacklist[i]);
    if (!p.ok()) return p.error().withContext(fmt::format("blacklist[{}]", i));
    out.blacklist_.push_back(std::move(p).value());
  }
  return out;
}

bool FlowFilters::allows(const flow::Flow& f) const {
  if (!whitelist_.empty()) {
    bool any = false;
    for (const auto& p : whitelist_)
      if (p(f)) {
        any = true;
        break;
      }
    if (!any) return false;
  }
  for (const auto& p : blacklist_)
    if (p(f)) return false;
  return true;
}

}  // namespace cilium::hubble
