// Atomic replace-by-rename and whole-file reads.
#include "agent/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent/common/fd.h"

namespace cilium {

Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  // mkstemp in the same directory, so that rename() stays on one filesystem.
  std::string tmpl = path + ".tmp.XXXXXX";
  UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (!fd) return errnoError(errno, "create temporary file for " + path);
  auto fail = [&](int err, const std::string& what) {
    ::unlink(tmpl.c_str());
    return errnoError(err, what);
  };
  if (::fchmod(fd.get(), mode) != 0) return fail(errno, "chmod " + tmpl);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "write " + tmpl);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail(errno, "fsync " + tmpl);
  fd.reset();
  if (::rename(tmpl.c_str(), path.c_str()) != 0) return fail(errno, "rename to " + path);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());  // best effort: the rename is already visible
  return okStatus();
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return errnoError(err == 0 ? ENOENT : err, "read " + path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return makeError(ErrorCode::kInternal, "read {}: I/O error", path);
  return ss.str();
}

Status makeDirs(const std::string& dir, mode_t mode) {
  if (dir.empty()) return makeError(ErrorCode::kInvalidArgument, "empty directory path");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    struct stat st {};
    if (::stat(cur.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return makeError(ErrorCode::kFailedPrecondition, "{} exists and is not a directory", cur);
      continue;
    }
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
      return errnoError(errno, "mkdir " + cur);
  }
  return okStatus();
}

}  // namespace cilium
