// Route matching, request decoding and error mapping.
#include "agent/api/router.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>

#include "agent/common/log.h"

namespace cilium::api {
namespace {

auto log() {
  static auto l = logger("api");
  return l;
}

const std::string kEmpty;

Result<std::vector<std::string>> splitPath(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty() || path[0] != '/')
    return Error(ErrorCode::kInvalidArgument, "request path must start with '/'");
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view raw = path.substr(pos, next - pos);
    CILIUM_ASSIGN_OR_RETURN(std::string seg, percentDecode(raw, false));
    if (seg.find('\0') != std::string::npos)
      return Error(ErrorCode::kInvalidArgument, "request path contains a NUL byte");
    out.push_back(std::move(seg));
    pos = next + 1;
  }
  if (out.size() > 1 && out.back().empty()) out.pop_back();  // trailing slash
  return out;
}

Result<std::multimap<std::string, std::string>> parseQuery(std::string_view q) {
  std::multimap<std::string, std::string> out;
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view kv = q.substr(pos, amp - pos);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      CILIUM_ASSIGN_OR_RETURN(std::string k, percentDecode(kv.substr(0, eq), true));
      std::string v;
      if (eq != std::string_view::npos) {
        CILIUM_ASSIGN_OR_RETURN(v, percentDecode(kv.substr(eq + 1), true));
      }
      out.emplace(std::move(k), std::move(v));
    }
    pos = amp + 1;
  }
  return out;
}

}  // namespace

std::string_view methodName(Method m) {
  switch (m) {
    case Method::kGet: return "GET";
    case Method::kPut: return "PUT";
    case Method::kPost: return "POST";
    case Method::kPatch: return "PATCH";
    case Method::kDelete: return "DELETE";
  }
  return "";
}

std::optional<Method> parseMethod(std::string_view s) {
  for (Method m : {Method::kGet, Method::kPut, Method::kPost, Method::kPatch, Method::kDelete})
    if (methodName(m) == s) return m;
  return std::nullopt;
}

const std::string& Request::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

std::optional<std::string> Request::queryValue(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Request::queryValues(const std::string& name) const {
  std::vector<std::string> out;
  auto [b, e] = query.equal_range(name);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

std::optional<std::string> Request::header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

Status Router::add(Method method, std::string_view path_template, Handler handler) {
  if (path_template.empty() || path_template[0] != '/')
    return makeError(ErrorCode::kInvalidArgument, "route '{}' must start with '/'", path_template);
  auto route = std::make_shared<Route>();
  route->method = method;
  route->path_template = std::string(path_template);
  route->handler = std::move(handler);
  size_t pos = 1;
  while (pos <= path_template.size()) {
    size_t next = path_template.find('/', pos);
    if (next == std::string_view::npos) next = path_template.size();
    std::string_view seg = path_template.substr(pos, next - pos);
    if (seg.empty())
      return makeError(ErrorCode::kInvalidArgument, "route '{}' has an empty segment",
                       path_template);
    Segment s;
    if (seg.front() == '{') {
      if (seg.back() != '}' || seg.size() < 3)
        return makeError(ErrorCode::kInvalidArgument, "route '{}': malformed parameter '{}'",
                         path_template, seg);
      s.is_param = true;
      s.text = std::string(seg.substr(1, seg.size() - 2));
    } else {
      s.text = std::string(seg);
    }
    route->segments.push_back(std::move(s));
    pos = next + 1;
  }
  std::unique_lock lock(mu_);
  for (const auto& r : routes_)
    if (r->method == method && r->path_template == path_template)
      return makeError(ErrorCode::kAlreadyExists, "route {} {} is already registered",
                       methodName(method), path_template);
  routes_.push_back(std::move(route));
  return okStatus();
}

bool Router::has(Method method, std::string_view path_template) const {
  std::shared_lock lock(mu_);
  return std::any_of(routes_.begin(), routes_.end(), [&](const auto& r) {
    return r->method == method && r->path_template == path_template;
  });
}

std::vector<std::pair<Method, std::string>> Router::routes() const {
  std::shared_lock lock(mu_);
  std::vector<std::pair<Method, std::string>> out;
  for (const auto& r : routes_) out.emplace_back(r->method, r->path_template);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second < b.second : a.first < b.first;
  });
  return out;
}

Response Router::dispatch(std::string_view method_text, std::string_view target,
                          const std::map<std::string, std::string>& headers,
                          std::string body) const {
  auto started = std::chrono::steady_clock::now();
  std::string_view path_part = target;
  std::string_view query_part;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path_part = target.substr(0, q);
    query_part = target.substr(q + 1);
  }
  Response res;
  auto finish = [&](Response r) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    log()->debug("api request method={} path={} status={} duration_us={}", method_text, path_part,
                 r.status, us);
    return r;
  };

  auto segments = splitPath(path_part);
  if (!segments.ok()) return finish(Response::error(400, segments.error().message()));
  auto query = parseQuery(query_part);
  if (!query.ok()) return finish(Response::error(400, query.error().message()));

  auto method = parseMethod(method_text);
  // Templates matching the path, best first: at the first segment where two differ, a literal
  // beats a parameter.
  std::vector<std::shared_ptr<const Route>> matches;
  {
    std::shared_lock lock(mu_);
    for (const auto& r : routes_) {
      if (r->segments.size() != segments->size()) continue;
      bool ok = true;
      for (size_t i = 0; ok && i < segments->size(); i++)
        ok = r->segments[i].is_param || r->segments[i].text == (*segments)[i];
      if (ok) matches.push_back(r);
    }
  }
  if (matches.empty())
    return finish(Response::error(404, fmt::format("no such resource: {}", path_part)));
  std::stable_sort(matches.begin(), matches.end(), [](const auto& a, const auto& b) {
    for (size_t i = 0; i < a->segments.size(); i++)
      if (a->segments[i].is_param != b->segments[i].is_param) return !a->segments[i].is_param;
    return false;
  });
  std::shared_ptr<const Route> chosen;
  for (const auto& r : matches)
    if (method && r->method == *method) {
      chosen = r;
      break;
    }
  if (!chosen) {
    std::vector<std::string> allowed;
    allowed.reserve(matches.size());
    for (const auto& r : matches) allowed.emplace_back(methodName(r->method));
    std::sort(allowed.begin(), allowed.end());
    allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
    std::string allow = fmt::format("{}", fmt::join(allowed, ", "));
    Response r = Response::error(405, fmt::format("method {} is not allowed on {} (allowed: {})",
                                                  method_text, path_part, allow));
    r.headers["Allow"] = allow;
    return finish(std::move(r));
  }

  Request req;
  req.method = chosen->method;
  req.path = "/" + fmt::format("{}", fmt::join(*segments, "/"));
  req.route = chosen->path_template;
  for (size_t i = 0; i < segments->size(); i++)
    if (chosen->segments[i].is_param) req.params[chosen->segments[i].text] = (*segments)[i];
  req.query = std::move(*query);
  for (const auto& [k, v] : headers) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    req.headers[lower] = v;
  }
  req.body = std::move(body);

  Result<Response> out = Error(ErrorCode::kInternal, "handler did not run");
  try {
    out = chosen->handler(req);
  } catch (const std::exception& e) {
    // A handler must not throw; if one does, the request fails and the agent keeps serving.
    log()->error("handler threw method={} route={} what={}", method_text, chosen->path_template,
                 e.what());
    out = makeError(ErrorCode::kInternal, "internal error: {}", e.what());
  }
  if (!out.ok()) {
    const Error& e = out.error();
    if (e.code() == ErrorCode::kInternal)
      log()->warn("api request failed method={} path={} error={}", method_text, path_part,
                  e.message());
    return finish(Response::error(httpStatusFor(e.code()), e.message()));
  }
  return finish(std::move(*out));
}

}  // namespace cilium::api
