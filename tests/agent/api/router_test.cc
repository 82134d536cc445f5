// Router: matching, path parameters, 404/405/400, error mapping, body decoding.
#include "agent/api/router.h"

#include <gtest/gtest.h>

#include "api/model/model.h"

namespace cilium::api {
namespace {

Response call(const Router& r, std::string_view method, std::string_view target,
              std::string body = "") {
  return r.dispatch(method, target, {}, std::move(body));
}

Handler echo(std::string name) {
  return [name](const Request& req) -> Result<Response> {
    Json j = {{"handler", name}, {"route", req.route}, {"path", req.path}};
    for (const auto& [k, v] : req.params) j["params"][k] = v;
    for (const auto& [k, v] : req.query) j["query"][k].push_back(v);
    return Response::json(j);
  };
}

TEST(RouterTest, MatchesTemplatesAndDecodesParameters) {
  Router r;
  ASSERT_TRUE(r.add(Method::kGet, "/v1/endpoint/{id}", echo("get-ep")).ok());
  ASSERT_TRUE(r.add(Method::kGet, "/v1/endpoint/{id}/labels", echo("labels")).ok());
  ASSERT_TRUE(r.add(Method::kGet, "/v1/identity/{id}", echo("identity")).ok());
  ASSERT_TRUE(r.add(Method::kGet, "/v1/identity/endpoints", echo("identity-eps")).ok());

  auto res = call(r, "GET", "/v1/endpoint/pod-name:default%2Fxwing");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.body["handler"], "get-ep");
  EXPECT_EQ(res.body["params"]["id"], "pod-name:default/xwing");
  EXPECT_EQ(res.body["path"], "/v1/endpoint/pod-name:default/xwing");

  EXPECT_EQ(call(r, "GET", "/v1/endpoint/42/labels").body["params"]["id"], "42");
  // A literal segment beats a parameter, whatever the registration order.
  EXPECT_EQ(call(r, "GET", "/v1/identity/endpoints").body["handler"], "identity-eps");
  EXPECT_EQ(call(r, "GET", "/v1/identity/256").body["handler"], "identity");
  // Trailing slash.
  EXPECT_EQ(call(r, "GET", "/v1/identity/256/").body["handler"], "identity");

  auto q = call(r, "GET", "/v1/identity/1?labels=k8s%3Aapp%3Dweb&labels=a+b&flag");
  EXPECT_EQ(q.body["query"]["labels"], Json({"k8s:app=web", "a b"}));
  EXPECT_EQ(q.body["query"]["flag"], Json({""}));
}

TEST(RouterTest, UnknownResourceIs404AndWrongMethodIs405) {
  Router r;
  ASSERT_TRUE(r.add(Method::kGet, "/v1/config", echo("get")).ok());
  ASSERT_TRUE(r.add(Method::kPatch, "/v1/config", echo("patch")).ok());

  auto nf = call(r, "GET", "/v1/nothing");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.body, Json("no such resource: /v1/nothing"));

  auto na = call(r, "DELETE", "/v1/config");
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.headers["Allow"], "GET, PATCH");
  EXPECT_EQ(na.body, Json("method DELETE is not allowed on /v1/config (allowed: GET, PATCH)"));
  EXPECT_EQ(call(r, "OPTIONS", "/v1/config").status, 405);

  EXPECT_EQ(call(r, "GET", "/v1/con%zzfig").status, 400);
  EXPECT_EQ(call(r, "GET", "v1/config").status, 400);
  EXPECT_EQ(call(r, "GET", "/v1/a%00b").status, 400);
}

TEST(RouterTest, RejectsDuplicateAndMalformedTemplates) {
  Router r;
  ASSERT_TRUE(r.add(Method::kGet, "/v1/x/{id}", echo("a")).ok());
  auto dup = r.add(Method::kGet, "/v1/x/{id}", echo("b"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(r.add(Method::kPut, "/v1/x/{id}", echo("c")).ok());
  EXPECT_FALSE(r.add(Method::kGet, "v1/y", echo("d")).ok());
  EXPECT_FALSE(r.add(Method::kGet, "/v1//y", echo("d")).ok());
  EXPECT_FALSE(r.add(Method::kGet, "/v1/{", echo("d")).ok());
  EXPECT_TRUE(r.has(Method::kPut, "/v1/x/{id}"));
  EXPECT_FALSE(r.has(Method::kDelete, "/v1/x/{id}"));
  EXPECT_EQ(r.routes().size(), 2u);
}

TEST(RouterTest, HandlerErrorsMapToStatusesWithAStringBody) {
  Router r;
  struct Case {
    ErrorCode code;
    int status;
  };
  const Case cases[] = {
      {ErrorCode::kInvalidArgument, 400},   {ErrorCode::kPermissionDenied, 403},
      {ErrorCode::kNotFound, 404},          {ErrorCode::kAlreadyExists, 409},
      {ErrorCode::kAborted, 409},           {ErrorCode::kFailedPrecondition, 412},
      {ErrorCode::kResourceExhausted, 507}, {ErrorCode::kInternal, 500},
      {ErrorCode::kUnimplemented, 501},     {ErrorCode::kUnavailable, 503},
      {ErrorCode::kDeadlineExceeded, 504},
  };
  for (const auto& c : cases) {
    std::string path = fmt::format("/v1/e{}", c.status * 100 + static_cast<int>(c.code));
    ASSERT_TRUE(r.add(Method::kGet, path, [c](const Request&) -> Result<Response> {
                   return makeError(c.code, "failed with {}", c.status);
                 }).ok());
    auto res = call(r, "GET", path);
    EXPECT_EQ(res.status, c.status);
    EXPECT_EQ(res.body, Json(fmt::format("failed with {}", c.status)));
    // The client maps the status back to the same code.
    if (c.code != ErrorCode::kAborted) {
      EXPECT_EQ(errorCodeForHttpStatus(c.status), c.code);
    }
  }
}

TEST(RouterTest, AThrowingHandlerIs500AndTheRouterKeepsWorking) {
  Router r;
  ASSERT_TRUE(r.add(Method::kGet, "/v1/boom", [](const Request&) -> Result<Response> {
                 throw std::runtime_error("kaboom");
               }).ok());
  ASSERT_TRUE(r.add(Method::kGet, "/v1/fine", echo("fine")).ok());
  auto res = call(r, "GET", "/v1/boom");
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, Json("internal error: kaboom"));
  EXPECT_EQ(call(r, "GET", "/v1/fine").status, 200);
}

TEST(RouterTest, DecodesBodiesWithErrorsNamingTheField) {
  Router r;
  ASSERT_TRUE(r.add(Method::kPut, "/v1/endpoint/{id}", [](const Request& req) -> Result<Response> {
                 CILIUM_ASSIGN_OR_RETURN(
                     auto ecr, req.decodeBody<EndpointChangeRequest>("EndpointChangeRequest"));
                 return Response::json(encode(ecr), 201);
               }).ok());
  auto bad = call(r, "PUT", "/v1/endpoint/1", R"({"state": "ready", "addressing": {"ipv4": 4}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(
      bad.body,
      Json("invalid EndpointChangeRequest: addressing.ipv4: expected a string, got an integer"));
  auto malformed = call(r, "PUT", "/v1/endpoint/1", "{");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.body, Json("invalid EndpointChangeRequest: body: malformed JSON at byte 2"));
  auto ok = call(r, "PUT", "/v1/endpoint/1", R"({"state": "ready"})");
  EXPECT_EQ(ok.status, 201);
  EXPECT_EQ(ok.body["state"], "ready");
}

TEST(RouterTest, PercentCoding) {
  EXPECT_EQ(percentEncode("default/xwing name"), "default%2Fxwing%20name");
  EXPECT_EQ(percentEncode("pod-name:a.b_c~"), "pod-name:a.b_c~");
  EXPECT_EQ(*percentDecode("default%2Fxwing", false), "default/xwing");
  EXPECT_EQ(*percentDecode("a+b", true), "a b");
  EXPECT_EQ(*percentDecode("a+b", false), "a+b");
  EXPECT_FALSE(percentDecode("%", false).ok());
  EXPECT_FALSE(percentDecode("%4", false).ok());
  EXPECT_FALSE(percentDecode("%g0", false).ok());
}

}  // namespace
}  // namespace cilium::api
