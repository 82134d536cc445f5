// Directory scan, per-file last-good state, and the inotify loop of the manifests source.
#include "agent/k8s/manifests.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/common/yaml.h"
#include "agent/policy/decode.h"

namespace cilium::k8s {

namespace {

using nlohmann::json;
auto log() {
  static auto l = logger("k8s");
  return l;
}

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

}  // namespace

Result<bool> validateManifestObject(const json& obj) {
  if (!obj.is_object()) return makeError(ErrorCode::kInvalidArgument, "must be an object");
  auto k = obj.find("kind");
  if (k == obj.end() || !k->is_string())
    return makeError(ErrorCode::kInvalidArgument, "kind: required");
  const std::string& kind = k->get_ref<const std::string&>();
  const ResourceInfo* info = findResourceByKind(kind);
  if (!info) return false;
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
  else {
    // Policies: metadata here, rules by the policy engine's own decoder.
    st = decodeMeta(obj, *info).ok() ? Status() : Status(decodeMeta(obj, *info).error());
    if (st.ok()) {
      auto rules = policy::decodePolicyJson(obj);
      if (!rules.ok()) st = rules.error();
    }
  }
  if (!st.ok()) return st.error();
  return true;
}

ManifestSource::ManifestSource(std::string dir, std::chrono::milliseconds settle)
    : dir_(std::move(dir)), settle_(settle) {}

ManifestSource::~ManifestSource() { stop(); }

Result<std::vector<json>> ManifestSource::parseFile(const std::string& content) {
  CILIUM_ASSIGN_OR_RETURN(auto docs, yaml::toJson(content));
  std::vector<json> out;
  for (size_t i = 0; i < docs.size(); i++) {
    std::vector<json> items;
    // A List (kubectl get -o yaml) carries its objects in items.
    bool is_list = docs[i].is_object() && docs[i].value("kind", "") == "List" &&
                   docs[i].contains("items") && docs[i]["items"].is_array();
    if (is_list)
      items = docs[i]["items"].get<std::vector<json>>();
    else
      items.push_back(std::move(docs[i]));
    for (size_t j = 0; j < items.size(); j++) {
      auto ok = validateManifestObject(items[j]);
      if (!ok.ok()) {
        std::string where = fmt::format("document {}", i + 1);
        if (is_list) where += fmt::format(" items[{}]", j);
        return ok.error().withContext(where + describe(items[j]));
      }
      if (*ok) {
        out.push_back(std::move(items[j]));
      } else {
        log()->debug("manifests: skipping object of a kind the agent does not use{}",
                     describe(items[j]));
      }
    }
  }
  return out;
}

void ManifestSource::rescan() {
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
  std::vector<std::string> unreadable;
  for (const auto& entry : it) {
    std::error_code fec;
    if (!entry.is_regular_file(fec) || !isManifestFile(entry.path())) continue;
    std::string name = entry.path().filename().string();
    auto text = readFile(entry.path().string());
    if (!text.ok()) {
      // Gone between listing and reading (the next event tells), or unreadable: keep what the
      // file had.
      if (std::filesystem::exists(entry.path(), fec)) unreadable.push_back(name);
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
    for (const auto& name : unreadable) {
      if (auto f = files_.find(name); f != files_.end()) contents[name] = f->second.content;
      errors[name] = fmt::format("{}: cannot be read; keeping its last good version", name);
    }
    for (auto it = files_.begin(); it != files_.end();) {
      if (!contents.count(it->first)) {
        log()->info("manifests: file removed file={}", it->first);
        errors.erase(it->first);
        it = files_.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    for (auto& [name, text] : contents) {
      auto cur = files_.find(name);
      if (cur != files_.end() && cur->second.content == text) {
        errors.erase(name);  // reverted to the good version
        continue;
      }
      auto objects = parseFile(text);
      if (!objects.ok()) {
        std::string msg = fmt::format("{}: {}", name, objects.error().message());
        if (errors[name] != msg)
          log()->error("manifests: rejected file, keeping its last good version: {}", msg);
        errors[name] = msg;
        continue;
      }
      errors.erase(name);
      files_[name] = FileState{std::move(text), std::move(*objects)};
      changed = true;
    }
  }
  if (changed || generation_ == 0) publish();
  std::lock_guard lock(mu_);
  errors_ = std::move(errors);
  generation_++;
}

void ManifestSource::publish() {
  std::map<std::string, std::vector<json>> by_kind;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : files_)
      for (const auto& o : f.objects) by_kind[o["kind"].get<std::string>()].push_back(o);
  }
  stores_.forEach([&](auto& store) { collect(store, by_kind); });
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
  alignas(inotify_event) char buf[16384];
  bool dirty = false;
  while (!stopping_) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    // While changes are arriving, wait for a quiet `settle_` before rescanning, so that an editor
    // writing a file in several steps is read once, complete.
    int timeout = dirty ? static_cast<int>(settle_.count()) : -1;
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      log()->error("manifests: poll failed: {}", std::strerror(errno));
      return;
    }
    if (stopping_) return;
    if (n == 0 && dirty) {
      dirty = false;
      rescan();
      continue;
    }
    if (fds[0].revents & POLLIN) {
      while (::read(inotify_.get(), buf, sizeof(buf)) > 0) {
      }
      dirty = true;
    }
  }
}

}  // namespace cilium::k8s
