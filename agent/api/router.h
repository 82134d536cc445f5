// The agent's REST API surface: requests, responses and the router that modules register their
// handlers with. Pure logic (no sockets): the server (server.h) feeds it, tests call it directly.
//
// Modules plug in by registering (method, path template) pairs:
//   router.add(Method::kGet, "/v1/endpoint/{id}", [&](const Request& r) -> Result<Response> {
//     CILIUM_ASSIGN_OR_RETURN(auto ref, parseEndpointRef(r.param("id")));
//     ...
//     return Response::json(encode(ep));
//   });
// A handler's error becomes the HTTP status for its ErrorCode (httpStatusFor) with the message as
// the body, a JSON string as in Cilium's API ("Error: type string"). See docs/api.md.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "api/model/codec.h"
#include "api/model/http.h"

namespace cilium::api {

enum class Method { kGet, kPut, kPost, kPatch, kDelete };
std::string_view methodName(Method m);
std::optional<Method> parseMethod(std::string_view s);

struct Request {
  Method method = Method::kGet;
  std::string path;   // percent-decoded path, e.g. "/v1/endpoint/pod-name:default/xwing"
  std::string route;  // the template that matched, e.g. "/v1/endpoint/{id}"
  std::map<std::string, std::string> params;      // path parameters, decoded
  std::multimap<std::string, std::string> query;  // query parameters, decoded
  std::map<std::string, std::string> headers;     // names in lower case
  std::string body;

  // A path parameter of the matched template (empty if the template has none of that name).
  const std::string& param(const std::string& name) const;
  std::optional<std::string> queryValue(const std::string& name) const;
  std::vector<std::string> queryValues(const std::string& name) const;
  std::optional<std::string> header(const std::string& lower_case_name) const;

  // Decodes the JSON body as `T`; errors are kInvalidArgument "invalid <schema>: <field>: ...".
  template <Model T>
  Result<T> decodeBody(std::string_view schema) const {
    auto r = decodeText<T>(body);
    if (!r.ok()) return r.error().withContext(fmt::format("invalid {}", schema));
    return r;
  }
};

// A source of newline-delimited JSON messages for one streaming client (GET /monitor). The
// server pulls: it calls next() in a loop, writes what it gets, and between messages checks that
// the client is still there and that the server is not shutting down. next() runs on the
// client's server thread and may block up to `timeout`.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // The next message, or nullopt when none came within `timeout`.
  virtual std::optional<Json> next(std::chrono::milliseconds timeout) = 0;
  // True once no further message will come; the server then ends the response.
  virtual bool finished() const { return false; }
};

struct Response {
  int status = 200;
  Json body;  // null: no body
  std::map<std::string, std::string> headers;
  std::shared_ptr<StreamSource> stream;  // set: the body is this stream (chunked NDJSON)

  static Response json(Json body, int status = 200) { return {status, std::move(body), {}, {}}; }
  static Response empty(int status = 200) { return {status, Json(), {}, {}}; }
  static Response streaming(std::shared_ptr<StreamSource> s) {
    return {200, Json(), {}, std::move(s)};
  }
  // The error body: a JSON string, as Cilium's API returns it.
  static Response error(int status, std::string_view message) {
    return {status, Json(std::string(message)), {}, {}};
  }
};

using Handler = std::function<Result<Response>(const Request&)>;

class Router {
 public:
  // Registers a handler. Templates are absolute paths whose segments are literals or "{name}".
  // kAlreadyExists when (method, template) is taken; kInvalidArgument for a malformed template.
  // Thread-safe: modules that start late may add routes while the server runs.
  Status add(Method method, std::string_view path_template, Handler handler);
  bool has(Method method, std::string_view path_template) const;
  // Every registered (method, template), sorted.
  std::vector<std::pair<Method, std::string>> routes() const;

  // Handles one request. `target` is the raw request target (path and query, still encoded).
  // 404 when no template matches the path, 405 with an Allow header when templates match but
  // none for this method, 400 when the target is malformed. Where several templates match, the
  // one with a literal at the first differing segment wins (/v1/identity/endpoints beats
  // /v1/identity/{id}). A trailing slash is ignored.
  Response dispatch(std::string_view method, std::string_view target,
                    const std::map<std::string, std::string>& headers, std::string body) const;

 private:
  struct Segment {
    std::string text;
    bool is_param = false;
  };
  struct Route {
    Method method;
    std::string path_template;
    std::vector<Segment> segments;
    Handler handler;
  };

  mutable std::shared_mutex mu_;
  std::vector<std::shared_ptr<const Route>> routes_;
};

}  // namespace cilium::api
