// The health checker's kernel side: the health endpoint's network namespace (made by a thread
// that unshares, kept by a file descriptor of the agent, so it disappears with the agent even
// after SIGKILL and leaves nothing to sweep), its veth pair and addressing; the /hello
// responders (in that namespace, and on the node); and the probes (ICMP echo on a raw socket,
// HTTP GET /hello, over IPv4 or IPv6) from the node's namespace or from the health endpoint's.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "agent/common/error.h"
#include "agent/common/fd.h"
#include "agent/common/inet.h"
#include "agent/health/prober.h"

namespace httplib {
class Server;
}

namespace cilium::health {

// The veth pair of the health endpoint: host side kHostIfname in the node's namespace, eth0 in
// the health namespace with `ip`/32, a link route to `gateway` (the router address on
// cilium_host) and the default route through it; dual stack, also `ip6`/128 with a link route
// to `gateway6` and the IPv6 default route through it.
inline constexpr const char* kHostIfname = "lxc_health";

struct HealthLink {
  UniqueFd netns;  // the health namespace; closing the last reference removes it (and the veth)
  int host_ifindex = 0;
  std::string host_mac;
  std::string pod_mac;
  std::string netnsPath() const;  // /proc/<pid>/fd/<n>, for runInNetns and the endpoint's record
};

// Creates the namespace and the pair; kAlreadyExists when kHostIfname exists (it belongs to a
// live agent: an earlier agent's went with its namespace). On error nothing is left.
Result<HealthLink> createHealthLink(const IpAddr& ip, const IpAddr& gateway, uint32_t mtu,
                                    const std::optional<IpAddr>& ip6 = std::nullopt,
                                    const std::optional<IpAddr>& gateway6 = std::nullopt);

// GET /hello -> 200 on ip:port (0.0.0.0 for any IPv4 address, :: for any of both families), in
// the namespace `netns` (-1: the caller's).
// The socket is made inside the namespace and served from a thread of the agent.
class Responder {
 public:
  static Result<std::unique_ptr<Responder>> start(int netns, const std::string& ip, uint16_t port,
                                                  std::string node_name);
  ~Responder();
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

 private:
  Responder() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

// Probes on sockets made in the node's namespace (Source::kHost) or in the health endpoint's
// (`endpoint_netns`, -1 while there is none).
class NetProbes final : public Probes {
 public:
  explicit NetProbes(int endpoint_netns) : endpoint_netns_(endpoint_netns) {}
  Result<std::chrono::nanoseconds> icmp(Source from, const IpAddr& ip,
                                        std::chrono::milliseconds timeout) override;
  Result<std::chrono::nanoseconds> http(Source from, const IpAddr& ip, uint16_t port,
                                        std::chrono::milliseconds timeout) override;

 private:
  // Runs `fn` on this thread after moving it into the source's namespace (probes run on
  // threads of their own, which end after the probe).
  Status enter(Source from);
  int endpoint_netns_;
};

}  // namespace cilium::health
