// The list/watch loop. Error handling follows client-go's reflector; the comments say where a
// choice matters for correctness.
#include "agent/k8s/reflector.h"

#include <httplib.h>

#include <algorithm>

#include "agent/common/log.h"

namespace cilium::k8s {

namespace {

using nlohmann::json;
auto log() {
  static auto l = logger("k8s");
  return l;
}

std::string urlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The Status object of an error body or ERROR event, if it is one: its code.
int statusCode(const json& status) {
  if (!status.is_object()) return 0;
  auto c = status.find("code");
  if (c == status.end() || !c->is_number_integer()) return 0;
  return c->get<int>();
}

bool isGone(const json& status) {
  if (statusCode(status) == 410) return true;
  auto r = status.find("reason");
  return r != status.end() && r->is_string() &&
         (r->get_ref<const std::string&>() == "Expired" ||
          r->get_ref<const std::string&>() == "Gone");
}

}  // namespace

void logSkipped(std::string_view kind, const std::string& why) {
  static std::mutex mu;
  static std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> last;
  std::lock_guard lock(mu);
  auto now = std::chrono::steady_clock::now();
  auto it = last.find(kind);
  if (it != last.end() && now - it->second < std::chrono::seconds(10)) return;
  last[std::string(kind)] = now;
  log()->warn("skipping object the informer cannot use kind={} error={}", kind, why);
}

std::chrono::milliseconds BackoffPolicy::delay(unsigned attempt, double rand01) const {
  auto d = initial;
  for (unsigned i = 0; i < attempt && d < max; i++) d *= 2;
  d = std::min(d, max);
  auto hi = std::min(d * 2, max);
  return d + std::chrono::milliseconds(static_cast<int64_t>((hi - d).count() * rand01));
}

Reflector::Reflector(Client& client, ResourceInfo info, ReflectorSink& sink,
                     ReflectorOptions options)
    : client_(client),
      info_(info),
      sink_(sink),
      options_(std::move(options)),
      rng_(std::random_device{}()) {}

Reflector::~Reflector() { stop(); }

void Reflector::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Reflector::stop() {
  stopping_ = true;
  { std::lock_guard lock(wait_mu_); }
  wait_cv_.notify_all();
  cancel_.cancel();
  if (thread_.joinable()) thread_.join();
}

std::string Reflector::lastResourceVersion() const {
  std::lock_guard lock(mu_);
  return last_rv_;
}

ReflectorStats Reflector::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Reflector::waitFor(std::chrono::milliseconds d) {
  std::unique_lock lock(wait_mu_);
  return !wait_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

std::string Reflector::query(
    std::initializer_list<std::pair<std::string, std::string>> params) const {
  std::string q;
  auto add = [&](std::string_view k, std::string_view v) {
    q += q.empty() ? '?' : '&';
    q += k;
    q += '=';
    q += urlEncode(v);
  };
  for (const auto& [k, v] : params)
    if (!v.empty()) add(k, v);
  if (!options_.label_selector.empty()) add("labelSelector", options_.label_selector);
  if (!options_.field_selector.empty()) add("fieldSelector", options_.field_selector);
  return info_.collectionPath(options_.namespace_name) + q;
}

void Reflector::run() {
  unsigned failures = 0;
  auto healthy_since = std::chrono::steady_clock::now();
  while (!stopping_) {
    bool listing;
    {
      std::lock_guard lock(mu_);
      listing = need_list_;
    }
    auto started = std::chrono::steady_clock::now();
    Status st = listing ? list() : watch();
    if (stopping_) break;
    if (st.ok()) {
      if (std::chrono::steady_clock::now() - healthy_since >= options_.backoff.reset_after)
        failures = 0;
      continue;
    }
    // A watch that ran a long time before failing was healthy: do not escalate for it.
    if (std::chrono::steady_clock::now() - started >= options_.backoff.reset_after) failures = 0;
    double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    auto d = options_.backoff.delay(failures, r);
    failures++;
    healthy_since = std::chrono::steady_clock::now() + d;
    {
      std::lock_guard lock(mu_);
      stats_.failures++;
      stats_.last_backoff = d;
    }
    log()->info("{} {} failed, retrying in {} ms: {}", info_.kind, listing ? "list" : "watch",
                d.count(), st.error().message());
    if (!waitFor(d)) break;
  }
}

Status Reflector::list() {
  std::string rv;
  {
    std::lock_guard lock(mu_);
    // The first list may be served from the watch cache (RV "0"); a relist asks for at least
    // what we had, and after a 410 for the latest state (quorum read, RV "").
    rv = list_from_latest_ ? "" : (last_rv_.empty() ? "0" : last_rv_);
  }
  sink_.listBegin();
  size_t items = 0;
  std::string list_rv;
  std::string cont;
  std::string limit = options_.page_size > 0 ? std::to_string(options_.page_size) : "";
  uint64_t pages = 0;
  do {
    if (stopping_) return makeError(ErrorCode::kAborted, "stopping");
    // A continue token carries the snapshot; an RV other than "0" with it is a 400.
    std::string path = cont.empty() ? query({{"resourceVersion", rv}, {"limit", limit}})
                                    : query({{"limit", limit}, {"continue", cont}});
    CILIUM_ASSIGN_OR_RETURN(Response res, client_.get(path));
    pages++;
    if (!res.ok()) {
      json body = json::parse(res.body, nullptr, false);
      if (res.status == 410 || isGone(body)) {
        std::lock_guard lock(mu_);
        stats_.gone++;
        list_from_latest_ = true;  // the RV or the continue token expired: start over, latest
        return makeError(ErrorCode::kAborted, "list {}: 410 Gone", info_.plural);
      }
      return makeError(ErrorCode::kUnavailable, "list {}: HTTP {}", info_.plural, res.status);
    }
    json doc = json::parse(res.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("items") ||
        !(doc["items"].is_array() || doc["items"].is_null()))
      return makeError(ErrorCode::kInvalidArgument, "list {}: not a list", info_.plural);
    if (doc["items"].is_array()) {
      for (const auto& item : doc["items"]) sink_.listItem(item);
      items += doc["items"].size();
    }
    cont.clear();
    if (auto m = doc.find("metadata"); m != doc.end() && m->is_object()) {
      if (auto c = m->find("continue"); c != m->end() && c->is_string())
        cont = c->get<std::string>();
      if (pages == 1) {
        if (auto r = m->find("resourceVersion"); r != m->end() && r->is_string())
          list_rv = r->get<std::string>();
      }
    }
  } while (!cont.empty());
  {
    // Before the sink publishes the state: whoever sees the store synced sees these too.
    std::lock_guard lock(mu_);
    last_rv_ = list_rv;
    need_list_ = false;
    list_from_latest_ = false;
    stats_.lists++;
    stats_.list_pages += pages;
    stats_.listed_items = items;
  }
  sink_.listEnd();
  return okStatus();
}

Status Reflector::watch() {
  std::string rv = lastResourceVersion();
  auto min = options_.min_watch_timeout;
  auto timeout = std::chrono::seconds(std::uniform_int_distribution<int64_t>(
      min.count(), std::max<int64_t>(min.count(), 2 * min.count()))(rng_));
  std::string path = query({{"watch", "1"},
                            {"resourceVersion", rv},
                            {"allowWatchBookmarks", "true"},
                            {"timeoutSeconds", std::to_string(timeout.count())}});
  {
    std::lock_guard lock(mu_);
    stats_.watches++;
  }
  auto started = std::chrono::steady_clock::now();
  uint64_t events = 0;
  Status event_error;
  auto on_line = [&](std::string_view line) -> bool {
    json ev = json::parse(line, nullptr, false);
    if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() ||
        !ev.contains("object")) {
      event_error =
          makeError(ErrorCode::kInvalidArgument, "watch {}: malformed event", info_.plural);
      return false;
    }
    const std::string& type = ev["type"].get_ref<const std::string&>();
    const json& obj = ev["object"];
    if (type == "ERROR") {
      std::lock_guard lock(mu_);
      if (isGone(obj)) {
        stats_.gone++;
        need_list_ = true;
        list_from_latest_ = true;
        event_error = makeError(ErrorCode::kAborted, "watch {}: 410 Gone", info_.plural);
      } else {
        event_error = makeError(ErrorCode::kUnavailable, "watch {}: error event {}", info_.plural,
                                obj.dump());
      }
      return false;
    }
    std::string obj_rv;
    if (obj.is_object()) {
      if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
        if (auto r = m->find("resourceVersion"); r != m->end() && r->is_string())
          obj_rv = r->get<std::string>();
      }
    }
    events++;
    if (type == "BOOKMARK") {
      std::lock_guard lock(mu_);
      stats_.bookmarks++;
      if (!obj_rv.empty()) last_rv_ = obj_rv;
      return !stopping_;
    }
    ReflectorSink::Event e;
    if (type == "ADDED") {
      e = ReflectorSink::Event::kAdded;
    } else if (type == "MODIFIED") {
      e = ReflectorSink::Event::kModified;
    } else if (type == "DELETED") {
      e = ReflectorSink::Event::kDeleted;
    } else {
      logSkipped(info_.kind, fmt::format("unknown watch event type \"{}\"", type));
      return !stopping_;
    }
    sink_.apply(e, obj);
    std::lock_guard lock(mu_);
    stats_.events++;
    // Every event moves the RV on, also for objects the sink skipped.
    if (!obj_rv.empty()) last_rv_ = obj_rv;
    return !stopping_;
  };
  auto res = client_.stream(path, on_line, cancel_, timeout + std::chrono::seconds(30));
  if (stopping_) return okStatus();
  if (!event_error.ok()) return event_error;
  // Connection loss: rewatch from the last RV (after a backoff), no relist.
  if (!res.ok()) return res.error();
  if (res->status == 410) {
    std::lock_guard lock(mu_);
    stats_.gone++;
    need_list_ = true;
    list_from_latest_ = true;
    return makeError(ErrorCode::kAborted, "watch {}: HTTP 410 Gone", info_.plural);
  }
  if (!res->ok())
    return makeError(ErrorCode::kUnavailable, "watch {}: HTTP {}", info_.plural, res->status);
  if (events == 0 && std::chrono::steady_clock::now() - started < std::chrono::seconds(1))
    return makeError(ErrorCode::kUnavailable, "watch {}: very short watch", info_.plural);
  return okStatus();
}

}  // namespace cilium::k8s
