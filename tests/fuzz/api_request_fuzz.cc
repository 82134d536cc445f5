// Fuzz target: a request ("METHOD TARGET\nbody") routed and decoded the way handlers do it.
#include <cstdlib>
#include <string_view>

#include "agent/api/router.h"
#include "agent/common/inet.h"
#include "api/model/model.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {
namespace {

const api::Router& router() {
  static const api::Router* r = [] {
    auto* router = new api::Router();
    auto add = [&](api::Method m, const char* path, api::Handler h) {
      if (!router->add(m, path, std::move(h)).ok()) std::abort();
    };
    add(api::Method::kPut, "/v1/endpoint/{id}",
        [](const api::Request& req) -> Result<api::Response> {
          CILIUM_ASSIGN_OR_RETURN(auto ref, api::parseEndpointRef(req.param("id")));
          // A parsed reference prints back to a form that parses to the same reference.
          auto back = api::parseEndpointRef(ref.toString());
          if (!back.ok() || !(*back == ref)) std::abort();
          CILIUM_ASSIGN_OR_RETURN(
              auto ecr, req.decodeBody<api::EndpointChangeRequest>("EndpointChangeRequest"));
          return api::Response::json(api::encode(ecr), 201);
        });
    add(api::Method::kPatch, "/v1/config", [](const api::Request& req) -> Result<api::Response> {
      CILIUM_ASSIGN_OR_RETURN(
          auto spec, req.decodeBody<api::DaemonConfigurationSpec>("DaemonConfigurationSpec"));
      return api::Response::json(api::encode(spec));
    });
    add(api::Method::kDelete, "/v1/policy", [](const api::Request& req) -> Result<api::Response> {
      api::Labels labels = req.queryValues("labels");
      if (!req.body.empty()) {
        CILIUM_ASSIGN_OR_RETURN(auto j, api::parseJson(req.body));
        std::vector<std::string> body_labels;
        CILIUM_RETURN_IF_ERROR(api::Decoder::decodeValue(j, "labels", body_labels));
      }
      return api::Response::json(api::Json(labels));
    });
    add(api::Method::kPost, "/v1/ipam", [](const api::Request& req) -> Result<api::Response> {
      if (auto f = req.queryValue("family")) CILIUM_RETURN_IF_ERROR(parseIpFamily(*f));
      return api::Response::empty(201);
    });
    add(api::Method::kDelete, "/v1/ipam/{ip}",
        [](const api::Request& req) -> Result<api::Response> {
          (void)IpAddr::parse(req.param("ip"));
          return api::Response::empty();
        });
    add(api::Method::kGet, "/v1/identity/{id}",
        [](const api::Request&) -> Result<api::Response> { return api::Response::empty(); });
    add(api::Method::kGet, "/v1/identity/endpoints",
        [](const api::Request&) -> Result<api::Response> { return api::Response::empty(); });
    return router;
  }();
  return *r;
}

}  // namespace

int apiRequest(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  std::string body = nl == std::string_view::npos ? "" : std::string(in.substr(nl + 1));
  auto sp = line.find(' ');
  std::string_view method = line.substr(0, sp);
  std::string_view target = sp == std::string_view::npos ? "" : line.substr(sp + 1);
  api::Response res =
      router().dispatch(method, target, {{"Content-Type", "application/json"}}, body);
  // Every answer is a known status, and every error carries a message.
  if (res.status < 200 || res.status > 599) std::abort();
  if (res.status >= 400 && (!res.body.is_string() || res.body.get<std::string>().empty()))
    std::abort();
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::apiRequest)
