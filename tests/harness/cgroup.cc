// Joining and leaving a cgroup-v2 directory through cgroup.procs.
#include "tests/harness/cgroup.h"

#include <unistd.h>

#include <fstream>

namespace cilium::testing {
namespace {

constexpr const char* kCgroupMount = "/sys/fs/cgroup/unified";

Status writePid(const std::string& dir) {
  std::ofstream out(dir + "/cgroup.procs");
  out << ::getpid() << std::flush;
  if (!out) return makeError(ErrorCode::kInternal, "cannot move process into cgroup {}", dir);
  return okStatus();
}

}  // namespace

Result<std::unique_ptr<CgroupMembership>> CgroupMembership::join(const std::string& dir) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, original;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) original = std::string(kCgroupMount) + line.substr(3);
  if (original.empty())
    return Error(ErrorCode::kInternal, "no cgroup v2 entry in /proc/self/cgroup");
  CILIUM_RETURN_IF_ERROR(writePid(dir));
  return std::unique_ptr<CgroupMembership>(new CgroupMembership(original));
}

CgroupMembership::~CgroupMembership() { (void)writePid(original_); }

}  // namespace cilium::testing
