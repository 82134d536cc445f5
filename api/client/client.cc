// REST client over the agent's Unix socket.
#include "api/client/client.h"

#include <cstdlib>

#include "api/client/unix_http.h"
#include "api/model/http.h"

namespace cilium::api {
namespace {

std::string labelsQuery(const Labels& labels) {
  std::string q;
  for (const auto& l : labels) q += (q.empty() ? "?" : "&") + ("labels=" + percentEncode(l));
  return q;
}

std::string endpointPath(const EndpointRef& id) {
  return "/v1/endpoint/" + percentEncode(id.toString());
}

// The agent's error body is a JSON string; fall back to the raw text.
std::string errorMessage(const std::string& body, int status) {
  if (body.empty()) return fmt::format("HTTP status {}", status);
  try {
    Json j = Json::parse(body);
    if (j.is_string()) return j.get<std::string>();
  } catch (const Json::exception&) {
  }
  return body;
}

}  // namespace

std::string defaultSocketPath() {
  if (const char* env = std::getenv("CILIUM_SOCK"); env != nullptr && *env != '\0') {
    auto p = socketPathFromHost(env);
    if (p.ok()) return *p;
  }
  return std::string(kDefaultSocketPath);
}

Result<std::string> socketPathFromHost(std::string_view host) {
  constexpr std::string_view kUnix = "unix://";
  if (host.substr(0, kUnix.size()) == kUnix) host.remove_prefix(kUnix.size());
  if (host.empty() || host[0] != '/')
    return makeError(ErrorCode::kInvalidArgument,
                     "host '{}' is not a Unix socket (unix:///path or /path)", host);
  return std::string(host);
}

Client::Client(ClientOptions opts) : opts_(std::move(opts)) {
  if (opts_.socket_path.empty()) opts_.socket_path = defaultSocketPath();
}

Result<Client::RawResponse> Client::call(std::string_view method, const std::string& target,
                                         const std::optional<std::string>& body) {
  UnixHttpRequest req{std::string(method), target, {{"Accept", "application/json"}}, body};
  if (body) req.headers.emplace_back("Content-Type", "application/json");
  CILIUM_ASSIGN_OR_RETURN(auto res, unixHttpRoundTrip(opts_.socket_path, req, opts_.timeout));
  return RawResponse{res.status, std::move(res.body)};
}

Result<Client::RawResponse> Client::request(std::string_view method, const std::string& target,
                                            const std::optional<std::string>& body,
                                            std::initializer_list<int> ok) {
  CILIUM_ASSIGN_OR_RETURN(RawResponse r, call(method, target, body));
  for (int s : ok)
    if (r.status == s) return r;
  return Error(errorCodeForHttpStatus(r.status), errorMessage(r.body, r.status));
}

template <typename T>
Result<T> Client::decodeResponse(const RawResponse& r, std::string_view schema) {
  auto j = parseJson(r.body, schema);
  if (!j.ok())
    return makeError(ErrorCode::kInternal, "the agent sent an invalid {}: {}", schema,
                     j.error().message());
  T out{};
  auto st = Decoder::decodeValue(*j, "", out);
  if (!st.ok())
    return makeError(ErrorCode::kInternal, "the agent sent an invalid {}: {}", schema,
                     st.error().message());
  return out;
}

Result<StatusResponse> Client::healthz() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/healthz", std::nullopt, {200}));
  return decodeResponse<StatusResponse>(r, "StatusResponse");
}

Result<DaemonConfiguration> Client::getConfig() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/config", std::nullopt, {200}));
  return decodeResponse<DaemonConfiguration>(r, "DaemonConfiguration");
}

Status Client::patchConfig(const DaemonConfigurationSpec& spec) {
  CILIUM_RETURN_IF_ERROR(request("PATCH", "/v1/config", encode(spec).dump(), {200}));
  return okStatus();
}

Result<DebugInfo> Client::debugInfo() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/debuginfo", std::nullopt, {200}));
  return decodeResponse<DebugInfo>(r, "DebugInfo");
}

Result<std::vector<Endpoint>> Client::listEndpoints(const Labels& labels) {
  CILIUM_ASSIGN_OR_RETURN(
      auto r, request("GET", "/v1/endpoint" + labelsQuery(labels), std::nullopt, {200}));
  return decodeResponse<std::vector<Endpoint>>(r, "Endpoint list");
}

Result<Endpoint> Client::getEndpoint(const EndpointRef& id) {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", endpointPath(id), std::nullopt, {200}));
  return decodeResponse<Endpoint>(r, "Endpoint");
}

Status Client::putEndpoint(const EndpointRef& id, const EndpointChangeRequest& req) {
  CILIUM_RETURN_IF_ERROR(request("PUT", endpointPath(id), encode(req).dump(), {200, 201}));
  return okStatus();
}

Status Client::patchEndpoint(const EndpointRef& id, const EndpointChangeRequest& req) {
  CILIUM_RETURN_IF_ERROR(request("PATCH", endpointPath(id), encode(req).dump(), {200}));
  return okStatus();
}

Result<int64_t> Client::deleteEndpoint(const EndpointRef& id) {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("DELETE", endpointPath(id), std::nullopt, {200, 206}));
  if (r.status == 200) return int64_t{0};
  return decodeResponse<int64_t>(r, "error count");
}

Result<LabelConfiguration> Client::getEndpointLabels(const EndpointRef& id) {
  CILIUM_ASSIGN_OR_RETURN(auto r,
                          request("GET", endpointPath(id) + "/labels", std::nullopt, {200}));
  return decodeResponse<LabelConfiguration>(r, "LabelConfiguration");
}

Result<EndpointHealth> Client::getEndpointHealth(const EndpointRef& id) {
  CILIUM_ASSIGN_OR_RETURN(auto r,
                          request("GET", endpointPath(id) + "/healthz", std::nullopt, {200}));
  return decodeResponse<EndpointHealth>(r, "EndpointHealth");
}

Result<std::vector<Identity>> Client::listIdentities(const Labels& labels) {
  CILIUM_ASSIGN_OR_RETURN(
      auto r, request("GET", "/v1/identity" + labelsQuery(labels), std::nullopt, {200}));
  return decodeResponse<std::vector<Identity>>(r, "Identity list");
}

Result<ClusterNodeStatus> Client::clusterNodes() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/cluster/nodes", std::nullopt, {200}));
  return decodeResponse<ClusterNodeStatus>(r, "ClusterNodeStatus");
}

Result<std::vector<Service>> Client::listServices() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/service", std::nullopt, {200}));
  return decodeResponse<std::vector<Service>>(r, "Service list");
}

Result<Identity> Client::getIdentity(std::string_view id) {
  CILIUM_ASSIGN_OR_RETURN(auto r,
                          request("GET", "/v1/identity/" + percentEncode(id), std::nullopt, {200}));
  return decodeResponse<Identity>(r, "Identity");
}

Result<IpamResponse> Client::ipamAllocate(std::optional<IpFamily> family, std::string_view owner) {
  std::string target = "/v1/ipam";
  std::string sep = "?";
  if (family) {
    target += sep + "family=" + std::string(ipFamilyName(*family));
    sep = "&";
  }
  if (!owner.empty()) target += sep + "owner=" + percentEncode(owner);
  CILIUM_ASSIGN_OR_RETURN(auto r, request("POST", target, std::nullopt, {201}));
  return decodeResponse<IpamResponse>(r, "IPAMResponse");
}

Result<IpamResponse> Client::ipamAllocateIp(const IpAddr& ip, std::string_view owner) {
  std::string target = "/v1/ipam/" + percentEncode(ip.toString());
  if (!owner.empty()) target += "?owner=" + percentEncode(owner);
  CILIUM_ASSIGN_OR_RETURN(auto r, request("POST", target, std::nullopt, {200}));
  return decodeResponse<IpamResponse>(r, "IPAMResponse");
}

Status Client::ipamRelease(std::string_view ip_or_owner) {
  CILIUM_RETURN_IF_ERROR(
      request("DELETE", "/v1/ipam/" + percentEncode(ip_or_owner), std::nullopt, {200}));
  return okStatus();
}

Result<Policy> Client::getPolicy(const Labels& labels) {
  CILIUM_ASSIGN_OR_RETURN(auto r,
                          request("GET", "/v1/policy" + labelsQuery(labels), std::nullopt, {200}));
  return decodeResponse<Policy>(r, "Policy");
}

Result<Policy> Client::putPolicy(std::string_view rules) {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("PUT", "/v1/policy", std::string(rules), {200}));
  return decodeResponse<Policy>(r, "Policy");
}

Result<Policy> Client::deletePolicy(const Labels& labels) {
  // Cilium sends the labels as the body; an empty body deletes every rule.
  std::optional<std::string> body;
  if (!labels.empty()) body = Json(labels).dump();
  CILIUM_ASSIGN_OR_RETURN(auto r, request("DELETE", "/v1/policy", body, {200}));
  return decodeResponse<Policy>(r, "Policy");
}

Result<SelectorCache> Client::getSelectors() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/policy/selectors", std::nullopt, {200}));
  return decodeResponse<SelectorCache>(r, "SelectorCache");
}

Result<BpfMapList> Client::listMaps() {
  CILIUM_ASSIGN_OR_RETURN(auto r, request("GET", "/v1/map", std::nullopt, {200}));
  return decodeResponse<BpfMapList>(r, "BPFMapList");
}

Result<BpfMap> Client::getMap(std::string_view name) {
  CILIUM_ASSIGN_OR_RETURN(auto r,
                          request("GET", "/v1/map/" + percentEncode(name), std::nullopt, {200}));
  return decodeResponse<BpfMap>(r, "BPFMap");
}

Status Client::monitor(const MonitorQuery& query,
                       const std::function<bool(const MonitorEvent&)>& on_event) {
  std::string target = "/v1/monitor";
  std::string sep = "?";
  auto add = [&](std::string_view k, const std::string& v) {
    target += sep + std::string(k) + "=" + percentEncode(v);
    sep = "&";
  };
  for (const auto& t : query.types) add("type", t);
  if (query.from) add("from", std::to_string(*query.from));
  if (query.to) add("to", std::to_string(*query.to));
  if (query.related_to) add("related-to", std::to_string(*query.related_to));

  std::string pending;     // a partial line between chunks
  std::string error_body;  // the body of a non-200 answer
  Status failure;
  bool stopped_by_caller = false;
  UnixHttpRequest req{"GET", target, {{"Accept", "application/x-ndjson"}}, std::nullopt};
  auto res = unixHttpRoundTrip(
      opts_.socket_path, req, opts_.timeout, [&](int status, std::string_view data) {
        if (status != 200) {
          error_body.append(data);
          return true;
        }
        pending.append(data);
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          std::string line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // heartbeat
          auto ev = decodeText<MonitorEvent>(line, "monitor event");
          if (!ev.ok()) {
            failure = makeError(ErrorCode::kInternal, "the agent sent an invalid monitor event: {}",
                                ev.error().message());
            return false;
          }
          if (!on_event(*ev)) {
            stopped_by_caller = true;
            return false;
          }
        }
        return true;
      });
  if (!failure.ok()) return failure;
  if (stopped_by_caller) return okStatus();
  if (!res.ok()) return res.error();
  int status = res->status;
  if (status != 200) return Error(errorCodeForHttpStatus(status), errorMessage(error_body, status));
  return okStatus();
}

}  // namespace cilium::api
