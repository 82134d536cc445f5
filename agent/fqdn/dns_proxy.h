// The DNS proxy (docs/l7.md, "DNS proxy"): in the agent, as in Cilium. The datapath steers the
// UDP and TCP port-53 traffic of endpoints with rules.dns to 127.0.0.1:<cilium-dns-egress>
// (socket assignment, the original destination kept). For each query the proxy finds the
// endpoint by its source address, the server's identity in the ipcache, and checks the name
// against the endpoint's DNS rules for that server and port (DnsPolicy): a denied query is
// answered with the reject code (REFUSED by default) from the server's address; an allowed one is
// forwarded to the original server from the node's own address (not transparently: see the doc),
// and its answer, once the NameManager has made the addresses enforceable, is sent back to the
// pod from the server's address.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/endpoint/manager.h"
#include "agent/fqdn/name_manager.h"
#include "agent/ipcache/ipcache.h"
#include "agent/policy/policy.h"
#include "agent/proxy/wire.h"

namespace cilium::fqdn {

// The endpoints' DNS rules (the L7 policy of their redirected DNS ports), as the endpoint
// manager hands them over. Thread-safe.
class DnsPolicy final : public endpoint::L7PolicySink {
 public:
  void l7PoliciesChanged(const std::vector<Update>& updates) override;
  void endpointRemoved(uint16_t endpoint_id) override;

  struct Verdict {
    bool allowed = false;
    bool known = false;  // the source is an endpoint with DNS rules
    uint16_t endpoint_id = 0;
    uint32_t identity = 0;
  };
  // A query for `name` (normalised) from `source` to a server of identity `server` on
  // `proto`/`port`: allowed when a rule of the endpoint covering (egress, proto, port, server)
  // allows everything there or has a DNS rule matching the name. Unknown sources: denied.
  Verdict check(const IpAddr& source, uint8_t proto, uint16_t port, uint32_t server,
                const std::string& name) const;
  size_t endpoints() const;

 private:
  struct Ep {
    uint16_t id = 0;
    uint32_t identity = 0;
    std::vector<policy::L7PortRule> rules;  // egress rules with DNS or allow_all
  };
  mutable std::mutex mu_;
  std::map<uint16_t, std::vector<IpAddr>> ip_of_;  // an endpoint's IPv4 and IPv6 addresses
  std::map<IpAddr, Ep> by_ip_;
};

struct DnsProxyOptions {
  uint16_t port = 0;                  // cilium-dns-egress
  std::string address = "127.0.0.1";  // the datapath assigns to this address (PROXY_LISTEN_ADDR)
  // IPv6 queries are assigned to this one (bpf/abi/proxy.h); "" = none. A namespace without
  // IPv6 cannot bind it: the proxy then serves IPv4 only (IPv6 DNS redirects drop).
  std::string address6 = "::1";
  uint8_t reject_rcode = 5;  // tofqdns-dns-reject-response-code (REFUSED; 3 NXDOMAIN)
  std::chrono::milliseconds upstream_timeout{10000};
  size_t max_tcp_connections = 1024;
};

// One event of a query the proxy handled (for Hubble and metrics), as Cilium's DNS proxy reports
// them: the query when it is decided (allowed: forwarded; denied: answered with the reject
// code, and nothing more is reported), then for an allowed query the answer the pod gets (the
// server's, or SERVFAIL when the server failed or its addresses could not be made enforceable).
struct DnsRecord {
  enum class Kind : uint8_t { kQuery, kAnswer };
  Kind kind = Kind::kQuery;
  std::chrono::system_clock::time_point time;
  uint16_t proxy_port = 0;
  uint16_t endpoint_id = 0;
  uint32_t source_identity = 0, server_identity = 0;
  IpAddr source, server;
  uint16_t source_port = 0, server_port = 53;
  uint8_t proto = 0;
  std::string name;
  uint16_t qtype = 0;
  bool allowed = false;
  // Answers: what the pod got (the server's answer, or the proxy's SERVFAIL).
  std::optional<DnsResponse> response;
  bool upstream_failed = false;     // no usable answer from the server (timeout, error, garbage)
  bool upstream_timed_out = false;  // of upstream_failed: no answer within upstream_timeout
  bool not_enforceable = false;     // the addresses could not be made enforceable (SERVFAIL)
  std::chrono::nanoseconds latency{0};  // answers: from the query's arrival to the answer sent
};

// The proxy's view of a record as Hubble's L7 flow source (Cilium's LogRecord with its DNS
// part): a query from the endpoint to the server, an answer from the server to the endpoint;
// verdict forwarded, denied (a refused query) or error (SERVFAIL from the proxy). The query
// name is fully qualified ("example.com."), as Cilium logs it.
proxy::AccessRecord toAccessRecord(const DnsRecord& r);

struct DnsProxyStats {
  uint64_t queries = 0, allowed = 0, denied = 0, malformed = 0, upstream_errors = 0;
  uint64_t upstream_timeouts = 0;  // of upstream_errors: the server did not answer in time
  uint64_t answers = 0;            // answers sent for allowed queries (the server's or SERVFAIL)
  // TCP connections closed unanswered because max_tcp_connections were open (Cilium's
  // semaphore rejections).
  uint64_t rejected_connections = 0;
};

class DnsProxy {
 public:
  // Listens (UDP and TCP) and serves on a thread of its own. `policy`, `names` and `ipcache`
  // must outlive the proxy.
  static Result<std::unique_ptr<DnsProxy>> start(DnsProxyOptions options, const DnsPolicy& policy,
                                                 NameManager& names, const ipcache::IpCache& ipc);
  ~DnsProxy();
  DnsProxy(const DnsProxy&) = delete;
  DnsProxy& operator=(const DnsProxy&) = delete;

  // Called on the proxy's thread for every query answered; must be quick. Set before traffic.
  void setRecordHandler(std::function<void(const DnsRecord&)> handler);
  DnsProxyStats stats() const;
  uint16_t port() const { return options_.port; }

 private:
  struct Impl;
  explicit DnsProxy(DnsProxyOptions options);
  DnsProxyOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cilium::fqdn
