// A scratch directory for fuzz targets that need files or sockets: /dev/shm/cilium-fuzz-<pid>
// (on tmpfs; /tmp when there is no /dev/shm), removed at exit. A run that crashed cannot remove
// its own, so each new one first removes those of processes that are gone.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace cilium::fuzz {

inline const std::string& scratchDir() {
  // Never destroyed: the exit handler below runs after the destructors of statics that were
  // still being initialized when it was registered.
  static const std::string* dir = [] {
    namespace fs = std::filesystem;
    fs::path root = fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    const std::string prefix = "cilium-fuzz-";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      char* end = nullptr;
      long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
      if (pid > 0 && *end == '\0' && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        fs::remove_all(e.path(), ec);
    }
    fs::path mine = root / (prefix + std::to_string(::getpid()));
    fs::remove_all(mine, ec);
    if (!fs::create_directories(mine, ec)) std::abort();
    static const std::string* path = new std::string(mine.string());
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*path, ignored);
    });
    return path;
  }();
  return *dir;
}

}  // namespace cilium::fuzz
