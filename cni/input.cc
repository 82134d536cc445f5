// Reading stdin with a bound, and telling a network namespace from anything else at a path.
#include "cni/input.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "agent/common/fd.h"

namespace cilium::cni {
namespace {

std::string_view namespaceKind(int type) {
  switch (type) {
    case CLONE_NEWNS: return "a mount namespace";
    case CLONE_NEWUTS: return "a UTS namespace";
    case CLONE_NEWIPC: return "an IPC namespace";
    case CLONE_NEWUSER: return "a user namespace";
    case CLONE_NEWPID: return "a PID namespace";
    case CLONE_NEWCGROUP: return "a cgroup namespace";
    case CLONE_NEWTIME: return "a time namespace";
    default: return "another kind of namespace";
  }
}

std::string_view fileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "a regular file, not a namespace";
}

}  // namespace

std::optional<std::string> readNetConf(int fd, size_t limit, CniError& err) {
  std::string out;
  char buf[65536];
  for (;;) {
    // Never more than one byte past the limit: the rest stays unread in the pipe.
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit + 1 - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EBADF) return out;
    if (n < 0) {
      err = {Code::kIoFailure,
             fmt::format("reading the network configuration from stdin: {}", std::strerror(errno)),
             ""};
      return std::nullopt;
    }
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > limit) {
      err = {Code::kDecodeFailure,
             fmt::format("the network configuration on stdin is over {} KiB; refused unread",
                         limit >> 10),
             ""};
      return std::nullopt;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

Status checkNetnsPath(const std::string& path) {
  UniqueFd where(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!where) {
    if (errno == ENOENT || errno == ENOTDIR)
      return makeError(ErrorCode::kNotFound, "{} does not exist", path);
    return errnoError(errno, "open " + path);
  }
  struct stat st {};
  struct statfs fs {};
  if (::fstat(where.get(), &st) != 0) return errnoError(errno, "stat " + path);
  if (!S_ISREG(st.st_mode) || ::fstatfs(where.get(), &fs) != 0 ||
      static_cast<unsigned long>(fs.f_type) != NSFS_MAGIC) {
    return makeError(
        ErrorCode::kInvalidArgument, "{} is {}", path,
        S_ISREG(st.st_mode) ? "a regular file, not a namespace" : fileKind(st.st_mode));
  }
  // On nsfs: opening it has no side effect, and the kernel says which kind of namespace it is.
  UniqueFd ns(::open(fmt::format("/proc/self/fd/{}", where.get()).c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return errnoError(errno, "open " + path);
  int type = ::ioctl(ns.get(), NS_GET_NSTYPE);
  if (type < 0) return errnoError(errno, "NS_GET_NSTYPE on " + path);
  if (type != CLONE_NEWNET)
    return makeError(ErrorCode::kInvalidArgument, "{} is {}, not a network namespace", path,
                     namespaceKind(type));
  return okStatus();
}

}  // namespace cilium::cni
