// cilium-dbg: inspects the agent through its REST API and the datapath through its pinned maps.
//
//   cilium-dbg [-H unix:///path.sock] [-o json] <command>
//     status [--brief]                    config [-a] | config KEY=VALUE...
//     endpoint list | endpoint get <id>   identity list | identity get <id>
//     policy get [labels] | policy import <file> | policy delete <labels>|--all
//     policy selectors                    monitor [--type drop|trace|policy-verdict]...
//     ipam list | ipam allocate [--family ipv4] [--owner o] | ipam release <ip|owner>
//     debuginfo
//     bpf endpoint list | bpf ipcache list | bpf ct list global | bpf metrics list
//     bpf policy get <endpoint id>        (maps under --pin-dir, else the agent's bpf-pin-dir)
// The socket comes from -H/--host, else $CILIUM_SOCK, else /var/run/cilium/cilium.sock.
// Exit status: 0 success, 1 failure, 2 usage error.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "api/model/model.h"

namespace cilium::dbg {

struct DbgEnv {
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::function<uint64_t()> monotonic_seconds;  // the clock of conntrack lifetimes
  std::istream* in = nullptr;                   // "policy import -"
  static DbgEnv system();
};

int runDbg(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const DbgEnv& env);

// One monitor event as a line of text, in the manner of `cilium-dbg monitor`.
std::string formatMonitorEvent(const api::MonitorEvent& ev);

}  // namespace cilium::dbg
