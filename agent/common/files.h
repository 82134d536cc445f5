// Small file helpers for state that must never be seen half-written.
#pragma once

#include <sys/types.h>

#include <string>

#include "agent/common/error.h"

namespace cilium {

// Replaces `path` with `content` atomically: writes a temporary file in the same directory,
// fsyncs it, renames it over `path` and fsyncs the directory. A reader (or a restart after a
// crash) sees the old content or the new one, never a mix. The directory must exist.
Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0644);

// Reads a whole file. kNotFound when it does not exist.
Result<std::string> readFile(const std::string& path);

// Creates `dir` and its missing parents with `mode` (existing directories keep theirs).
Status makeDirs(const std::string& dir, mode_t mode = 0755);

}  // namespace cilium
