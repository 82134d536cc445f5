// hubble: observe flows and server status over the Observer gRPC API.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "agent/common/cli.h"
#include "agent/hubble/cli/cli.h"
#include "agent/hubble/proto.h"

namespace {

using cilium::hubble::cli::Args;
using cilium::hubble::cli::Output;

std::unique_ptr<grpc::ClientContext> g_ctx;  // for SIGINT: cancel the stream, exit cleanly

std::shared_ptr<grpc::Channel> connect(const Args& a) {
  auto dialed = cilium::hubble::cli::dial(a.server, a.tls);
  if (!dialed.ok()) {
    std::cerr << "hubble: " << dialed.error().message() << "\n";
    return nullptr;
  }
  auto ch = *dialed;
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(a.timeout_s))) {
    std::cerr << fmt::format("hubble: cannot connect to {} within {}s\n", a.server, a.timeout_s);
    return nullptr;
  }
  return ch;
}

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --debug: a logfmt line on stderr, as Hubble's logger writes them.
void debugLog(const Args& a, const std::string& msg, const google::protobuf::Message* m = nullptr) {
  if (!a.debug) return;
  std::string fields;
  if (m) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(*m, &json);
    fields = " request=" + json;
  }
  std::cerr << "level=debug msg=\"" << msg << "\" server=" << a.server << fields << "\n";
}

// A GetFlows / GetAgentEvents / GetDebugEvents stream, printed until it ends (or SIGINT).
template <class Resp, class Req, class Call>
int streamEvents(const Args& a, const Req& req, const Call& call, const char* what) {
  g_ctx = std::make_unique<grpc::ClientContext>();
  signal(SIGINT, [](int) {
    if (g_ctx) g_ctx->TryCancel();
  });
  debugLog(a, std::string("Sending ") + what + " request", &req);
  auto reader = call(g_ctx.get(), req);
  Resp resp;
  cilium::hubble::cli::FlowPrinter printer(a.observe.output, a.observe.print, std::cout, std::cerr);
  while (reader->Read(&resp)) {
    printer.write(resp);
    if (a.observe.follow) printer.flush();
  }
  printer.flush();
  auto st = reader->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
    std::cerr << "hubble: " << st.error_message() << "\n";
    return 1;
  }
  return 0;
}

int agentEvents(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto req = cilium::hubble::cli::buildAgentEventsRequest(a.observe, nowNs());
  if (!req.ok()) return cilium::cli::usageError(std::cerr, "hubble", req.error().message());
  auto stub = observer::Observer::NewStub(ch);
  return streamEvents<observer::GetAgentEventsResponse>(
      a, *req,
      [&](grpc::ClientContext* c, const observer::GetAgentEventsRequest& r) {
        return stub->GetAgentEvents(c, r);
      },
      "GetAgentEvents");
}

int debugEvents(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto req = cilium::hubble::cli::buildDebugEventsRequest(a.observe, nowNs());
  if (!req.ok()) return cilium::cli::usageError(std::cerr, "hubble", req.error().message());
  auto stub = observer::Observer::NewStub(ch);
  return streamEvents<observer::GetDebugEventsResponse>(
      a, *req,
      [&](grpc::ClientContext* c, const observer::GetDebugEventsRequest& r) {
        return stub->GetDebugEvents(c, r);
      },
      "GetDebugEvents");
}

int observe(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto req = cilium::hubble::cli::buildRequest(a.observe, nowNs());
  if (!req.ok()) return cilium::cli::usageError(std::cerr, "hubble", req.error().message());
  auto stub = observer::Observer::NewStub(ch);
  return streamEvents<observer::GetFlowsResponse>(
      a, *req,
      [&](grpc::ClientContext* c, const observer::GetFlowsRequest& r) {
        return stub->GetFlows(c, r);
      },
      "GetFlows");
}

int status(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto stub = observer::Observer::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(a.timeout_s));
  observer::ServerStatusResponse resp;
  auto st = stub->ServerStatus(&ctx, observer::ServerStatusRequest{}, &resp);
  if (!st.ok()) {
    std::cerr << "hubble: " << st.error_message() << "\n";
    return 1;
  }
  double pct = resp.max_flows() ? 100.0 * resp.num_flows() / resp.max_flows() : 0;
  double uptime_s = resp.uptime_ns() / 1e9;
  std::cout << fmt::format("Healthcheck (via {}): Ok\n", a.server);
  std::cout << fmt::format("Current/Max Flows: {}/{} ({:.2f}%)\n", resp.num_flows(),
                           resp.max_flows(), pct);
  std::cout << fmt::format("Flows/s: {:.2f}\n", uptime_s > 0 ? resp.seen_flows() / uptime_s : 0);
  std::cout << fmt::format("Seen Flows: {}\n", resp.seen_flows());
  std::cout << fmt::format(
      "Connected Nodes: {}/{}\n", resp.num_connected_nodes().value(),
      resp.num_connected_nodes().value() + resp.num_unavailable_nodes().value());
  return 0;
}

int nodes(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto stub = observer::Observer::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(a.timeout_s));
  observer::GetNodesResponse resp;
  auto st = stub->GetNodes(&ctx, observer::GetNodesRequest{}, &resp);
  if (!st.ok()) {
    std::cerr << "hubble: " << st.error_message() << "\n";
    return 1;
  }
  std::cout << fmt::format("{:<24} {:<12} {:<10} {:<14} {}\n", "NAME", "STATUS", "AGE", "FLOWS/S",
                           "CURRENT/MAX-FLOWS");
  for (const auto& n : resp.nodes()) {
    double up = n.uptime_ns() / 1e9;
    std::cout << fmt::format("{:<24} {:<12} {:<10} {:<14.2f} {}/{}\n", n.name(),
                             n.state() == relay::NODE_CONNECTED ? "Connected" : "Unavailable",
                             fmt::format("{}s", static_cast<uint64_t>(up)),
                             up > 0 ? n.seen_flows() / up : 0, n.num_flows(), n.max_flows());
  }
  return 0;
}

int namespaces(const Args& a, std::shared_ptr<grpc::Channel> ch) {
  auto stub = observer::Observer::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(a.timeout_s));
  observer::GetNamespacesResponse resp;
  auto st = stub->GetNamespaces(&ctx, observer::GetNamespacesRequest{}, &resp);
  if (!st.ok()) {
    std::cerr << "hubble: " << st.error_message() << "\n";
    return 1;
  }
  std::cout << fmt::format("{:<24} {}\n", "CLUSTER", "NAMESPACE");
  for (const auto& n : resp.namespaces())
    std::cout << fmt::format("{:<24} {}\n", n.cluster(), n.namespace_());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = cilium::hubble::cli::parseArgs(args);
  if (!parsed.ok()) return cilium::cli::usageError(std::cerr, "hubble", parsed.error().message());
  const auto& a = *parsed;
  if (a.command == "help") {
    std::cout << a.help;
    return 0;
  }
  if (a.command == "version") {
    std::cout << "hubble (cilium-cpp) " << CILIUM_VERSION << "\n";
    return 0;
  }
  auto target = cilium::hubble::cli::grpcTarget(a.server);
  if (!target.ok()) return cilium::cli::usageError(std::cerr, "hubble", target.error().message());
  if (a.debug && a.tls.allow_insecure)
    std::cerr << "level=warning msg=\"--tls-allow-insecure: the server's certificate is not "
                 "checked\"\n";
  auto ch = connect(a);
  if (!ch) return 1;
  debugLog(a, "Connected");
  if (a.command == "observe") return observe(a, ch);
  if (a.command == "agent-events") return agentEvents(a, ch);
  if (a.command == "debug-events") return debugEvents(a, ch);
  if (a.command == "status") return status(a, ch);
  if (a.command == "namespaces") return namespaces(a, ch);
  return nodes(a, ch);
}
