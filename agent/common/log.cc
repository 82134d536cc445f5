// Module loggers sharing one stderr sink, level and format.
#include "agent/common/log.h"

#include <filesystem>
#include <mutex>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace cilium {
namespace {

struct Registry {
  std::mutex mu;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
  // logfmt: time, level and subsystem as fields; callers write further key=value pairs in %v.
  std::string pattern = "time=%Y-%m-%dT%H:%M:%S.%e%z level=%l subsys=%n %v";
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: loggers are used until exit
  return *r;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(std::string_view module) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  std::string name(module);
  if (auto existing = spdlog::get(name)) return existing;
  auto l = std::make_shared<spdlog::logger>(name, r.sink);
  l->set_level(r.level);
  l->set_pattern(r.pattern);
  spdlog::register_logger(l);
  return l;
}

Status logToFile(const std::string& path) {
  spdlog::sink_ptr sink;
  Status result;
  try {
    std::error_code ec;
    auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const std::exception& e) {
    sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    result = makeError(ErrorCode::kInternal, "log file {}: {}", path, e.what());
  }
  auto& r = registry();
  std::lock_guard lock(r.mu);
  r.sink = sink;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks().assign(1, sink);
    l->set_pattern(r.pattern);
  });
  return result;
}

void setLogLevel(std::string_view level) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  r.level = spdlog::level::from_str(std::string(level));
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(r.level); });
}

}  // namespace cilium
