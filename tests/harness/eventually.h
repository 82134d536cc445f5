// Waiting in tests for state the test cannot be notified of (another process's REST answers,
// real traffic, an informer's cache): poll a condition until it holds or a deadline passes.
#pragma once

#include <chrono>
#include <thread>

namespace cilium::testing {

// True as soon as `cond()` holds; false when it still does not after `timeout` (checked once
// more at the deadline). `poll` is the pause between checks.
template <typename Cond>
bool eventually(Cond&& cond, std::chrono::milliseconds timeout = std::chrono::seconds(15),
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(poll);
  }
  return cond();
}

}  // namespace cilium::testing
