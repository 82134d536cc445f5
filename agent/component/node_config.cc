// The keys of paths and the node's identity, which every module may read.
#include <cctype>

#include "agent/component/component.h"

namespace cilium::component {

std::string NodeConfig::stateFile(std::string_view name) const {
  return persistentStateDir() + "/" + std::string(name);
}

std::string NodeConfig::sysctlPath(std::string_view key) const {
  return procfs + (procfs.back() == '/' ? "sys/" : "/sys/") + std::string(key);
}

namespace {

config::Registry<NodeConfig>* build() {
  using config::invalidValue;
  auto* r = new config::Registry<NodeConfig>;
  r->path("state-dir",
          "Directory for runtime state; what must survive a restart is kept in <state-dir>/state",
          &NodeConfig::state_dir);
  r->path("bpf-root", "Path to the BPF filesystem (mounted there if it is not)",
          &NodeConfig::bpf_root);
  r->path("bpf-pin-dir",
          "Directory under bpf-root where maps and links are pinned",
          &NodeConfig::bpf_pin_dir, true)
      .defaultNote("<bpf-root>/cilium");
  r->path("cgroup-root", "Path to the cgroup2 filesystem for socket-level hooks",
          &NodeConfig::cgroup_root);
  r->path("procfs",
          "Path to the host's procfs, where sysctls are written (the host's /proc mounted into "
          "an unprivileged container, whose own /proc/sys is read-only)",
          &NodeConfig::procfs);
  r->path("socket-path", "Unix socket the REST API is served on", &NodeConfig::socket_path);
  r->string("node-name", "Name of this node",
            &NodeConfig::node_name,
            [](std::string_view v) -> Status {
              if (v.size() > 253) return invalidValue("longer than 253 characters");
              if (v.find_first_of(" /") != std::string_view::npos)
                return invalidValue("contains a space or '/'");
              return okStatus();
            })
      .defaultNote("$K8S_NODE_NAME or hostname");
  r->string("cluster-name", "Name of the cluster", &NodeConfig::cluster_name,
            [](std::string_view v) -> Status {
              if (v.empty() || v.size() > 32) return invalidValue("must be 1..32 characters");
              for (char c : v)
                if (!(std::islower(static_cast<unsigned char>(c)) ||
                      std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
                  return invalidValue("may contain only lower-case letters, digits and '-'");
              return okStatus();
            });
  r->uint("cluster-id", "Unique identifier of the cluster (0..255)", &NodeConfig::cluster_id, 0,
          255);
  r->check([](const NodeConfig& c) -> Status {
    auto under = [](const std::string& path, const std::string& root) {
      return path == root || path.rfind(root.back() == '/' ? root : root + "/", 0) == 0;
    };
    if (!c.bpf_pin_dir.empty() && !under(c.bpf_pin_dir, c.bpf_root))
      return makeError(ErrorCode::kInvalidArgument, "bpf-pin-dir {} is not inside bpf-root {}",
                       c.bpf_pin_dir, c.bpf_root);
    return config::checkSocketPathLength("socket-path", c.socket_path);
  });
  return r;
}

}  // namespace

const config::Registry<NodeConfig>& nodeConfigKeys() {
  static const auto* r = build();
  return *r;
}

}  // namespace cilium::component
