// The `hubble` command line (observe, status, list nodes): argument parsing, the
// GetFlowsRequest the observe flags stand for, and the output formats. main.cc does the I/O.
//
// Filter flags follow Hubble's CLI: --pod/--ip/--label/--port/--namespace match either side
// (the request gets two whitelist filters, one on the source and one on the destination side);
// --from-* and --to-* pin a side; --verdict, --protocol, --type, --drop-reason-desc,
// --identity apply to both. Repeating a flag ORs its values.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/proto.h"

namespace grpc {
class Channel;
}

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
  bool debug = false;      // --debug: every node status event (NODE_CONNECTED too)
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

// TLS to the server, as Hubble's CLI: --tls (or a tls://host:port server) turns it on; the
// server's certificate is checked against --tls-ca-cert-files (default: the system's CAs) under
// --tls-server-name (default: the server's host); --tls-client-cert-file/--tls-client-key-file
// present a client certificate (relays and nodes with client CAs require one).
struct TlsArgs {
  bool enabled = false;
  // --tls-allow-insecure: the server's certificate chain and name are not checked (TLS still
  // encrypts; a client certificate is still presented).
  bool allow_insecure = false;
  std::vector<std::string> ca_files;
  std::string cert_file, key_file, server_name;
};

struct Args {
  // "observe", "agent-events", "debug-events" (hubble observe agent-events|debug-events),
  // "status", "nodes", "namespaces", "help", "version"
  std::string command;
  bool debug = false;  // --debug (-D): debug messages on stderr
  std::string server = "unix:///var/run/cilium/hubble.sock";
  int timeout_s = 5;  // connection timeout
  TlsArgs tls;
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

// `hubble observe agent-events` / `debug-events`: the request the flags stand for (--last N,
// default 20, --first N, --all, --follow, --since, --until; filter flags are refused there).
Result<observer::GetAgentEventsRequest> buildAgentEventsRequest(const ObserveArgs& a,
                                                                int64_t now_ns);
Result<observer::GetDebugEventsRequest> buildDebugEventsRequest(const ObserveArgs& a,
                                                                int64_t now_ns);
// Hubble's DETAILS of an agent event ("id: 12, namespace: default, pod name: web").
std::string agentEventDetails(const flow::AgentEvent& e, TimeFormat format);

// One line per response in Hubble's compact format:
//   Nov 22 21:03:04.123: default/client:40000 (ID:256) -> default/server:80 (ID:257)
//     to-endpoint FORWARDED (TCP Flags: SYN)
std::string formatCompact(const observer::GetFlowsResponse& r, const PrintOptions& p = {});
// One JSON object per line, protobuf JSON with the proto field names (as `hubble observe -o json`),
// for any of the Observer's responses (flows, agent events, debug events).
std::string formatJson(const google::protobuf::Message& r);

// Go's text/tabwriter as Hubble's CLI sets it up for `-o table` (minwidth 2, padding 3, spaces):
// rows of cells; every cell but a row's last padded to its column's widest cell plus 3.
class TableWriter {
 public:
  void addRow(std::vector<std::string> cells);
  // The rows added since the last flush, aligned; then forgets them.
  std::string flush();
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Prints GetFlows responses as Hubble's CLI does in each output (hubble/pkg/printer):
//   compact  formatCompact, one line per flow or lost event;
//   json     formatJson (jsonpb), one object per line;
//   table    TIMESTAMP [NODE] SOURCE DESTINATION TYPE VERDICT SUMMARY, aligned; the rows are
//            held until flush() (the columns fit every row), as Hubble's tabwriter;
//   dict     "  TIMESTAMP: ..." blocks with keys right-aligned to 11 characters, separated
//            by "------------".
// SOURCE/DESTINATION are "namespace/pod:port" (else service, DNS names, address; --numeric:
// the address); TYPE "to-endpoint", "Policy denied", "policy-verdict:L3-L4 INGRESS",
// "http-request"; VERDICT the verdict (ALLOWED/DENIED/AUDITED for policy verdicts); SUMMARY the
// flow's summary. Lost events print as Hubble's "EVENTS LOST" rows; node status events
// (NODE_UNAVAILABLE, NODE_ERROR; the others, such as NODE_CONNECTED, with --debug) go to `err`.
class FlowPrinter {
 public:
  FlowPrinter(Output output, PrintOptions opts, std::ostream& out, std::ostream& err);
  ~FlowPrinter();  // flush()
  void write(const observer::GetFlowsResponse& r);
  // Agent and debug events as Hubble prints them (compact "TIME [NODE]: TYPE (DETAILS)",
  // table TIMESTAMP TYPE DETAILS / FROM TYPE CPU/MARK MESSAGE, dict, json). One printer prints
  // one kind of response.
  void write(const observer::GetAgentEventsResponse& r);
  void write(const observer::GetDebugEventsResponse& r);
  // Writes held table rows and flushes `out` (follow mode calls it after every response).
  void flush();

 private:
  void writeFlow(const observer::GetFlowsResponse& r);
  void writeLost(const observer::GetFlowsResponse& r);
  void writeNodeStatus(const observer::GetFlowsResponse& r);
  void tableHeaderOnce(std::vector<std::string> columns = {"SOURCE", "DESTINATION", "TYPE",
                                                           "VERDICT", "SUMMARY"});

  Output output_;
  PrintOptions opts_;
  std::ostream& out_;
  std::ostream& err_;
  TableWriter table_;
  uint64_t lines_ = 0;  // responses printed (Hubble's p.line: the header, the separators)
};

// Hubble's columns for a flow: the host ("ns/pod:port", else service, DNS names, address;
// `numeric`: the address), the TYPE ("to-endpoint", "Policy denied",
// "policy-verdict:L3-L4 INGRESS", "http-request") and VERDICT (ALLOWED/DENIED/AUDITED for
// policy verdicts) texts.
std::string flowHostName(const flow::Flow& f, bool source, bool numeric = false);
std::string flowTypeName(const flow::Flow& f);
std::string flowVerdictText(const flow::Flow& f);

// A channel to a Hubble server or relay (`server` as grpcTarget takes it), with `tls`.
// kInvalidArgument for a bad address, kFailedPrecondition for an unreadable PEM file.
Result<std::shared_ptr<grpc::Channel>> dial(const std::string& server, const TlsArgs& tls);

// "unix:///path", "host:port" or "tls://host:port" -> a gRPC target; kInvalidArgument otherwise.
Result<std::string> grpcTarget(const std::string& server);

}  // namespace cilium::hubble::cli
