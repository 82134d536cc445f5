// Identities in etcd: allocation by transaction, the mirror of master keys, garbage collection.
#include "agent/kvstore/identities.h"

#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>
#include <openssl/sha.h>

#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::kvstore {

namespace {

auto& log() {
  static auto l = cilium::logger("kvstore");
  return l;
}

const std::string& prefix() {
  static const std::string p(kIdentitiesPrefix);
  return p;
}
std::string idKey(identity::NumericIdentity id) { return prefix() + "id/" + std::to_string(id); }
std::string valuePrefix(const std::string& labels_key) {
  return prefix() + "value/" + labels_key + "/";
}
std::string valueKey(const std::string& labels_key, const std::string& node) {
  return valuePrefix(labels_key) + node;
}

std::optional<identity::NumericIdentity> parseId(std::string_view text) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0 || v > UINT32_MAX)
    return std::nullopt;
  return static_cast<identity::NumericIdentity>(v);
}

// The number of a master key ("cilium/state/identities/v1/id/<n>").
std::optional<identity::NumericIdentity> idOfKey(std::string_view key) {
  std::string_view p = prefix();
  if (key.substr(0, p.size()) != p) return std::nullopt;
  key.remove_prefix(p.size());
  if (key.substr(0, 3) != "id/") return std::nullopt;
  return parseId(key.substr(3));
}

// The labels part of a value key ("cilium/state/identities/v1/value/<labels>/<node>").
std::optional<std::string> labelsOfValueKey(std::string_view key) {
  std::string_view p = prefix();
  if (key.substr(0, p.size()) != p) return std::nullopt;
  key.remove_prefix(p.size());
  if (key.substr(0, 6) != "value/") return std::nullopt;
  key.remove_prefix(6);
  auto slash = key.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  return std::string(key.substr(0, slash));
}

}  // namespace

Result<labels::Labels> labelsOfSortedList(std::string_view text) {
  labels::Labels out;
  if (text.empty() || text.back() != ';')
    return makeError(ErrorCode::kInvalidArgument, "identity labels {:?}: want \"src:k=v;...\"",
                     std::string(text));
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view one = text.substr(0, semi);
    text.remove_prefix(semi + 1);
    if (one.empty() || one.find(':') == std::string_view::npos)
      return makeError(ErrorCode::kInvalidArgument, "identity label {:?}: want src:key=value",
                       std::string(one));
    CILIUM_ASSIGN_OR_RETURN(auto l, labels::Label::parse(one));
    out.set(std::move(l));
  }
  return out;
}

namespace {

class Backend final : public identity::Backend {
 public:
  explicit Backend(Identities& ids) : ids_(ids) {}
  Result<identity::NumericIdentity> acquire(const labels::Labels& labels,
                                            std::optional<identity::NumericIdentity>) override {
    return ids_.acquire(labels);
  }
  Status release(identity::NumericIdentity id, const labels::Labels& labels) override {
    return ids_.release(id, labels);
  }
  // Value keys of the last run expire with its lease; endpoints restored allocate again.
  Result<std::vector<identity::Identity>> restoreInUse() override { return ids_.restoreInUse(); }
  std::string name() const override { return "kvstore"; }

 private:
  Identities& ids_;
};

}  // namespace

Identities::Identities(Client& client, Session& session, std::string node, std::string state_file,
                       identity::NumericIdentity min_id, identity::NumericIdentity max_id)
    : client_(client),
      session_(session),
      node_(std::move(node)),
      state_file_(std::move(state_file)),
      min_(min_id),
      max_(max_id) {}

Identities::~Identities() { stop(); }

void Identities::saveLocked() const {
  if (state_file_.empty()) return;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [id, key] : in_use_) j[std::to_string(id)] = key;
  if (auto st = writeFileAtomic(state_file_, j.dump()); !st.ok())
    log()->warn("cannot write {}: {}", state_file_, st.error().message());
}

Result<std::vector<identity::Identity>> Identities::restoreInUse() {
  std::vector<identity::Identity> out;
  if (state_file_.empty()) return out;
  auto text = readFile(state_file_);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) return out;
    return text.error();
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object())
    return makeError(ErrorCode::kFailedPrecondition, "{}: corrupt (not a JSON object)",
                     state_file_);
  std::lock_guard lock(mu_);
  for (const auto& [k, v] : j.items()) {
    auto id = parseId(k);
    if (!id || !v.is_string())
      return makeError(ErrorCode::kFailedPrecondition, "{}: corrupt entry {:?}", state_file_, k);
    auto l = labelsOfSortedList(v.get<std::string>());
    if (!l.ok()) return l.error().withContext(state_file_);
    in_use_[*id] = v.get<std::string>();
    restores_[*id] = v.get<std::string>();
    out.push_back({*id, std::move(*l)});
  }
  cv_.notify_all();
  return out;
}

size_t Identities::pendingRestores() const {
  std::lock_guard lock(mu_);
  return restores_.size();
}

void Identities::restoreLoop() {
  Backoff backoff(std::chrono::milliseconds(200), std::chrono::seconds(5));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (restores_.empty()) {
      cv_.wait(lock, [&] { return stopping_ || !restores_.empty(); });
      continue;
    }
    auto [id, key] = *restores_.begin();
    lock.unlock();
    int64_t lease = session_.lease();
    Result<bool> r =
        lease == 0 ? Result<bool>(Error(ErrorCode::kUnavailable, "no lease")) : use(id, key, lease);
    lock.lock();
    if (r.ok()) {
      if (!*r)
        log()->error(
            "restored identity id={} labels={} now holds other labels in etcd: its endpoints "
            "keep it until they are relabeled",
            id, key);
      else
        log()->info("restored identity id={} registered in etcd again", id);
      restores_.erase(id);
      backoff.reset();
      continue;
    }
    cv_.wait_for(lock, backoff.next(), [&] { return stopping_; });
  }
}

Status Identities::start(std::chrono::milliseconds timeout) {
  if (mirror_) return okStatus();
  restorer_ = std::thread([this] { restoreLoop(); });
  mirror_ = std::make_unique<Mirror>(
      client_, prefix() + "id/",
      MirrorHandler{[this](const KeyValue& kv) { onUpsert(kv); },
                    [this](const std::string& key) { onDelete(key); }, nullptr});
  mirror_->start();
  if (!mirror_->waitForSync(timeout))
    return makeError(ErrorCode::kUnavailable,
                     "kvstore: identities not listed from etcd within {} ms (etcd unreachable?)",
                     timeout.count());
  return okStatus();
}

void Identities::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (restorer_.joinable()) restorer_.join();
  if (mirror_) mirror_->stop();
}

std::unique_ptr<identity::Backend> Identities::backend() {
  return std::make_unique<Backend>(*this);
}

void Identities::onUpsert(const KeyValue& kv) {
  auto id = idOfKey(kv.key);
  auto lbls = labelsOfSortedList(kv.value);
  if (!id || !lbls.ok()) {
    log()->warn("skipping identity key={}: not a numeric identity with valid labels", kv.key);
    return;
  }
  std::lock_guard feed(feed_mu_);
  {
    std::lock_guard lock(mu_);
    if (auto old = by_id_.find(*id); old != by_id_.end() && old->second != kv.value)
      by_key_.erase(old->second);
    by_id_[*id] = kv.value;
    by_key_[kv.value] = *id;
  }
  if (allocator_ != nullptr) allocator_->upsertRemote(identity::Identity{*id, std::move(*lbls)});
}

void Identities::onDelete(const std::string& key) {
  auto id = idOfKey(key);
  if (!id) return;
  std::lock_guard feed(feed_mu_);
  {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(*id);
    if (it == by_id_.end()) return;
    if (auto k = by_key_.find(it->second); k != by_key_.end() && k->second == *id) by_key_.erase(k);
    by_id_.erase(it);
  }
  if (allocator_ != nullptr) allocator_->removeRemote(*id);
}

void Identities::attach(identity::Allocator& allocator) {
  std::lock_guard feed(feed_mu_);
  allocator_ = &allocator;
  std::map<identity::NumericIdentity, std::string> now;
  {
    std::lock_guard lock(mu_);
    now = by_id_;
  }
  for (const auto& [id, key] : now)
    if (auto l = labelsOfSortedList(key); l.ok())
      allocator.upsertRemote(identity::Identity{id, std::move(*l)});
}

void Identities::detach() {
  std::lock_guard feed(feed_mu_);
  allocator_ = nullptr;
}

std::optional<identity::NumericIdentity> Identities::lookup(const labels::Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(labels.sortedList());
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

size_t Identities::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

namespace {

// The keys a transaction may write, nested ones included.
void writtenKeys(const NestedTxn& t, std::set<std::string>& out) {
  for (const auto* branch : {&t.success, &t.failure})
    for (const auto& op : *branch) {
      if (op.kind == TxnOp::Kind::kPut || op.kind == TxnOp::Kind::kDelete) out.insert(op.key);
      if (op.kind == TxnOp::Kind::kTxn && op.txn) writtenKeys(*op.txn, out);
    }
}

}  // namespace

Result<TxnResult> Identities::batchedTxn(NestedTxn txn) {
  // Group commit: the caller that finds no transaction in flight sends every queued one as one
  // etcd transaction (each nested in it, so each keeps its own compares and branches); the
  // others wait for its answer. etcd then commits (and fsyncs) concurrent allocations once.
  BatchItem item;
  item.txn = std::move(txn);
  writtenKeys(item.txn, item.keys);
  std::unique_lock lock(batch_mu_);
  batch_queue_.push_back(&item);
  while (!item.done) {
    if (batch_flushing_) {
      batch_cv_.wait(lock);
      continue;
    }
    // Up to etcd's limit of operations per transaction (128), leaving for the next round any
    // that writes a key a taken one writes (etcd refuses a key written twice in a transaction).
    constexpr size_t kMaxBatch = 64;
    std::vector<BatchItem*> batch;
    std::set<std::string> keys;
    for (auto it = batch_queue_.begin(); it != batch_queue_.end() && batch.size() < kMaxBatch;) {
      bool clash = false;
      for (const auto& k : (*it)->keys) clash = clash || keys.count(k) != 0;
      if (clash) {
        ++it;
        continue;
      }
      keys.insert((*it)->keys.begin(), (*it)->keys.end());
      batch.push_back(*it);
      it = batch_queue_.erase(it);
    }
    batch_flushing_ = true;
    lock.unlock();
    Result<TxnResult> r = Error(ErrorCode::kInternal, "unset");
    if (batch.size() == 1) {
      r = client_.txn(batch[0]->txn.compares, batch[0]->txn.success, batch[0]->txn.failure);
    } else {
      std::vector<TxnOp> ops;
      for (auto* b : batch)
        ops.push_back(
            {TxnOp::Kind::kTxn, "", "", "", 0, std::make_shared<const NestedTxn>(b->txn)});
      r = client_.txn({}, ops, {});
      if (r.ok() && r->txns.size() != batch.size())
        r = Error(ErrorCode::kInternal, "etcd txn: unexpected answer to a batch");
    }
    lock.lock();
    for (size_t i = 0; i < batch.size(); i++) {
      if (!r.ok())
        batch[i]->result = r.error();
      else if (batch.size() == 1)
        batch[i]->result = *r;
      else
        batch[i]->result = std::move(r->txns[i]);
      batch[i]->done = true;
    }
    batch_flushing_ = false;
    batch_cv_.notify_all();
  }
  return std::move(item.result);
}

Result<bool> Identities::use(identity::NumericIdentity id, const std::string& key, int64_t lease) {
  const std::string vkey = valueKey(key, node_);
  const std::string vval = std::to_string(id);
  // The master key holds these labels: add our value key.
  CILIUM_ASSIGN_OR_RETURN(
      auto r, batchedTxn({{{idKey(id), "", Compare::Target::kValue, Compare::Op::kEqual, 0, key}},
                          {{TxnOp::Kind::kPut, vkey, "", vval, lease}},
                          {{TxnOp::Kind::kRange, idKey(id), "", "", 0}}}));
  if (r.succeeded) {
    session_.adopt(vkey, vval, lease);
    return true;
  }
  if (!r.ranges.empty() && !r.ranges[0].empty()) return false;  // other labels now
  // The master key is gone (collected, or deleted by hand) while value keys still name it:
  // create it again at the same number if it is free.
  CILIUM_ASSIGN_OR_RETURN(
      auto c,
      client_.txn(
          {{idKey(id), "", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""}},
          {{TxnOp::Kind::kPut, idKey(id), "", key, 0}, {TxnOp::Kind::kPut, vkey, "", vval, lease}},
          {}));
  if (c.succeeded) session_.adopt(vkey, vval, lease);
  return c.succeeded;
}

Result<identity::NumericIdentity> Identities::acquire(const labels::Labels& labels) {
  auto id = acquireInEtcd(labels);
  if (id.ok()) {
    std::lock_guard lock(mu_);
    in_use_[*id] = labels.sortedList();
    restores_.erase(*id);
    saveLocked();
  }
  return id;
}

Result<identity::NumericIdentity> Identities::acquireInEtcd(const labels::Labels& labels) {
  const std::string key = labels.sortedList();
  int64_t lease = session_.lease();
  if (lease == 0) {
    // Short: the allocator holds its lock across this call (a pod without an identity fails its
    // CNI ADD and is retried; other allocator users should not wait for etcd).
    CILIUM_ASSIGN_OR_RETURN(lease, session_.waitForLease(std::chrono::seconds(1)));
  }
  // Known in the mirror: use it.
  if (auto id = lookup(labels)) {
    CILIUM_ASSIGN_OR_RETURN(bool ok, use(*id, key, lease));
    if (ok) return *id;
  }
  // Probe order: start at a hash of the labels and step by one, so racing agents try the same
  // numbers in the same order.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  uint64_t h;
  std::memcpy(&h, digest, sizeof(h));
  const uint64_t range = static_cast<uint64_t>(max_) - min_ + 1;
  int retries = 0;
  for (uint64_t i = 0; i < range; i++) {
    auto id = static_cast<identity::NumericIdentity>(min_ + (h + i) % range);
    {
      // Known to hold other labels: skip without a request.
      std::lock_guard lock(mu_);
      if (auto it = by_id_.find(id); it != by_id_.end() && it->second != key) continue;
    }
    const std::string vkey = valueKey(key, node_);
    const std::string vval = std::to_string(id);
    // One round trip whatever the race: create the master key and this node's value key when
    // neither the number nor any value key of the labels exists; otherwise, if the number
    // already holds these labels (an agent racing for the same labels got there first: it
    // probes the same numbers in the same order), add this node's value key to it (nested
    // transaction); else read what is there to decide the next step.
    auto join = std::make_shared<NestedTxn>();
    join->compares = {{idKey(id), "", Compare::Target::kValue, Compare::Op::kEqual, 0, key}};
    join->success = {{TxnOp::Kind::kPut, vkey, "", vval, lease, nullptr}};
    CILIUM_ASSIGN_OR_RETURN(
        auto r,
        batchedTxn(
            {{{idKey(id), "", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""},
              {valuePrefix(key), prefixEnd(valuePrefix(key)), Compare::Target::kCreateRevision,
               Compare::Op::kEqual, 0, ""}},
             {{TxnOp::Kind::kPut, idKey(id), "", key, 0, nullptr},
              {TxnOp::Kind::kPut, vkey, "", vval, lease, nullptr}},
             {{TxnOp::Kind::kRange, idKey(id), "", "", 0, nullptr},
              {TxnOp::Kind::kRange, valuePrefix(key), prefixEnd(valuePrefix(key)), "", 0, nullptr},
              {TxnOp::Kind::kTxn, "", "", "", 0, std::move(join)}}}));
    if (r.succeeded) {
      session_.adopt(vkey, vval, lease);
      log()->info("identity allocated through kvstore id={} labels={}", id, labels.toString());
      return id;
    }
    if (r.txns.size() == 1 && r.txns[0].succeeded) {
      session_.adopt(vkey, vval, lease);
      return id;
    }
    if (r.ranges.size() != 2) return Error(ErrorCode::kInternal, "etcd txn: unexpected answer");
    // Another node holds a number for these labels (its value key): use that number.
    std::optional<identity::NumericIdentity> held;
    for (const auto& kv : r.ranges[1])
      if (auto n = parseId(kv.value)) held = n;
    if (!held && !r.ranges[0].empty() && r.ranges[0][0].value == key) held = id;
    if (held) {
      CILIUM_ASSIGN_OR_RETURN(bool ok, use(*held, key, lease));
      if (ok) return *held;
      // Changed under us (collected, or a stale value key): probe again from the start.
      if (++retries > 8)
        return makeError(ErrorCode::kAborted, "identity for [{}] keeps changing in etcd",
                         labels.toString());
      i = static_cast<uint64_t>(-1);
      continue;
    }
    // The number holds other labels: next one.
  }
  return makeError(ErrorCode::kResourceExhausted, "no free identity in [{}, {}]", min_, max_);
}

Status Identities::release(identity::NumericIdentity id, const labels::Labels& labels) {
  // The master key stays for the garbage collector (another node may use it, or this node again).
  session_.remove(valueKey(labels.sortedList(), node_));
  std::lock_guard lock(mu_);
  in_use_.erase(id);
  restores_.erase(id);
  saveLocked();
  return okStatus();
}

Result<GcResult> collectGarbage(Client& client) {
  GcResult out;
  CILIUM_ASSIGN_OR_RETURN(auto masters, client.getPrefix(prefix() + "id/"));
  CILIUM_ASSIGN_OR_RETURN(auto values, client.getPrefix(prefix() + "value/"));
  std::set<std::string> used;
  for (const auto& kv : values.kvs)
    if (auto l = labelsOfValueKey(kv.key)) used.insert(*l);
  out.scanned = masters.kvs.size();
  std::vector<const KeyValue*> unused;
  for (const auto& kv : masters.kvs)
    if (idOfKey(kv.key) && !used.count(kv.value)) unused.push_back(&kv);
  // Deleted in batches: one transaction checks a whole batch (each master key unchanged, no
  // value key for its labels); when one of them changed, the batch is retried one by one.
  auto compares = [](const KeyValue& kv) {
    return std::vector<Compare>{
        {kv.key, "", Compare::Target::kModRevision, Compare::Op::kEqual, kv.mod_revision, ""},
        {valuePrefix(kv.value), prefixEnd(valuePrefix(kv.value)), Compare::Target::kCreateRevision,
         Compare::Op::kEqual, 0, ""}};
  };
  constexpr size_t kBatch = 50;  // etcd allows 128 operations per transaction
  for (size_t start = 0; start < unused.size(); start += kBatch) {
    size_t end = std::min(unused.size(), start + kBatch);
    std::vector<Compare> cmp;
    std::vector<TxnOp> del;
    for (size_t i = start; i < end; i++) {
      auto c = compares(*unused[i]);
      cmp.insert(cmp.end(), c.begin(), c.end());
      del.push_back({TxnOp::Kind::kDelete, unused[i]->key, "", "", 0});
    }
    CILIUM_ASSIGN_OR_RETURN(auto r, client.txn(cmp, del, {}));
    if (r.succeeded) {
      out.deleted += end - start;
      continue;
    }
    for (size_t i = start; i < end; i++) {
      CILIUM_ASSIGN_OR_RETURN(auto one,
                              client.txn(compares(*unused[i]),
                                         {{TxnOp::Kind::kDelete, unused[i]->key, "", "", 0}}, {}));
      if (one.succeeded) out.deleted++;
    }
  }
  if (out.deleted > 0)
    log()->info("identity gc: deleted={} of scanned={} master keys", out.deleted, out.scanned);
  return out;
}

}  // namespace cilium::kvstore
