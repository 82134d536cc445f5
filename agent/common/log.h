// Named spdlog loggers, one per module, with key=value fields in the message:
//   static auto log = cilium::logger("bpf");  log->info("attached prog={} ifindex={}", n, i);
// No logging on per-packet paths: the datapath reports through ring-buffer events.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "agent/common/error.h"

namespace cilium {

// Returns the logger for `module`, creating it (stderr, shared level) on first use. Thread-safe.
std::shared_ptr<spdlog::logger> logger(std::string_view module);

// Sends every existing and future module logger to `path` (appended, created with its
// directory) instead of stderr: for programs whose stdout and stderr belong to their caller
// (cilium-cni). When the file cannot be opened, logs are discarded and the error returned.
Status logToFile(const std::string& path);

// Sets the level of every existing and future module logger ("debug", "info", "warn", "error").
void setLogLevel(std::string_view level);

}  // namespace cilium
