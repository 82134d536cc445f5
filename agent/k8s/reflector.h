// The reflector: list (paginated) then watch one resource, as client-go's reflector does (see
// /work/shared/reference/protocols.md and docs/kubernetes.md): resourceVersion tracking with
// bookmarks, relist after 410 Gone (HTTP status or ERROR event in a 200 stream) with deletions
// for objects that vanished, rewatch from the last resourceVersion after a dropped connection,
// exponential backoff with jitter. Informer<T> puts typed stores on top of it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"
#include "agent/k8s/store.h"

namespace cilium::k8s {

struct BackoffPolicy {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds max{30000};
  std::chrono::milliseconds reset_after{120000};  // healthy this long: start again from initial
  // The delay of failure number `attempt` (0-based) for a uniform `rand01` in [0, 1): uniform in
  // [d, min(2d, max)] with d = min(initial * 2^attempt, max).
  std::chrono::milliseconds delay(unsigned attempt, double rand01) const;
};

struct ReflectorOptions {
  int64_t page_size = 500;                      // list limit; 0 = unpaginated
  std::chrono::seconds min_watch_timeout{300};  // timeoutSeconds uniform in [min, 2*min]
  BackoffPolicy backoff;
  std::string label_selector;
  std::string field_selector;
  std::string namespace_name;  // "" = all namespaces
};

// What the reflector feeds. Called from the reflector's thread only.
class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // A (re)list, page by page: listBegin(), listItem() for every item of every page, then
  // listEnd() once the last page is in; the sink then replaces its state with the items. A list
  // that fails part way is abandoned: the next one starts with listBegin() again.
  virtual void listBegin() = 0;
  virtual void listItem(const nlohmann::json& item) = 0;
  virtual void listEnd() = 0;
  enum class Event { kAdded, kModified, kDeleted };
  virtual void apply(Event event, const nlohmann::json& object) = 0;
};

struct ReflectorStats {
  uint64_t lists = 0;  // complete lists (initial + relists)
  uint64_t list_pages = 0;
  uint64_t listed_items = 0;  // items in the last complete list
  uint64_t watches = 0;       // watch requests started
  uint64_t events = 0;        // ADDED/MODIFIED/DELETED applied
  uint64_t bookmarks = 0;
  uint64_t gone = 0;      // 410s seen (list or watch)
  uint64_t failures = 0;  // errors that led to a backoff
  std::chrono::milliseconds last_backoff{0};
};

class Reflector {
 public:
  Reflector(Client& client, ResourceInfo info, ReflectorSink& sink, ReflectorOptions options = {});
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  void start();
  // Ends the thread (aborting a watch in progress). Idempotent.
  void stop();

  // The resourceVersion to resume from ("" before the first list).
  std::string lastResourceVersion() const;
  ReflectorStats stats() const;

 private:
  void run();
  // Lists all pages; on success replaces the sink and sets the RV. 410 -> relist from "".
  Status list();
  // One watch request from the last RV. Sets need_list_ on 410.
  Status watch();
  bool waitFor(std::chrono::milliseconds d);  // false when stopping
  std::string query(std::initializer_list<std::pair<std::string, std::string>> params) const;

  Client& client_;
  ResourceInfo info_;
  ReflectorSink& sink_;
  ReflectorOptions options_;

  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  CancelToken cancel_;
  std::mt19937_64 rng_;

  mutable std::mutex mu_;  // guards last_rv_ and stats_
  std::string last_rv_;
  ReflectorStats stats_;
  bool need_list_ = true;
  bool list_from_latest_ = false;  // after 410: quorum list (RV "")
};

// Logs an object an informer could not use (rate-limited per kind).
void logSkipped(std::string_view kind, const std::string& why);

// A typed informer: a Reflector feeding a Store<T>. Objects that do not decode as T (wrong kind,
// bad fields) are logged and skipped; they never stop the informer.
template <typename T>
class Informer final : public ReflectorSink {
 public:
  Informer(Client& client, Store<T>& store, ReflectorOptions options = {})
      : store_(store), reflector_(client, Resource<T>::info(), *this, std::move(options)) {}
  ~Informer() override { reflector_.stop(); }

  void start() { reflector_.start(); }
  void stop() { reflector_.stop(); }
  bool hasSynced() const { return store_.hasSynced(); }
  Store<T>& store() { return store_; }
  Reflector& reflector() { return reflector_; }
  uint64_t skipped() const { return skipped_.load(); }

  // Items are decoded as pages arrive, so a large list never exists as JSON all at once.
  void listBegin() override { listed_.clear(); }
  void listItem(const nlohmann::json& item) override {
    if (auto obj = decode(item)) listed_.push_back(std::move(*obj));
  }
  void listEnd() override {
    store_.replace(std::move(listed_));
    listed_ = {};
  }
  void apply(Event event, const nlohmann::json& object) override {
    auto obj = decode(object);
    if (!obj) return;
    if (event == Event::kDeleted)
      store_.erase(objectKey(obj->meta.namespace_name, obj->meta.name));
    else
      store_.upsert(std::move(*obj));
  }

 private:
  std::optional<T> decode(const nlohmann::json& item) {
    auto r = Resource<T>::decode(item);
    if (r.ok()) return std::move(*r);
    skipped_++;
    logSkipped(Resource<T>::info().kind, r.error().message());
    return std::nullopt;
  }

  Store<T>& store_;
  std::vector<T> listed_;
  Reflector reflector_;
  std::atomic<uint64_t> skipped_{0};
};

}  // namespace cilium::k8s
