// hubble CLI: flags -> GetFlowsRequest, responses -> text.
#include "agent/hubble/cli/cli.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "agent/common/cli.h"
#include "agent/common/utf8.h"
#include "agent/datapath/monitor.h"
#include "agent/hubble/decoder.h"
#include "agent/identity/identity.h"

namespace cilium::hubble::cli {

namespace {

Error bad(std::string_view flag, std::string_view value, std::string_view why) {
  return makeError(ErrorCode::kInvalidArgument, "{} \"{}\": {}", flag, value, why);
}

Result<uint64_t> parseCount(std::string_view flag, std::string_view v) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size())
    return bad(flag, v, "not a non-negative number");
  return n;
}

// "30s", "5m", "2h", "1d" ago, or RFC 3339 ("2026-11-22T21:00:00Z", fraction allowed).
Result<int64_t> parseTime(std::string_view flag, std::string_view v, int64_t now_ns) {
  if (!v.empty() && std::isdigit(static_cast<unsigned char>(v.front())) &&
      std::string_view("smhd").find(v.back()) != std::string_view::npos &&
      v.find('-') == std::string_view::npos) {
    int64_t n = 0;
    auto num = v.substr(0, v.size() - 1);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (ec != std::errc() || p != num.data() + num.size()) return bad(flag, v, "bad duration");
    int64_t unit = v.back() == 's' ? 1 : v.back() == 'm' ? 60 : v.back() == 'h' ? 3600 : 86400;
    int64_t ago = 0, ns = 0;
    if (__builtin_mul_overflow(n, unit * 1000000000, &ago) ||
        __builtin_sub_overflow(now_ns, ago, &ns))
      return bad(flag, v, "duration out of range");
    return ns;
  }
  std::string s(v);
  tm t{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (!rest) return bad(flag, v, "not a duration (5m) or RFC 3339 time");
  int64_t frac_ns = 0;
  if (*rest == '.') {
    ++rest;
    int64_t scale = 100000000;
    while (std::isdigit(static_cast<unsigned char>(*rest))) {
      frac_ns += (*rest - '0') * scale;
      scale /= 10;
      ++rest;
    }
  }
  int64_t offset = 0;
  if (*rest == 'Z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    // Exactly "hh:mm" (each character checked before the next is read: the text may end).
    auto two = [](const char* p) {
      return std::isdigit(static_cast<unsigned char>(p[0])) &&
             std::isdigit(static_cast<unsigned char>(p[1]));
    };
    if (!two(rest + 1) || rest[3] != ':' || !two(rest + 4)) return bad(flag, v, "bad UTC offset");
    int hh = (rest[1] - '0') * 10 + (rest[2] - '0'), mm = (rest[4] - '0') * 10 + (rest[5] - '0');
    offset = (hh * 3600 + mm * 60) * (*rest == '+' ? 1 : -1);
    rest += 6;
  } else {
    return bad(flag, v, "needs a Z or +hh:mm offset");
  }
  if (*rest) return bad(flag, v, "trailing text");
  int64_t ns = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(timegm(&t)) - offset, int64_t{1000000000}, &ns) ||
      __builtin_add_overflow(ns, frac_ns, &ns))
    return bad(flag, v, "time out of range (years 1678 to 2262)");
  return ns;
}

void setTs(google::protobuf::Timestamp* ts, int64_t ns) {
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

Result<flow::TCPFlags> parseFlags(std::string_view v) {
  flow::TCPFlags f;
  std::string s(v);
  size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string name = s.substr(start, end - start);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    if (name == "SYN")
      f.set_syn(true);
    else if (name == "ACK")
      f.set_ack(true);
    else if (name == "FIN")
      f.set_fin(true);
    else if (name == "RST")
      f.set_rst(true);
    else if (name == "PSH")
      f.set_psh(true);
    else if (name == "URG")
      f.set_urg(true);
    else if (name == "ECE")
      f.set_ece(true);
    else if (name == "CWR")
      f.set_cwr(true);
    else if (name == "NS")
      f.set_ns(true);
    else
      return bad("--tcp-flags", v, "flags are SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, NS");
    start = end + 1;
  }
  return f;
}

std::string withNamespace(const std::string& pod, const std::vector<std::string>& ns) {
  if (pod.find('/') != std::string::npos || ns.empty()) return pod;
  return ns.front() + "/" + pod;
}

std::string formatTime(const google::protobuf::Timestamp& ts,
                       TimeFormat format = TimeFormat::kStampMilli) {
  time_t secs = ts.seconds();
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  int nanos = ts.nanos();
  bool rfc3339 = format >= TimeFormat::kRfc3339 && format <= TimeFormat::kRfc3339Nano;
  if (format == TimeFormat::kRfc1123Z) {
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &t);
    return buf;
  }
  strftime(buf, sizeof buf, rfc3339 ? "%Y-%m-%dT%H:%M:%S" : "%b %e %H:%M:%S", &t);
  std::string fraction;
  switch (format) {
    case TimeFormat::kStampMilli:
    case TimeFormat::kRfc3339Milli: fraction = fmt::format(".{:03d}", nanos / 1000000); break;
    case TimeFormat::kStampMicro:
    case TimeFormat::kRfc3339Micro: fraction = fmt::format(".{:06d}", nanos / 1000); break;
    case TimeFormat::kStampNano:
    case TimeFormat::kRfc3339Nano: fraction = fmt::format(".{:09d}", nanos); break;
    default: break;
  }
  return std::string(buf) + fraction + (rfc3339 ? "Z" : "");
}

// The pod ("ns/pod"), else the DNS names the flow carries for the address, else the address.
std::string endpointName(const flow::Endpoint& ep, const std::string& ip, uint32_t port,
                         bool numeric = false,
                         const google::protobuf::RepeatedPtrField<std::string>* names = nullptr) {
  std::string host = ip;
  if (!numeric && !ep.pod_name().empty())
    host = ep.namespace_() + "/" + ep.pod_name();
  else if (!numeric && names && !names->empty())
    host = fmt::format("{}", fmt::join(*names, ","));
  if (port == 0) return host;
  // An IPv6 address before a port goes in brackets, as Hubble prints it.
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

std::string identityTag(const flow::Endpoint& ep, bool numeric = false) {
  if (!numeric && identity::isReserved(ep.identity())) {
    auto name = identity::reservedName(ep.identity());
    if (!name.empty()) return fmt::format("({})", name);
  }
  return fmt::format("(ID:{})", ep.identity());
}

std::string summary(const flow::Flow& f) {
  if (f.has_l7()) return flowSummary(f);  // "HTTP/1.1 GET http://...", as Hubble prints it
  std::string s;
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: {
      auto flags = tcpFlagsString(f.l4().tcp().flags());
      s = flags.empty() ? "TCP" : "TCP Flags: " + flags;
      break;
    }
    case flow::Layer4::kUDP: s = "UDP"; break;
    case flow::Layer4::kSCTP: s = "SCTP"; break;
    case flow::Layer4::kICMPv4:
      s = fmt::format("ICMPv4 type {} code {}", f.l4().icmpv4().type(), f.l4().icmpv4().code());
      break;
    case flow::Layer4::kICMPv6:
      s = fmt::format("ICMPv6 type {} code {}", f.l4().icmpv6().type(), f.l4().icmpv6().code());
      break;
    default: s = "IP"; break;
  }
  return s;
}

std::string_view directionName(flow::TrafficDirection d) {
  return d == flow::INGRESS ? "INGRESS" : d == flow::EGRESS ? "EGRESS" : "UNKNOWN";
}

// "to-endpoint FORWARDED", "Policy denied DROPPED", "policy-verdict:L3-L4 INGRESS ALLOWED".
std::string what(const flow::Flow& f) {
  if (f.has_l7())
    return fmt::format("{}-{} {}", f.l7().has_dns() ? "dns" : "http",
                       f.l7().type() == flow::RESPONSE ? "response" : "request",
                       verdictName(f.verdict()));
  if (f.event_type().type() == EVENT_POLICY_VERDICT) {
    static const char* kMatch[] = {"none", "L3-Only",  "L3-L4",     "L4-Only",
                                   "all",  "L3-Proto", "Proto-Only"};
    std::string match = f.policy_match_type() < 7 ? kMatch[f.policy_match_type()] : "unknown";
    std::string action = f.verdict() == flow::DROPPED      ? "DENIED"
                         : f.verdict() == flow::AUDIT      ? "AUDITED"
                         : f.verdict() == flow::REDIRECTED ? "REDIRECTED"
                                                           : "ALLOWED";
    return fmt::format("policy-verdict:{} {} {}", match, directionName(f.traffic_direction()),
                       action);
  }
  if (f.verdict() == flow::DROPPED)
    return fmt::format("{} DROPPED", dropReasonDesc(f.drop_reason_desc()).empty()
                                         ? fmt::format("drop reason {}", f.drop_reason())
                                         : dropReasonDesc(f.drop_reason_desc()));
  return fmt::format("{} {}", observationPointName(f.trace_observation_point()),
                     verdictName(f.verdict()));
}

}  // namespace

namespace {

// The command line: global --server/--timeout, one subcommand per command, the filter flags on
// observe. Values stay text here; parseArgs checks them with the messages above.
struct CommandLine {
  std::unique_ptr<CLI::App> app;
  CLI::Option* server = nullptr;
  CLI::Option* timeout = nullptr;
  CLI::Option *tls = nullptr, *tls_ca = nullptr, *tls_cert = nullptr, *tls_key = nullptr,
              *tls_server_name = nullptr, *tls_allow_insecure = nullptr, *debug = nullptr;
  std::map<std::string, CLI::Option*> observe;  // by long name
  CLI::App* observe_cmd = nullptr;
};

CommandLine commandLine() {
  CommandLine c;
  c.app = cilium::cli::makeApp(
      "Observes flows and the server's status over Hubble's Observer gRPC API.", "hubble");
  CLI::App& app = *c.app;
  c.server = app.add_option("--server", "unix:///path or host:port")
                 ->type_name("ADDR")
                 ->default_str("unix:///var/run/cilium/hubble.sock");
  cilium::cli::formatterOf(app).env("server", "HUBBLE_SERVER");
  c.timeout = app.add_option("--timeout", "Connection timeout in seconds")
                  ->type_name("SECS")
                  ->default_str("5");
  c.tls =
      app.add_flag("--tls")->description("Use TLS to the server (also: a tls://host:port server)");
  c.tls_ca = app.add_option("--tls-ca-cert-files",
                            "CAs the server's certificate is checked against (PEM; "
                            "comma-separated or repeated; default: the system's)")
                 ->type_name("FILE");
  c.tls_cert =
      app.add_option("--tls-client-cert-file", "Client certificate (PEM)")->type_name("FILE");
  c.tls_key = app.add_option("--tls-client-key-file", "Key of the client certificate (PEM)")
                  ->type_name("FILE");
  c.tls_server_name = app.add_option("--tls-server-name",
                                     "Name the server's certificate must carry "
                                     "(default: the server's host)")
                          ->type_name("NAME");
  c.tls_allow_insecure = app.add_flag("--tls-allow-insecure")
                             ->description(
                                 "Skip checking the server's certificate chain and name (TLS "
                                 "still encrypts); needs --tls");
  c.debug = app.add_flag("-D,--debug")->description("Print debug messages on stderr");
  app.require_subcommand(0, 1);
  auto sub = [&](const std::string& name, const std::string& desc) {
    CLI::App* s = app.add_subcommand(name, desc);
    s->fallthrough();
    s->allow_extras();
    return s;
  };
  CLI::App* observe = sub("observe", "Show flows from the Hubble server");
  observe->footer(
      "Repeat a filter flag to OR its values; --pod, --namespace, --label, --ip, --port, "
      "--identity, --service, --fqdn and --workload match either side, --from-*/--to-* one side; "
      "--not before a filter flag leaves out the flows it matches.");
  c.observe_cmd = observe;
  struct Flag {
    const char* names;
    const char* type;
    const char* help;
  };
  const Flag value_flags[] = {
      {"--pod", "NAME", "[namespace/]pod-name-prefix, either side"},
      {"--from-pod", "NAME", "source pod"},
      {"--to-pod", "NAME", "destination pod"},
      {"-n,--namespace", "NS", "namespace, either side"},
      {"--from-namespace", "NS", "source namespace"},
      {"--to-namespace", "NS", "destination namespace"},
      {"-l,--label", "SELECTOR", "label selector, either side (app=web,env in (a,b))"},
      {"--from-label", "SELECTOR", "source labels"},
      {"--to-label", "SELECTOR", "destination labels"},
      {"--ip", "ADDR|CIDR", "address, either side"},
      {"--from-ip", "ADDR|CIDR", "source address"},
      {"--to-ip", "ADDR|CIDR", "destination address"},
      {"--port", "PORT", "port, either side"},
      {"--from-port", "PORT", "source port"},
      {"--to-port", "PORT", "destination port"},
      {"--identity", "ID", "security identity, either side"},
      {"--from-identity", "ID", "source identity"},
      {"--to-identity", "ID", "destination identity"},
      {"--verdict", "VERDICT", "FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR"},
      {"--protocol", "PROTO", "tcp, udp, icmp, icmpv4, icmpv6, sctp"},
      {"-t,--type", "TYPE", "drop, trace, policy-verdict, l7 or trace:<point> (trace:to-endpoint)"},
      {"--drop-reason-desc", "NAME", "drop reason, e.g. POLICY_DENIED"},
      {"--traffic-direction", "DIR", "ingress or egress"},
      {"--node-name", "PATTERN", "node name, * wildcards"},
      {"--tcp-flags", "FLAGS", "flows with all of these flags (SYN[,ACK...])"},
      {"--service", "NS/NAME", "Service, either side"},
      {"--from-service", "NS/NAME", "source Service"},
      {"--to-service", "NS/NAME", "destination Service"},
      {"--fqdn", "NAME", "DNS name, either side (*.example.com)"},
      {"--from-fqdn", "NAME", "source DNS name"},
      {"--to-fqdn", "NAME", "destination DNS name"},
      {"--workload", "[KIND/]NAME", "workload, either side (Deployment/web or web)"},
      {"--from-workload", "[KIND/]NAME", "source workload"},
      {"--to-workload", "[KIND/]NAME", "destination workload"},
      {"--ip-version", "VERSION", "v4 or v6"},
      {"--http-status", "CODE", "HTTP status code or class (200, 5+)"},
      {"--http-method", "METHOD", "HTTP method (GET, POST, ...)"},
      {"--http-path", "REGEX", "HTTP path, a regular expression"},
      {"--last", "N", "the last N stored flows (default 20)"},
      {"--first", "N", "the first N stored flows"},
      {"--since", "T", "from this time: 5m, 1h, or 2026-11-22T21:00:00Z"},
      {"--until", "T", "up to this time, same forms"},
      {"-o,--output", "FORMAT", "compact, json, jsonpb, table or dict"},
      {"--time-format", "FORMAT", "StampMilli (default), RFC3339, RFC3339Milli, RFC1123Z, ..."},
  };
  for (const auto& f : value_flags) {
    CLI::Option* o = observe->add_option(f.names, f.help)->type_name(f.type);
    o->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c.observe[o->get_lnames().front()] = o;
  }
  c.observe["follow"] = observe->add_flag("-f,--follow")->description("Keep streaming new flows");
  c.observe["all"] = observe->add_flag("--all")->description("Every stored flow");
  c.observe["print-node-name"] =
      observe->add_flag("--print-node-name")->description("Print the node of each flow");
  c.observe["numeric"] =
      observe->add_flag("--numeric")
          ->description("Addresses and identity numbers instead of pod and identity names");
  // Their flags are observe's (--last, --first, --all, --follow, --since, --until, -o,
  // --time-format, --print-node-name), taken through fallthrough.
  for (auto [name, desc] :
       {std::pair{"agent-events", "Show the agent's events (GetAgentEvents)"},
        std::pair{"debug-events", "Show the datapath's debug events (GetDebugEvents)"}})
    observe->add_subcommand(name, desc)->fallthrough()->allow_extras(false);
  sub("status", "Show the Hubble server's status");
  CLI::App* list = sub("list", "List what the server knows");
  list->add_subcommand("nodes", "Show the nodes the server knows")->fallthrough()->allow_extras();
  list->add_subcommand("namespaces", "Show the namespaces of the stored flows")
      ->fallthrough()
      ->allow_extras();
  sub("version", "Print the version");
  sub("help", "Show this help");
  for (CLI::Option* o : app.get_options()) o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  c.tls_ca->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return c;
}

}  // namespace

std::string usage() { return commandLine().app->help(); }

namespace {

Status parseTls(const CommandLine& cl, Args& a) {
  auto last = [](const CLI::Option* o) { return o->count() ? o->results().back() : std::string(); };
  TlsArgs& t = a.tls;
  t.enabled = cl.tls->count() > 0 || a.server.starts_with("tls://");
  for (const auto& v : cl.tls_ca->results()) {
    size_t start = 0;
    while (start <= v.size()) {
      auto end = std::min(v.find(',', start), v.size());
      if (end > start) t.ca_files.push_back(v.substr(start, end - start));
      start = end + 1;
    }
  }
  t.cert_file = last(cl.tls_cert);
  t.key_file = last(cl.tls_key);
  t.server_name = last(cl.tls_server_name);
  t.allow_insecure = cl.tls_allow_insecure->count() > 0;
  // A TLS option without TLS would connect in plaintext while the user believes otherwise.
  if (!t.enabled) {
    for (const CLI::Option* o :
         {cl.tls_ca, cl.tls_cert, cl.tls_key, cl.tls_server_name, cl.tls_allow_insecure})
      if (o->count())
        return bad(o->get_name(), last(o), "needs --tls (or a tls://host:port server)");
  }
  if (t.cert_file.empty() != t.key_file.empty())
    return bad(t.cert_file.empty() ? "--tls-client-key-file" : "--tls-client-cert-file",
               t.cert_file.empty() ? t.key_file : t.cert_file,
               "--tls-client-cert-file and --tls-client-key-file go together");
  if (t.enabled && a.server.starts_with("unix://"))
    return bad("--tls", a.server, "a Unix socket is plaintext; TLS needs host:port");
  return okStatus();
}

}  // namespace

Result<Args> parseArgs(const std::vector<std::string>& argv) {
  Args a;
  // Values become protobuf strings, which must be UTF-8: the server could not parse the request.
  for (size_t i = 0; i < argv.size(); ++i) {
    if (invalidUtf8Offset(argv[i]) != std::string_view::npos)
      return makeError(ErrorCode::kInvalidArgument, "argument {} is not valid UTF-8", i + 1);
  }
  if (const char* env = getenv("HUBBLE_SERVER"); env && *env) a.server = env;
  CommandLine cl = commandLine();
  // `--not FLAG VALUE` (as Hubble's CLI): that filter flag goes to the blacklist. The negated
  // flags are taken out here and parsed on their own below.
  std::vector<std::string> args, negated;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] != "--not") {
      args.push_back(argv[i]);
      continue;
    }
    if (i + 1 == argv.size()) return bad("--not", "", "needs a filter flag after it");
    const std::string& flag = argv[++i];
    std::string name = flag.substr(0, flag.find('='));
    const CLI::Option* opt = nullptr;
    for (const auto& [key, o] : cl.observe)
      if (o->check_name(name)) opt = o;
    static const std::set<std::string> kNotFilters = {
        "last",   "first", "since",           "until",   "output",
        "follow", "all",   "print-node-name", "numeric", "time-format"};
    if (opt == nullptr || opt->get_type_size() == 0 ||
        kNotFilters.count(opt->get_lnames().front()) != 0)
      return bad("--not", flag, "must be followed by a filter flag (--not --from-pod NAME)");
    negated.push_back(flag);
    if (flag.find('=') == std::string::npos) {
      if (i + 1 == argv.size()) return bad(name, "", "needs a value");
      negated.push_back(argv[++i]);
    }
  }
  if (!negated.empty()) {
    negated.insert(negated.begin(), "observe");
    CILIUM_ASSIGN_OR_RETURN(auto neg, parseArgs(negated));
    a.observe.negated = std::make_shared<ObserveArgs>(std::move(neg.observe));
  }
  CILIUM_ASSIGN_OR_RETURN(auto outcome, cilium::cli::parse(*cl.app, args));
  if (outcome == cilium::cli::Outcome::kHelp) {
    a.command = "help";
    a.help = cilium::cli::help(*cl.app);
    return a;
  }
  auto subs = cl.app->get_subcommands();
  if (subs.empty() || subs.front()->get_name() == "help") {
    a.command = "help";
    a.help = cl.app->help();
    return a;
  }
  a.command = subs.front()->get_name();
  if (a.command == "list") {
    if (subs.front()->get_subcommands().empty())
      return bad("list", "", "needs what to list (list nodes, list namespaces)");
    a.command = subs.front()->get_subcommands().front()->get_name();
  }
  if (cl.server->count() > 0) a.server = cl.server->results().back();
  if (cl.timeout->count() > 0) {
    CILIUM_ASSIGN_OR_RETURN(auto n, parseCount("--timeout", cl.timeout->results().back()));
    a.timeout_s = static_cast<int>(std::min<uint64_t>(n, 3600));
  }
  CILIUM_RETURN_IF_ERROR(parseTls(cl, a));
  a.debug = cl.debug->count() > 0;
  if (a.command != "observe") return a;
  if (!cl.observe_cmd->get_subcommands().empty())
    a.command = cl.observe_cmd->get_subcommands().front()->get_name();

  auto& o = a.observe;
  const std::map<std::string, std::vector<std::string>*> lists = {
      {"pod", &o.pod},
      {"from-pod", &o.from_pod},
      {"to-pod", &o.to_pod},
      {"namespace", &o.ns},
      {"from-namespace", &o.from_ns},
      {"to-namespace", &o.to_ns},
      {"label", &o.label},
      {"from-label", &o.from_label},
      {"to-label", &o.to_label},
      {"ip", &o.ip},
      {"from-ip", &o.from_ip},
      {"to-ip", &o.to_ip},
      {"port", &o.port},
      {"from-port", &o.from_port},
      {"to-port", &o.to_port},
      {"identity", &o.identity},
      {"from-identity", &o.from_identity},
      {"to-identity", &o.to_identity},
      {"verdict", &o.verdict},
      {"protocol", &o.protocol},
      {"type", &o.type},
      {"drop-reason-desc", &o.drop_reason},
      {"traffic-direction", &o.traffic_direction},
      {"node-name", &o.node_name},
      {"tcp-flags", &o.tcp_flags},
      {"service", &o.service},
      {"from-service", &o.from_service},
      {"to-service", &o.to_service},
      {"fqdn", &o.fqdn},
      {"from-fqdn", &o.from_fqdn},
      {"to-fqdn", &o.to_fqdn},
      {"workload", &o.workload},
      {"from-workload", &o.from_workload},
      {"to-workload", &o.to_workload},
      {"ip-version", &o.ip_version},
      {"http-status", &o.http_status},
      {"http-method", &o.http_method},
      {"http-path", &o.http_path}};
  for (const auto& [name, list] : lists) *list = cl.observe.at(name)->results();
  auto last = [&](const std::string& name) -> std::optional<std::string> {
    const CLI::Option* opt = cl.observe.at(name);
    if (opt->count() == 0) return std::nullopt;
    return opt->results().back();
  };
  o.follow = cl.observe.at("follow")->count() > 0;
  o.all = cl.observe.at("all")->count() > 0;
  o.print.node_name = cl.observe.at("print-node-name")->count() > 0;
  o.print.numeric = cl.observe.at("numeric")->count() > 0;
  o.print.debug = a.debug;
  if (auto v = last("time-format")) {
    static const std::map<std::string, TimeFormat> kFormats = {
        {"StampMilli", TimeFormat::kStampMilli},     {"Stamp", TimeFormat::kStamp},
        {"StampMicro", TimeFormat::kStampMicro},     {"StampNano", TimeFormat::kStampNano},
        {"RFC3339", TimeFormat::kRfc3339},           {"RFC3339Milli", TimeFormat::kRfc3339Milli},
        {"RFC3339Micro", TimeFormat::kRfc3339Micro}, {"RFC3339Nano", TimeFormat::kRfc3339Nano},
        {"RFC1123Z", TimeFormat::kRfc1123Z}};
    auto it = kFormats.find(*v);
    if (it == kFormats.end())
      return bad("--time-format", *v,
                 "not StampMilli, Stamp, StampMicro, StampNano, RFC3339, RFC3339Milli, "
                 "RFC3339Micro, RFC3339Nano or RFC1123Z");
    o.print.time_format = it->second;
  }
  if (auto v = last("last")) {
    CILIUM_ASSIGN_OR_RETURN(o.last, parseCount("--last", *v));
  }
  if (auto v = last("first")) {
    CILIUM_ASSIGN_OR_RETURN(o.first, parseCount("--first", *v));
  }
  if (auto v = last("since")) o.since = *v;
  if (auto v = last("until")) o.until = *v;
  if (auto v = last("output")) {
    if (*v == "compact")
      o.output = Output::kCompact;
    else if (*v == "json" || *v == "jsonpb")
      o.output = Output::kJson;
    else if (*v == "table")
      o.output = Output::kTable;
    else if (*v == "dict")
      o.output = Output::kDict;
    else
      return bad("--output", *v, "output is compact, json, jsonpb, table or dict");
  }
  if (a.command != "observe") {
    // agent-events and debug-events take no flow filter (as Hubble's).
    for (const auto& [name, list] : lists)
      if (!list->empty())
        return bad("--" + name, list->front(), "is not a flag of observe " + a.command);
    if (a.observe.negated) return bad("--not", "", "is not a flag of observe " + a.command);
  }
  if (o.last && o.first) return bad("--first", "", "cannot be combined with --last");
  if (o.first && o.follow) return bad("--first", "", "cannot be combined with --follow");
  return a;
}

namespace {

// The filters the filter flags of `a` stand for (no empty filter).
Result<std::vector<flow::FlowFilter>> buildFilters(const ObserveArgs& a) {
  flow::FlowFilter common, src_side, dst_side;

  // Filters that do not depend on a side.
  for (const auto& v : a.verdict) {
    std::string up(v);
    std::transform(up.begin(), up.end(), up.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    flow::Verdict verdict;
    if (!flow::Verdict_Parse(up, &verdict) || verdict == flow::VERDICT_UNKNOWN)
      return bad("--verdict", v, "not FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED");
    common.add_verdict(verdict);
  }
  for (const auto& v : a.protocol) common.add_protocol(v);
  for (const auto& v : a.type) {
    auto colon = v.find(':');
    std::string kind = v.substr(0, colon);
    auto* e = common.add_event_type();
    if (kind == "drop")
      e->set_type(EVENT_DROP);
    else if (kind == "trace")
      e->set_type(EVENT_TRACE);
    else if (kind == "policy-verdict")
      e->set_type(EVENT_POLICY_VERDICT);
    else if (kind == "l7")
      e->set_type(kMessageTypeAccessLog);
    else
      return bad("--type", v, "not drop, trace, policy-verdict, l7 or trace:<point>");
    if (colon != std::string::npos) {
      std::string sub = v.substr(colon + 1);
      bool found = false;
      for (uint8_t p = 0; p <= TRACE_TO_NETWORK; ++p) {
        if (datapath::tracePointName(p) == sub) {
          e->set_match_sub_type(true);
          e->set_sub_type(p);
          found = true;
        }
      }
      if (!found || kind != "trace") return bad("--type", v, "unknown trace point");
    }
  }
  for (const auto& v : a.drop_reason) {
    std::string up(v);
    std::transform(up.begin(), up.end(), up.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    flow::DropReason r;
    if (!flow::DropReason_Parse(up, &r)) return bad("--drop-reason-desc", v, "unknown drop reason");
    common.add_drop_reason_desc(r);
  }
  for (const auto& v : a.traffic_direction) {
    if (v == "ingress")
      common.add_traffic_direction(flow::INGRESS);
    else if (v == "egress")
      common.add_traffic_direction(flow::EGRESS);
    else
      return bad("--traffic-direction", v, "not ingress or egress");
  }
  for (const auto& v : a.node_name) common.add_node_name(v);
  for (const auto& v : a.ip_version) {
    if (v == "v4" || v == "4" || v == "ipv4")
      common.add_ip_version(flow::IPv4);
    else if (v == "v6" || v == "6" || v == "ipv6")
      common.add_ip_version(flow::IPv6);
    else
      return bad("--ip-version", v, "not v4 or v6");
  }
  for (const auto& v : a.http_status) common.add_http_status_code(v);
  for (const auto& v : a.http_method) common.add_http_method(v);
  for (const auto& v : a.http_path) common.add_http_path(v);
  for (const auto& v : a.tcp_flags) {
    CILIUM_ASSIGN_OR_RETURN(auto f, parseFlags(v));
    *common.add_tcp_flags() = f;
  }

  // Sided filters. `either` values go to the source of one filter and the destination of the
  // other; from/to values go to that side in both.
  bool either = !a.pod.empty() || !a.label.empty() || !a.ip.empty() || !a.port.empty() ||
                !a.identity.empty() || !a.service.empty() || !a.fqdn.empty() ||
                !a.workload.empty() || (!a.ns.empty() && a.from_pod.empty() && a.to_pod.empty());
  // Services and DNS names of one side.
  auto addNames = [](flow::FlowFilter& f, bool source, const std::vector<std::string>& services,
                     const std::vector<std::string>& fqdns,
                     const std::vector<std::string>& workloads) {
    for (const auto& s : services)
      *(source ? f.mutable_source_service() : f.mutable_destination_service())->Add() = s;
    for (const auto& n : fqdns)
      *(source ? f.mutable_source_fqdn() : f.mutable_destination_fqdn())->Add() = n;
    for (const auto& w : workloads) {
      // As Hubble's CLI: "name" or "Kind/name".
      auto* out = (source ? f.mutable_source_workload() : f.mutable_destination_workload())->Add();
      auto slash = w.find('/');
      if (slash == std::string::npos) {
        out->set_name(w);
      } else {
        out->set_kind(w.substr(0, slash));
        out->set_name(w.substr(slash + 1));
      }
    }
  };

  auto addSide = [&](flow::FlowFilter& f, bool source, const std::vector<std::string>& pods,
                     const std::vector<std::string>& nss, const std::vector<std::string>& ns_only,
                     const std::vector<std::string>& labels, const std::vector<std::string>& ips,
                     const std::vector<std::string>& ports,
                     const std::vector<std::string>& ids) -> Status {
    auto* pod_field = source ? f.mutable_source_pod() : f.mutable_destination_pod();
    for (const auto& p : pods) *pod_field->Add() = withNamespace(p, nss);
    if (pods.empty())
      for (const auto& n : ns_only) *pod_field->Add() = n + "/";
    for (const auto& l : labels)
      *(source ? f.mutable_source_label() : f.mutable_destination_label())->Add() = l;
    for (const auto& i : ips)
      *(source ? f.mutable_source_ip() : f.mutable_destination_ip())->Add() = i;
    for (const auto& p : ports)
      *(source ? f.mutable_source_port() : f.mutable_destination_port())->Add() = p;
    for (const auto& i : ids) {
      CILIUM_ASSIGN_OR_RETURN(auto n, parseCount(source ? "--from-identity" : "--to-identity", i));
      if (source)
        f.add_source_identity(static_cast<uint32_t>(n));
      else
        f.add_destination_identity(static_cast<uint32_t>(n));
    }
    return okStatus();
  };
  // Namespaces given with --namespace qualify --pod; --from/--to-namespace qualify their side.
  auto nsFor = [&](const std::vector<std::string>& side_ns) {
    return side_ns.empty() ? a.ns : side_ns;
  };
  std::vector<flow::FlowFilter> filters;
  if (either) {
    flow::FlowFilter l = common, r = common;
    CILIUM_RETURN_IF_ERROR(addSide(l, true, a.pod, a.ns, a.ns, a.label, a.ip, a.port, a.identity));
    CILIUM_RETURN_IF_ERROR(addSide(l, false, a.to_pod, nsFor(a.to_ns), a.to_ns, a.to_label, a.to_ip,
                                   a.to_port, a.to_identity));
    CILIUM_RETURN_IF_ERROR(addSide(r, false, a.pod, a.ns, a.ns, a.label, a.ip, a.port, a.identity));
    CILIUM_RETURN_IF_ERROR(addSide(r, true, a.from_pod, nsFor(a.from_ns), a.from_ns, a.from_label,
                                   a.from_ip, a.from_port, a.from_identity));
    addNames(l, true, a.service, a.fqdn, a.workload);
    addNames(l, false, a.to_service, a.to_fqdn, a.to_workload);
    addNames(r, false, a.service, a.fqdn, a.workload);
    addNames(r, true, a.from_service, a.from_fqdn, a.from_workload);
    filters = {l, r};
  } else {
    flow::FlowFilter f = common;
    CILIUM_RETURN_IF_ERROR(addSide(f, true, a.from_pod, nsFor(a.from_ns), a.from_ns, a.from_label,
                                   a.from_ip, a.from_port, a.from_identity));
    CILIUM_RETURN_IF_ERROR(addSide(f, false, a.to_pod, nsFor(a.to_ns), a.to_ns, a.to_label, a.to_ip,
                                   a.to_port, a.to_identity));
    addNames(f, true, a.from_service, a.from_fqdn, a.from_workload);
    addNames(f, false, a.to_service, a.to_fqdn, a.to_workload);
    filters = {f};
  }
  std::vector<flow::FlowFilter> out;
  for (auto& f : filters)
    if (f.ByteSizeLong() > 0) out.push_back(std::move(f));
  return out;
}

}  // namespace

Result<observer::GetFlowsRequest> buildRequest(const ObserveArgs& a, int64_t now_ns) {
  observer::GetFlowsRequest req;
  CILIUM_ASSIGN_OR_RETURN(auto allowed, buildFilters(a));
  for (auto& f : allowed) *req.add_whitelist() = std::move(f);
  if (a.negated) {
    CILIUM_ASSIGN_OR_RETURN(auto excluded, buildFilters(*a.negated));
    for (auto& f : excluded) *req.add_blacklist() = std::move(f);
  }
  req.set_follow(a.follow);
  if (a.first) {
    req.set_first(true);
    req.set_number(*a.first);
  } else if (a.last) {
    req.set_number(*a.last);
  } else if (!a.all && !a.follow && a.since.empty() && a.until.empty()) {
    req.set_number(20);  // hubble observe's default
  }
  if (!a.since.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto ns, parseTime("--since", a.since, now_ns));
    setTs(req.mutable_since(), ns);
  }
  if (!a.until.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto ns, parseTime("--until", a.until, now_ns));
    setTs(req.mutable_until(), ns);
  }
  return req;
}

namespace {

// number/first/follow/since/until of an events request, as for flows.
template <class Req>
Result<Req> eventsRequest(const ObserveArgs& a, int64_t now_ns) {
  Req req;
  req.set_follow(a.follow);
  if (a.first) {
    req.set_first(true);
    req.set_number(*a.first);
  } else if (a.last) {
    req.set_number(*a.last);
  } else if (!a.all && !a.follow && a.since.empty() && a.until.empty()) {
    req.set_number(20);
  }
  if (!a.since.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto ns, parseTime("--since", a.since, now_ns));
    setTs(req.mutable_since(), ns);
  }
  if (!a.until.empty()) {
    CILIUM_ASSIGN_OR_RETURN(auto ns, parseTime("--until", a.until, now_ns));
    setTs(req.mutable_until(), ns);
  }
  return req;
}

}  // namespace

Result<observer::GetAgentEventsRequest> buildAgentEventsRequest(const ObserveArgs& a,
                                                                int64_t now_ns) {
  return eventsRequest<observer::GetAgentEventsRequest>(a, now_ns);
}

Result<observer::GetDebugEventsRequest> buildDebugEventsRequest(const ObserveArgs& a,
                                                                int64_t now_ns) {
  return eventsRequest<observer::GetDebugEventsRequest>(a, now_ns);
}

std::string agentEventDetails(const flow::AgentEvent& e, TimeFormat format) {
  auto join = [](const auto& list, const char* sep) {
    std::string out;
    for (const auto& v : list) out += (out.empty() ? "" : sep) + std::string(v);
    return out;
  };
  auto addr = [](const flow::ServiceUpsertNotificationAddr& a) {
    return a.ip().find(':') != std::string::npos ? fmt::format("[{}]:{}", a.ip(), a.port())
                                                 : fmt::format("{}:{}", a.ip(), a.port());
  };
  switch (e.type()) {
    case flow::AGENT_EVENT_UNKNOWN:
      if (e.has_unknown())
        return fmt::format("type: {}, notification: {}", e.unknown().type(),
                           e.unknown().notification());
      break;
    case flow::AGENT_STARTED:
      if (e.has_agent_start())
        return "start time: " + (e.agent_start().has_time()
                                     ? formatTime(e.agent_start().time(), format)
                                     : std::string("N/A"));
      break;
    case flow::POLICY_UPDATED:
    case flow::POLICY_DELETED:
      if (e.has_policy_update()) {
        const auto& p = e.policy_update();
        return fmt::format("labels: [{}], revision: {}, count: {}", join(p.labels(), ","),
                           p.revision(), p.rule_count());
      }
      break;
    case flow::ENDPOINT_REGENERATE_SUCCESS:
    case flow::ENDPOINT_REGENERATE_FAILURE:
      if (e.has_endpoint_regenerate()) {
        const auto& r = e.endpoint_regenerate();
        std::string out = fmt::format("id: {}, labels: [{}]", r.id(), join(r.labels(), ","));
        if (!r.error().empty()) out += ", error: " + r.error();
        return out;
      }
      break;
    case flow::ENDPOINT_CREATED:
    case flow::ENDPOINT_DELETED:
      if (e.has_endpoint_update()) {
        const auto& u = e.endpoint_update();
        std::string out = fmt::format("id: {}", u.id());
        if (!u.namespace_().empty()) out += ", namespace: " + u.namespace_();
        if (!u.pod_name().empty()) out += ", pod name: " + u.pod_name();
        return out;
      }
      break;
    case flow::IPCACHE_UPSERTED:
    case flow::IPCACHE_DELETED:
      if (e.has_ipcache_update()) {
        const auto& i = e.ipcache_update();
        std::string out = fmt::format("cidr: {}, identity: {}", i.cidr(), i.identity());
        if (i.has_old_identity())
          out += fmt::format(", old identity: {}", i.old_identity().value());
        if (!i.host_ip().empty()) out += ", host ip: " + i.host_ip();
        if (!i.old_host_ip().empty()) out += ", old host ip: " + i.old_host_ip();
        out += fmt::format(", encrypt key: {}", i.encrypt_key());
        return out;
      }
      break;
    case flow::SERVICE_UPSERTED:
      if (e.has_service_upsert()) {
        const auto& v = e.service_upsert();
        std::string out = fmt::format("id: {}", v.id());
        if (v.has_frontend_address()) out += ", frontend: " + addr(v.frontend_address());
        if (v.backend_addresses_size() > 0) {
          std::vector<std::string> bes;
          for (const auto& b : v.backend_addresses()) bes.push_back(addr(b));
          out += ", backends: [" + join(bes, ",") + "]";
        }
        if (!v.type().empty()) out += ", type: " + v.type();
        if (!v.ext_traffic_policy().empty()) out += ", traffic policy: " + v.ext_traffic_policy();
        if (!v.namespace_().empty()) out += ", namespace: " + v.namespace_();
        if (!v.name().empty()) out += ", name: " + v.name();
        return out;
      }
      break;
    case flow::SERVICE_DELETED:
      if (e.has_service_delete()) return fmt::format("id: {}", e.service_delete().id());
      break;
    default: break;
  }
  return "UNKNOWN";
}

std::string formatCompact(const observer::GetFlowsResponse& r, const PrintOptions& p) {
  if (r.has_lost_events()) {
    return fmt::format("EVENTS LOST: {} CPU({}) {}",
                       flow::LostEventSource_Name(r.lost_events().source()),
                       r.lost_events().cpu().value(), r.lost_events().num_events_lost());
  }
  if (!r.has_flow()) return "";
  const auto& f = r.flow();
  auto src = endpointName(f.source(), f.ip().source(), sourcePort(f), p.numeric,
                          &f.source_names()) +
             " " + identityTag(f.source(), p.numeric);
  auto dst = endpointName(f.destination(), f.ip().destination(), destinationPort(f), p.numeric,
                          &f.destination_names()) +
             " " + identityTag(f.destination(), p.numeric);
  bool reply = f.has_is_reply() && f.is_reply().value();
  std::string path = reply ? dst + " <- " + src : src + " -> " + dst;
  std::string when = formatTime(f.time(), p.time_format);
  if (p.node_name) when += " [" + f.node_name() + "]";
  return fmt::format("{}: {} {} ({})", when, path, what(f), summary(f));
}

std::string formatJson(const google::protobuf::Message& r) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(r, &out, opts);
  return out;
}

namespace {

// The flow's own summary (the server fills it); one computed here for servers that do not.
std::string summaryText(const flow::Flow& f) {
  return f.summary().empty() ? summary(f) : f.summary();
}

// Hubble's joinWithCutOff: names joined by ", " until about 50 characters, then
// " (and N more)".
std::string nodeList(const google::protobuf::RepeatedPtrField<std::string>& names) {
  size_t len = 0, end = names.size();
  for (int i = 0; i < names.size(); ++i) {
    len += names[i].size() + 2;
    if (len > 50 && i > 0) {
      end = i;
      break;
    }
  }
  std::string out;
  for (size_t i = 0; i < end; ++i) out += (i ? ", " : "") + names[static_cast<int>(i)];
  if (end < static_cast<size_t>(names.size()))
    out += fmt::format(" (and {} more)", names.size() - end);
  return out;
}

// Go's strconv.Quote for the texts a node error carries (ASCII; other bytes as \xNN).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\')
      out += std::string("\\") + static_cast<char>(c);
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c >= 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out + "\"";
}

// Display width as Go's tabwriter counts it: one per UTF-8 character.
size_t textWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

}  // namespace

// Hubble's Hostname(): the pod ("ns/pod"), else the service ("ns/svc"), else the DNS names,
// else the address; with a port (not 0) as host:port ([v6]:port). --numeric: the address.
std::string flowHostName(const flow::Flow& f, bool source, bool numeric) {
  const auto& ep = source ? f.source() : f.destination();
  const auto& ip = source ? f.ip().source() : f.ip().destination();
  const auto& svc = source ? f.source_service() : f.destination_service();
  const auto& names = source ? f.source_names() : f.destination_names();
  std::string host = ip;
  auto join = [](const std::string& ns, const std::string& name) {
    return ns.empty() ? name : ns + "/" + name;
  };
  if (!numeric) {
    if (!ep.pod_name().empty())
      host = join(svc.name().empty() ? ep.namespace_() : svc.namespace_(), ep.pod_name());
    else if (!svc.name().empty())
      host = join(svc.namespace_(), svc.name());
    else if (!names.empty())
      host = fmt::format("{}", fmt::join(names, ","));
  }
  uint32_t port = source ? sourcePort(f) : destinationPort(f);
  if (port == 0) return host;
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

// Hubble's GetFlowType(): "http-request", "to-endpoint", "Policy denied",
// "policy-verdict:L3-L4 INGRESS", "UNKNOWN".
std::string flowTypeName(const flow::Flow& f) {
  if (f.has_l7()) {
    std::string proto = f.l7().has_http() ? "http" : f.l7().has_dns() ? "dns" : "l7";
    std::string type = flow::L7FlowType_Name(f.l7().type());
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return proto + "-" + type;
  }
  switch (f.event_type().type()) {
    case EVENT_TRACE: return std::string(observationPointName(f.trace_observation_point()));
    case EVENT_DROP: {
      auto desc = dropReasonDesc(f.drop_reason_desc());
      return desc.empty() ? std::to_string(f.drop_reason()) : desc;
    }
    case EVENT_POLICY_VERDICT: {
      static const char* kMatch[] = {"none", "L3-Only",  "L3-L4",     "L4-Only",
                                     "all",  "L3-Proto", "Proto-Only"};
      std::string match = f.policy_match_type() < 7 ? kMatch[f.policy_match_type()] : "unknown";
      return fmt::format("policy-verdict:{} {}", match,
                         flow::TrafficDirection_Name(f.traffic_direction()));
    }
    default: return "UNKNOWN";
  }
}

// Hubble's verdict column: policy verdicts read ALLOWED/DENIED/AUDITED.
std::string flowVerdictText(const flow::Flow& f) {
  if (f.event_type().type() == EVENT_POLICY_VERDICT) {
    switch (f.verdict()) {
      case flow::FORWARDED:
      case flow::REDIRECTED: return "ALLOWED";
      case flow::DROPPED:
      case flow::ERROR: return "DENIED";
      case flow::AUDIT: return "AUDITED";
      default: break;
    }
  }
  return flow::Verdict_Name(f.verdict());
}

void TableWriter::addRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

std::string TableWriter::flush() {
  // Go's tabwriter with Hubble's settings (minwidth 2, padding 3, spaces): every cell but a
  // row's last is padded to the widest cell of its column plus 3. Rows here all have the same
  // number of cells, so they form one column block.
  std::vector<size_t> width;
  for (const auto& r : rows_)
    for (size_t i = 0; i + 1 < r.size(); ++i) {
      if (width.size() <= i) width.resize(i + 1, 2);
      width[i] = std::max(width[i], textWidth(r[i]) + 3);
    }
  std::string out;
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out.append(width[i] - textWidth(r[i]), ' ');
    }
    out += '\n';
  }
  rows_.clear();
  return out;
}

FlowPrinter::FlowPrinter(Output output, PrintOptions opts, std::ostream& out, std::ostream& err)
    : output_(output), opts_(opts), out_(out), err_(err) {}

FlowPrinter::~FlowPrinter() { flush(); }

void FlowPrinter::flush() {
  if (!table_.empty()) out_ << table_.flush();
  out_.flush();
}

void FlowPrinter::tableHeaderOnce(std::vector<std::string> columns) {
  if (lines_ != 0) return;
  std::vector<std::string> h = {"TIMESTAMP"};
  if (opts_.node_name) h.push_back("NODE");
  for (auto& c : columns) h.push_back(std::move(c));
  table_.addRow(std::move(h));
}

namespace {

std::string enumText(int value, const std::string& name) {
  return name.empty() ? std::to_string(value) : name;
}

// Hubble's fmtEndpointShort: "ns/pod (ID: 12)", "reserved:host (ID: 1)" or "ID: 12".
std::string endpointShort(const observer::GetDebugEventsResponse& r) {
  if (!r.debug_event().has_source()) return "N/A";
  const auto& ep = r.debug_event().source();
  std::string id = fmt::format("ID: {}", ep.id());
  if (!ep.namespace_().empty() && !ep.pod_name().empty())
    return fmt::format("{}/{} ({})", ep.namespace_(), ep.pod_name(), id);
  if (ep.labels_size() == 1 && ep.labels(0).starts_with("reserved:"))
    return fmt::format("{} ({})", ep.labels(0), id);
  return id;
}

}  // namespace

void FlowPrinter::write(const observer::GetAgentEventsResponse& r) {
  if (!r.has_agent_event()) return;
  const auto& e = r.agent_event();
  const std::string time = formatTime(r.time(), opts_.time_format);
  const std::string type = enumText(e.type(), flow::AgentEventType_Name(e.type()));
  const std::string details = agentEventDetails(e, opts_.time_format);
  switch (output_) {
    case Output::kJson: out_ << formatJson(r) << "\n"; break;
    case Output::kDict:
      if (lines_ != 0) out_ << "------------\n";
      out_ << "  TIMESTAMP: " << time << "\n";
      if (opts_.node_name) out_ << "       NODE: " << r.node_name() << "\n";
      out_ << "       TYPE: " << type << "\n"
           << "    DETAILS: " << details << "\n";
      break;
    case Output::kTable: {
      tableHeaderOnce({"TYPE", "DETAILS"});
      std::vector<std::string> row = {time};
      if (opts_.node_name) row.push_back(r.node_name());
      row.push_back(type);
      row.push_back(details);
      table_.addRow(std::move(row));
      break;
    }
    case Output::kCompact:
      out_ << time << (opts_.node_name ? " [" + r.node_name() + "]" : "") << ": " << type << " ("
           << details << ")\n";
      break;
  }
  ++lines_;
}

void FlowPrinter::write(const observer::GetDebugEventsResponse& r) {
  if (!r.has_debug_event()) return;
  const auto& e = r.debug_event();
  const std::string time = formatTime(r.time(), opts_.time_format);
  const std::string type = enumText(e.type(), flow::DebugEventType_Name(e.type()));
  const std::string from = endpointShort(r);
  const std::string mark = e.has_hash() ? fmt::format("0x{:x}", e.hash().value()) : "N/A";
  const std::string cpu = e.has_cpu() ? fmt::format("{:02d}", e.cpu().value()) : "N/A";
  switch (output_) {
    case Output::kJson: out_ << formatJson(r) << "\n"; break;
    case Output::kDict:
      if (lines_ != 0) out_ << "------------\n";
      out_ << "  TIMESTAMP: " << time << "\n";
      if (opts_.node_name) out_ << "       NODE: " << r.node_name() << "\n";
      out_ << "       TYPE: " << type << "\n"
           << "       FROM: " << from << "\n"
           << "       MARK: " << mark << "\n"
           << "        CPU: " << cpu << "\n"
           << "    MESSAGE: " << e.message() << "\n";
      break;
    case Output::kTable: {
      // Hubble's header has an empty column after FROM.
      tableHeaderOnce({"FROM", "", "TYPE", "CPU/MARK", "MESSAGE"});
      std::vector<std::string> row = {time};
      if (opts_.node_name) row.push_back(r.node_name());
      for (auto&& c : {from, std::string(), type, cpu + " " + mark, e.message()}) row.push_back(c);
      table_.addRow(std::move(row));
      break;
    }
    case Output::kCompact:
      out_ << fmt::format("{}{}: {} {} MARK: {} CPU: {} ({})\n", time,
                          opts_.node_name ? " [" + r.node_name() + "]" : "", from, type, mark, cpu,
                          e.message());
      break;
  }
  ++lines_;
}

void FlowPrinter::write(const observer::GetFlowsResponse& r) {
  if (r.has_flow())
    writeFlow(r);
  else if (r.has_lost_events())
    writeLost(r);
  else if (r.has_node_status())
    writeNodeStatus(r);
}

void FlowPrinter::writeFlow(const observer::GetFlowsResponse& r) {
  const auto& f = r.flow();
  const std::string time = formatTime(f.time(), opts_.time_format);
  switch (output_) {
    case Output::kCompact: out_ << formatCompact(r, opts_) << "\n"; break;
    case Output::kJson: out_ << formatJson(r) << "\n"; break;
    case Output::kTable: {
      tableHeaderOnce();
      std::vector<std::string> row = {time};
      if (opts_.node_name) row.push_back(f.node_name());
      for (auto&& c : {flowHostName(f, true, opts_.numeric), flowHostName(f, false, opts_.numeric),
                       flowTypeName(f), flowVerdictText(f), summaryText(f)})
        row.push_back(c);
      table_.addRow(std::move(row));
      break;
    }
    case Output::kDict:
      if (lines_ != 0) out_ << "------------\n";
      out_ << "  TIMESTAMP: " << time << "\n";
      if (opts_.node_name) out_ << "       NODE: " << f.node_name() << "\n";
      out_ << "     SOURCE: " << flowHostName(f, true, opts_.numeric) << "\n"
           << "DESTINATION: " << flowHostName(f, false, opts_.numeric) << "\n"
           << "       TYPE: " << flowTypeName(f) << "\n"
           << "    VERDICT: " << flowVerdictText(f) << "\n"
           << "    SUMMARY: " << summaryText(f) << "\n";
      break;
  }
  ++lines_;
}

void FlowPrinter::writeLost(const observer::GetFlowsResponse& r) {
  const auto& l = r.lost_events();
  const std::string src = flow::LostEventSource_Name(l.source());
  const std::string counts = fmt::format("CPU({}) - {}", l.cpu().value(), l.num_events_lost());
  switch (output_) {
    case Output::kCompact: out_ << formatCompact(r, opts_) << "\n"; break;
    case Output::kJson: out_ << formatJson(r) << "\n"; break;
    case Output::kTable: {
      tableHeaderOnce();
      std::vector<std::string> row = {""};
      if (opts_.node_name) row.push_back("");
      for (auto&& c : {src, std::string(), std::string("EVENTS LOST"), std::string(), counts})
        row.push_back(c);
      table_.addRow(std::move(row));
      break;
    }
    case Output::kDict:
      if (lines_ != 0) out_ << "------------\n";
      out_ << "  TIMESTAMP: \n";
      if (opts_.node_name) out_ << "       NODE: \n";
      out_ << "     SOURCE: " << src << "\n"
           << "       TYPE: EVENTS LOST\n"
           << "    VERDICT: \n"
           << "    SUMMARY: " << counts << "\n";
      break;
  }
  ++lines_;
}

void FlowPrinter::writeNodeStatus(const observer::GetFlowsResponse& r) {
  const auto& s = r.node_status();
  // As Hubble: without --debug only the news that some nodes' flows are missing, on stderr.
  if (!opts_.debug && s.state_change() != relay::NODE_ERROR &&
      s.state_change() != relay::NODE_UNAVAILABLE)
    return;
  const std::string time = formatTime(r.time(), opts_.time_format);
  const std::string nodes = nodeList(s.node_names());
  switch (output_) {
    case Output::kJson: err_ << formatJson(r) << "\n"; break;
    case Output::kDict:
      if (lines_ != 0)
        out_ << "------------\n" << std::flush;
      else
        ++lines_;
      err_ << "  TIMESTAMP: " << time << "\n"
           << "      STATE: " << relay::NodeState_Name(s.state_change()) << "\n"
           << "      NODES: " << nodes << "\n"
           << "    MESSAGE: " << (s.message().empty() ? "N/A" : quoted(s.message())) << "\n";
      break;
    case Output::kTable:
    case Output::kCompact: {
      std::string prefix = fmt::format("{} [{}]", time, r.node_name());
      switch (s.state_change()) {
        case relay::NODE_CONNECTED:
          err_ << fmt::format("{}: Receiving flows from {} nodes: {}\n", prefix,
                              s.node_names_size(), nodes);
          break;
        case relay::NODE_UNAVAILABLE:
          err_ << fmt::format("{}: {} nodes are unavailable: {}\n", prefix, s.node_names_size(),
                              nodes);
          break;
        case relay::NODE_GONE:
          err_ << fmt::format("{}: {} nodes removed from cluster: {}\n", prefix,
                              s.node_names_size(), nodes);
          break;
        case relay::NODE_ERROR:
          err_ << fmt::format("{}: Error {} on {} nodes: {}\n", prefix, quoted(s.message()),
                              s.node_names_size(), nodes);
          break;
        default:
          err_ << fmt::format("{}: unknown node status event: {}\n", prefix, s.ShortDebugString());
      }
      break;
    }
  }
}

Result<std::string> grpcTarget(const std::string& server) {
  if (server.starts_with("unix://")) {
    if (server.size() <= 7) return bad("--server", server, "empty socket path");
    return server;
  }
  if (server.starts_with("/")) return "unix://" + server;
  if (server.starts_with("tls://")) {
    auto rest = server.substr(6);
    if (rest.rfind(':') == std::string::npos) return bad("--server", server, "needs :port");
    return rest;
  }
  if (server.find("://") != std::string::npos)
    return bad("--server", server, "use unix:///path, host:port or tls://host:port");
  if (server.rfind(':') == std::string::npos) return bad("--server", server, "needs :port");
  return server;
}

namespace {

Result<std::string> readPem(const std::string& path, std::string_view flag) {
  std::ifstream in(path);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || ss.str().empty())
    return makeError(ErrorCode::kFailedPrecondition, "{} {}: cannot be read or empty", flag, path);
  return ss.str();
}

}  // namespace

Result<std::shared_ptr<grpc::Channel>> dial(const std::string& server, const TlsArgs& tls) {
  CILIUM_ASSIGN_OR_RETURN(auto target, grpcTarget(server));
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  if (tls.enabled && tls.allow_insecure) {
    // No chain or name check (Hubble's --tls-allow-insecure); a client certificate still goes.
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
    if (!tls.cert_file.empty()) {
      CILIUM_ASSIGN_OR_RETURN(auto cert, readPem(tls.cert_file, "--tls-client-cert-file"));
      CILIUM_ASSIGN_OR_RETURN(auto key, readPem(tls.key_file, "--tls-client-key-file"));
      provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
          std::vector<grpc::experimental::IdentityKeyCertPair>{{key, cert}});
    }
    grpc::experimental::TlsChannelCredentialsOptions o;
    if (provider) {
      o.set_certificate_provider(provider);
      o.watch_identity_key_cert_pairs();
    }
    o.set_verify_server_certs(false);
    o.set_check_call_host(false);
    o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
    return grpc::CreateCustomChannel(target, grpc::experimental::TlsCredentials(o), args);
  }
  if (tls.enabled) {
    grpc::SslCredentialsOptions o;
    for (const auto& f : tls.ca_files) {
      CILIUM_ASSIGN_OR_RETURN(auto pem, readPem(f, "--tls-ca-cert-files"));
      o.pem_root_certs += pem + (pem.ends_with('\n') ? "" : "\n");
    }
    if (!tls.cert_file.empty()) {
      CILIUM_ASSIGN_OR_RETURN(o.pem_cert_chain, readPem(tls.cert_file, "--tls-client-cert-file"));
      CILIUM_ASSIGN_OR_RETURN(o.pem_private_key, readPem(tls.key_file, "--tls-client-key-file"));
    }
    creds = grpc::SslCredentials(o);
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  }
  return grpc::CreateCustomChannel(target, creds, args);
}

}  // namespace cilium::hubble::cli
