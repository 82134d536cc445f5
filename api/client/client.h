// The C++ client of the agent's REST API (api/v1/openapi.yaml) over its Unix socket, used by
// cilium-cni, cilium-dbg and tests. Every call opens its own connection, so a Client may be
// shared between threads.
//
// Errors: an agent that cannot be reached is kUnavailable ("cannot reach the agent at <socket>:
// ..."), which cilium-cni reports as "try again later"; a call that runs out of time is
// kDeadlineExceeded; an error response carries the ErrorCode its HTTP status maps back to
// (agent/api/router.h) and the agent's message; a response that does not decode is kInternal.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "api/model/model.h"

namespace cilium::api {

inline constexpr std::string_view kDefaultSocketPath = "/var/run/cilium/cilium.sock";

// $CILIUM_SOCK when set, else /var/run/cilium/cilium.sock.
std::string defaultSocketPath();
// Accepts "/path/to.sock" and "unix:///path/to.sock" (the form cilium-dbg -H takes).
Result<std::string> socketPathFromHost(std::string_view host);

struct ClientOptions {
  std::string socket_path;                   // empty: defaultSocketPath()
  std::chrono::milliseconds timeout{30000};  // connect, and each read or write
};

struct MonitorQuery {
  std::vector<std::string> types;  // drop, trace, policy-verdict, debug, agent; empty = all
  std::optional<int64_t> from;     // events whose source endpoint is this one
  std::optional<int64_t> to;       // events towards this endpoint
  std::optional<int64_t> related_to;
};

class Client {
 public:
  explicit Client(ClientOptions opts = {});

  const std::string& socketPath() const { return opts_.socket_path; }

  // daemon
  Result<StatusResponse> healthz();
  Result<DaemonConfiguration> getConfig();
  Status patchConfig(const DaemonConfigurationSpec& spec);
  Result<DebugInfo> debugInfo();

  // endpoints (served by the endpoint manager)
  Result<std::vector<Endpoint>> listEndpoints(const Labels& labels = {});
  Result<Endpoint> getEndpoint(const EndpointRef& id);
  Status putEndpoint(const EndpointRef& id, const EndpointChangeRequest& req);
  Status patchEndpoint(const EndpointRef& id, const EndpointChangeRequest& req);
  // Returns the number of errors the agent met while deleting (HTTP 206), 0 on a clean delete.
  Result<int64_t> deleteEndpoint(const EndpointRef& id);
  Result<LabelConfiguration> getEndpointLabels(const EndpointRef& id);
  Result<EndpointHealth> getEndpointHealth(const EndpointRef& id);

  // identities
  Result<std::vector<Identity>> listIdentities(const Labels& labels = {});
  // GET /service: every service frontend.
  Result<std::vector<Service>> listServices();
  Result<Identity> getIdentity(std::string_view id);
  Result<ClusterNodeStatus> clusterNodes();

  // IPAM
  Result<IpamResponse> ipamAllocate(std::optional<IpFamily> family, std::string_view owner);
  Result<IpamResponse> ipamAllocateIp(const IpAddr& ip, std::string_view owner);
  // Releases one address, or every address of an owner ("default/xwing", a container id).
  Status ipamRelease(std::string_view ip_or_owner);

  // policy
  Result<Policy> getPolicy(const Labels& labels = {});
  Result<Policy> putPolicy(std::string_view rules);   // JSON (or YAML) rules as the user wrote them
  Result<Policy> deletePolicy(const Labels& labels);  // empty: every rule
  Result<SelectorCache> getSelectors();

  // maps the agent caches
  Result<BpfMapList> listMaps();
  Result<BpfMap> getMap(std::string_view name);

  // Streams GET /monitor: calls on_event for every event until it returns false (then returns
  // ok), the agent ends the stream (ok) or the connection fails (error).
  Status monitor(const MonitorQuery& query,
                 const std::function<bool(const MonitorEvent&)>& on_event);

  struct RawResponse {
    int status = 0;
    std::string body;
  };
  // One request; any HTTP status comes back as a response, only transport failures as errors.
  Result<RawResponse> call(std::string_view method, const std::string& target,
                           const std::optional<std::string>& body = std::nullopt);

 private:
  // call() plus: a status outside `ok` becomes an Error with the agent's message.
  Result<RawResponse> request(std::string_view method, const std::string& target,
                              const std::optional<std::string>& body,
                              std::initializer_list<int> ok);
  template <typename T>
  Result<T> decodeResponse(const RawResponse& r, std::string_view schema);

  ClientOptions opts_;
};

}  // namespace cilium::api
