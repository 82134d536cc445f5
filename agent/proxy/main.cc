// cilium-proxy: the node's HTTP/gRPC L7 proxy, a process of its own (docs/l7.md). The parent is a
// supervisor that parses nothing untrusted: it runs the worker, restarts it when it dies (with a
// short backoff, counted and reported to the agent) and stops it on SIGTERM/SIGINT. The worker
// loads the last policy it had, listens, and follows the agent's socket.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <utility>

#include <boost/asio.hpp>

#include "agent/common/cli.h"
#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/proxy/agent_client.h"
#include "agent/proxy/proxy.h"

namespace {

using namespace cilium;

struct Flags {
  std::string agent_socket = "/var/run/cilium/proxy.sock";
  std::string state_dir = "/var/run/cilium/proxy";
  std::string bpf_pin_dir = "/sys/fs/bpf/cilium";
  std::string log_level = "info";
  int request_header_timeout_ms = 30000;
  int idle_timeout_ms = 300000;
  int connect_timeout_ms = 5000;
  size_t max_connections = 10000;
  int threads = 1;
  bool no_supervisor = false;
  uint32_t restarts = 0;  // set by the supervisor for its worker
};

volatile sig_atomic_t g_stop = 0;
void onSignal(int) { g_stop = 1; }

int runWorker(const Flags& f) {
  auto log = logger("proxy");
  // The worker dies with its supervisor, whatever happens to the supervisor.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto ids = proxy::kernelIdentitySource(f.bpf_pin_dir);
  if (!ids.ok()) {
    log->error("cannot open the datapath maps under {}: {}", f.bpf_pin_dir, ids.error().message());
    return 1;
  }
  if (!f.state_dir.empty()) {
    if (auto st = makeDirs(f.state_dir, 0700); !st.ok()) {
      log->error("{}", st.error().message());
      return 1;
    }
  }
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  proxy::ProxyOptions po;
  po.request_header_timeout = std::chrono::milliseconds(f.request_header_timeout_ms);
  po.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  po.connect_timeout = std::chrono::milliseconds(f.connect_timeout_ms);
  po.max_connections = f.max_connections;
  po.threads = std::max(1, f.threads);
  proxy::AgentClient* client_ptr = nullptr;
  proxy::Proxy proxy(io, po, ids->get(), [&client_ptr](proxy::AccessRecord r) {
    if (client_ptr != nullptr) client_ptr->record(std::move(r));
  });
  // The listeners' loop (it serves connections too); the proxy runs threads - 1 more.
  std::thread loop([&io] { io.run(); });
  proxy::AgentClient client({f.agent_socket, f.state_dir, f.restarts}, proxy);
  client_ptr = &client;
  // The last policy in force: listen at once, also when the agent is not there.
  if (auto st = client.restore(); !st.ok() && st.error().code() != ErrorCode::kNotFound)
    log->warn("persisted policy not used: {}", st.error().message());
  client.start();
  log->info("cilium-proxy worker pid={} restarts={} agent={}", ::getpid(), f.restarts,
            f.agent_socket);
  int sig = 0;
  sigwait(&stop, &sig);
  log->info("stopping");
  client.stop();
  client_ptr = nullptr;
  proxy.stop();
  guard.reset();
  io.stop();
  loop.join();
  return 0;
}

int supervise(const std::vector<std::string>& args) {
  auto log = logger("proxy-supervisor");
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  uint32_t restarts = 0;
  auto backoff = std::chrono::milliseconds(50);
  while (!g_stop) {
    auto started = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) {
      log->error("fork: {}", std::strerror(errno));
      return 1;
    }
    if (pid == 0) {
      std::vector<std::string> a = {"/proc/self/exe"};
      a.insert(a.end(), args.begin(), args.end());
      a.push_back("--no-supervisor");
      a.push_back("--restarts=" + std::to_string(restarts));
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) break;
      if (g_stop) ::kill(pid, SIGTERM);
    }
    if (g_stop) break;
    restarts++;
    log->warn("worker pid={} ended ({} {}); restart #{}", pid,
              WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), restarts);
    // A worker that keeps dying at once is restarted less often (at most 1 s apart).
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(10))
      backoff = std::chrono::milliseconds(50);
    else
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    std::this_thread::sleep_for(backoff);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  auto app = cli::makeApp(
      "The node's HTTP/gRPC L7 proxy: enforces the rules.http of the policies the agent hands it "
      "on the ports the datapath redirects.",
      "cilium-proxy");
  app->add_option("--agent-socket", f.agent_socket, "the agent's proxy socket");
  app->add_option("--state-dir", f.state_dir, "where the last policy is kept across restarts");
  app->add_option("--bpf-pin-dir", f.bpf_pin_dir, "the agent's bpffs pin directory");
  app->add_option("--log-level", f.log_level, "debug, info, warn, error");
  app->add_option("--request-header-timeout-ms", f.request_header_timeout_ms,
                  "time a client has to send a whole request head");
  app->add_option("--idle-timeout-ms", f.idle_timeout_ms, "close connections idle this long");
  app->add_option("--connect-timeout-ms", f.connect_timeout_ms, "upstream connect timeout");
  app->add_option("--max-connections", f.max_connections,
                  "open client connections at most; more are closed at once");
  app->add_option("--threads", f.threads,
                  "event loop threads (each connection stays on one; default 1)");
  app->add_flag("--no-supervisor", f.no_supervisor, "run the worker in this process");
  app->add_option("--restarts", f.restarts, "restarts so far (set by the supervisor)");
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = cli::parse(*app, args);
  if (!parsed.ok()) return cli::usageError(std::cerr, "cilium-proxy", parsed.error().message());
  if (*parsed == cli::Outcome::kHelp) {
    std::fputs(cli::help(*app).c_str(), stdout);
    return 0;
  }
  setLogLevel(f.log_level);
  // A peer that went away is an error on that connection, never the end of the process.
  ::signal(SIGPIPE, SIG_IGN);
  if (f.no_supervisor) return runWorker(f);
  return supervise(args);
}
