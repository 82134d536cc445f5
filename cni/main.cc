// cilium-cni: the CNI plugin binary. stdin carries the network configuration, CNI_* the
// request; the result or error goes to stdout, logs to a file (never to stdout).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "agent/common/log.h"
#include "cni/input.h"
#include "cni/plugin.h"
#include "cni/spec.h"

int main() {
  using namespace cilium;
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
