// The identity allocator and its local, file-persisted backend.
#include "agent/identity/allocator.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/common/log.h"

namespace cilium::identity {

namespace {

auto& log() {
  static auto l = cilium::logger("identity");
  return l;
}

constexpr int kFileVersion = 1;

// Writes `data` to `path` atomically: a reader sees the old file or the new one, also after a
// crash (temp file in the same directory, fsync, rename, fsync of the directory).
Status writeFileAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errnoError(errno, "create " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return errnoError(err, "write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return errnoError(err, "fsync " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errnoError(err, "rename " + tmp + " to " + path);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return okStatus();
}

// Each thread delivering changes remembers for which allocator, so that an observer calling
// allocate() queues its change for the running delivery loop instead of deadlocking.
thread_local const Allocator* t_delivering = nullptr;

}  // namespace

// --- LocalBackend ------------------------------------------------------------------------------

Result<std::unique_ptr<LocalBackend>> LocalBackend::open(const std::string& state_dir,
                                                         NumericIdentity min_id,
                                                         NumericIdentity max_id,
                                                         const std::string& file_name) {
  if (min_id > max_id)
    return makeError(ErrorCode::kInvalidArgument, "identity range {}-{} is empty", min_id, max_id);
  std::string path;
  if (!state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec)
      return makeError(ErrorCode::kFailedPrecondition, "create state directory {}: {}", state_dir,
                       ec.message());
    path = (std::filesystem::path(state_dir) / file_name).string();
  }
  std::unique_ptr<LocalBackend> b(new LocalBackend(std::move(path), min_id, max_id));
  CILIUM_RETURN_IF_ERROR(b->load());
  return b;
}

Status LocalBackend::load() {
  if (path_.empty() || !std::filesystem::exists(path_)) return okStatus();
  std::ifstream in(path_);
  if (!in) return errnoError(errno, "open " + path_);
  std::stringstream ss;
  ss << in.rdbuf();
  auto corrupt = [&](std::string_view why) {
    return makeError(ErrorCode::kFailedPrecondition, "identity state {} is corrupt: {}", path_,
                     why);
  };
  auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not a JSON object");
  // Every field's type is checked before it is read: a hand-edited or damaged file must give
  // this error, not an exception or an out-of-range conversion.
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kFileVersion)
    return corrupt("unknown version");
  auto next = j.find("next");
  auto seq = j.find("seq");
  auto ids = j.find("identities");
  if (next == j.end() || !next->is_number_unsigned() || seq == j.end() ||
      !seq->is_number_unsigned() || ids == j.end() || !ids->is_array())
    return corrupt("missing next, seq or identities");
  uint64_t next_v = next->get<uint64_t>();
  if (next_v < min_ || next_v > uint64_t{max_} + 1) return corrupt("next is outside the range");
  next_ = static_cast<NumericIdentity>(next_v);
  seq_ = seq->get<uint64_t>();
  for (const auto& e : *ids) {
    if (!e.is_object()) return corrupt("an identity is not an object");
    auto id = e.find("id");
    auto lbls = e.find("labels");
    if (id == e.end() || !id->is_number_unsigned() || lbls == e.end())
      return corrupt("an identity lacks id or labels");
    uint64_t n = id->get<uint64_t>();
    if (n < min_ || n > max_) return corrupt(fmt::format("identity {} is outside the range", n));
    auto parsed = labels::Labels::fromJson(*lbls, "labels");
    if (!parsed.ok() || parsed->empty()) return corrupt(fmt::format("identity {}: bad labels", n));
    auto in_use = e.find("inUse");
    auto released = e.find("releasedSeq");
    if ((in_use != e.end() && !in_use->is_boolean()) ||
        (released != e.end() && !released->is_number_unsigned()))
      return corrupt(fmt::format("identity {}: bad inUse or releasedSeq", n));
    Slot s;
    s.labels = std::move(*parsed);
    s.in_use = in_use != e.end() && in_use->get<bool>();
    s.released_seq = released == e.end() ? 0 : released->get<uint64_t>();
    auto key = s.labels.sortedList();
    auto nid = static_cast<NumericIdentity>(n);
    if (!by_labels_.emplace(key, nid).second || !slots_.emplace(nid, std::move(s)).second)
      return corrupt(fmt::format("identity {} or its labels appear twice", n));
  }
  log()->info("restored identities file={} count={}", path_, slots_.size());
  return okStatus();
}

Status LocalBackend::save() const {
  if (path_.empty()) return okStatus();
  auto ids = nlohmann::json::array();
  for (const auto& [id, s] : slots_) {
    nlohmann::json e = {{"id", id}, {"labels", s.labels.toStrings()}, {"inUse", s.in_use}};
    if (!s.in_use) e["releasedSeq"] = s.released_seq;
    ids.push_back(std::move(e));
  }
  nlohmann::json j = {
      {"version", kFileVersion}, {"next", next_}, {"seq", seq_}, {"identities", ids}};
  return writeFileAtomic(path_, j.dump(1));
}

Result<NumericIdentity> LocalBackend::acquire(const labels::Labels& lbls,
                                              std::optional<NumericIdentity> known) {
  std::lock_guard lock(mu_);
  auto key = lbls.sortedList();
  if (auto it = by_labels_.find(key); it != by_labels_.end()) {
    Slot& s = slots_.at(it->second);
    if (!s.in_use) {
      s.in_use = true;
      if (auto st = save(); !st.ok()) {
        s.in_use = false;
        return st.error();
      }
    }
    return it->second;
  }
  NumericIdentity id;
  std::optional<std::pair<NumericIdentity, Slot>> evicted;
  while (next_ <= max_ && slots_.count(next_) != 0) next_++;
  bool use_known = known && *known >= min_ && *known <= max_ && slots_.count(*known) == 0;
  if (use_known) {
    id = *known;
  } else if (next_ <= max_ && next_ >= min_) {
    id = next_;
  } else {
    // The range is used up: reuse the number released longest ago.
    auto victim = slots_.end();
    for (auto it = slots_.begin(); it != slots_.end(); ++it)
      if (!it->second.in_use &&
          (victim == slots_.end() || it->second.released_seq < victim->second.released_seq))
        victim = it;
    if (victim == slots_.end())
      return makeError(ErrorCode::kResourceExhausted, "identity range {}-{} is exhausted", min_,
                       max_);
    id = victim->first;
    evicted.emplace(victim->first, victim->second);
    by_labels_.erase(victim->second.labels.sortedList());
    slots_.erase(victim);
  }
  NumericIdentity old_next = next_;
  if (!evicted && id == next_) next_ = id + 1;
  slots_[id] = Slot{lbls, true, 0};
  by_labels_[key] = id;
  if (auto st = save(); !st.ok()) {
    slots_.erase(id);
    by_labels_.erase(key);
    next_ = old_next;
    if (evicted) {
      by_labels_[evicted->second.labels.sortedList()] = evicted->first;
      slots_.emplace(evicted->first, std::move(evicted->second));
    }
    return st.error();
  }
  return id;
}

Status LocalBackend::release(NumericIdentity id, const labels::Labels& /*labels*/) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(id);
  if (it == slots_.end() || !it->second.in_use) return okStatus();
  it->second.in_use = false;
  it->second.released_seq = ++seq_;
  return save();
}

Result<std::vector<Identity>> LocalBackend::restoreInUse() {
  std::lock_guard lock(mu_);
  std::vector<Identity> out;
  for (const auto& [id, s] : slots_)
    if (s.in_use) out.push_back({id, s.labels});
  return out;
}

// --- Allocator ---------------------------------------------------------------------------------

Allocator::Allocator(std::unique_ptr<Backend> cluster, std::unique_ptr<Backend> local)
    : cluster_(std::move(cluster)), local_(std::move(local)) {}

Allocator::~Allocator() = default;

Result<std::unique_ptr<Allocator>> Allocator::create(std::unique_ptr<Backend> cluster,
                                                     std::unique_ptr<Backend> local) {
  if (!cluster || !local)
    return makeError(ErrorCode::kInvalidArgument, "identity allocator needs two backends");
  std::unique_ptr<Allocator> a(new Allocator(std::move(cluster), std::move(local)));
  CILIUM_RETURN_IF_ERROR(a->restore());
  return a;
}

Result<std::unique_ptr<Allocator>> Allocator::open(const std::string& state_dir) {
  CILIUM_ASSIGN_OR_RETURN(
      auto cluster, LocalBackend::open(state_dir, kMinCluster, kMaxCluster, "identities.json"));
  CILIUM_ASSIGN_OR_RETURN(
      auto local, LocalBackend::open(state_dir, kMinLocal, kMaxLocal, "local_identities.json"));
  return create(std::move(cluster), std::move(local));
}

Status Allocator::restore() {
  std::lock_guard lock(mu_);
  for (Backend* b : {cluster_.get(), local_.get()}) {
    CILIUM_ASSIGN_OR_RETURN(auto ids, b->restoreInUse());
    for (auto& ident : ids) {
      Record& r = records_[ident.id];
      r.labels = ident.labels;
      r.restored = true;
      by_labels_[ident.labels.sortedList()] = ident.id;
    }
  }
  // Nobody subscribed yet: subscribers get the restored identities in their initial snapshot.
  pending_.clear();
  if (!records_.empty()) log()->info("holding restored identities count={}", records_.size());
  return okStatus();
}

void Allocator::queueLocked(IdentityChange::Kind kind, NumericIdentity id,
                            const labels::Labels& lbls) {
  pending_.push_back({kind, {id, lbls}});
}

Result<Identity> Allocator::allocateLocked(std::unique_lock<std::mutex>& lock,
                                           const labels::Labels& lbls, bool local) {
  auto key = lbls.sortedList();
  // One backend call per label set at a time: a caller whose labels are being acquired or
  // released waits for that call, then decides again from what it left.
  busy_cv_.wait(lock, [&] { return busy_.count(key) == 0; });
  std::optional<NumericIdentity> known;
  if (auto it = by_labels_.find(key); it != by_labels_.end()) {
    Record& r = records_.at(it->second);
    if (r.references > 0 || r.restored) {
      bool was_present = r.present();
      r.references++;
      if (!was_present) queueLocked(IdentityChange::Kind::kAdded, it->second, r.labels);
      return Identity{it->second, r.labels};
    }
    // First user on this node of an identity known from elsewhere: the backend must know.
    known = it->second;
  }
  Backend* b = (known ? isLocal(*known) : local) ? local_.get() : cluster_.get();
  // The backend call runs without the lock, so other label sets allocate meanwhile.
  busy_.insert(key);
  lock.unlock();
  Result<NumericIdentity> got = b->acquire(lbls, known);
  lock.lock();
  busy_.erase(key);
  busy_cv_.notify_all();
  if (!got.ok()) return got.error();
  NumericIdentity id = *got;
  if (known && id != *known) {
    (void)b->release(id, lbls);
    return makeError(ErrorCode::kInternal, "backend {} gave identity {} to labels [{}] known as {}",
                     b->name(), id, lbls.toString(), *known);
  }
  if (auto it = records_.find(id); it != records_.end() && it->second.labels != lbls) {
    (void)b->release(id, lbls);
    return makeError(ErrorCode::kInternal, "backend {} gave identity {} to [{}], held by [{}]",
                     b->name(), id, lbls.toString(), it->second.labels.toString());
  }
  // The record may have appeared meanwhile (the same identity reported by another node).
  Record& r = records_[id];
  bool was_present = r.present();
  r.labels = lbls;
  r.references++;
  by_labels_[key] = id;
  if (!was_present) queueLocked(IdentityChange::Kind::kAdded, id, lbls);
  log()->debug("allocated identity id={} labels=[{}]", id, lbls.toString());
  return Identity{id, lbls};
}

Result<Identity> Allocator::allocate(const labels::Labels& lbls) {
  if (lbls.empty())
    return makeError(ErrorCode::kInvalidArgument, "cannot allocate an identity for no labels");
  CILIUM_ASSIGN_OR_RETURN(auto reserved, reservedForLabels(lbls));
  if (reserved) return *lookup(*reserved);
  if (lbls.hasSource(labels::Source::kCidr))
    return makeError(ErrorCode::kInvalidArgument,
                     "labels [{}]: CIDR identities come from allocateCidr()", lbls.toString());
  Result<Identity> out = makeError(ErrorCode::kInternal, "unset");
  {
    std::unique_lock lock(mu_);
    out = allocateLocked(lock, lbls, false);
  }
  deliver();
  return out;
}

Result<Identity> Allocator::allocateCidr(const IpPrefix& prefix, const labels::Labels& extra) {
  Result<Identity> out = makeError(ErrorCode::kInternal, "unset");
  labels::Labels lbls = cidrLabels(prefix);
  lbls.merge(extra);
  {
    std::unique_lock lock(mu_);
    out = allocateLocked(lock, lbls, true);
  }
  deliver();
  return out;
}

void Allocator::dropIfUnusedLocked(NumericIdentity id, Record& r) {
  if (r.present()) return;
  queueLocked(IdentityChange::Kind::kRemoved, id, r.labels);
  log()->debug("released identity id={} labels=[{}]", id, r.labels.toString());
  if (auto it = by_labels_.find(r.labels.sortedList()); it != by_labels_.end() && it->second == id)
    by_labels_.erase(it);
  records_.erase(id);
}

Status Allocator::release(NumericIdentity id) {
  if (isReserved(id)) return okStatus();
  Status st;
  {
    std::unique_lock lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end() || it->second.references == 0)
      return makeError(ErrorCode::kNotFound, "identity {} is not allocated on this node", id);
    Record& r = it->second;
    if (--r.references == 0 && !r.restored) {
      labels::Labels lbls = r.labels;
      dropIfUnusedLocked(id, r);
      st = releaseInBackend(lock, id, lbls);
    } else {
      dropIfUnusedLocked(id, r);
    }
  }
  deliver();
  return st;
}

Status Allocator::releaseInBackend(std::unique_lock<std::mutex>& lock, NumericIdentity id,
                                   const labels::Labels& lbls) {
  // Like an acquire, one backend call per label set at a time and none under the lock; an
  // allocation of the same labels waits for it and then acquires again.
  auto key = lbls.sortedList();
  busy_cv_.wait(lock, [&] { return busy_.count(key) == 0; });
  busy_.insert(key);
  lock.unlock();
  Backend* b = isLocal(id) ? local_.get() : cluster_.get();
  Status st = b->release(id, lbls);
  if (!st.ok()) log()->warn("backend release id={} error={}", id, st.error().toString());
  lock.lock();
  busy_.erase(key);
  busy_cv_.notify_all();
  return st;
}

std::optional<Identity> Allocator::lookup(NumericIdentity id) const {
  if (isReserved(id)) {
    for (const auto& r : reservedIdentities())
      if (r.id == id) return r;
    return std::nullopt;
  }
  std::lock_guard lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  return Identity{id, it->second.labels};
}

std::optional<Identity> Allocator::lookupByLabels(const labels::Labels& lbls) const {
  auto reserved = reservedForLabels(lbls);
  if (reserved.ok() && *reserved) return lookup(**reserved);
  std::lock_guard lock(mu_);
  auto it = by_labels_.find(lbls.sortedList());
  if (it == by_labels_.end()) return std::nullopt;
  return Identity{it->second, lbls};
}

std::vector<Allocator::Entry> Allocator::list() const {
  std::vector<Entry> out;
  for (const auto& r : reservedIdentities()) out.push_back({r, 0, true, false, false});
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, r] : records_)
      out.push_back({{id, r.labels}, r.references, false, r.restored, r.remote});
  }
  std::sort(out.begin(), out.end(),
            [](const Entry& a, const Entry& b) { return a.identity.id < b.identity.id; });
  return out;
}

void Allocator::upsertRemote(const Identity& ident) {
  if (isReserved(ident.id) || ident.labels.empty()) return;
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(ident.id);
    if (it != records_.end()) {
      if (it->second.labels != ident.labels) {
        log()->warn("remote identity id={} labels=[{}] conflicts with local labels=[{}]; ignored",
                    ident.id, ident.labels.toString(), it->second.labels.toString());
        return;
      }
      bool was_present = it->second.present();
      it->second.remote = true;
      if (!was_present) queueLocked(IdentityChange::Kind::kAdded, ident.id, ident.labels);
    } else {
      Record& r = records_[ident.id];
      r.labels = ident.labels;
      r.remote = true;
      by_labels_.emplace(ident.labels.sortedList(), ident.id);
      queueLocked(IdentityChange::Kind::kAdded, ident.id, ident.labels);
    }
  }
  deliver();
}

void Allocator::removeRemote(NumericIdentity id) {
  {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end() || !it->second.remote) return;
    it->second.remote = false;
    dropIfUnusedLocked(id, it->second);
  }
  deliver();
}

void Allocator::releaseRestored() {
  {
    std::unique_lock lock(mu_);
    std::vector<NumericIdentity> ids;
    for (const auto& [id, r] : records_)
      if (r.restored) ids.push_back(id);
    for (NumericIdentity id : ids) {
      auto it = records_.find(id);
      if (it == records_.end() || !it->second.restored) continue;
      Record& r = it->second;
      r.restored = false;
      if (r.references == 0) {
        labels::Labels lbls = r.labels;
        dropIfUnusedLocked(id, r);
        (void)releaseInBackend(lock, id, lbls);
      } else {
        dropIfUnusedLocked(id, r);
      }
    }
  }
  deliver();
}

void Allocator::deliver() {
  if (t_delivering == this) return;  // the delivery loop further up this thread's stack picks it up
  std::lock_guard notify(notify_mu_);
  const Allocator* outer = t_delivering;
  t_delivering = this;
  for (;;) {
    std::vector<IdentityChange> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(pending_);
    }
    if (batch.empty()) break;
    for (auto& [id, obs] : observers_) obs(batch);
  }
  t_delivering = outer;
}

Allocator::SubscriptionId Allocator::subscribe(Observer observer) {
  SubscriptionId sid = subscribeLocked(std::move(observer));
  // Changes the new observer's own calls queued during its snapshot are delivered now.
  deliver();
  return sid;
}

Allocator::SubscriptionId Allocator::subscribeLocked(Observer observer) {
  std::lock_guard notify(notify_mu_);
  const Allocator* outer = t_delivering;
  t_delivering = this;
  std::vector<IdentityChange> snapshot;
  SubscriptionId sid = 0;
  // Drain what is queued to the existing observers, then snapshot with nothing queued, so the new
  // observer sees every identity exactly once: in the snapshot or as a later change.
  for (;;) {
    std::vector<IdentityChange> batch;
    {
      std::lock_guard lock(mu_);
      if (pending_.empty()) {
        for (const auto& r : reservedIdentities())
          snapshot.push_back({IdentityChange::Kind::kAdded, r});
        for (const auto& [id, r] : records_)
          snapshot.push_back({IdentityChange::Kind::kAdded, {id, r.labels}});
        sid = next_subscription_++;
        break;
      }
      batch.swap(pending_);
    }
    for (auto& [id, obs] : observers_) obs(batch);
  }
  auto it = observers_.emplace(sid, std::move(observer)).first;
  it->second(snapshot);
  t_delivering = outer;
  return sid;
}

void Allocator::unsubscribe(SubscriptionId id) {
  std::lock_guard notify(notify_mu_);
  observers_.erase(id);
}

}  // namespace cilium::identity
