// The manifests-directory source: cluster state from a directory of plain Kubernetes YAML
// (multi-document files; Namespace, Pod, Service, EndpointSlice, NetworkPolicy,
// CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and the other kinds of resources.h).
// The directory is watched with inotify: adding, editing or removing a file takes effect within
// a second. A malformed file is reported with file, document and field and changes nothing in
// force: the objects of that file's last good version stay.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/fd.h"
#include "agent/k8s/source.h"

namespace cilium::k8s {

// Checks one document (after YAML parsing) the way the manifests source does: a known kind
// that decodes, policies included. Objects of kinds the agent does not use are skipped
// (returns false, no error). Exposed for the fuzz target.
Result<bool> validateManifestObject(const nlohmann::json& object);

class ManifestSource final : public Source {
 public:
  explicit ManifestSource(std::string dir,
                          std::chrono::milliseconds settle = std::chrono::milliseconds(50));
  ~ManifestSource() override;

  Stores& stores() override { return stores_; }
  // Reads the directory once (synchronously: hasSynced() is true when it returns, even when some
  // files are malformed) and starts watching it. kNotFound when the directory does not exist.
  Status start() override;
  void stop() override;
  bool hasSynced() override { return stores_.allSynced(); }
  std::string name() const override { return "manifests:" + dir_; }

  // The current problem of each malformed file: "pods.yaml: document 2 (Pod default/a):
  // spec.containers[0].ports[0].containerPort: must be an integer".
  std::map<std::string, std::string> errors() const;
  // Rescans the directory now (the watcher does this by itself).
  void rescan();
  // Completed scans, for tests waiting on a change to be absorbed.
  uint64_t generation() const { return generation_.load(); }

 private:
  struct FileState {
    std::string content;                  // last good content
    std::vector<nlohmann::json> objects;  // its usable objects
  };
  void run();
  // Parses `content` into usable objects; the error names document and field.
  static Result<std::vector<nlohmann::json>> parseFile(const std::string& content);
  void publish();

  std::string dir_;
  std::chrono::milliseconds settle_;
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
