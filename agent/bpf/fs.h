// bpffs: mounting it when absent, and creating and removing pin directories on it.
#pragma once

#include <string>

#include "agent/common/error.h"

namespace cilium::bpf {

bool isBpffs(const std::string& path);

// Mounts a bpffs instance at `root` unless `root` already is one. Needs CAP_SYS_ADMIN.
Status ensureBpffs(const std::string& root);

// Creates `dir` and its missing parents; `dir` must lie on bpffs.
Status makePinDir(const std::string& dir);

// Removes every pin under `dir`, then `dir` itself. Absent `dir` is not an error.
Status removePinDir(const std::string& dir);

}  // namespace cilium::bpf
