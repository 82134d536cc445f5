// Fuzz target: the bytes a client sends through the L7 proxy (agent/proxy/http1.h), fed to the
// request parser in pieces the input chooses, each request head decided against a compiled HTTP
// policy as the proxy does. Beyond "never crash": the bytes taken never exceed those fed, heads
// and bodies are cut at exact boundaries (head + body bytes == bytes taken), and once the parser
// failed it takes nothing more.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/proxy/http1.h"
#include "agent/proxy/l7_policy.h"

namespace {

using namespace cilium::proxy;

const CompiledPolicy& policy() {
  static auto p = [] {
    PolicySnapshot s;
    s.version = 1;
    EndpointPolicy ep;
    ep.id = 1;
    ep.identity = 100;
    ep.ipv4 = "10.0.0.1";
    PortRule r;
    r.proto = 6;
    r.port = 80;
    r.bits = 16;
    r.identities = {0};
    r.http = {{"POST", "/v1/request-landing", "", {}, {}},
              {"GET",
               "/public/.*",
               "deathstar(\\.local)?",
               {"X-Ok"},
               {{"X-Has", "v", HeaderMatch::Mismatch::kReplace}}}};
    ep.rules.push_back(r);
    s.endpoints.push_back(ep);
    auto c = CompiledPolicy::compile(s);
    if (!c.ok()) std::abort();
    return *c;
  }();
  return *p;
}

struct Counter : Http1Parser::Handler {
  size_t bytes = 0;
  void onHead(Http1Head& h) override {
    bytes += h.raw.size();
    RequestView v;
    v.method = h.method;
    v.path = h.url;
    if (auto host = h.header("host")) v.host = *host;
    for (const auto& [k, val] : h.headers) v.headers.emplace_back(k, val);
    static const cilium::IpAddr kEndpoint = *cilium::IpAddr::parse("10.0.0.1");
    auto ep = policy().endpointByAddress(kEndpoint);
    if (!ep) std::abort();
    (void)policy().decide(*ep, Direction::kIngress, 6, 80, 7, v);
  }
  void onBody(const char*, size_t len) override { bytes += len; }
  void onMessageEnd() override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the piece size, so that splits inside tokens are explored.
  size_t piece = 1 + data[0] % 64;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1, taken = 0;
  Counter c;
  Http1Parser parser(Http1Parser::Kind::kRequest, c, Http1Limits{4096, 20, 1024});
  while (left > 0) {
    size_t n = std::min(piece, left);
    bool failed_before = parser.failed();
    size_t t = parser.feed(p, n);
    if (t > n) std::abort();
    if (failed_before && t != 0) std::abort();
    taken += t;
    if (t < n) break;  // an upgrade or an error: the proxy stops parsing here
    p += n;
    left -= n;
  }
  if (c.bytes > taken) std::abort();
  return 0;
}
