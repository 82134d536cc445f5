// cilium-cni: the CNI plugin binary. stdin carries the network configuration, CNI_* the
// request; the result or error goes to stdout, logs to a file (never to stdout). Runtimes call
// it without arguments; a person may ask for --help or --version (CLI11, agent/common/cli.h).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>
#include <string>

#include "agent/common/cli.h"
#include "agent/common/log.h"
#include "cni/input.h"
#include "cni/plugin.h"
#include "cni/spec.h"

namespace {

// Arguments are for people only; returns the exit status, or nullopt to run as a plugin.
std::optional<int> commandLine(int argc, char** argv) {
  using namespace cilium;
  if (argc <= 1) return std::nullopt;
  auto app = cli::makeApp(
      "The CNI plugin of cilium-cpp. Container runtimes run it with CNI_COMMAND and the other\n"
      "CNI_* variables set and the network configuration on stdin (CNI specification).\n"
      "Logs go to the configuration's log-file, or $CILIUM_CNI_LOG_FILE.",
      "cilium-cni");
  CLI::Option* version = app->add_flag("--version")->description(
      "Print the plugin's version and the CNI versions it supports");
  auto parsed = cli::parse(*app, std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) return cli::usageError(std::cerr, "cilium-cni", parsed.error().message());
  if (*parsed == cli::Outcome::kHelp) {
    std::cout << cli::help(*app);
    return 0;
  }
  if (version->count() > 0) {
    std::cout << "cilium-cni " << CILIUM_VERSION << "\nCNI protocol versions supported: ";
    const auto& v = cni::supportedVersions();
    for (size_t i = 0; i < v.size(); i++) std::cout << (i ? ", " : "") << v[i];
    std::cout << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cilium;
  if (auto exit = commandLine(argc, argv)) return *exit;
  cni::CniError read_error;
  auto read = cni::readNetConf(STDIN_FILENO, cni::kMaxNetConfBytes, read_error);
  if (!read) {
    // Nothing of the config is trusted (not even its log-file): the default log, the newest
    // version.
    const char* env = std::getenv("CILIUM_CNI_LOG_FILE");
    (void)logToFile(env != nullptr ? env : std::string(cni::kDefaultLogFile));
    logger("cni")->warn("failing with code={} msg={}", static_cast<int>(read_error.code),
                        read_error.msg);
    std::cout << read_error.toJson(cni::supportedVersions().back()) << std::endl;
    return static_cast<int>(read_error.code);
  }
  const std::string& input = *read;

  // The log file and the agent socket can come from the config; a config that does not parse
  // is reported by the plugin itself below.
  cni::CniError ignored;
  auto conf = cni::parseNetConf(input, ignored);
  std::string log_file =
      conf && !conf->log_file.empty() ? conf->log_file : std::string(cni::kDefaultLogFile);
  if (const char* env = std::getenv("CILIUM_CNI_LOG_FILE")) log_file = env;
  (void)logToFile(log_file);  // on failure logs are discarded: stdout and stderr are the runtime's

  api::ClientOptions client;
  if (conf && !conf->socket_path.empty()) client.socket_path = conf->socket_path;
  client.timeout = std::chrono::seconds(60);  // ADD waits for the endpoint's first regeneration
  if (client.socket_path.empty()) client.socket_path = api::defaultSocketPath();
  // The agent drains the queue next to its socket when it starts.
  cni::PluginOptions opts;
  opts.delete_queue_dir =
      (std::filesystem::path(client.socket_path).parent_path() / "deleteQueue").string();
  auto agent = cni::makeAgentApi(client);
  auto host = cni::makeHostNet();
  cni::Plugin plugin(*agent, *host, opts);
  auto out = plugin.run([](const char* name) { return std::getenv(name); }, input);
  if (!out.stdout_text.empty()) std::cout << out.stdout_text << std::endl;
  return out.exit_code;
}
