// REST handlers of the policy engine.
#include "agent/policy/api.h"

#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace cilium::policy {
namespace {

auto& log() {
  static auto l = cilium::logger("policy");
  return l;
}

api::Response policyResponse(const Engine& engine, uint64_t revision,
                             const labels::Labels& filter) {
  api::Policy p;
  p.revision = static_cast<int64_t>(revision);
  p.policy = engine.rulesJson(filter).dump(2);
  return api::Response::json(api::encode(p));
}

}  // namespace

Status registerRoutes(api::Router& router, const Engine& engine, ApiTarget& target) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/policy", [&engine](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto filter, labels::Labels::parse(r.queryValues("labels")));
        return policyResponse(engine, engine.revision(), filter);
      }));
  CILIUM_RETURN_IF_ERROR(router.add(
      Method::kPut, "/v1/policy", [&engine, &target](const Request& r) -> Result<Response> {
        if (r.body.find_first_not_of(" \t\r\n") == std::string::npos)
          return Error(ErrorCode::kInvalidArgument, "policy: the body is empty");
        CILIUM_ASSIGN_OR_RETURN(auto res, target.importText(r.body));
        for (const auto& w : res.warnings) log()->warn("policy import warning={}", w);
        log()->info("policy imported added={} replaced={} revision={}", res.added, res.deleted,
                    res.revision);
        return policyResponse(engine, res.revision, {});
      }));
  CILIUM_RETURN_IF_ERROR(router.add(
      Method::kDelete, "/v1/policy", [&engine, &target](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(labels::Labels filter,
                                labels::Labels::parse(r.queryValues("labels")));
        if (r.body.find_first_not_of(" \t\r\n") != std::string::npos) {
          auto j = nlohmann::json::parse(r.body, nullptr, false);
          if (j.is_discarded())
            return Error(ErrorCode::kInvalidArgument, "labels: the body is not JSON");
          CILIUM_ASSIGN_OR_RETURN(filter, labels::Labels::fromJson(j, "labels"));
        }
        // Only what the API imported: the cluster state source owns the rest (docs/policy.md).
        CILIUM_ASSIGN_OR_RETURN(auto res, target.deleteByLabels(filter));
        log()->info("policy deleted rules={} revision={}", res.deleted, res.revision);
        return policyResponse(engine, res.revision, {});
      }));
  return router.add(
      Method::kGet, "/v1/policy/selectors", [&engine](const Request&) -> Result<Response> {
        api::SelectorCache out;
        for (const auto& s : engine.selectors()) {
          api::SelectorIdentityMapping m;
          m.selector = s.selector;
          for (auto id : s.identities) m.identities.push_back(id);
          m.users = static_cast<int64_t>(s.users);
          out.push_back(std::move(m));
        }
        return Response::json(api::encodeList(out));
      });
}

}  // namespace cilium::policy
