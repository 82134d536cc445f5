// Directory scan, per-document last-good state, the state file and the inotify loop of the
// manifests source.
#include "agent/k8s/manifests.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/yaml.h"

namespace cilium::k8s {

namespace {

using nlohmann::json;
auto log() {
  static auto l = logger("k8s");
  return l;
}

// Same limits as policy text: a manifest file is untrusted input.
constexpr size_t kMaxFileBytes = 8 << 20;
constexpr int kMaxNestingDepth = 64;

bool isManifestFile(const std::filesystem::path& p) {
  auto name = p.filename().string();
  if (name.empty() || name[0] == '.') return false;  // editors' swap and temp files
  auto ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

std::string describe(const json& obj) {
  std::string kind, name, ns;
  if (obj.is_object()) {
    if (auto k = obj.find("kind"); k != obj.end() && k->is_string()) kind = k->get<std::string>();
    if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
      if (auto n = m->find("name"); n != m->end() && n->is_string()) name = n->get<std::string>();
      if (auto n = m->find("namespace"); n != m->end() && n->is_string())
        ns = n->get<std::string>();
    }
  }
  if (kind.empty()) return "";
  return fmt::format(" ({} {}{}{})", kind, ns, ns.empty() ? "" : "/", name);
}

// Well-known kinds this agent does not use: skipped without an error, so a directory can hold a
// whole application's manifests. Cilium's own kinds are listed apart: skipping one is worth a
// warning, since the user may expect it to act.
constexpr std::string_view kOtherKubernetesKinds[] = {
    "ConfigMap",          "Secret",
    "ServiceAccount",     "PersistentVolume",
    "PersistentVolumeClaim", "ReplicationController",
    "LimitRange",         "ResourceQuota",
    "Endpoints",          "Event",
    "Deployment",         "DaemonSet",
    "StatefulSet",        "ReplicaSet",
    "Job",                "CronJob",
    "Role",               "ClusterRole",
    "RoleBinding",        "ClusterRoleBinding",
    "Ingress",            "IngressClass",
    "PodDisruptionBudget", "HorizontalPodAutoscaler",
    "CustomResourceDefinition", "PriorityClass",
    "StorageClass",       "Lease",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "APIService",         "RuntimeClass",
    "PodTemplate",        "VolumeAttachment",
    "CSIDriver",          "CSINode",
};
constexpr std::string_view kOtherCiliumKinds[] = {
    "CiliumEgressGatewayPolicy",  "CiliumLocalRedirectPolicy", "CiliumEnvoyConfig",
    "CiliumClusterwideEnvoyConfig", "CiliumExternalWorkload",  "CiliumNodeConfig",
    "CiliumLoadBalancerIPPool",   "CiliumL2AnnouncementPolicy", "CiliumPodIPPool",
    "CiliumCIDRGroup",            "CiliumBGPPeeringPolicy",    "CiliumBGPClusterConfig",
    "CiliumBGPPeerConfig",        "CiliumBGPAdvertisement",    "CiliumBGPNodeConfig",
    "CiliumBGPNodeConfigOverride",
};

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// " (did you mean CiliumNetworkPolicy?)" for a near miss of a known kind, else "".
std::string suggestion(std::string_view kind) {
  std::string best;
  size_t best_d = 3;  // at most two edits away
  auto consider = [&](std::string_view k) {
    size_t d = editDistance(kind, k);
    if (d < best_d) best_d = d, best = std::string(k);
  };
  for (const auto& r : allResources()) consider(r.kind);
  for (auto k : kOtherKubernetesKinds) consider(k);
  for (auto k : kOtherCiliumKinds) consider(k);
  return best.empty() ? "" : fmt::format(" (did you mean {}?)", best);
}

template <typename T>
Status check(const json& obj) {
  auto r = Resource<T>::decode(obj);
  if (!r.ok()) return r.error();
  return okStatus();
}

template <typename T>
void collect(Store<T>& store, const std::map<std::string, std::vector<json>>& by_kind) {
  std::vector<T> objects;
  auto it = by_kind.find(std::string(Resource<T>::info().kind));
  if (it != by_kind.end()) {
    for (const auto& o : it->second) {
      // Validated when the file was read; a failure here would be a bug.
      if (auto r = Resource<T>::decode(o); r.ok()) objects.push_back(std::move(*r));
    }
  }
  store.replace(std::move(objects));
}

// kind, namespace, name: what a later version of a document replaces.
using ObjectId = std::tuple<std::string, std::string, std::string>;

ObjectId objectId(const json& obj) {
  std::string kind = obj["kind"].get<std::string>();
  const auto* info = findResourceByKind(kind);
  const auto& m = obj["metadata"];
  std::string ns = m.value("namespace", "");
  if (info && !info->namespaced)
    ns.clear();
  else if (ns.empty())
    ns = "default";
  return {std::move(kind), std::move(ns), m.value("name", "")};
}

struct ParsedFile {
  bool readable = true;            // the YAML stream parsed
  std::vector<json> objects;       // the valid documents' objects
  std::vector<std::string> errors;  // one per bad document (or the YAML error)
};

ParsedFile parseFile(const std::string& content) {
  ParsedFile out;
  auto docs = yaml::toJson(content,
                           yaml::Limits{.max_bytes = kMaxFileBytes, .max_depth = kMaxNestingDepth});
  if (!docs.ok()) {
    out.readable = false;
    out.errors.push_back(docs.error().message());
    return out;
  }
  for (size_t i = 0; i < docs->size(); i++) {
    json& doc = (*docs)[i];
    if (doc.is_null()) continue;  // an empty document between two "---"
    std::vector<json> items;
    // A List (kubectl get -o yaml) carries its objects in items.
    bool is_list = doc.is_object() && doc.value("kind", "") == "List" && doc.contains("items") &&
                   doc["items"].is_array();
    if (is_list)
      items = doc["items"].get<std::vector<json>>();
    else
      items.push_back(std::move(doc));
    for (size_t j = 0; j < items.size(); j++) {
      std::string where = fmt::format("document {}", i + 1);
      if (is_list) where += fmt::format(" items[{}]", j);
      auto ok = validateManifestObject(items[j]);
      if (!ok.ok()) {
        out.errors.push_back(ok.error().withContext(where + describe(items[j])).message());
      } else if (*ok) {
        out.objects.push_back(std::move(items[j]));
      } else {
        log()->debug("manifests: skipping object of a kind the agent does not use{}",
                     describe(items[j]));
      }
    }
  }
  return out;
}

bool blank(const std::string& content) {
  return content.find_first_not_of(" \t\r\n") == std::string::npos;
}

}  // namespace

Result<bool> validateManifestObject(const json& obj) {
  if (!obj.is_object()) return makeError(ErrorCode::kInvalidArgument, "must be an object");
  auto k = obj.find("kind");
  if (k == obj.end() || !k->is_string() || k->get_ref<const std::string&>().empty())
    return makeError(ErrorCode::kInvalidArgument, "kind: required");
  auto v = obj.find("apiVersion");
  if (v == obj.end() || !v->is_string() || v->get_ref<const std::string&>().empty())
    return makeError(ErrorCode::kInvalidArgument, "apiVersion: required");
  const std::string& kind = k->get_ref<const std::string&>();
  const std::string& api_version = v->get_ref<const std::string&>();
  const ResourceInfo* info = findResourceByKind(kind);
  if (!info) {
    for (auto other : kOtherKubernetesKinds)
      if (kind == other) return false;
    for (auto other : kOtherCiliumKinds) {
      if (kind == other) {
        log()->warn("manifests: {} is not supported by this agent; skipping {}", kind,
                    describe(obj));
        return false;
      }
    }
    return makeError(ErrorCode::kInvalidArgument,
                     "kind: \"{}\" (apiVersion {}) is not a kind this agent knows{}", kind,
                     api_version, suggestion(kind));
  }
  if (api_version != info->apiVersion())
    return makeError(ErrorCode::kInvalidArgument, "apiVersion: \"{}\" is not {} (for kind {})",
                     api_version, info->apiVersion(), kind);
  Status st;
  if (kind == "Pod")
    st = check<Pod>(obj);
  else if (kind == "Namespace")
    st = check<Namespace>(obj);
  else if (kind == "Node")
    st = check<Node>(obj);
  else if (kind == "Service")
    st = check<Service>(obj);
  else if (kind == "EndpointSlice")
    st = check<EndpointSlice>(obj);
  else if (kind == "CiliumNode")
    st = check<CiliumNode>(obj);
  else if (kind == "CiliumEndpoint")
    st = check<CiliumEndpoint>(obj);
  else if (kind == "CiliumIdentity")
    st = check<CiliumIdentity>(obj);
  else if (auto meta = decodeMeta(obj, *info); !meta.ok())  // policies: rules are the feed's
    st = meta.error();
  if (!st.ok()) return st.error();
  return true;
}

ManifestSource::ManifestSource(std::string dir, ManifestOptions options)
    : dir_(std::move(dir)), opts_(std::move(options)) {}

ManifestSource::~ManifestSource() { stop(); }

void ManifestSource::rescan(const std::set<std::string>& skip) {
  std::lock_guard scan(scan_mu_);
  std::map<std::string, std::string> contents;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  if (ec) {
    // An unreadable (or vanished) directory says nothing about the objects: keep them.
    log()->error("manifests: cannot read dir={}: {}; keeping the objects in force", dir_,
                 ec.message());
    generation_++;
    return;
  }
  std::set<std::string> unreadable, present;
  for (const auto& entry : it) {
    std::error_code fec;
    if (!entry.is_regular_file(fec) || !isManifestFile(entry.path())) continue;
    std::string name = entry.path().filename().string();
    present.insert(name);
    if (skip.count(name)) continue;
    auto text = readFile(entry.path().string());
    if (!text.ok()) {
      // Gone between listing and reading (the next event tells), or unreadable: keep what the
      // file had.
      if (std::filesystem::exists(entry.path(), fec)) unreadable.insert(name);
      present.erase(name);
      continue;
    }
    contents[name] = std::move(*text);
  }
  bool changed = false;
  // This scan's errors become visible together with its generation, after its objects are
  // published: whoever sees one sees the others.
  std::map<std::string, std::string> errors;
  {
    std::lock_guard lock(mu_);
    errors = errors_;
    for (const auto& name : unreadable)
      errors[name] = fmt::format("{}: cannot be read; keeping its last good version", name);
    for (auto f = files_.begin(); f != files_.end();) {
      if (!present.count(f->first) && !unreadable.count(f->first)) {
        log()->info("manifests: file removed file={}", f->first);
        errors.erase(f->first);
        f = files_.erase(f);
        changed = true;
      } else {
        ++f;
      }
    }
    for (auto& [name, text] : contents) {
      auto cur = files_.find(name);
      if (cur != files_.end() && cur->second.content == text) continue;  // read before as is
      if (blank(text)) {
        // A truncated file about to be written, or a file just created: it means nothing yet.
        // To remove a file's objects, remove the file (docs/kubernetes.md).
        if (cur != files_.end() && !cur->second.objects.empty())
          log()->info("manifests: file={} is empty; keeping its objects until it is removed",
                      name);
        errors.erase(name);
        continue;
      }
      ParsedFile parsed = parseFile(text);
      std::vector<json> objects;
      if (!parsed.readable) {
        if (cur != files_.end()) objects = cur->second.objects;
      } else {
        objects = std::move(parsed.objects);
        if (!parsed.errors.empty() && cur != files_.end()) {
          // A file with problems removes nothing: an invalid document keeps its object's last
          // good version, and an object that is gone may be the one a bad document meant.
          std::set<ObjectId> have;
          for (const auto& o : objects) have.insert(objectId(o));
          for (const auto& o : cur->second.objects)
            if (!have.count(objectId(o))) objects.push_back(o);
        }
      }
      if (parsed.errors.empty()) {
        errors.erase(name);
      } else {
        std::string msg;
        for (const auto& e : parsed.errors) msg += (msg.empty() ? "" : "\n") + name + ": " + e;
        if (errors[name] != msg)
          log()->error("manifests: rejected, keeping the last good version of what it names: {}",
                       msg);
        errors[name] = std::move(msg);
      }
      bool same = cur != files_.end() && cur->second.objects == objects;
      files_[name] = FileState{std::move(text), std::move(objects)};
      changed = changed || !same;
    }
  }
  if (changed || generation_ == 0) {
    publish();
    saveState();
  }
  std::lock_guard lock(mu_);
  errors_ = std::move(errors);
  generation_++;
}

void ManifestSource::publish() {
  std::map<std::string, std::vector<json>> by_kind;
  {
    std::lock_guard lock(mu_);
    // One object per (kind, namespace, name): when two files name the same object, the file that
    // sorts last wins, as `kubectl apply -f dir` would leave it.
    std::map<ObjectId, const json*> unique;
    for (const auto& [name, f] : files_)
      for (const auto& o : f.objects) unique[objectId(o)] = &o;
    for (const auto& [id, o] : unique) by_kind[std::get<0>(id)].push_back(*o);
  }
  stores_.forEach([&](auto& store) { collect(store, by_kind); });
  if (opts_.on_publish) {
    std::vector<json> all;
    for (auto& [kind, objects] : by_kind)
      for (auto& o : objects) all.push_back(std::move(o));
    opts_.on_publish(all);
  }
}

Status ManifestSource::loadState() {
  if (opts_.state_file.empty()) return okStatus();
  auto text = readFile(opts_.state_file);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) return okStatus();
    return Error(ErrorCode::kFailedPrecondition, text.error().message());
  }
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_object())
    return makeError(ErrorCode::kFailedPrecondition,
                     "{} is unreadable: not the manifests state written by this agent",
                     opts_.state_file);
  std::lock_guard lock(mu_);
  for (const auto& [name, objects] : j["files"].items()) {
    if (!objects.is_array()) continue;
    FileState f;
    for (const auto& o : objects) {
      // Written by us from validated objects; anything else is not taken.
      auto ok = validateManifestObject(o);
      if (ok.ok() && *ok) f.objects.push_back(o);
    }
    files_[name] = std::move(f);
  }
  log()->info("manifests: restored the objects in force from file={} files={}", opts_.state_file,
              files_.size());
  return okStatus();
}

void ManifestSource::saveState() {
  if (opts_.state_file.empty()) return;
  json files = json::object();
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : files_) files[name] = f.objects;
  }
  json state = {{"files", std::move(files)}};
  if (auto st = writeFileAtomic(opts_.state_file, state.dump() + "\n", 0600); !st.ok())
    log()->error("manifests: cannot write state file={} error={}", opts_.state_file,
                 st.error().message());
}

std::map<std::string, std::string> ManifestSource::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

Status ManifestSource::start() {
  if (thread_.joinable()) return okStatus();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec))
    return makeError(ErrorCode::kNotFound, "manifests directory {} does not exist", dir_);
  CILIUM_RETURN_IF_ERROR(loadState());
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) return errnoError(errno, "inotify_init1");
  if (::inotify_add_watch(inotify_.get(), dir_.c_str(),
                          IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                              IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF) < 0)
    return errnoError(errno, "inotify_add_watch " + dir_);
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return errnoError(errno, "eventfd");
  rescan();
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  std::lock_guard lock(mu_);
  log()->info("manifests: watching dir={} files={} rejected={}", dir_, files_.size(),
              errors_.size());
  return okStatus();
}

void ManifestSource::stop() {
  stopping_ = true;
  if (wake_) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
}

void ManifestSource::run() {
  using Clock = std::chrono::steady_clock;
  alignas(inotify_event) char buf[16384];
  bool dirty = false;  // events since the last scan
  // Files written (IN_MODIFY) and not closed since (IN_CLOSE_WRITE), with their last change: a
  // writer is still at work, so what they hold now may be half of what it means.
  std::map<std::string, Clock::time_point> writing;
  while (!stopping_) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    // While changes are arriving, wait for a quiet `settle` before rescanning, so that an editor
    // writing a file in several steps is read once, complete. Otherwise wake when a writer's
    // grace ends.
    int timeout = -1;
    if (dirty) {
      timeout = static_cast<int>(opts_.settle.count());
    } else if (!writing.empty()) {
      auto first = std::min_element(writing.begin(), writing.end(), [](auto& a, auto& b) {
                     return a.second < b.second;
                   })->second;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          first + opts_.writer_grace - Clock::now());
      timeout = static_cast<int>(std::max<int64_t>(left.count(), 0)) + 1;
    }
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      log()->error("manifests: poll failed: {}", std::strerror(errno));
      return;
    }
    if (stopping_) return;
    if (n == 0) {
      auto now = Clock::now();
      bool expired = false;
      std::set<std::string> skip;
      for (auto w = writing.begin(); w != writing.end();) {
        if (now - w->second >= opts_.writer_grace) {
          log()->warn(
              "manifests: file={} is still open for writing, unchanged for {} ms; reading it",
              w->first, opts_.writer_grace.count());
          w = writing.erase(w);
          expired = true;
        } else {
          skip.insert(w->first);
          ++w;
        }
      }
      if (dirty || expired) rescan(skip);
      dirty = false;
      continue;
    }
    if (fds[0].revents & POLLIN) {
      ssize_t len;
      while ((len = ::read(inotify_.get(), buf, sizeof(buf))) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          std::string name = ev->len ? std::string(ev->name) : std::string();
          if (ev->mask & IN_Q_OVERFLOW) writing.clear();  // events lost: judge by content alone
          if (!name.empty()) {
            if (ev->mask & IN_MODIFY) writing[name] = Clock::now();
            if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO))
              writing.erase(name);
          }
          p += sizeof(inotify_event) + ev->len;
        }
      }
      dirty = true;
    }
  }
}

}  // namespace cilium::k8s
