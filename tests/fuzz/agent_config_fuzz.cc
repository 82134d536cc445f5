// Fuzz target: cilium-agent's configuration as loadConfig() reads it at start: command-line flags
// and a --config-dir (a Kubernetes ConfigMap mounted as one file per key).
//
// Input: flags one per line; after a line "---", ConfigMap entries as "key=value" lines, written
// as files into a scratch directory passed with --config-dir ("\n" in a value is "\\n").
// --config-file and other --config-dir flags are dropped (config_file fuzzes the file's text).
// Beyond "never crash": bad input is kInvalidArgument with a message; an accepted
// configuration passes validateConfig, and every value renders and parses back to itself.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/files.h"
#include "agent/daemon/config.h"
#include "tests/fuzz/scratch_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace cilium;

const std::string& configDir() {
  static const std::string dir = fuzz::scratchDir() + "/config";
  return dir;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  bool in_dir = false;
  std::error_code ec;
  fs::remove_all(configDir(), ec);
  for (auto line : lines(text)) {
    std::string s(line.substr(0, line.find('\0')));  // argv and file names end at a NUL
    if (!in_dir && s == "---") {
      in_dir = true;
      fs::create_directories(configDir(), ec);
      args.push_back("--config-dir=" + configDir());
      continue;
    }
    if (!in_dir) {
      if (s.rfind("--config", 0) == 0) continue;
      args.push_back(std::move(s));
      continue;
    }
    auto eq = s.find('=');
    std::string key = s.substr(0, eq);
    if (key.empty() || key == "." || key == ".." || key.find('/') != std::string::npos ||
        key.size() > 200)
      continue;
    std::string_view raw = eq == std::string::npos ? std::string_view() : line.substr(eq + 1);
    std::string value;
    for (size_t i = 0; i < raw.size(); i++) {
      bool newline = raw[i] == '\\' && i + 1 < raw.size() && raw[i + 1] == 'n';
      value += newline ? '\n' : raw[i];
      i += newline ? 1 : 0;
    }
    if (!writeFileAtomic(configDir() + "/" + key, value).ok()) std::abort();
  }

  daemon::Environment env;
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  env.hostname = [] { return std::string("fuzz-node"); };
  auto loaded = daemon::loadConfig(args, env);
  if (!loaded.ok()) {
    if (loaded.error().code() != ErrorCode::kInvalidArgument || loaded.error().message().empty())
      std::abort();
    return 0;
  }
  if (loaded->help || loaded->version) return 0;
  const daemon::Config& cfg = loaded->config;
  if (!daemon::validateConfig(cfg).ok()) std::abort();
  for (const auto& key : daemon::configKeys()) {
    daemon::Config copy = cfg;
    if (!key.set(copy, daemon::configValueText(key, cfg)).ok()) std::abort();
    if (key.get(copy) != key.get(cfg)) std::abort();
  }
  return 0;
}
