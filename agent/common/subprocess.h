// Starting and stopping child processes, optionally inside a network namespace.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"

namespace cilium {

struct SpawnOptions {
  std::string netns;        // join this network namespace file before exec (empty: stay)
  std::string stdout_path;  // redirect stdout to this file (empty: /dev/null unless captured)
  std::string stderr_path;  // redirect stderr to this file (empty: /dev/null unless captured)
  std::string stdin_path;   // read stdin from this file (empty: /dev/null)
  std::vector<std::string> extra_env;  // "K=V" entries added to the inherited environment
  bool new_process_group = true;       // so that stop() reaches the whole tree
};

// A running child. Destruction stops it (SIGTERM, then SIGKILL after a grace period) unless it
// was released. Only processes this object started are signalled.
class Process {
 public:
  Process() = default;
  explicit Process(pid_t pid, bool group) : pid_(pid), group_(group) {}
  ~Process() { stop(); }
  Process(Process&& o) noexcept : pid_(o.pid_), group_(o.group_), status_(o.status_) {
    o.pid_ = -1;
  }
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig` to the child (and its group when it has one).
  void signal(int sig);
  // Waits up to `timeout` for exit; returns the exit code (128+signal when killed).
  Result<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait `grace`, SIGKILL; returns the exit code.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  // Gives up ownership: the child keeps running and is no longer stopped on destruction.
  pid_t release();

 private:
  pid_t pid_ = -1;
  bool group_ = false;
  std::optional<int> status_;
};

Result<Process> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});

struct RunOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv to completion, capturing stdout and stderr. A timeout kills the child and returns
// kDeadlineExceeded.
Result<RunOutput> run(const std::vector<std::string>& argv, const SpawnOptions& opts = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Like run(), but a non-zero exit becomes an error carrying the command and its stderr.
Result<std::string> runChecked(const std::vector<std::string>& argv, const SpawnOptions& opts = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace cilium
