// Fuzz target: a ring-buffer record through the Hubble decoder, and any bytes after the record
// as a flow.FlowFilter applied to the flow. Invariants: no crash; a decoded flow survives a
// protobuf round trip and renders in every CLI format; a filter either compiles or is refused.
#include <cstdlib>
#include <sstream>

#include <google/protobuf/stubs/logging.h>

#include "agent/bpf/abi.h"
#include "agent/hubble/cli/cli.h"
#include "agent/hubble/decoder.h"
#include "agent/hubble/filter.h"
#include "agent/hubble/resolver.h"

namespace {

int hubbleDecode(const uint8_t* data, size_t size) {
  // Strings that are not UTF-8 make protobuf log every refused parse: noise, and slow.
  static bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  static cilium::hubble::StaticResolver* resolver = [] {
    auto* r = new cilium::hubble::StaticResolver();
    r->addEndpoint({1, 1001, "client", "default", {"k8s:app=client"}},
                   {*cilium::IpAddr::parse("10.200.0.11")});
    r->addEndpoint({2, 1002, "server", "default", {"k8s:app=server"}},
                   {*cilium::IpAddr::parse("10.200.0.12")});
    return r;
  }();
  cilium::hubble::Decoder decoder(cilium::hubble::DecoderOptions{"fuzz", 1}, resolver, resolver);
  observer::GetFlowsResponse resp;
  auto st = decoder.decodeRecord({data, size}, *resp.mutable_flow());
  if (!st.ok()) return 0;

  std::string wire;
  if (!resp.SerializeToString(&wire)) std::abort();
  observer::GetFlowsResponse back;
  if (!back.ParseFromString(wire) || back.SerializeAsString() != wire) std::abort();
  (void)cilium::hubble::cli::formatCompact(resp);
  (void)cilium::hubble::cli::formatJson(resp);
  for (auto out : {cilium::hubble::cli::Output::kTable, cilium::hubble::cli::Output::kDict}) {
    std::ostringstream o, e;
    cilium::hubble::cli::FlowPrinter printer(out, {}, o, e);
    printer.write(resp);
  }

  if (size > sizeof(cilium_event)) {
    flow::FlowFilter filter;
    if (filter.ParseFromArray(data + sizeof(cilium_event),
                              static_cast<int>(size - sizeof(cilium_event)))) {
      auto pred = cilium::hubble::compileFilter(filter);
      if (pred.ok()) (void)(*pred)(resp.flow());
    }
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hubbleDecode(data, size);
}
