// The cilium-cni binary as a runtime runs it, without an agent: a huge stdin is refused without
// being read, and CNI_NETNS values that are not a network namespace get the spec's codes before
// the agent is asked anything.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/harness/temp_dir.h"

extern char** environ;

namespace cilium::cni {
namespace {

struct CniRun {
  int exit_code = -1;
  nlohmann::json out;
  size_t stdin_taken = 0;  // bytes the plugin accepted before it closed stdin
  long max_rss_kib = 0;
};

class CniBinaryTest : public ::testing::Test {
 protected:
  // Runs cilium-cni with `vars` and `stdin_bytes` of input (`conf` padded with spaces).
  CniRun run(const std::vector<std::string>& vars, const std::string& conf,
             size_t stdin_bytes = 0) {
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<std::string> env = vars;
    env.push_back("CILIUM_CNI_LOG_FILE=" + dir_.file("cni.log"));
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(CILIUM_CNI_BINARY), nullptr};
    pid_t pid = -1;
    EXPECT_EQ(::posix_spawn(&pid, CILIUM_CNI_BINARY, &fa, nullptr, argv, envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    CniRun r;
    std::thread writer([&, fd = in[1]] {
      std::string data = conf;
      if (stdin_bytes > data.size()) data.append(stdin_bytes - data.size(), ' ');
      std::string_view rest = data;
      while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), std::min<size_t>(rest.size(), 1 << 16));
        if (n <= 0) break;  // EPIPE: the plugin closed its stdin
        r.stdin_taken += static_cast<size_t>(n);
        rest.remove_prefix(static_cast<size_t>(n));
      }
      ::close(fd);
    });
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int status = 0;
    rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    writer.join();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.max_rss_kib = ru.ru_maxrss;
    if (!text.empty()) r.out = nlohmann::json::parse(text, nullptr, false);
    return r;
  }
  std::vector<std::string> add(const std::string& netns) {
    return {"CNI_COMMAND=ADD", "CNI_CONTAINERID=c0ffee", "CNI_NETNS=" + netns, "CNI_IFNAME=eth0",
            "CNI_PATH=/opt/cni/bin"};
  }
  std::string conf() const {
    return R"({"cniVersion":"1.0.0","name":"cilium","type":"cilium-cni","socket-path":")" +
           dir_.file("nobody.sock") + R"("})";
  }

  testing::TempDir dir_;
};

TEST_F(CniBinaryTest, AHugeStdinIsRefusedUnreadWithCode6) {
  ::signal(SIGPIPE, SIG_IGN);  // the writer meets a closed pipe
  auto r = run(add("/proc/self/ns/net"), conf(), size_t{100} << 20);
  EXPECT_EQ(r.exit_code, 6);
  ASSERT_TRUE(r.out.is_object());
  EXPECT_EQ(r.out["code"], 6);
  EXPECT_EQ(r.out["msg"], "the network configuration on stdin is over 1024 KiB; refused unread");
  // 1 MiB and what the pipe holds, not 100 MiB; and no copy of it in memory.
  EXPECT_LT(r.stdin_taken, size_t{4} << 20);
  EXPECT_LT(r.max_rss_kib, 64 * 1024);
  // A config with room to spare under the limit is read whole (and reaches the agent check).
  auto fine = run(add("/proc/self/ns/net"), conf(), 512 << 10);
  EXPECT_EQ(fine.out["code"], 11) << fine.out.dump();
}

TEST_F(CniBinaryTest, NetnsThatIsNotANetworkNamespaceGetsTheSpecsCode) {
  std::string fifo = dir_.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string netns;
    int code;
  };
  for (const auto& c : std::vector<Case>{{"/etc/passwd", 4},
                                         {"/tmp", 4},
                                         {"/dev/null", 4},
                                         {fifo, 4},
                                         {"/proc/self/ns/mnt", 4},
                                         {"/var/run/netns/no-such-pod", 3}}) {
    auto r = run(add(c.netns), conf());
    EXPECT_EQ(r.exit_code, c.code) << c.netns << ": " << r.out.dump();
    EXPECT_EQ(r.out["code"], c.code) << c.netns;
    EXPECT_NE(r.out["msg"].get<std::string>().find(c.netns), std::string::npos) << r.out.dump();
  }
  // A real network namespace passes the check; with no agent behind the socket that is code 11.
  auto ok = run(add("/proc/self/ns/net"), conf());
  EXPECT_EQ(ok.out["code"], 11) << ok.out.dump();
}

}  // namespace
}  // namespace cilium::cni
