// What the runtime hands cilium-cni besides the CNI_* syntax that spec.h checks: the network
// configuration on stdin, read with a bound, and the CNI_NETNS path, checked to be a network
// namespace before anything is done for the pod.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "agent/common/error.h"
#include "cni/spec.h"

namespace cilium::cni {

// A network configuration is a few KiB; the runtime never sends anywhere near this.
inline constexpr size_t kMaxNetConfBytes = size_t{1} << 20;

// Reads `fd` to its end, at most `limit` bytes. More is refused with code 6 (failed to decode
// content) as soon as the limit is passed, without reading the rest; a read error is code 5
// (I/O failure). A closed descriptor reads as empty (VERSION needs no input).
std::optional<std::string> readNetConf(int fd, size_t limit, CniError& err);

// kNotFound when nothing is at `path`; kInvalidArgument when something is but it is not a
// network namespace (a regular file, a directory, a device, a FIFO, another kind of namespace);
// kPermissionDenied and others as their errno says. Only a file on nsfs is ever opened, so a
// FIFO cannot block the plugin and a device cannot be triggered.
Status checkNetnsPath(const std::string& path);

}  // namespace cilium::cni
