// cilium-cni: the CNI plugin binary. stdin carries the network configuration, CNI_* the
// request; the result or error goes to stdout, logs to a file (never to stdout).
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <string>

#include "agent/common/log.h"
#include "cni/plugin.h"
#include "cni/spec.h"

int main() {
  using namespace cilium;
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());

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
