// cilium-dbg commands: argument parsing, REST-backed commands, pinned-map commands.
#include <time.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "agent/common/cli.h"
#include "agent/dbg/bpf_maps.h"
#include "agent/dbg/dbg.h"
#include "agent/dbg/names.h"
#include "agent/dbg/table.h"
#include "agent/health/prober.h"
#include "api/client/client.h"
#include "api/model/http.h"

namespace cilium::dbg {
namespace {

using api::Json;

struct Args {
  std::vector<std::string> words;  // the command, then its arguments
  std::map<std::string, std::vector<std::string>> flags;

  bool has(const std::string& f) const { return flags.count(f) > 0; }
  std::optional<std::string> value(const std::string& f) const {
    auto it = flags.find(f);
    if (it == flags.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  std::vector<std::string> values(const std::string& f) const {
    auto it = flags.find(f);
    return it == flags.end() ? std::vector<std::string>{} : it->second;
  }
};

// The command line as CLI11 sees it: global options, then one subcommand per command, each
// with its own options and the words after it (checked by the command itself). Options may
// stand anywhere: subcommands pass the ones they do not know to the top (fallthrough).
struct CommandLine {
  std::unique_ptr<CLI::App> app;
  // Positional words of the subcommand that ran (bound by the options, so on the heap).
  std::shared_ptr<std::vector<std::string>> words = std::make_shared<std::vector<std::string>>();
};

CommandLine commandLine() {
  CommandLine c;
  c.app = cli::makeApp(
      "Inspects the agent through its REST API and the datapath through its pinned maps.\n"
      "Exit status: 0 success, 1 failure, 2 usage error.",
      "cilium-dbg");
  CLI::App& app = *c.app;
  auto& fmt = cli::formatterOf(app);
  app.add_option("-H,--host", "Agent socket (unix:///path.sock or a path)")
      ->type_name("socket")
      ->default_str(std::string(api::kDefaultSocketPath));
  fmt.env("host", "CILIUM_SOCK");
  app.add_option("-o,--output", "Output format (json)")->type_name("json");
  app.add_option("--pin-dir",
                 "BPF pin directory for 'bpf' commands (default: the agent's bpf-pin-dir, else "
                 "/sys/fs/bpf/cilium)")
      ->type_name("dir");
  app.add_flag("-D,--debug")->description("Debug output");
  app.add_flag("-v,--verbose")->description("Verbose output");
  app.require_subcommand(0, 1);
  auto sub = [&](const std::string& name, const std::string& desc, const std::string& words) {
    CLI::App* s = app.add_subcommand(name, desc);
    s->fallthrough();
    s->allow_extras();
    if (!words.empty()) s->add_option("args", *c.words, words)->type_name("");
    return s;
  };
  sub("status", "Agent health", "")->add_flag("--brief")->description("OK or the problem");
  sub("config", "Show options (-a: every option) or change mutable ones", "KEY=VALUE...")
      ->add_flag("-a,--all")
      ->description("Every option, not only the mutable ones");
  sub("endpoint", "Endpoints: list | get <id> (42, container-id:..., pod-name:ns/name)",
      "list | get <id>");
  sub("identity", "Security identities: list | get <id>", "list | get <id>");
  sub("policy",
      "Policy: get [labels...] | import <file|-> (JSON or YAML) | delete <labels...>|--all | "
      "selectors",
      "get|import|delete|selectors [...]")
      ->add_flag("--all")
      ->description("policy delete: every rule");
  CLI::App* monitor = sub("monitor", "Datapath events", "");
  monitor->add_option("-t,--type", "drop, trace, policy-verdict, debug or agent (repeatable)")
      ->type_name("T");
  monitor->add_option("--from", "Events from this endpoint id")->type_name("ID");
  monitor->add_option("--to", "Events to this endpoint id")->type_name("ID");
  monitor->add_option("--related-to", "Events from or to this endpoint id")->type_name("ID");
  CLI::App* ipam = sub("ipam", "Addresses: list | allocate | release <ip|owner>",
                       "list | allocate | release <ip|owner>");
  ipam->add_option("--family", "ipam allocate: ipv4 or ipv6")->type_name("F");
  ipam->add_option("--owner", "ipam allocate: owner of the address")->type_name("O");
  CLI::App* fqdn =
      sub("fqdn", "DNS proxy: cache list | cache clean | names", "cache list|clean | names");
  fqdn->add_option("-p,--matchpattern", "fqdn cache: only names matching this pattern")
      ->type_name("PATTERN");
  fqdn->add_option("-e,--endpoint", "fqdn cache list: only this endpoint")->type_name("ID");
  fqdn->add_flag("-f,--force")->description("fqdn cache clean: without asking (always)");
  sub("service", "Service frontends and backends: list", "list");
  sub("node", "The cluster's nodes: list", "list");
  sub("debuginfo", "Everything the agent reports", "");
  sub("bpf",
      "Pinned maps: endpoint list | ipcache list | tunnel list | ct list global | metrics list | "
      "lb list | nat list | nat flush | ipmasq list | policy get <endpoint id>",
      "<map> <verb> [...]");
  for (CLI::Option* o : app.get_options()) o->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  for (CLI::App* s : app.get_subcommands({}))
    for (CLI::Option* o : s->get_options())
      if (o->get_name() != "args") o->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return c;
}

// Options by their long name, as the commands read them.
void collect(const CLI::App& app, Args& a) {
  for (const CLI::Option* o : app.get_options()) {
    if (o->count() == 0 || o->get_lnames().empty() || o->get_name() == "args") continue;
    auto& v = a.flags[o->get_lnames().front()];
    v.insert(v.end(), o->results().begin(), o->results().end());
  }
}

std::string labelsCell(std::vector<std::string> labels) {
  std::sort(labels.begin(), labels.end());
  std::string out;
  for (const auto& l : labels) out += (out.empty() ? "" : "\n") + l;
  return out;
}

class Commands {
 public:
  Commands(Args args, std::ostream& out, std::ostream& err, const DbgEnv& env)
      : args_(std::move(args)), out_(out), err_(err), env_(env) {}

  int run() {
    if (auto o = args_.value("output"); o && *o != "json") return usage("--output takes only json");
    json_ = args_.has("output");
    std::string host;
    if (auto h = args_.value("host")) {
      auto p = api::socketPathFromHost(*h);
      if (!p.ok()) return usage(p.error().message());
      host = *p;
    } else if (auto e = env_.getenv ? env_.getenv("CILIUM_SOCK") : std::nullopt; e && !e->empty()) {
      auto p = api::socketPathFromHost(*e);
      if (!p.ok()) return usage("CILIUM_SOCK: " + p.error().message());
      host = *p;
    }
    client_ = std::make_unique<api::Client>(api::ClientOptions{
        host.empty() ? std::string(api::kDefaultSocketPath) : host, std::chrono::seconds(30)});
    const auto& w = args_.words;
    const std::string& cmd = w[0];
    if (cmd == "status") return status();
    if (cmd == "config") return config();
    if (cmd == "debuginfo") return debuginfo();
    if (cmd == "endpoint") return endpoint();
    if (cmd == "identity") return identity();
    if (cmd == "policy") return policy();
    if (cmd == "monitor") return monitor();
    if (cmd == "ipam") return ipam();
    if (cmd == "bpf") return bpf();
    if (cmd == "service") return service();
    if (cmd == "node") return node();
    if (cmd == "fqdn") return fqdn();
    return usage("unknown command '" + cmd + "'");
  }

 private:
  int usage(const std::string& msg) { return cli::usageError(err_, "cilium-dbg", msg); }
  int fail(const Error& e) {
    err_ << "Error: " << e.message() << "\n";
    return 1;
  }
  int fail(const std::string& what, const Error& e) {
    err_ << "Error: " << what << ": " << e.message() << "\n";
    return 1;
  }
  bool expectWords(size_t n, const std::string& form) {
    if (args_.words.size() == n) return true;
    usage("usage: cilium-dbg " + form);
    return false;
  }
  void printJson(const Json& j) { out_ << j.dump(2) << "\n"; }

  static std::string stateText(const std::optional<api::ComponentStatus>& s) {
    if (!s) return "";
    std::string out(api::enumName(s->state));
    if (!s->msg.empty()) out += "   " + s->msg;
    return out;
  }

  int status() {
    auto s = client_->healthz();
    if (!s.ok()) return fail("cannot get the agent's status", s.error());
    bool ok = s->cilium && s->cilium->state == api::StatusState::kOk;
    if (args_.has("brief")) {
      if (ok) {
        out_ << "OK\n";
        return 0;
      }
      err_ << (s->cilium ? stateText(s->cilium) : std::string("no cilium status")) << "\n";
      return 1;
    }
    if (json_) {
      printJson(api::encode(*s));
      return 0;
    }
    auto line = [&](std::string_view label, const std::string& value) {
      if (!value.empty()) out_ << fmt::format("{:<25}{}\n", std::string(label) + ":", value);
    };
    line("KVStore", stateText(s->kvstore));
    if (s->kubernetes) {
      std::string k(api::enumName(s->kubernetes->state));
      if (!s->kubernetes->msg.empty()) k += "   " + s->kubernetes->msg;
      line("Kubernetes", k);
      if (!s->kubernetes->k8s_api_versions.empty())
        line("Kubernetes APIs",
             fmt::format("[\"{}\"]", fmt::join(s->kubernetes->k8s_api_versions, "\", \"")));
    }
    line("Cilium", stateText(s->cilium));
    line("Container runtime", stateText(s->container_runtime));
    if (s->ipam) line("IPAM", s->ipam->status);
    if (s->cni_chaining) line("CNI Chaining", s->cni_chaining->mode);
    if (s->routing) {
      // Cilium's line: "Routing: Network: Tunnel [vxlan]   Host: BPF".
      std::string net = s->routing->inter_host_routing_mode;
      if (!s->routing->tunnel_protocol.empty()) net += " [" + s->routing->tunnel_protocol + "]";
      line("Routing",
           fmt::format("Network: {}   Host: {}", net, s->routing->intra_host_routing_mode));
    }
    if (const auto& k = s->kube_proxy_replacement) {
      // Cilium's line, "KubeProxyReplacement: True   [eth0]", and what kube-proxy left behind.
      std::string text = k->mode;
      if (!k->devices.empty()) text += fmt::format("   [{}]", fmt::join(k->devices, ", "));
      line("KubeProxyReplacement", text);
      if (!k->leftover_kube_proxy_chains.empty())
        line("Leftover kube-proxy", fmt::format("{} (remove kube-proxy and flush its rules)",
                                                fmt::join(k->leftover_kube_proxy_chains, ", ")));
    }
    line("Device Mode", s->datapath_mode);
    line("Attach Mode", s->attach_mode);
    if (s->proxy) {
      std::string ports;
      for (const auto& r : s->proxy->redirects)
        ports += fmt::format("{}{} {}", ports.empty() ? "" : ", ", r.name, r.proxy_port);
      line("Proxy Status",
           fmt::format("OK, ip {}, {} redirects active on ports {}, {} ({})", s->proxy->ip,
                       s->proxy->total_redirects, s->proxy->port_range,
                       s->proxy->envoy_deployment_mode, ports));
    }
    if (s->hubble) {
      std::string h(api::enumName(s->hubble->state));
      if (!s->hubble->msg.empty()) h += "   " + s->hubble->msg;
      if (s->hubble->observer)
        h += fmt::format("   Current/Max Flows: {}/{}, Flows seen: {}",
                         s->hubble->observer->current_flows, s->hubble->observer->max_flows,
                         s->hubble->observer->seen_flows);
      line("Hubble", h);
    }
    if (s->identity_range)
      line("Global Identity Range", fmt::format("min {}, max {}", s->identity_range->min_identity,
                                                s->identity_range->max_identity));
    if (s->cluster) {
      line("Node", s->cluster->self);
      if (const auto& h = s->cluster->cilium_health) {
        // Cilium's line: "Cluster health:   2/3 reachable   (<time of the last round>)".
        line("Cluster health",
             h->state == api::StatusState::kOk && !h->msg.empty() ? h->msg : stateText(h));
        if (args_.has("verbose")) healthDetails();
      }
    }
    for (const auto& [probe, since] : s->stale) line("Stale", probe + " since " + since);
    return 0;
  }

  // The nodes the last round of health probes did not reach, and why (status --verbose).
  void healthDetails() {
    auto r = client_->call("GET", "/v1/health/status");
    if (!r.ok() || r->status != 200) return;
    auto report = health::reportFromJson(nlohmann::json::parse(r->body, nullptr, false));
    if (!report.ok()) return;
    for (const auto& n : report->nodes) {
      if (n.reachable()) continue;
      out_ << fmt::format("  {} unreachable:\n", n.name);
      for (const auto& [what, path] :
           {std::pair{"host", &n.host}, std::pair{"endpoint", &n.endpoint}}) {
        if (!*path) continue;
        const auto& p = **path;
        if (!p.icmp.ok()) out_ << fmt::format("    {} {} ICMP: {}\n", what, p.ip, p.icmp.status);
        if (!p.http.ok()) out_ << fmt::format("    {} {} HTTP: {}\n", what, p.ip, p.http.status);
      }
    }
  }

  int config() {
    std::map<std::string, std::string> changes;
    for (size_t i = 1; i < args_.words.size(); i++) {
      const auto& kv = args_.words[i];
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        return usage("config takes KEY=VALUE, got '" + kv + "'");
      changes[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (!changes.empty()) {
      api::DaemonConfigurationSpec spec;
      spec.options = changes;
      if (auto st = client_->patchConfig(spec); !st.ok())
        return fail("cannot change the configuration", st.error());
      out_ << "OK\n";
      return 0;
    }
    auto c = client_->getConfig();
    if (!c.ok()) return fail("cannot get the configuration", c.error());
    if (json_) {
      printJson(api::encode(*c));
      return 0;
    }
    Table t({"KEY", "VALUE"});
    if (args_.has("all") && c->status) {
      for (const auto& [k, v] : c->status->daemon_configuration_map)
        t.add({k, v.is_string() ? v.get<std::string>() : v.dump()});
    } else if (c->spec) {
      for (const auto& [k, v] : c->spec->options) t.add({k, v});
      if (!c->spec->policy_enforcement.empty())
        t.add({"policy-enforcement", c->spec->policy_enforcement});
    }
    t.print(out_);
    // What the ConfigMap set that this agent does not implement: never silently dropped.
    if (c->status && !c->status->ignored_options.empty()) {
      out_ << fmt::format("\nIgnored (not implemented by this agent, {} keys):\n",
                          c->status->ignored_options.size());
      Table ignored({"KEY", "VALUE"});
      for (const auto& [k, v] : c->status->ignored_options) ignored.add({k, v});
      ignored.print(out_);
    }
    return 0;
  }

  int debuginfo() {
    auto d = client_->debugInfo();
    if (!d.ok()) return fail("cannot get debug information", d.error());
    printJson(api::encode(*d));
    return 0;
  }

  static std::string enforcement(const api::Endpoint& ep, bool ingress) {
    if (!ep.status || !ep.status->policy || !ep.status->policy->realized ||
        !ep.status->policy->realized->policy_enabled)
      return "Disabled";
    using E = api::EndpointPolicyEnabled;
    E e = *ep.status->policy->realized->policy_enabled;
    if (e == E::kBoth || e == (ingress ? E::kIngress : E::kEgress)) return "Enabled";
    if (e == E::kAuditBoth || e == (ingress ? E::kAuditIngress : E::kAuditEgress))
      return "Disabled (Audit)";
    return "Disabled";
  }

  int endpoint() {
    const auto& w = args_.words;
    if (w.size() >= 2 && w[1] == "list") {
      if (!expectWords(2, "endpoint list")) return 2;
      auto eps = client_->listEndpoints();
      if (!eps.ok()) return fail("cannot list endpoints", eps.error());
      std::sort(eps->begin(), eps->end(), [](const auto& a, const auto& b) { return a.id < b.id; });
      if (json_) {
        printJson(api::encodeList(*eps));
        return 0;
      }
      Table t({"ENDPOINT", "POLICY (ingress)", "POLICY (egress)", "IDENTITY",
               "LABELS (source:key[=value])", "IPv6", "IPv4", "STATUS"});
      t.add({"", "ENFORCEMENT", "ENFORCEMENT", "", "", "", "", ""});
      for (const auto& ep : *eps) {
        std::string identity, labels, v4, v6, state;
        if (ep.status) {
          if (ep.status->identity) {
            identity = std::to_string(ep.status->identity->id);
            labels = labelsCell(ep.status->identity->labels);
          }
          if (ep.status->networking && !ep.status->networking->addressing.empty()) {
            v4 = ep.status->networking->addressing[0].ipv4;
            v6 = ep.status->networking->addressing[0].ipv6;
          }
          state = std::string(api::enumName(ep.status->state));
        }
        t.add({std::to_string(ep.id), enforcement(ep, true), enforcement(ep, false), identity,
               labels, v6, v4, state});
      }
      t.print(out_);
      return 0;
    }
    if (w.size() >= 2 && w[1] == "get") {
      if (!expectWords(3, "endpoint get <id>")) return 2;
      auto ref = api::parseEndpointRef(w[2]);
      if (!ref.ok()) return usage(ref.error().message());
      auto ep = client_->getEndpoint(*ref);
      if (!ep.ok()) return fail("cannot get endpoint " + w[2], ep.error());
      printJson(api::encode(*ep));
      return 0;
    }
    return usage("endpoint takes list or get <id>");
  }

  int identity() {
    const auto& w = args_.words;
    std::vector<api::Identity> ids;
    if (w.size() >= 2 && w[1] == "list") {
      if (!expectWords(2, "identity list")) return 2;
      auto r = client_->listIdentities();
      if (!r.ok()) return fail("cannot list identities", r.error());
      ids = std::move(*r);
      std::sort(ids.begin(), ids.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    } else if (w.size() >= 2 && w[1] == "get") {
      if (!expectWords(3, "identity get <id>")) return 2;
      auto r = client_->getIdentity(w[2]);
      if (!r.ok()) return fail("cannot get identity " + w[2], r.error());
      ids.push_back(std::move(*r));
    } else {
      return usage("identity takes list or get <id>");
    }
    if (json_) {
      printJson(api::encodeList(ids));
      return 0;
    }
    Table t({"ID", "LABELS"});
    for (const auto& i : ids) t.add({std::to_string(i.id), labelsCell(i.labels)});
    t.print(out_);
    return 0;
  }

  int node() {
    const auto& w = args_.words;
    if (w.size() < 2 || w[1] != "list") return usage("node takes list");
    if (!expectWords(2, "node list")) return 2;
    auto r = client_->clusterNodes();
    if (!r.ok()) return fail("cannot list nodes", r.error());
    if (json_) {
      printJson(api::encode(*r));
      return 0;
    }
    // Cilium's columns.
    Table t({"Name", "IPv4 Address", "Endpoint CIDR", "IPv6 Address", "Endpoint CIDR", "Source"});
    for (const auto& n : r->nodes_added) {
      api::NodeAddressingElement v4, v6;
      if (n.primary_address && n.primary_address->ipv4) v4 = *n.primary_address->ipv4;
      if (n.primary_address && n.primary_address->ipv6) v6 = *n.primary_address->ipv6;
      t.add({n.name, v4.ip, v4.alloc_range, v6.ip, v6.alloc_range, n.source});
    }
    t.print(out_);
    return 0;
  }

  void printPolicyResult(const api::Policy& p) {
    if (json_) {
      printJson(api::encode(p));
      return;
    }
    if (!p.policy.empty()) {
      auto parsed = api::parseJson(p.policy, "policy");
      out_ << (parsed.ok() ? parsed->dump(2) : p.policy) << "\n";
    }
    out_ << "Revision: " << p.revision << "\n";
  }

  int policy() {
    const auto& w = args_.words;
    std::string sub = w.size() >= 2 ? w[1] : "";
    if (sub == "get") {
      api::Labels labels(w.begin() + 2, w.end());
      auto p = client_->getPolicy(labels);
      if (!p.ok()) return fail("cannot get policy", p.error());
      printPolicyResult(*p);
      return 0;
    }
    if (sub == "import") {
      if (!expectWords(3, "policy import <file|->")) return 2;
      std::string text;
      if (w[2] == "-") {
        if (env_.in == nullptr) return usage("no standard input");
        std::ostringstream ss;
        ss << env_.in->rdbuf();
        text = ss.str();
      } else {
        std::ifstream f(w[2]);
        if (!f) return fail(makeError(ErrorCode::kNotFound, "cannot read {}", w[2]));
        std::ostringstream ss;
        ss << f.rdbuf();
        text = ss.str();
      }
      auto p = client_->putPolicy(text);
      if (!p.ok()) return fail("cannot import policy", p.error());
      if (json_) {
        printJson(api::encode(*p));
      } else {
        out_ << "Revision: " << p->revision << "\n";
      }
      return 0;
    }
    if (sub == "delete") {
      api::Labels labels(w.begin() + 2, w.end());
      if (labels.empty() && !args_.has("all")) return usage("policy delete needs labels or --all");
      if (!labels.empty() && args_.has("all"))
        return usage("policy delete takes labels or --all, not both");
      auto p = client_->deletePolicy(labels);
      if (!p.ok()) return fail("cannot delete policy", p.error());
      if (json_) {
        printJson(api::encode(*p));
      } else {
        out_ << "Revision: " << p->revision << "\n";
      }
      return 0;
    }
    if (sub == "selectors") {
      if (!expectWords(2, "policy selectors")) return 2;
      auto sc = client_->getSelectors();
      if (!sc.ok()) return fail("cannot get the selector cache", sc.error());
      if (json_) {
        printJson(api::encodeList(*sc));
        return 0;
      }
      std::sort(sc->begin(), sc->end(),
                [](const auto& a, const auto& b) { return a.selector < b.selector; });
      Table t({"SELECTOR", "LABELS", "USERS", "IDENTITIES"});
      for (const auto& s : *sc) {
        std::string ids;
        for (auto id : s.identities) ids += (ids.empty() ? "" : "\n") + std::to_string(id);
        t.add({s.selector, labelsCell(s.labels), std::to_string(s.users), ids});
      }
      t.print(out_);
      return 0;
    }
    return usage("policy takes get, import, delete or selectors");
  }

  // GET/DELETE /v1/fqdn/... (the body as the agent sent it, or a table).
  Result<Json> fqdnCall(std::string_view method, const std::string& target) {
    CILIUM_ASSIGN_OR_RETURN(auto r, client_->call(method, target));
    if (r.status == 404) return Json::array();
    if (r.status / 100 != 2) {
      auto j = Json::parse(r.body, nullptr, false);
      std::string msg = j.is_string() ? j.get<std::string>() : r.body;
      return Error(ErrorCode::kUnavailable, fmt::format("HTTP {}: {}", r.status, msg));
    }
    if (r.body.empty()) return Json();
    auto j = Json::parse(r.body, nullptr, false);
    if (j.is_discarded()) return Error(ErrorCode::kInternal, "the agent's answer is not JSON");
    return j;
  }

  int fqdn() {
    const auto& w = args_.words;
    std::string query;
    auto add = [&](const char* k, const std::string& v) {
      query += (query.empty() ? "?" : "&") + std::string(k) + "=" + api::percentEncode(v);
    };
    if (auto p = args_.value("matchpattern")) add("matchpattern", *p);
    if (w.size() == 2 && w[1] == "names") {
      auto j = fqdnCall("GET", "/v1/fqdn/names");
      if (!j.ok()) return fail("cannot get the FQDN selectors", j.error());
      printJson(*j);
      return 0;
    }
    if (w.size() == 3 && w[1] == "cache" && w[2] == "clean") {
      auto j = fqdnCall("DELETE", "/v1/fqdn/cache" + query);
      if (!j.ok()) return fail("cannot clean the FQDN cache", j.error());
      return 0;
    }
    if (w.size() == 3 && w[1] == "cache" && w[2] == "list") {
      std::string target = "/v1/fqdn/cache";
      if (auto e = args_.value("endpoint")) target += "/" + api::percentEncode(*e);
      auto j = fqdnCall("GET", target + query);
      if (!j.ok()) return fail("cannot get the FQDN cache", j.error());
      if (json_) {
        printJson(*j);
        return 0;
      }
      Table t({"Endpoint", "Source", "FQDN", "TTL", "ExpirationTime", "IPs"});
      for (const auto& l : *j) {
        std::string ips;
        for (const auto& ip : l.value("ips", Json::array()))
          ips += (ips.empty() ? "" : ",") + ip.get<std::string>();
        t.add({std::to_string(l.value("endpoint-id", 0)), l.value("source", ""),
               l.value("fqdn", ""), std::to_string(l.value("ttl", 0)),
               l.value("expiration-time", ""), ips});
      }
      t.print(out_);
      return 0;
    }
    return usage("usage: cilium-dbg fqdn cache list|clean [--matchpattern P] | fqdn names");
  }

  int monitor() {
    if (!expectWords(1, "monitor [--type T]...")) return 2;
    api::MonitorQuery q;
    static const std::set<std::string> kTypes = {"drop", "trace", "policy-verdict", "debug",
                                                 "agent"};
    for (const auto& t : args_.values("type")) {
      if (!kTypes.count(t))
        return usage("--type '" + t + "' is not one of drop, trace, policy-verdict, debug, agent");
      q.types.push_back(t);
    }
    auto num = [&](const std::string& f, std::optional<int64_t>& dst) -> bool {
      auto v = args_.value(f);
      if (!v) return true;
      try {
        size_t pos = 0;
        dst = std::stoll(*v, &pos);
        return pos == v->size();
      } catch (const std::exception&) {
        return false;
      }
    };
    if (!num("from", q.from) || !num("to", q.to) || !num("related-to", q.related_to))
      return usage("--from, --to and --related-to take endpoint ids");
    if (!json_) out_ << "Listening for events... Press Ctrl-C to quit\n" << std::flush;
    auto st = client_->monitor(q, [&](const api::MonitorEvent& ev) {
      out_ << (json_ ? api::encode(ev).dump() : formatMonitorEvent(ev)) << "\n" << std::flush;
      return true;
    });
    if (!st.ok()) return fail("monitor", st.error());
    return 0;
  }

  int service() {
    const auto& w = args_.words;
    if (w.size() < 2 || w[1] != "list") return usage("service takes list");
    if (!expectWords(2, "service list")) return 2;
    auto r = client_->listServices();
    if (!r.ok()) return fail("cannot list services", r.error());
    if (json_) {
      Json arr = Json::array();
      for (const auto& s : *r) arr.push_back(api::encode(s));
      printJson(arr);
      return 0;
    }
    Table t({"ID", "Frontend", "Service Type", "Backend"});
    for (const auto& s : *r) {
      if (!s.spec) continue;
      const auto& sp = *s.spec;
      // IPv6 as [addr]:port.
      auto hostPort = [](const std::string& ip, auto port) {
        return ip.find(':') != std::string::npos ? fmt::format("[{}]:{}", ip, port)
                                                 : fmt::format("{}:{}", ip, port);
      };
      std::string fe = hostPort(sp.frontend_address.ip, sp.frontend_address.port) + "/" +
                       sp.frontend_address.protocol;
      std::string type = sp.flags ? sp.flags->type : "";
      if (sp.backend_addresses.empty()) t.add({std::to_string(sp.id), fe, type, ""});
      for (size_t i = 0; i < sp.backend_addresses.size(); i++) {
        const auto& b = sp.backend_addresses[i];
        t.add({i == 0 ? std::to_string(sp.id) : "", i == 0 ? fe : "", i == 0 ? type : "",
               fmt::format("{} => {}/{} ({})", i + 1, hostPort(b.ip, b.port),
                           sp.frontend_address.protocol, b.state.empty() ? "active" : b.state)});
      }
    }
    t.print(out_);
    return 0;
  }

  int ipam() {
    const auto& w = args_.words;
    std::string sub = w.size() >= 2 ? w[1] : "";
    if (sub == "list") {
      auto s = client_->healthz();
      if (!s.ok()) return fail("cannot get IPAM state", s.error());
      if (!s->ipam) return fail(makeError(ErrorCode::kNotFound, "the agent reports no IPAM state"));
      if (json_) {
        printJson(api::encode(*s->ipam));
        return 0;
      }
      out_ << s->ipam->status << "\n";
      Table t({"ADDRESS", "OWNER"});
      for (const auto& [ip, owner] : s->ipam->allocations) t.add({ip, owner});
      t.print(out_);
      return 0;
    }
    if (sub == "allocate") {
      if (!expectWords(2, "ipam allocate [--family ipv4|ipv6] [--owner O]")) return 2;
      std::optional<IpFamily> fam;
      if (auto f = args_.value("family")) {
        auto pf = parseIpFamily(*f);
        if (!pf.ok()) return usage(pf.error().message());
        fam = *pf;
      }
      auto r = client_->ipamAllocate(fam, args_.value("owner").value_or(""));
      if (!r.ok()) return fail("cannot allocate", r.error());
      if (json_) {
        printJson(api::encode(*r));
      } else {
        for (const auto* a : {r->ipv4 ? &*r->ipv4 : nullptr, r->ipv6 ? &*r->ipv6 : nullptr})
          if (a) out_ << a->ip << " gateway " << a->gateway << "\n";
      }
      return 0;
    }
    if (sub == "release") {
      if (!expectWords(3, "ipam release <ip|owner>")) return 2;
      if (auto st = client_->ipamRelease(w[2]); !st.ok())
        return fail("cannot release " + w[2], st.error());
      out_ << "Released " << w[2] << "\n";
      return 0;
    }
    return usage("ipam takes list, allocate or release");
  }

  // The pin directory: --pin-dir, else the agent's bpf-pin-dir, else the default.
  std::string pinDir() {
    if (auto p = args_.value("pin-dir")) return *p;
    api::Client quick(api::ClientOptions{client_->socketPath(), std::chrono::seconds(2)});
    if (auto c = quick.getConfig(); c.ok() && c->status) {
      auto it = c->status->daemon_configuration_map.find("bpf-pin-dir");
      if (it != c->status->daemon_configuration_map.end() && it->second.is_string())
        return it->second.get<std::string>();
    }
    return "/sys/fs/bpf/cilium";
  }

  template <typename K, typename V>
  Result<std::unique_ptr<bpf::KernelMap<K, V>>> openPinned(const std::string& dir,
                                                           const char* name) {
    auto m = bpf::KernelMap<K, V>::fromPinned(dir + "/" + name);
    if (!m.ok()) return m.error().withContext(fmt::format("open {}/{}", dir, name));
    return m;
  }

  int bpf() {
    const auto& w = args_.words;
    std::string what = w.size() >= 2 ? w[1] : "";
    std::string verb = w.size() >= 3 ? w[2] : "";
    if (what == "endpoint" && verb == "list" && w.size() == 3) {
      auto m = openPinned<endpoint_key, endpoint_info>(pinDir(), kEndpointMapName);
      if (!m.ok()) return fail(m.error());
      auto st = printEndpoints(**m, json_, out_);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "ipcache" && verb == "list" && w.size() == 3) {
      auto m = openPinned<ipcache_key, remote_endpoint_info>(pinDir(), kIpcacheMapName);
      if (!m.ok()) return fail(m.error());
      auto st = printIpcache(**m, json_, out_);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "tunnel" && verb == "list" && w.size() == 3) {
      auto m = openPinned<ipcache_key, remote_endpoint_info>(pinDir(), kIpcacheMapName);
      if (!m.ok()) return fail(m.error());
      auto st = printTunnels(**m, json_, out_);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "ct" && verb == "list") {
      if (w.size() != 4 || w[3] != "global") return usage("usage: cilium-dbg bpf ct list global");
      std::string dir = pinDir();
      auto tcp = openPinned<ct_key4, ct_entry>(dir, kCtTcpMapName);
      if (!tcp.ok()) return fail(tcp.error());
      auto any = openPinned<ct_key4, ct_entry>(dir, kCtAnyMapName);
      if (!any.ok()) return fail(any.error());
      // The IPv6 maps exist once a bpf_lxc with IPv6 support has loaded.
      auto tcp6 = openPinned<ct_key6, ct_entry>(dir, kCt6TcpMapName);
      auto any6 = openPinned<ct_key6, ct_entry>(dir, kCt6AnyMapName);
      Ct6Maps v6;
      if (tcp6.ok() && any6.ok()) v6 = {tcp6->get(), any6->get()};
      auto st = printConntrack(**tcp, **any, env_.monotonic_seconds(), json_, out_, v6);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "lb" && verb == "list" && w.size() == 3) {
      std::string dir = pinDir();
      auto svcs = openPinned<lb4_key, lb4_service>(dir, kLbServicesMapName);
      if (!svcs.ok()) return fail(svcs.error());
      auto slots = openPinned<lb4_slot_key, uint32_t>(dir, kLbSlotsMapName);
      if (!slots.ok()) return fail(slots.error());
      auto bes = openPinned<uint32_t, lb4_backend>(dir, kLbBackendsMapName);
      if (!bes.ok()) return fail(bes.error());
      // The IPv6 maps exist once a datapath with IPv6 services has loaded.
      auto svcs6 = openPinned<lb6_key, lb4_service>(dir, kLb6ServicesMapName);
      auto bes6 = openPinned<uint32_t, lb6_backend>(dir, kLb6BackendsMapName);
      Lb6Maps v6;
      if (svcs6.ok() && bes6.ok()) v6 = {svcs6->get(), bes6->get()};
      auto st = printLb(**svcs, **slots, **bes, json_, out_, v6);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "nat" && (verb == "list" || verb == "flush") && w.size() == 3) {
      auto m = openPinned<nat4_key, nat4_entry>(pinDir(), kNatMapName);
      if (!m.ok()) return fail(m.error());
      // The IPv6 map exists once a bpf_host with IPv6 masquerade support has loaded.
      auto m6 = openPinned<nat6_key, nat6_entry>(pinDir(), kNat6MapName);
      if (verb == "flush") {
        auto n = flushNat(**m);
        if (!n.ok()) return fail(n.error());
        out_ << fmt::format("Flushed {} entries from {}\n", *n, kNatMapName);
        if (m6.ok()) {
          auto n6 = flushNat6(**m6);
          if (!n6.ok()) return fail(n6.error());
          out_ << fmt::format("Flushed {} entries from {}\n", *n6, kNat6MapName);
        }
        return 0;
      }
      auto st =
          printNat(**m, env_.monotonic_seconds(), json_, out_, m6.ok() ? m6->get() : nullptr);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "ipmasq" && verb == "list" && w.size() == 3) {
      auto m = openPinned<ipmasq_key4, uint8_t>(pinDir(), kIpMasqMapName);
      if (!m.ok()) return fail(m.error());
      auto m6 = openPinned<ipmasq_key6, uint8_t>(pinDir(), kIpMasq6MapName);
      auto st = printIpMasq(**m, json_, out_, m6.ok() ? m6->get() : nullptr);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "metrics" && verb == "list" && w.size() == 3) {
      auto m = openPinned<metrics_key, bpf::PerCpu<metrics_value>>(pinDir(), kMetricsMapName);
      if (!m.ok()) return fail(m.error());
      auto st = printMetrics(**m, json_, out_);
      return st.ok() ? 0 : fail(st.error());
    }
    if (what == "policy" && verb == "get") {
      if (w.size() != 4) return usage("usage: cilium-dbg bpf policy get <endpoint id>");
      auto ref = api::parseEndpointRef(w[3]);
      if (!ref.ok() || ref->kind != api::EndpointRef::Kind::kCiliumLocal)
        return usage("bpf policy get takes a numeric endpoint id, got '" + w[3] + "'");
      std::string dir = pinDir();
      auto outer = openPinned<uint32_t, uint32_t>(dir, kPolicyMapName);
      if (!outer.ok()) return fail(outer.error());
      // Labels for identities: reserved ones are known here, the others come from the agent.
      std::optional<std::map<int64_t, api::Labels>> known;
      auto labeler = [&](uint32_t id) -> std::string {
        std::string r = reservedIdentityLabel(id);
        if (!r.empty()) return r;
        if (!known) {
          known.emplace();
          api::Client quick(api::ClientOptions{client_->socketPath(), std::chrono::seconds(2)});
          if (auto ids = quick.listIdentities(); ids.ok())
            for (const auto& i : *ids) (*known)[i.id] = i.labels;
        }
        auto it = known->find(id);
        return it == known->end() ? std::string() : labelsCell(it->second);
      };
      auto st = printPolicy(**outer, openMapById, static_cast<uint32_t>(ref->local_id),
                            dir + "/" + kPolicyMapName, labeler, json_, out_);
      return st.ok() ? 0 : fail(st.error());
    }
    return usage("unknown bpf command");
  }

  Args args_;
  std::ostream& out_;
  std::ostream& err_;
  const DbgEnv& env_;
  bool json_ = false;
  std::unique_ptr<api::Client> client_;
};

std::string tupleText(const api::MonitorTuple& t) {
  std::string proto = t.protocol;
  bool ports = proto == "tcp" || proto == "udp" || proto == "sctp";
  std::string out = ports ? fmt::format("{}:{} -> {}:{} {}", t.src, t.sport, t.dst, t.dport, proto)
                          : fmt::format("{} -> {} {}", t.src, t.dst, proto);
  if (!t.tcp_flags.empty()) out += " " + t.tcp_flags;
  if (proto == "icmp" || proto == "icmpv6")
    out += fmt::format(" type {} code {}", t.icmp_type, t.icmp_code);
  return out;
}

}  // namespace

std::string formatMonitorEvent(const api::MonitorEvent& ev) {
  std::string tuple = ev.tuple ? ": " + tupleText(*ev.tuple) : "";
  if (ev.type == "drop")
    return fmt::format(
        "xx drop ({}) flow 0x0 to endpoint {}, ifindex {}, file {}:{}, identity {}->{}{}",
        ev.drop_reason_desc.empty() ? dropReasonName(static_cast<uint8_t>(ev.drop_reason))
                                    : ev.drop_reason_desc,
        ev.dst_endpoint, ev.ifindex, ev.file.empty() ? "?" : ev.file, ev.line, ev.src_identity,
        ev.dst_identity, tuple);
  if (ev.type == "trace") {
    std::string where;
    const std::string& p = ev.observation_point;
    if (p == "to-endpoint")
      where = fmt::format("-> endpoint {}", ev.dst_endpoint);
    else if (p == "from-endpoint")
      where = fmt::format("<- endpoint {}", ev.source);
    else if (p.rfind("to-", 0) == 0)
      where = "-> " + p.substr(3);
    else if (p.rfind("from-", 0) == 0)
      where = "<- " + p.substr(5);
    else
      where = p.empty() ? "trace" : p;
    return fmt::format("{} flow 0x0 , identity {}->{} state {} ifindex {}{}", where,
                       ev.src_identity, ev.dst_identity,
                       ev.ct_state.empty() ? "unknown" : ev.ct_state, ev.ifindex, tuple);
  }
  if (ev.type == "policy-verdict") {
    int64_t remote = ev.direction == "egress" ? ev.dst_identity : ev.src_identity;
    std::string proto = ev.tuple ? ev.tuple->protocol : "";
    return fmt::format(
        "Policy verdict log: flow 0x0 local EP ID {}, remote ID {}, proto {}, {}, action {}, match "
        "{}{}",
        ev.source, remote, proto, ev.direction, ev.verdict, ev.match_type, tuple);
  }
  if (ev.type == "lost") return fmt::format("Lost {} events", ev.lost);
  return fmt::format(">> {}: {}", ev.type, ev.message);
}

DbgEnv DbgEnv::system() {
  DbgEnv e;
  e.getenv = [](const std::string& n) -> std::optional<std::string> {
    const char* v = std::getenv(n.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  e.monotonic_seconds = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec);
  };
  e.in = &std::cin;
  return e;
}

int runDbg(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const DbgEnv& env) {
  CommandLine cl = commandLine();
  auto parsed = cli::parse(*cl.app, args);
  if (!parsed.ok()) return cli::usageError(err, "cilium-dbg", parsed.error().message());
  if (*parsed == cli::Outcome::kHelp) {
    out << cli::help(*cl.app);
    return 0;
  }
  auto subs = cl.app->get_subcommands();
  if (subs.empty()) {  // no command: the help, as a usage error
    out << cl.app->help();
    return cli::kUsageExit;
  }
  Args a;
  a.words.push_back(subs.front()->get_name());
  a.words.insert(a.words.end(), cl.words->begin(), cl.words->end());
  collect(*cl.app, a);
  collect(*subs.front(), a);
  return Commands(std::move(a), out, err, env).run();
}

}  // namespace cilium::dbg
