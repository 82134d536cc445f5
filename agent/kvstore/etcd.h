// A small etcd v3 client over gRPC (etcd's own rpc.proto): KV range/put/delete/txn, leases, and
// the two long-lived pieces the agent builds on: a Session (a lease kept alive, with the keys
// this agent owns under it re-created whenever the lease is lost) and a Mirror (a prefix listed,
// then watched from the next revision, relisted when the revision was compacted, with backoff
// reconnects and no stale keys after a relist).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"

namespace cilium::kvstore {

// Cilium's etcd.config file (the YAML behind `--kvstore-opt etcd.config=<path>`).
struct EtcdConfig {
  std::vector<std::string> endpoints;  // http://host:port or https://host:port
  std::string trusted_ca_file;
  std::string cert_file;
  std::string key_file;
  std::string username;
  std::string password;
};
// Parses the YAML (`endpoints` list, `trusted-ca-file`, `cert-file`, `key-file`, `username`,
// `password`; Cilium's `ca-file` is accepted for the CA). kInvalidArgument names what is wrong.
Result<EtcdConfig> parseEtcdConfig(std::string_view yaml_text);
Result<EtcdConfig> loadEtcdConfig(const std::string& path);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision the range was read at
};

// One comparison of a transaction (etcd Compare); `range_end` "" compares one key.
struct Compare {
  enum class Target : uint8_t { kCreateRevision, kModRevision, kValue };
  enum class Op : uint8_t { kEqual, kNotEqual };
  std::string key;
  std::string range_end;
  Target target = Target::kCreateRevision;
  Op op = Op::kEqual;
  int64_t revision = 0;  // kCreateRevision, kModRevision
  std::string value;     // kValue
};
struct TxnOp;
// A transaction nested in a branch of another (etcd >= 3.3): its compares are evaluated on the
// store as the outer transaction's branch has left it, in the same revision.
struct NestedTxn {
  std::vector<Compare> compares;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};
// One operation of a transaction branch.
struct TxnOp {
  enum class Kind : uint8_t { kPut, kDelete, kRange, kTxn };
  Kind kind = Kind::kPut;
  std::string key;
  std::string range_end;                 // kDelete, kRange: "" = one key
  std::string value;                     // kPut
  int64_t lease = 0;                     // kPut
  std::shared_ptr<const NestedTxn> txn;  // kTxn
};
struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  // The key-values of each kRange op of the branch that ran, in order.
  std::vector<std::vector<KeyValue>> ranges;
  // The outcome of each kTxn op of the branch that ran, in order.
  std::vector<TxnResult> txns;
};

// The end of the range that holds every key starting with `prefix` (etcd's prefix range_end).
std::string prefixEnd(std::string_view prefix);

struct ClientOptions {
  std::chrono::milliseconds call_timeout{5000};  // deadline of each unary call
};

// Thread-safe. Every call fails fast (kUnavailable) while no endpoint is reachable; the gRPC
// channel reconnects by itself (100 ms to 2 s backoff).
class Client {
 public:
  // Validates the configuration and reads the TLS files; does not connect yet.
  static Result<std::unique_ptr<Client>> create(const EtcdConfig& config,
                                                ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<RangeResult> get(const std::string& key);
  Result<RangeResult> getPrefix(const std::string& prefix);
  // Returns the revision of the write.
  Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Returns the number of keys deleted.
  Result<int64_t> remove(const std::string& key);
  Result<int64_t> removePrefix(const std::string& prefix);
  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                        const std::vector<TxnOp>& failure);

  // A lease of `ttl`; returns its id.
  Result<int64_t> grantLease(std::chrono::seconds ttl);
  // One keep-alive; returns the TTL left (kNotFound when the lease expired or was revoked).
  Result<int64_t> keepAlive(int64_t lease);
  Status revokeLease(int64_t lease);
  // Compacts the history up to `revision` (tests; an operator's `etcdctl compact`).
  Status compact(int64_t revision);
  // The server's version ("3.4.23"), as a reachability check.
  Result<std::string> serverVersion();

  // The endpoints in use, as given.
  const std::vector<std::string>& endpoints() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Exponential backoff with jitter between `min` and `max`.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max) : min_(min), max_(max) {}
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds min_, max_;
  int attempt_ = 0;
};

struct SessionOptions {
  std::chrono::seconds lease_ttl{15};
  // Revoke the lease on stop(): this agent's keys vanish at once (otherwise at lease expiry, so
  // that a restarting agent does not make its node and endpoints blink out elsewhere).
  bool revoke_on_stop = false;
};

// The agent's lease and the keys it owns under it. A background thread keeps the lease alive
// (every ttl/3); when the lease is lost (expired while etcd was unreachable, revoked by someone
// else) it grants a new one and writes every owned key again under it. Writes that fail while
// etcd is unreachable are retried with backoff until they land.
class Session {
 public:
  Session(Client& client, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the keep-alive thread; the first lease is granted in the background.
  void start();
  // Stops the thread (and revokes the lease with revoke_on_stop).
  void stop();

  // The current lease, 0 while there is none (etcd unreachable since start, or lease lost).
  int64_t lease() const;
  // Waits up to `timeout` for a lease; returns it (kUnavailable on timeout).
  Result<int64_t> waitForLease(std::chrono::milliseconds timeout);

  // Owns `key` with `value`: written now under the lease when there is one, and re-written
  // whenever the lease changes. Never fails: a failed write is retried in the background.
  void put(const std::string& key, const std::string& value);
  // Records `key` as owned with `value`, already written under `lease` by the caller (a
  // transaction). If the lease changed meanwhile, the key is re-written under the new one.
  void adopt(const std::string& key, const std::string& value, int64_t lease);
  // Stops owning `key` and deletes it (retried in the background when etcd is unreachable).
  void remove(const std::string& key);

  // True while the last call to etcd succeeded.
  bool connected() const;
  // Times a new lease replaced a lost one (not counting the first).
  uint64_t leaseRenewals() const;
  // Number of owned keys.
  size_t ownedKeys() const;

  struct State;

 private:
  void run();
  Client& client_;
  SessionOptions options_;
  std::unique_ptr<State> state_;
};

// Receives the keys of a mirrored prefix. Called from the mirror's thread, one call at a time.
struct MirrorHandler {
  std::function<void(const KeyValue& kv)> on_upsert;
  std::function<void(const std::string& key)> on_delete;
  // After each full list (the first one and every relist), once its differences were told.
  std::function<void()> on_synced;
};

// Lists `prefix`, then watches it from the next revision. On a broken stream it resumes from the
// revision after the last event it saw; when that revision was compacted away it lists again and
// tells only the differences (keys gone are deleted, keys changed upserted), so nothing stale
// stays. Reconnects with backoff while etcd is unreachable.
class Mirror {
 public:
  Mirror(Client& client, std::string prefix, MirrorHandler handler);
  ~Mirror();
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  void start();
  void stop();
  // Waits until the first list was told.
  bool waitForSync(std::chrono::milliseconds timeout);
  bool synced() const;

  // Counters, for status and tests.
  uint64_t lists() const;        // full lists (1 + relists)
  uint64_t compactions() const;  // watches refused because their revision was compacted
  int64_t revision() const;      // the last revision seen
  // The mirrored keys and values.
  std::map<std::string, std::string> snapshot() const;

  struct State;

 private:
  void run();
  Client& client_;
  std::string prefix_;
  MirrorHandler handler_;
  std::unique_ptr<State> state_;
};

}  // namespace cilium::kvstore
