// Putting the test process itself into a cgroup-v2 directory for a while (socket-LB tests and
// benchmarks: cgroup socket hooks see only sockets created by member processes).
#pragma once

#include <memory>
#include <string>

#include "agent/common/error.h"

namespace cilium::testing {

// Moves this process into `dir` (under /sys/fs/cgroup/unified) and back into its original
// cgroup on destruction, so the directory can be removed afterwards.
class CgroupMembership {
 public:
  static Result<std::unique_ptr<CgroupMembership>> join(const std::string& dir);
  ~CgroupMembership();
  CgroupMembership(const CgroupMembership&) = delete;
  CgroupMembership& operator=(const CgroupMembership&) = delete;

 private:
  explicit CgroupMembership(std::string original) : original_(std::move(original)) {}
  std::string original_;
};

}  // namespace cilium::testing
