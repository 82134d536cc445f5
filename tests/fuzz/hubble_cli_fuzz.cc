// Fuzz target: the `hubble` CLI's hand-written parts. The first byte picks:
//   even: command-line arguments (one per line) through parseArgs and buildRequest (durations,
//         RFC 3339 times, ports, identities, verdicts, selectors) and the --server target;
//   odd:  a GetFlowsResponse in wire bytes, as a server sends it, through every output format.
// Beyond "never crash": bad flags are kInvalidArgument naming a flag, and a request the CLI
// builds serializes and parses back to itself.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include "agent/hubble/cli/cli.h"

namespace {

namespace cli = cilium::hubble::cli;

void refused(const cilium::Error& e) {
  if (e.code() != cilium::ErrorCode::kInvalidArgument || e.message().empty()) std::abort();
}

void arguments(std::string_view text) {
  std::vector<std::string> argv;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    // argv strings end at a NUL.
    std::string arg(text.substr(start, end - start));
    argv.push_back(arg.substr(0, arg.find('\0')));
    start = end + 1;
  }
  auto args = cli::parseArgs(argv);
  if (!args.ok()) return refused(args.error());
  if (auto target = cli::grpcTarget(args->server); !target.ok()) refused(target.error());
  if (args->command != "observe") return;
  // 2026-01-01T00:00:00Z: relative times count back from here.
  auto req = cli::buildRequest(args->observe, 1'767'225'600'000'000'000);
  if (!req.ok()) return refused(req.error());
  std::string wire;
  if (!req->SerializeToString(&wire)) std::abort();
  observer::GetFlowsRequest back;
  if (!back.ParseFromString(wire) ||
      !google::protobuf::util::MessageDifferencer::Equals(back, *req))
    std::abort();
}

void response(std::string_view bytes) {
  observer::GetFlowsResponse r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  (void)cli::formatCompact(r);
  (void)cli::formatJson(r);
  for (auto out : {cli::Output::kTable, cli::Output::kDict}) {
    std::ostringstream o, e;
    cli::FlowPrinter printer(out, {}, o, e);
    printer.write(r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Strings that are not UTF-8 make protobuf log every refused parse: noise, and slow.
  static bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    arguments(rest);
  else
    response(rest);
  return 0;
}
