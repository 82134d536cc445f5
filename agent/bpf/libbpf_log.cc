#include "agent/bpf/libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include "agent/common/log.h"

namespace cilium::bpf {
namespace {

int printToSpdlog(enum libbpf_print_level level, const char* format, va_list args) {
  static auto log = logger("libbpf");
  char buf[1024];
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(buf, sizeof(buf), format, copy);
  va_end(copy);
  std::string msg;
  if (n >= static_cast<int>(sizeof(buf))) {
    msg.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(msg.data(), msg.size(), format, args);
    msg.resize(static_cast<size_t>(n));
  } else if (n > 0) {
    msg.assign(buf, static_cast<size_t>(n));
  }
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  switch (level) {
    case LIBBPF_WARN: log->warn("{}", msg); break;
    case LIBBPF_INFO: log->debug("{}", msg); break;
    case LIBBPF_DEBUG: log->trace("{}", msg); break;
  }
  return n;
}

}  // namespace

void routeLibbpfLogs() { libbpf_set_print(printToSpdlog); }

}  // namespace cilium::bpf
