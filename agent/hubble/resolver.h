// What the flow decoder asks the agent about: which endpoint an id or an address belongs to,
// which labels an identity stands for, and which Service a frontend address and port are. The
// agent implements these over its endpoint manager, identity allocator and service manager; tests
// use StaticResolver.
//
// Threading: called from the decoder thread only, once per event, so implementations must be
// quick (a map lookup under a shared lock) and never block on I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "agent/common/inet.h"

namespace cilium::hubble {

struct EndpointInfo {
  uint32_t id = 0;        // endpoint id
  uint32_t identity = 0;  // security identity
  std::string pod_name;
  std::string pod_namespace;
  std::vector<std::string> labels;  // "source:key=value", e.g. "k8s:app=web"
  uint32_t ifindex = 0;             // host side of the endpoint's veth; 0 = unknown
  std::string interface_name;       // its name ("lxc1a2b")
  struct Workload {
    std::string name, kind;  // "web", "Deployment"
  };
  std::vector<Workload> workloads;
};

// A Kubernetes Service (flow.Service).
struct ServiceInfo {
  std::string name;
  std::string ns;
};

class EndpointResolver {
 public:
  virtual ~EndpointResolver() = default;
  // Answers are shared, immutable snapshots (null when unknown): the decoder runs for every
  // event, and copying names and label lists each time would cost more than the decode.
  // A local endpoint by its id.
  virtual std::shared_ptr<const EndpointInfo> endpointById(uint32_t id) const = 0;
  // A local or remote pod by address (ipcache).
  virtual std::shared_ptr<const EndpointInfo> endpointByIp(const IpAddr& ip) const = 0;
};

class IdentityResolver {
 public:
  virtual ~IdentityResolver() = default;
  // The labels of an allocated identity; null when unknown. Reserved identities (host,
  // world, ...) need not be handled: the decoder knows them.
  virtual std::shared_ptr<const std::vector<std::string>> identityLabels(
      uint32_t identity) const = 0;
};

class NameResolver {
 public:
  virtual ~NameResolver() = default;
  // The DNS names local endpoint `endpoint_id` looked up (through the DNS proxy) that resolve
  // to `ip` now, sorted; empty when none. Fills source_names / destination_names as Cilium
  // does: the names a flow's peer address has from the local endpoint's point of view.
  virtual std::vector<std::string> namesOf(uint32_t endpoint_id, const IpAddr& ip) const = 0;
};

class ServiceResolver {
 public:
  virtual ~ServiceResolver() = default;
  // The Service whose frontend is ip:port (host order) over `proto` (IPPROTO_*); null for none.
  virtual std::shared_ptr<const ServiceInfo> serviceByFrontend(const IpAddr& ip, uint16_t port,
                                                               uint8_t proto) const = 0;
};

// A frontend and the Service it belongs to, as a service source lists them.
struct ServiceFrontend {
  IpAddr ip;
  uint16_t port = 0;
  uint8_t proto = 0;  // IPPROTO_TCP, IPPROTO_UDP, ...
  ServiceInfo service;
};

// The three interfaces over maps filled by hand (tests, benchmarks, the demo), and the service
// snapshot the agent refreshes from its service manager. Thread-safe.
class StaticResolver : public EndpointResolver, public IdentityResolver, public ServiceResolver {
 public:
  // Registers the endpoint under its id and under each address, and its identity's labels.
  void addEndpoint(const EndpointInfo& ep, const std::vector<IpAddr>& ips);
  void addIdentity(uint32_t identity, std::vector<std::string> labels);
  void addService(const ServiceFrontend& fe);
  // Replaces every service frontend at once (a refresh from the service manager).
  void replaceServices(const std::vector<ServiceFrontend>& frontends);

  std::shared_ptr<const EndpointInfo> endpointById(uint32_t id) const override;
  std::shared_ptr<const EndpointInfo> endpointByIp(const IpAddr& ip) const override;
  std::shared_ptr<const std::vector<std::string>> identityLabels(uint32_t identity) const override;
  std::shared_ptr<const ServiceInfo> serviceByFrontend(const IpAddr& ip, uint16_t port,
                                                       uint8_t proto) const override;

 private:
  using FrontendKey = std::tuple<IpAddr, uint16_t, uint8_t>;
  mutable std::mutex mu_;
  std::map<uint32_t, std::shared_ptr<const EndpointInfo>> by_id_;
  std::map<IpAddr, std::shared_ptr<const EndpointInfo>> by_ip_;
  std::map<uint32_t, std::shared_ptr<const std::vector<std::string>>> identities_;
  std::map<FrontendKey, std::shared_ptr<const ServiceInfo>> services_;
};

}  // namespace cilium::hubble
