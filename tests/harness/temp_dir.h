// A scratch directory for one unit test, removed with its contents when the test ends.
// Header-only so that unprivileged tests can use it without linking the netns harness.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace cilium::testing {

class TempDir {
 public:
  // Short paths on purpose: Unix socket paths must fit in 108 bytes.
  TempDir() {
    std::string tmpl = "/tmp/cilu" + std::to_string(::getpid()) + "-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    if (std::getenv("CILIUM_TEST_KEEP_TMP") == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cilium::testing
