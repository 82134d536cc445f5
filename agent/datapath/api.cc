// REST handlers over the pinned maps.
#include "agent/datapath/api.h"

#include <algorithm>

namespace cilium::datapath {
namespace {

const std::vector<std::string>& mapNames() {
  static const std::vector<std::string> names = {
      "cilium_lxc",        "cilium_lxc_if",         "cilium_ipcache", "cilium_policy_v2",
      "cilium_ct4_global", "cilium_ct_any4_global", "cilium_metrics", "cilium_runtime_config",
      "cilium_events",     "cilium_event_stats"};
  return names;
}

std::string endpointInfoText(const endpoint_info& v) {
  return fmt::format("id={} ifindex={} identity={} flags={:#x} ipv4={}", v.lxc_id, v.ifindex,
                     v.sec_id, v.flags, formatIpv4(v.ipv4));
}

}  // namespace

Status registerMapRoutes(api::Router& router, Maps maps, std::string pin_dir,
                         std::map<std::string, MapLister> listers) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/map", [pin_dir](const Request&) -> Result<Response> {
        api::BpfMapList list;
        for (const auto& n : mapNames()) list.maps.push_back(api::BpfMap{pin_dir + "/" + n, {}});
        return Response::json(api::encode(list));
      }));
  return router.add(
      Method::kGet, "/v1/map/{name}",
      [maps, pin_dir, listers = std::move(listers)](const Request& r) -> Result<Response> {
        const std::string& name = r.param("name");
        const auto& names = mapNames();
        if (std::find(names.begin(), names.end(), name) == names.end())
          return makeError(ErrorCode::kNotFound, "map {} not found", name);
        api::BpfMap m{pin_dir + "/" + name, {}};
        if (auto l = listers.find(name); l != listers.end()) {
          CILIUM_ASSIGN_OR_RETURN(m.cache, l->second());
        } else if (name == "cilium_lxc") {
          CILIUM_RETURN_IF_ERROR(
              maps.endpoints->forEach([&](const endpoint_key& k, const endpoint_info& v) {
                m.cache.push_back(
                    api::BpfMapEntry{formatIpv4(k.ip.ip4), endpointInfoText(v), "ok", ""});
                return true;
              }));
        } else if (name == "cilium_lxc_if") {
          CILIUM_RETURN_IF_ERROR(
              maps.endpoints_by_ifindex->forEach([&](const uint32_t& k, const endpoint_info& v) {
                m.cache.push_back(
                    api::BpfMapEntry{std::to_string(k), endpointInfoText(v), "ok", ""});
                return true;
              }));
        } else if (name == "cilium_policy_v2") {
          CILIUM_ASSIGN_OR_RETURN(auto eps, maps.policy->endpoints());
          for (uint16_t id : eps) {
            auto entries = maps.policy->dump(id);
            m.cache.push_back(api::BpfMapEntry{
                std::to_string(id),
                entries.ok() ? fmt::format("entries={}", entries->size())
                             : entries.error().message(),
                "ok", ""});
          }
        }
        return Response::json(api::encode(m));
      });
}

}  // namespace cilium::datapath
