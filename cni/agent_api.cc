// AgentApi over the agent's REST socket (api::Client).
#include "cni/plugin.h"

namespace cilium::cni {
namespace {

api::EndpointRef byContainer(const std::string& container_id) {
  api::EndpointRef ref;
  ref.kind = api::EndpointRef::Kind::kContainerId;
  ref.value = container_id;
  return ref;
}

class ClientAgent final : public AgentApi {
 public:
  explicit ClientAgent(api::ClientOptions opts) : client_(std::move(opts)) {}

  Result<api::StatusResponse> healthz() override { return client_.healthz(); }
  Result<api::IpamResponse> allocate(const std::string& owner) override {
    // No family: one address of every family the agent has enabled (as Cilium's CNI asks).
    return client_.ipamAllocate(std::nullopt, owner);
  }
  Status release(const std::string& ip_or_owner) override {
    return client_.ipamRelease(ip_or_owner);
  }
  Status putEndpoint(const api::EndpointChangeRequest& req) override {
    return client_.putEndpoint(byContainer(req.container_id), req);
  }
  Result<api::Endpoint> getEndpoint(const std::string& container_id) override {
    return client_.getEndpoint(byContainer(container_id));
  }
  Status deleteEndpoint(const std::string& container_id) override {
    auto r = client_.deleteEndpoint(byContainer(container_id));
    if (!r.ok()) return std::move(r).error();
    return okStatus();
  }
  Result<std::vector<api::Endpoint>> listEndpoints() override { return client_.listEndpoints(); }
  Result<int> deviceMtu() override {
    CILIUM_ASSIGN_OR_RETURN(api::DaemonConfiguration c, client_.getConfig());
    return c.status ? static_cast<int>(c.status->device_mtu) : 0;
  }

 private:
  api::Client client_;
};

}  // namespace

std::unique_ptr<AgentApi> makeAgentApi(api::ClientOptions opts) {
  return std::make_unique<ClientAgent>(std::move(opts));
}

}  // namespace cilium::cni
