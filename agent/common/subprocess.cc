// fork/exec with optional setns, output capture through pipes, and bounded waits.
#include "agent/common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <fmt/ranges.h>

#include "agent/common/fd.h"

extern char** environ;

namespace cilium {
namespace {

int decodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct Pipes {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
};

// Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
Result<Process> spawnImpl(const std::vector<std::string>& argv, const SpawnOptions& opts,
                          Pipes* pipes) {
  if (argv.empty()) return Error(ErrorCode::kInvalidArgument, "spawn: empty argv");
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; e && *e; ++e) envs.emplace_back(*e);
  for (const auto& e : opts.extra_env) envs.push_back(e);
  std::vector<char*> cenv;
  cenv.reserve(envs.size() + 1);
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  UniqueFd netns;
  if (!opts.netns.empty()) {
    netns.reset(::open(opts.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) return errnoError(errno, "open netns " + opts.netns);
  }
  auto openOut = [](const std::string& path) {
    return ::open(path.empty() ? "/dev/null" : path.c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  };
  UniqueFd out_fd(pipes ? -1 : openOut(opts.stdout_path));
  UniqueFd err_fd(pipes ? -1 : openOut(opts.stderr_path));
  const std::string& in_path = opts.stdin_path.empty() ? "/dev/null" : opts.stdin_path;
  UniqueFd stdin_fd(::open(in_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!stdin_fd) return errnoError(errno, "open " + in_path + " for stdin");

  pid_t pid = ::fork();
  if (pid < 0) return errnoError(errno, "fork");
  if (pid == 0) {
    if (opts.new_process_group) ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (netns && ::setns(netns.get(), CLONE_NEWNET) != 0) _exit(126);
    ::dup2(stdin_fd.get(), 0);
    if (pipes) {
      ::dup2(pipes->out[1], 1);
      ::dup2(pipes->err[1], 2);
    } else {
      ::dup2(out_fd.get(), 1);
      ::dup2(err_fd.get(), 2);
    }
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  if (opts.new_process_group) ::setpgid(pid, pid);  // no race with the child's own call
  return Process(pid, opts.new_process_group);
}

}  // namespace

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = o.pid_;
    group_ = o.group_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ < 0 || status_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decodeStatus(status);
    return false;
  }
  return r == 0;
}

void Process::signal(int sig) {
  if (pid_ < 0 || status_) return;
  if (group_) ::kill(-pid_, sig);
  ::kill(pid_, sig);
}

Result<int> Process::wait(std::chrono::milliseconds timeout) {
  if (pid_ < 0) return Error(ErrorCode::kFailedPrecondition, "no process");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto sleep = std::chrono::milliseconds(1);
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kDeadlineExceeded, "pid {} still running after {} ms", pid_,
                       timeout.count());
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::milliseconds(50));
  }
  return *status_;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (pid_ < 0) return -1;
  if (!status_) {
    signal(SIGTERM);
    if (!wait(grace).ok()) {
      signal(SIGKILL);
      (void)wait(std::chrono::seconds(10));
    }
  }
  int code = status_.value_or(-1);
  pid_ = -1;
  return code;
}

pid_t Process::release() { return std::exchange(pid_, -1); }

Result<Process> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  return spawnImpl(argv, opts, nullptr);
}

Result<RunOutput> run(const std::vector<std::string>& argv, const SpawnOptions& opts,
                      std::chrono::milliseconds timeout) {
  Pipes p;
  if (::pipe2(p.out, O_CLOEXEC) != 0 || ::pipe2(p.err, O_CLOEXEC) != 0)
    return errnoError(errno, "pipe");
  UniqueFd out_r(p.out[0]), out_w(p.out[1]), err_r(p.err[0]), err_w(p.err[1]);
  CILIUM_ASSIGN_OR_RETURN(Process proc, spawnImpl(argv, opts, &p));
  out_w.reset();
  err_w.reset();

  RunOutput result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      proc.stop(std::chrono::milliseconds(100));
      return makeError(ErrorCode::kDeadlineExceeded, "'{}' timed out after {} ms",
                       fmt::join(argv, " "), timeout.count());
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError(errno, "poll");
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto code = proc.wait(std::max(left, std::chrono::milliseconds(100)));
  if (!code.ok()) {
    proc.stop(std::chrono::milliseconds(100));
    return std::move(code).error();
  }
  result.exit_code = *code;
  return result;
}

Result<std::string> runChecked(const std::vector<std::string>& argv, const SpawnOptions& opts,
                               std::chrono::milliseconds timeout) {
  CILIUM_ASSIGN_OR_RETURN(RunOutput r, run(argv, opts, timeout));
  if (r.exit_code != 0)
    return makeError(ErrorCode::kInternal, "'{}' exited {}: {}", fmt::join(argv, " "), r.exit_code,
                     r.err.empty() ? r.out : r.err);
  return std::move(r.out);
}

}  // namespace cilium
