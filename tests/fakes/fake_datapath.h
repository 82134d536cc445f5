// The control plane's datapath in memory: fake maps (agent/datapath/fake_maps.h) and endpoint
// devices that record what the kernel would be asked to do. No event ring. With it the whole
// control plane (sources, identities, policy, endpoints, maps) runs in the unit tier.
#pragma once

#include <map>
#include <mutex>
#include <set>

#include "agent/daemon/control_plane.h"
#include "agent/datapath/fake_maps.h"
#include "agent/endpoint/manager.h"

namespace cilium::testing {

class FakeDevices final : public endpoint::Devices {
 public:
  Status attach(int ifindex) override {
    std::lock_guard l(mu);
    attached.insert(ifindex);
    return okStatus();
  }
  Status detach(int ifindex) override {
    std::lock_guard l(mu);
    attached.erase(ifindex);
    return okStatus();
  }
  Status addRoute(const IpAddr& ip, int ifindex) override {
    std::lock_guard l(mu);
    routes[ip] = ifindex;
    return okStatus();
  }
  Status removeRoute(const IpAddr& ip, int) override {
    std::lock_guard l(mu);
    routes.erase(ip);
    return okStatus();
  }
  Status deleteLink(int ifindex) override {
    std::lock_guard l(mu);
    links.erase(ifindex);
    return okStatus();
  }
  bool linkExists(int ifindex, const std::string&) override {
    std::lock_guard l(mu);
    return links.count(ifindex) != 0;
  }
  Status checkPodDevice(int ifindex, const std::string&) override {
    std::lock_guard l(mu);
    if (!links.count(ifindex))
      return Error(ErrorCode::kInvalidArgument, "no such device (fake)");
    return okStatus();
  }
  std::vector<int> attachedLinks() override {
    std::lock_guard l(mu);
    return {attached.begin(), attached.end()};
  }

  std::mutex mu;
  std::set<int> links;  // the pods' veths that exist
  std::set<int> attached;
  std::map<IpAddr, int> routes;
};

class FakeDatapath final : public daemon::ControlPlaneDatapath {
 public:
  datapath::Maps maps() override { return fake_maps.view(); }
  endpoint::Devices& devices() override { return fake_devices; }
  Status setupHostDevice(const IpAddr&, const std::optional<IpAddr>&) override {
    return okStatus();
  }
  bool hasEvents() const override { return false; }
  Result<std::unique_ptr<datapath::EventReader>> openEventReader(
      datapath::EventReader::Callback) override {
    return Error(ErrorCode::kUnimplemented, "the fake datapath has no event ring");
  }
  Result<std::vector<datapath::MetricsEntry>> readMetrics() const override {
    return std::vector<datapath::MetricsEntry>{};
  }
  Result<datapath::EventCounters> eventCounters() const override {
    return datapath::EventCounters{};
  }
  Status enableProxyRedirect() override { return okStatus(); }

  datapath::FakeMaps fake_maps;
  FakeDevices fake_devices;
};

}  // namespace cilium::testing
