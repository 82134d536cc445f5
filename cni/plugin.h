// The CNI commands (ADD, DEL, CHECK, GC, STATUS, VERSION) over two seams: the agent's REST API
// and the host's network plumbing. Both are interfaces so the rules of the specification
// (idempotence, rollback, what DEL must tolerate) are tested without a kernel or an agent.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "api/client/client.h"
#include "api/model/model.h"
#include "cni/spec.h"

namespace cilium::cni {

// What ADD asks of the host: a veth pair, the peer inside the pod named `ifname`.
struct PodLink {
  std::string netns;        // CNI_NETNS
  std::string ifname;       // name inside the pod (CNI_IFNAME)
  std::string host_ifname;  // host side, at most 15 characters
  int mtu = 1500;
  // The pod's IPv4 address, installed as /32, and the router address: a /32 link route to it,
  // and the default route. "" = none (an IPv6-only agent).
  std::string address;
  std::string gateway;
  // The pod's IPv6 address (/128) and router, routed as the IPv4 pair is; "" = none (IPv4-only).
  // At least one family is given.
  std::string address6;
  std::string gateway6;
};

struct PodLinkInfo {
  int host_ifindex = 0;
  std::string host_mac;
  std::string pod_mac;
  int pod_ifindex = 0;
};

class HostNet {
 public:
  virtual ~HostNet() = default;
  // Creates the pair in the current (node) namespace and configures the pod side. A failure
  // leaves nothing behind.
  virtual Result<PodLinkInfo> setup(const PodLink& link) = 0;
  // Removes the host side (the kernel removes the peer with it). Absent is success.
  virtual Status teardown(const std::string& host_ifname) = 0;
  // kNotFound unless `ifname` exists in `netns` and carries `address` (IPv4 or IPv6).
  virtual Status check(const std::string& netns, const std::string& ifname,
                       const std::string& address) = 0;
  // Whether `netns` is a network namespace, as checkNetnsPath (cni/input.h) answers: kNotFound
  // when nothing is there, kInvalidArgument when it is something else.
  virtual Status checkNetns(const std::string& netns) = 0;
};

// The agent calls the plugin makes (a subset of api::Client, behind an interface).
class AgentApi {
 public:
  virtual ~AgentApi() = default;
  virtual Result<api::StatusResponse> healthz() = 0;
  virtual Result<api::IpamResponse> allocate(const std::string& owner) = 0;
  virtual Status release(const std::string& ip_or_owner) = 0;
  virtual Status putEndpoint(const api::EndpointChangeRequest& req) = 0;
  virtual Result<api::Endpoint> getEndpoint(const std::string& container_id) = 0;
  virtual Status deleteEndpoint(const std::string& container_id) = 0;
  virtual Result<std::vector<api::Endpoint>> listEndpoints() = 0;
  // The pod device MTU the agent's configuration calls for (GET /config, status.deviceMTU; less
  // the VXLAN headers in tunnel mode); 0 when the agent does not say.
  virtual Result<int> deviceMtu() = 0;
};

// The real agent over its Unix socket.
std::unique_ptr<AgentApi> makeAgentApi(api::ClientOptions opts);
// The real host: rtnetlink in the calling process's (node) network namespace.
std::unique_ptr<HostNet> makeHostNet();

inline constexpr std::string_view kDefaultLogFile = "/var/run/cilium/cilium-cni.log";

struct PluginOptions {
  int default_mtu = 1500;
  // Where DEL records what it could not finish while the agent was down; the agent drains
  // <socket dir>/deleteQueue when it starts ("" disables).
  std::string delete_queue_dir = "/var/run/cilium/deleteQueue";
};

struct Outcome {
  int exit_code = 0;
  std::string stdout_text;  // a result, or an error object
};

// The host-side veth name for a container's interface: "lxc" and 12 hex digits of a hash of
// both, so the same pod always maps to the same name and different pods (almost) never collide.
std::string hostIfname(std::string_view container_id, std::string_view ifname);

class Plugin {
 public:
  Plugin(AgentApi& agent, HostNet& net, PluginOptions opts = {})
      : agent_(agent), net_(net), opts_(std::move(opts)) {}

  // Runs one invocation: validates, dispatches, and encodes the answer in the requested version.
  Outcome run(const Getenv& getenv, std::string_view stdin_text);

 private:
  Outcome add(const Environment& env, const NetConf& conf);
  Outcome del(const Environment& env, const NetConf& conf);
  Outcome check(const Environment& env, const NetConf& conf);
  Outcome gc(const NetConf& conf);
  Outcome status(const NetConf& conf);
  Status queueDelete(const Environment& env, const std::string& ip);

  AgentApi& agent_;
  HostNet& net_;
  PluginOptions opts_;
};

}  // namespace cilium::cni
