// REST handlers of the FQDN cache.
#include "agent/fqdn/api.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "agent/policy/fqdn_pattern.h"

namespace cilium::fqdn {

namespace {

Result<std::string> patternOf(const api::Request& r) {
  auto p = r.queryValue("matchpattern");
  if (!p || p->empty()) return std::string();
  auto n = policy::normalizeFqdnMatch(*p, true);
  if (!n.ok()) return n.error().withContext("matchpattern");
  return *n;
}

// Keeps the lookups with an address inside `cidr` (and only those addresses).
Result<nlohmann::json> filterCidr(nlohmann::json lookups, const api::Request& r) {
  auto c = r.queryValue("cidr");
  if (!c || c->empty()) return lookups;
  auto prefix = IpPrefix::parseMasked(*c, true);
  if (!prefix.ok())
    return Error(ErrorCode::kInvalidArgument, fmt::format("cidr: \"{}\" is not a CIDR", *c));
  auto out = nlohmann::json::array();
  for (auto& l : lookups) {
    auto ips = nlohmann::json::array();
    for (const auto& s : l["ips"]) {
      auto ip = IpAddr::parse(s.get<std::string>());
      if (ip.ok() && prefix->contains(IpPrefix::host(*ip))) ips.push_back(s);
    }
    if (ips.empty()) continue;
    l["ips"] = std::move(ips);
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace

Status registerRoutes(api::Router& router, NameManager& names) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/fqdn/cache", [&names](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto pattern, patternOf(r));
        CILIUM_ASSIGN_OR_RETURN(auto out, filterCidr(names.cacheJson(std::nullopt, pattern), r));
        return Response::json(std::move(out));
      }));
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kDelete, "/v1/fqdn/cache", [&names](const Request& r) -> Result<Response> {
        CILIUM_ASSIGN_OR_RETURN(auto pattern, patternOf(r));
        names.clear(std::nullopt, pattern);
        return Response::empty();
      }));
  CILIUM_RETURN_IF_ERROR(router.add(
      Method::kGet, "/v1/fqdn/cache/{id}", [&names](const Request& r) -> Result<Response> {
        const std::string& s = r.param("id");
        uint16_t id = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
        if (ec != std::errc() || p != s.data() + s.size() || id == 0)
          return Error(ErrorCode::kInvalidArgument,
                       fmt::format("endpoint id \"{}\" is not a number", s));
        CILIUM_ASSIGN_OR_RETURN(auto pattern, patternOf(r));
        CILIUM_ASSIGN_OR_RETURN(auto out, filterCidr(names.cacheJson(id, pattern), r));
        if (out.empty())
          return Error(ErrorCode::kNotFound,
                       fmt::format("no DNS cache entries for endpoint {}", id));
        return Response::json(std::move(out));
      }));
  return router.add(Method::kGet, "/v1/fqdn/names", [&names](const Request&) -> Result<Response> {
    return Response::json(names.namesJson());
  });
}

}  // namespace cilium::fqdn
