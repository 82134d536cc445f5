// The `hubble` command line (observe, status, list nodes): argument parsing, the
// GetFlowsRequest the observe flags stand for, and the output formats. main.cc does the I/O.
//
// Filter flags follow Hubble's CLI: --pod/--ip/--label/--port/--namespace match either side
// (the request gets two whitelist filters, one on the source and one on the destination side);
// --from-* and --to-* pin a side; --verdict, --protocol, --type, --drop-reason-desc,
// --identity apply to both. Repeating a flag ORs its values.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/proto.h"

namespace cilium::hubble::cli {

enum class Output { kCompact, kJson, kTable, kDict };

// --time-format, as Hubble's CLI names Go's layouts (times print in UTC).
enum class TimeFormat {
  kStampMilli,  // Nov 22 21:03:04.123 (the default)
  kStamp,
  kStampMicro,
  kStampNano,
  kRfc3339,  // 2026-11-22T21:03:04Z
  kRfc3339Milli,
  kRfc3339Micro,
  kRfc3339Nano,
  kRfc1123Z,  // Sun, 22 Nov 2026 21:03:04 +0000
};

// How flows are printed.
struct PrintOptions {
  bool node_name = false;  // --print-node-name: "TIME [NODE]: ..."
  bool numeric = false;    // --numeric: addresses and identity numbers, no names
  TimeFormat time_format = TimeFormat::kStampMilli;
};

struct ObserveArgs {
  std::vector<std::string> pod, from_pod, to_pod;
  std::vector<std::string> ns, from_ns, to_ns;
  std::vector<std::string> label, from_label, to_label;
  std::vector<std::string> ip, from_ip, to_ip;
  std::vector<std::string> port, from_port, to_port;
  std::vector<std::string> identity, from_identity, to_identity;
  std::vector<std::string> verdict, protocol, type, drop_reason, traffic_direction, node_name;
  std::vector<std::string> tcp_flags;
  std::vector<std::string> service, from_service, to_service;  // namespace/name
  std::vector<std::string> fqdn, from_fqdn, to_fqdn;
  std::vector<std::string> workload, from_workload, to_workload;  // name or Kind/name
  std::vector<std::string> ip_version, http_status, http_method, http_path;
  PrintOptions print;
  // The filter flags given after --not: flows they match are left out (the request's blacklist).
  std::shared_ptr<const ObserveArgs> negated;
  bool follow = false;
  std::optional<uint64_t> last, first;
  bool all = false;
  std::string since, until;
  Output output = Output::kCompact;
};

struct Args {
  std::string command;  // "observe", "status", "nodes", "namespaces", "help", "version"
  std::string server = "unix:///var/run/cilium/hubble.sock";
  int timeout_s = 5;  // connection timeout
  ObserveArgs observe;
  std::string help;  // command "help": the help text of what was asked (hubble observe --help)
};

// argv without the program name (CLI11, agent/common/cli.h). kInvalidArgument naming the flag
// for bad input; --server defaults to $HUBBLE_SERVER, as Hubble's CLI does.
Result<Args> parseArgs(const std::vector<std::string>& argv);
// The top-level help text.
std::string usage();

// The request the observe flags stand for. `now_ns` anchors relative --since/--until ("5m").
Result<observer::GetFlowsRequest> buildRequest(const ObserveArgs& a, int64_t now_ns);

// One line per response in Hubble's compact format:
//   Nov 22 21:03:04.123: default/client:40000 (ID:256) -> default/server:80 (ID:257)
//     to-endpoint FORWARDED (TCP Flags: SYN)
std::string formatCompact(const observer::GetFlowsResponse& r, const PrintOptions& p = {});
// One JSON object per line, protobuf JSON with the proto field names (as `hubble observe -o json`).
std::string formatJson(const observer::GetFlowsResponse& r);
std::string tableHeader();
std::string formatTableRow(const observer::GetFlowsResponse& r, const PrintOptions& p = {});
std::string formatDict(const observer::GetFlowsResponse& r, const PrintOptions& p = {});

// "unix:///path" or "host:port" -> a gRPC target; kInvalidArgument otherwise.
Result<std::string> grpcTarget(const std::string& server);

}  // namespace cilium::hubble::cli
