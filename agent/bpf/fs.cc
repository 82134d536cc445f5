// bpffs helpers. Pins are plain files to the VFS: unlink drops the pin, rmdir the directory.
#include "agent/bpf/fs.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <filesystem>

#include "agent/common/log.h"

namespace cilium::bpf {
namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;
}

bool isBpffs(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kBpfFsMagic;
}

Status ensureBpffs(const std::string& root) {
  if (isBpffs(root)) return okStatus();
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}: {}", root, ec.message());
  if (::mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0)
    return errnoError(errno, "mount bpffs at " + root);
  logger("bpf")->info("mounted bpffs path={}", root);
  return okStatus();
}

Status makePinDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return makeError(ErrorCode::kInternal, "create pin dir {}: {}", dir, ec.message());
  if (!isBpffs(dir))
    return makeError(ErrorCode::kFailedPrecondition, "pin dir {} is not on bpffs", dir);
  return okStatus();
}

Status removePinDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return okStatus();
  std::filesystem::remove_all(dir, ec);
  if (ec) return makeError(ErrorCode::kInternal, "remove pin dir {}: {}", dir, ec.message());
  return okStatus();
}

}  // namespace cilium::bpf
