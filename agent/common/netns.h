// Network namespace handles and running code inside another network namespace.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium {

// Opens a network namespace file (/run/netns/<name>, /proc/<pid>/ns/net).
Result<UniqueFd> openNetns(const std::string& path);

// Runs `fn` on a new thread that has joined the network namespace at `path`, and waits for it.
// Only that thread changes namespace, so the caller's threads are unaffected. Sockets (netlink
// included) that `fn` opens belong to that namespace.
Status runInNetns(const std::string& path, const std::function<Status()>& fn);

// Same, returning a value.
template <typename T>
Result<T> runInNetnsValue(const std::string& path, const std::function<Result<T>()>& fn) {
  std::optional<Result<T>> out;
  Status s = runInNetns(path, [&]() -> Status {
    out.emplace(fn());
    return okStatus();
  });
  if (!s.ok()) return std::move(s).error();
  return std::move(*out);
}

}  // namespace cilium
