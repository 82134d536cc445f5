// Fuzz target: a GetFlowsRequest (protobuf wire bytes, as any gRPC client may send them) to the
// real Observer server over its Unix socket, with a ring of flows of every kind behind it.
// `follow` is cleared (a following stream never ends) unless `first` is also set, which must be
// refused. Beyond "never crash": the answer is OK or INVALID_ARGUMENT with a message, exactly
// when the filters compile; at most `number` flows come back; every flow returned passes the
// request's filters.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/field_mask_util.h>
#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/filter.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/fuzz/scratch_dir.h"

namespace {

using namespace std::chrono_literals;
namespace hubble = cilium::hubble;
namespace t = cilium::hubble::testing;

struct Fixture {
  hubble::StaticResolver resolver;
  std::unique_ptr<hubble::FlowPipeline> pipeline;
  std::unique_ptr<hubble::HubbleServer> server;
  std::unique_ptr<observer::Observer::Stub> stub;
};

// Flows of every kind the decoder makes: forwarded and dropped TCP, replies, UDP, ICMP, policy
// verdicts (allow, deny, audit, redirect), traces at several points, unknown endpoints.
void feed(hubble::FlowPipeline& p) {
  for (int i = 0; i < 48; i++) {
    t::EventSpec s = i % 3 == 1 ? t::policyDrop() : t::EventSpec{};
    s.dport = static_cast<uint16_t>(1000 + i);
    s.ktime_ns = 1000 + static_cast<uint64_t>(i) * 1'000'000'000ULL;
    switch (i % 8) {
      case 2: std::swap(s.src, s.dst), s.sport = 8080, s.ct_state = 1, s.dir = METRIC_EGRESS; break;
      case 3: s.proto = 17, s.dport = 53; break;
      case 4: s.proto = 1, s.sport = 0, s.dport = 0; break;
      case 5:
        s.type = EVENT_POLICY_VERDICT, s.subtype = 0;
        s.verdict = (i / 8) % 2 ? -DROP_POLICY : 0;
        break;
      case 6: s.subtype = TRACE_TO_STACK, s.dst = "192.0.2.1", s.dst_identity = 2; break;
      case 7: s.src = "172.16.0.9", s.src_identity = 16777217, s.tcp_flags = 0x12; break;
      default: break;
    }
    p.onEvent(t::makeEvent(s));
  }
  if (!p.flush(30s)) std::abort();
}

Fixture& fixture() {
  // Never destroyed: the server's threads must not outlive what they use at exit.
  static Fixture* f = [] {
    cilium::setLogLevel("off");
    // Strings that are not UTF-8 make protobuf log every refused parse: noise, and slow.
    google::protobuf::SetLogHandler(nullptr);
    auto* fx = new Fixture();
    fx->resolver.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                             {*cilium::IpAddr::parse("10.200.0.11")});
    fx->resolver.addEndpoint({2, 257, "server", "default", {"k8s:app=server", "k8s:tier=db"}},
                             {*cilium::IpAddr::parse("10.200.0.12")});
    hubble::PipelineOptions po;
    po.node_name = "fuzz-node";
    po.ring_capacity = 64;
    fx->pipeline = std::make_unique<hubble::FlowPipeline>(po, &fx->resolver, &fx->resolver);
    if (!fx->pipeline->start().ok()) std::abort();
    feed(*fx->pipeline);
    hubble::ServerOptions so;
    so.unix_socket = cilium::fuzz::scratchDir() + "/hubble.sock";
    so.version = "fuzz";
    fx->server = std::make_unique<hubble::HubbleServer>(*fx->pipeline, so);
    if (!fx->server->start().ok()) std::abort();
    fx->stub = observer::Observer::NewStub(
        grpc::CreateChannel("unix://" + so.unix_socket, grpc::InsecureChannelCredentials()));
    return fx;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& fx = fixture();
  observer::GetFlowsRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  const bool first_and_follow = req.first() && req.follow();
  if (!first_and_follow) req.set_follow(false);
  auto filters = hubble::FlowFilters::compile(req.whitelist(), req.blacklist());
  // Other reasons the server refuses: fields it does not know (a newer client's), a field mask
  // naming no flow field. A masked flow may lack the fields a filter looked at.
  const auto& mask =
      req.field_mask().paths_size() > 0 ? req.field_mask() : req.experimental().field_mask();
  const bool masked = mask.paths_size() > 0;
  const bool refusable =
      !req.GetReflection()->GetUnknownFields(req).empty() ||
      !req.experimental().GetReflection()->GetUnknownFields(req.experimental()).empty() ||
      (masked && !google::protobuf::util::FieldMaskUtil::IsValidFieldMask<flow::Flow>(mask));

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  auto reader = fx.stub->GetFlows(&ctx, req);
  observer::GetFlowsResponse resp;
  uint64_t flows = 0;
  while (reader->Read(&resp)) {
    if (!resp.has_flow()) continue;
    flows++;
    if (!filters.ok() || (!masked && !filters->allows(resp.flow()))) std::abort();
  }
  grpc::Status st = reader->Finish();
  if (st.ok()) {
    if (!filters.ok() || first_and_follow || refusable) std::abort();
    if (req.number() > 0 && flows > req.number()) std::abort();
  } else {
    // Anything but a refusal of the request (a hang, a lost server) is a bug.
    if (st.error_code() != grpc::StatusCode::INVALID_ARGUMENT || st.error_message().empty())
      std::abort();
    if (filters.ok() && !first_and_follow && !refusable) std::abort();
  }
  return 0;
}
