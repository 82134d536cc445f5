// setns(2) on a dedicated thread.
#include "agent/common/netns.h"

#include <fcntl.h>
#include <sched.h>

#include <thread>

namespace cilium {

Result<UniqueFd> openNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError(errno, "open netns " + path);
  return UniqueFd(fd);
}

Status runInNetns(const std::string& path, const std::function<Status()>& fn) {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd ns, openNetns(path));
  Status result;
  std::thread worker([&] {
    // The thread must not share its fs attributes for setns(CLONE_NEWNET) to be allowed; threads
    // created by std::thread share them, which is fine for network namespaces.
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = errnoError(errno, "setns " + path);
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

}  // namespace cilium
