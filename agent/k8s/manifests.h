// The manifests-directory source: cluster state from a directory of plain Kubernetes YAML
// (multi-document files; Namespace, Pod, Service, EndpointSlice, NetworkPolicy,
// CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and the other kinds of resources.h).
//
// The directory is watched with inotify; a change takes effect once the file is complete: no
// process holds it open for writing and it has been quiet for `settle`. Each document stands on
// its own: a valid one replaces its object's last version, an invalid one is reported with file,
// document and field and keeps its object's last good version, and a file with any problem
// removes nothing (docs/kubernetes.md has the rules, and what an empty file means). Policies are
// checked here only as objects (kind, apiVersion, metadata): their rules are the policy feed's to
// judge (agent/policy/k8s_feed.h), which keeps their last good version or fails closed.
//
// With a state file, the objects in force are written there after every change and read back
// at start, so what was in force before a restart stays in force whatever the files say then.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/fd.h"
#include "agent/k8s/source.h"

namespace cilium::k8s {

// Checks one document (after YAML parsing) the way the manifests source does: true for an
// object of a kind the agent uses (decoded; policies: their metadata), false for a well-known
// Kubernetes or Cilium kind the agent does not use, and kInvalidArgument naming the field for
// anything else (no kind or apiVersion, a kind nobody knows, a bad object). Exposed for the fuzz
// target.
Result<bool> validateManifestObject(const nlohmann::json& object);

struct ManifestOptions {
  // How long a changed file must stay quiet before it is read.
  std::chrono::milliseconds settle{50};
  // A file some process holds open for writing is read after it is closed, or after this long
  // without changes (a writer that keeps it open for good).
  std::chrono::milliseconds writer_grace{10000};
  // Where the objects in force are kept across restarts; "" = nowhere.
  std::string state_file;
  // Called after every change with every object in force (one per kind, namespace and name, as
  // the stores get them), on the watcher's thread: for a consumer that needs the objects as
  // written rather than decoded (cilium-local-apiserver serves them).
  std::function<void(const std::vector<nlohmann::json>&)> on_publish;
};

class ManifestSource final : public Source {
 public:
  explicit ManifestSource(std::string dir, ManifestOptions options = {});
  ~ManifestSource() override;

  Stores& stores() override { return stores_; }
  // Reads the state file and the directory once (synchronously: hasSynced() is true when it
  // returns, even when some files are malformed) and starts watching it. kNotFound when the
  // directory does not exist; kFailedPrecondition when the state file cannot be read.
  Status start() override;
  void stop() override;
  bool hasSynced() override { return stores_.allSynced(); }
  std::string name() const override { return "manifests:" + dir_; }

  // The current problems of each file, one per line: "pods.yaml: document 2 (Pod default/a):
  // spec.containers[0].ports[0].containerPort: must be an integer".
  std::map<std::string, std::string> errors() const;
  // Rescans the directory now (the watcher does this by itself). Files in `skip` keep their
  // current objects unread (the watcher passes the files being written).
  void rescan(const std::set<std::string>& skip = {});
  // Completed scans, for tests waiting on a change to be absorbed.
  uint64_t generation() const { return generation_.load(); }

 private:
  struct FileState {
    std::string content;                  // the content last read ("" after a restore)
    std::vector<nlohmann::json> objects;  // the objects of this file in force
  };
  void run();
  void publish();
  Status loadState();
  void saveState();

  std::string dir_;
  ManifestOptions opts_;
  Stores stores_;
  UniqueFd inotify_;
  UniqueFd wake_;  // eventfd: stop()
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{0};

  mutable std::mutex mu_;  // guards files_ and errors_; scans are serialized by scan_mu_
  std::mutex scan_mu_;
  std::map<std::string, FileState> files_;
  std::map<std::string, std::string> errors_;
};

}  // namespace cilium::k8s
