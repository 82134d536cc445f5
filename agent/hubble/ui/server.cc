// Hubble UI's HTTP server and JSON API.
#include "agent/hubble/ui/server.h"

#include <httplib.h>

#include <algorithm>
#include <set>

#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/cli/cli.h"
#include "agent/hubble/decoder.h"
#include "agent/hubble/ui/assets.h"
#include "agent/hubble/ui/service_map.h"

namespace cilium::hubble::ui {

namespace {

auto log() {
  static auto l = cilium::logger("hubble-ui");
  return l;
}

Error fromGrpc(const grpc::Status& st) {
  return makeError(ErrorCode::kUnavailable, "hubble: {}", st.error_message());
}

std::string rfc3339Milli(const google::protobuf::Timestamp& ts) {
  time_t secs = ts.seconds();
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:03d}Z", buf, ts.nanos() / 1000000);
}

// A namespace name as Kubernetes allows it (RFC 1123 label): anything else is refused before it
// becomes a filter.
bool validNamespace(const std::string& ns) {
  if (ns.empty() || ns.size() > 63) return false;
  for (char c : ns)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return ns.front() != '-' && ns.back() != '-';
}

}  // namespace

UiServer::UiServer(std::shared_ptr<grpc::Channel> hubble, UiOptions opts)
    : stub_(observer::Observer::NewStub(std::move(hubble))), opts_(std::move(opts)) {}

UiServer::~UiServer() { stop(); }

Result<nlohmann::json> UiServer::namespaces() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + opts_.timeout);
  observer::GetNamespacesResponse resp;
  auto st = stub_->GetNamespaces(&ctx, {}, &resp);
  if (!st.ok()) return fromGrpc(st);
  std::set<std::string> names;
  for (const auto& n : resp.namespaces()) names.insert(n.namespace_());
  return nlohmann::json{{"namespaces", names}};
}

namespace {

// What the details panel shows of an L7 record: Hubble's Layer7 (HTTP or DNS).
nlohmann::json l7Json(const flow::Layer7& l7) {
  nlohmann::json j = {{"type", flow::L7FlowType_Name(l7.type())}, {"latency_ns", l7.latency_ns()}};
  if (l7.has_http()) {
    const auto& h = l7.http();
    auto headers = nlohmann::json::array();
    for (const auto& kv : h.headers())
      headers.push_back({{"key", kv.key()}, {"value", kv.value()}});
    j["http"] = {{"method", h.method()},
                 {"url", h.url()},
                 {"code", h.code()},
                 {"protocol", h.protocol()},
                 {"headers", headers}};
  }
  if (l7.has_dns()) {
    const auto& d = l7.dns();
    j["dns"] = {{"query", d.query()},
                {"ips", std::vector<std::string>(d.ips().begin(), d.ips().end())},
                {"ttl", d.ttl()},
                {"cnames", std::vector<std::string>(d.cnames().begin(), d.cnames().end())},
                {"rcode", d.rcode()},
                {"qtypes", std::vector<std::string>(d.qtypes().begin(), d.qtypes().end())},
                {"rrtypes", std::vector<std::string>(d.rrtypes().begin(), d.rrtypes().end())}};
  }
  return j;
}

}  // namespace

Result<nlohmann::json> UiServer::flows(const std::string& ns) {
  if (!ns.empty() && !validNamespace(ns))
    return makeError(ErrorCode::kInvalidArgument, "namespace \"{}\": not a namespace name", ns);
  observer::GetFlowsRequest req;
  req.set_number(opts_.max_flows);
  if (!ns.empty()) {
    req.add_whitelist()->add_source_pod(ns + "/");
    req.add_whitelist()->add_destination_pod(ns + "/");
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + opts_.timeout);
  auto reader = stub_->GetFlows(&ctx, req);
  observer::GetFlowsResponse r;
  ServiceMap map;
  auto rows = nlohmann::json::array();
  while (reader->Read(&r)) {
    if (!r.has_flow()) continue;
    const auto& f = r.flow();
    map.add(f);
    rows.push_back({{"time", rfc3339Milli(f.time())},
                    {"node", f.node_name()},
                    {"source", cli::flowHostName(f, true)},
                    {"destination", cli::flowHostName(f, false)},
                    {"source_id", mapEndpoint(f.source(), f.ip().source()).id},
                    {"destination_id", mapEndpoint(f.destination(), f.ip().destination()).id},
                    {"destination_port", destinationPort(f)},
                    {"type", cli::flowTypeName(f)},
                    {"verdict", flow::Verdict_Name(f.verdict())},
                    {"verdict_text", cli::flowVerdictText(f)},
                    {"drop_reason", dropReasonDesc(f.drop_reason_desc())},
                    {"is_reply", f.has_is_reply() && f.is_reply().value()},
                    {"summary", f.summary()}});
    if (f.has_l7()) rows.back()["l7"] = l7Json(f.l7());
  }
  auto st = reader->Finish();
  if (!st.ok()) return fromGrpc(st);
  std::reverse(rows.begin(), rows.end());
  return nlohmann::json{{"namespace", ns}, {"flows", rows}, {"map", map.toJson()}};
}

Status UiServer::start() {
  auto colon = opts_.listen_address.rfind(':');
  if (colon == std::string::npos)
    return makeError(ErrorCode::kInvalidArgument, "--listen-address {}: needs host:port",
                     opts_.listen_address);
  std::string host = opts_.listen_address.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  int want = 0;
  try {
    want = std::stoi(opts_.listen_address.substr(colon + 1));
  } catch (...) {
    want = -1;
  }
  if (want < 0 || want > 65535)
    return makeError(ErrorCode::kInvalidArgument, "--listen-address {}: bad port",
                     opts_.listen_address);
  http_ = std::make_unique<httplib::Server>();
  for (const auto& a : assets()) {
    http_->Get(std::string(a.path), [a](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(a.body), std::string(a.content_type));
      res.set_header("Cache-Control", "no-store");
    });
  }
  auto answer = [](httplib::Response& res, const Result<nlohmann::json>& r) {
    if (r.ok()) {
      res.set_content(r->dump(), "application/json");
    } else {
      res.status = r.error().code() == ErrorCode::kInvalidArgument ? 400 : 502;
      res.set_content(nlohmann::json{{"error", r.error().message()}}.dump(), "application/json");
    }
  };
  http_->Get("/api/namespaces", [this, answer](const httplib::Request&, httplib::Response& res) {
    answer(res, namespaces());
  });
  http_->Get("/api/flows", [this, answer](const httplib::Request& req, httplib::Response& res) {
    answer(res, flows(req.get_param_value("namespace")));
  });
  port_ = want == 0 ? http_->bind_to_any_port(host) : (http_->bind_to_port(host, want) ? want : -1);
  if (port_ <= 0) {
    http_.reset();
    port_ = 0;
    return makeError(ErrorCode::kUnavailable, "--listen-address {}: cannot listen",
                     opts_.listen_address);
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  log()->info("hubble-ui listening address={} port={}", opts_.listen_address, port_);
  return okStatus();
}

void UiServer::stop() {
  if (!http_) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

}  // namespace cilium::hubble::ui
