// REST handlers of the identity allocator.
#include "agent/identity/api.h"

namespace cilium::identity {

api::Identity toApi(const Identity& id) {
  return api::Identity{id.id, id.labels.toStrings(), id.labels.sha256()};
}

Status registerRoutes(api::Router& router, const Allocator& ids) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/identity", [&ids](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto filter, labels::Labels::parse(r.queryValues("labels")));
        std::vector<api::Identity> out;
        for (const auto& e : ids.list())
          if (e.identity.labels.contains(filter)) out.push_back(toApi(e.identity));
        return Response::json(api::encodeList(out));
      }));
  return router.add(
      Method::kGet, "/v1/identity/{id}", [&ids](const Request& r) -> Result<Response> {
        const std::string& text = r.param("id");
        std::optional<NumericIdentity> id;
        if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
            text.size() <= 10) {
          uint64_t v = std::stoull(text);
          if (v <= UINT32_MAX) id = static_cast<NumericIdentity>(v);
        } else {
          id = reservedByName(text);
        }
        if (!id) return makeError(ErrorCode::kInvalidArgument, "identity '{}' is not a number", text);
        auto found = ids.lookup(*id);
        if (!found) return makeError(ErrorCode::kNotFound, "identity {} not found", text);
        return Response::json(api::encode(toApi(*found)));
      });
}

}  // namespace cilium::identity
