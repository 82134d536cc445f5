#include "agent/common/subprocess.h"

#include <signal.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace cilium {
namespace {

TEST(SubprocessTest, RunCapturesOutputAndExitCode) {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SubprocessTest, RunCheckedReportsFailure) {
  auto r = runChecked({"sh", "-c", "echo broken >&2; exit 1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("broken"), std::string::npos);
}

TEST(SubprocessTest, MissingBinaryExits127) {
  auto r = run({"/nonexistent/binary"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
}

TEST(SubprocessTest, TimeoutKillsTheChild) {
  auto start = std::chrono::steady_clock::now();
  auto r = run({"sleep", "30"}, {}, std::chrono::milliseconds(200));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(SubprocessTest, StopTerminatesALongRunningProcess) {
  auto p = spawn({"sleep", "30"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->running());
  int code = p->stop();
  EXPECT_EQ(code, 128 + SIGTERM);
}

TEST(SubprocessTest, ProcessIgnoringTermIsKilled) {
  std::string out = ::testing::TempDir() + "/ignore_term.out";
  std::remove(out.c_str());
  SpawnOptions opts;
  opts.stdout_path = out;
  auto p = spawn({"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"}, opts);
  ASSERT_TRUE(p.ok());
  // Signal only once the trap is in place.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::ifstream(out).peek() == std::ifstream::traits_type::eof() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int code = p->stop(std::chrono::milliseconds(100));
  EXPECT_EQ(code, 128 + SIGKILL);
}

}  // namespace
}  // namespace cilium
