// hubble-relay's flags on CLI11 (agent/common/cli.h).
#include "agent/hubble/relay/options.h"

#include <charconv>

#include "agent/common/cli.h"

namespace cilium::hubble::relay {

namespace {

Error bad(std::string_view flag, std::string_view v, std::string_view why) {
  return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" {}", flag, v, why);
}

std::vector<std::string> splitComma(const std::vector<std::string>& vs) {
  std::vector<std::string> out;
  for (const auto& v : vs) {
    size_t start = 0;
    while (start <= v.size()) {
      auto end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      if (end > start) out.push_back(v.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

}  // namespace

Result<std::chrono::milliseconds> parseDuration(std::string_view flag, std::string_view v) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p == v.data()) return bad(flag, v, "is not a duration (5s, 500ms)");
  std::string_view unit(p, static_cast<size_t>(v.data() + v.size() - p));
  uint64_t mult = 0;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s")
    mult = 1000;
  else if (unit == "m")
    mult = 60000;
  else if (unit == "h")
    mult = 3600000;
  else
    return bad(flag, v, "is not a duration (5s, 500ms)");
  if (n > (uint64_t{1} << 40) / mult) return bad(flag, v, "is too long");
  return std::chrono::milliseconds(n * mult);
}

Result<Args> parseArgs(const std::vector<std::string>& argv) {
  auto app = cli::makeApp(
      "Hubble Relay: the flows of every node's Hubble server through one Observer API.",
      "hubble-relay");
  std::string listen = ":4245", peer_service = "unix:///var/run/cilium/hubble.sock";
  std::string cluster = "default", health_listen = ":4222", metrics_listen;
  std::string dial = "5s", retry = "30s", drain = "1s";
  uint64_t sort_len = 100;
  bool disable_client_tls = false, disable_server_tls = false;
  std::string cert, key, server_cert, server_key;
  std::vector<std::string> cas, client_cas, static_peers;
  app->add_option("--listen-address", listen, "Address to serve the Observer API on")
      ->type_name("ADDR")
      ->default_str(listen);
  app->add_option("--cluster-name", cluster,
                  "Name of the current cluster (prefix of node names announced without one)")
      ->type_name("NAME")
      ->default_str(cluster);
  app->add_option("--health-listen-address", health_listen,
                  "Address of the gRPC health service, plaintext (\"\": none)")
      ->type_name("ADDR")
      ->default_str(health_listen);
  app->add_option("--metrics-listen-address", metrics_listen,
                  "Address to serve Prometheus metrics on, e.g. :9966 (\"\": none)")
      ->type_name("ADDR");
  app->add_option(
         "--peer-service", peer_service,
         "Hubble server serving peer.Peer (unix:///path, plaintext; or host:port, with the "
         "client TLS of the nodes; \"\": none)")
      ->type_name("ADDR")
      ->default_str(peer_service);
  app->add_option("--static-peer", static_peers,
                  "A node known without discovery, NAME=ADDR (repeatable)")
      ->type_name("NAME=ADDR");
  app->add_option("--dial-timeout", dial, "Timeout of a call to a node")->default_str(dial);
  app->add_option("--retry-timeout", retry, "Longest backoff between reconnection attempts")
      ->default_str(retry);
  app->add_option("--sort-buffer-len-max", sort_len,
                  "Events per node waiting for the time-ordered merge")
      ->default_str("100");
  app->add_option("--sort-buffer-drain-timeout", drain,
                  "How long an event waits for a quiet node before it is sent")
      ->default_str(drain);
  app->add_flag("--disable-client-tls", disable_client_tls,
                "Connect to nodes and the peer service without TLS");
  app->add_option("--tls-hubble-client-cert-file", cert, "Client certificate for the nodes (PEM)");
  app->add_option("--tls-hubble-client-key-file", key, "Key of the client certificate (PEM)");
  app->add_option(
      "--tls-hubble-server-ca-files", cas,
      "CAs the nodes' certificates are checked against (PEM; comma-separated or repeated)");
  app->add_flag("--disable-server-tls", disable_server_tls,
                "Serve without TLS (clients connect in plaintext)");
  app->add_option("--tls-relay-server-cert-file", server_cert,
                  "The relay's server certificate (PEM)");
  app->add_option("--tls-relay-server-key-file", server_key, "Key of the server certificate (PEM)");
  app->add_option("--tls-relay-client-ca-files", client_cas,
                  "CAs clients' certificates must be signed by (mTLS; PEM, comma-separated or "
                  "repeated)");
  CILIUM_ASSIGN_OR_RETURN(auto outcome, cli::parse(*app, argv));
  Args a;
  if (outcome == cli::Outcome::kHelp) {
    a.help = true;
    a.help_text = cli::help(*app);
    return a;
  }
  a.relay.listen_address = listen;
  if (listen.empty() || listen.rfind(':') == std::string::npos)
    return bad("--listen-address", listen, "needs host:port or :port");
  for (const auto& [flag, v] : {std::pair{"--health-listen-address", health_listen},
                                std::pair{"--metrics-listen-address", metrics_listen}})
    if (!v.empty() && v.rfind(':') == std::string::npos)
      return bad(flag, v, "needs host:port or :port");
  a.relay.health_listen_address = health_listen;
  a.relay.metrics_listen_address = metrics_listen;
  // A Kubernetes name (Cilium's cluster names are DNS labels).
  if (cluster.empty() || cluster.size() > 63 ||
      cluster.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") != std::string::npos)
    return bad("--cluster-name", cluster, "is not a cluster name (lowercase letters, digits, -)");
  a.pool.cluster_name = cluster;
  a.pool.peer_service = peer_service;
  for (const auto& sp : static_peers) {
    auto eq = sp.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == sp.size())
      return bad("--static-peer", sp, "needs NAME=ADDR");
    a.pool.static_peers.push_back({sp.substr(0, eq), sp.substr(eq + 1), ""});
  }
  CILIUM_ASSIGN_OR_RETURN(a.pool.dial_timeout, parseDuration("--dial-timeout", dial));
  CILIUM_ASSIGN_OR_RETURN(a.pool.retry_timeout, parseDuration("--retry-timeout", retry));
  CILIUM_ASSIGN_OR_RETURN(a.relay.sort_buffer_drain_timeout,
                          parseDuration("--sort-buffer-drain-timeout", drain));
  if (sort_len == 0 || sort_len > 1000000)
    return bad("--sort-buffer-len-max", std::to_string(sort_len), "must be 1..1000000");
  a.relay.sort_buffer_len = sort_len;
  a.pool.tls.enabled = !disable_client_tls;
  a.pool.tls.cert_file = cert;
  a.pool.tls.key_file = key;
  a.pool.tls.server_ca_files = splitComma(cas);
  // As Cilium's relay: the server is TLS unless --disable-server-tls, and then needs its
  // certificate (never a silent fallback to plaintext).
  a.relay.tls.enabled = !disable_server_tls;
  if (!a.relay.tls.enabled && !client_cas.empty())
    return makeError(ErrorCode::kInvalidArgument,
                     "--tls-relay-client-ca-files needs server TLS (drop --disable-server-tls)");
  if (a.relay.tls.enabled && (server_cert.empty() || server_key.empty()))
    return makeError(ErrorCode::kInvalidArgument,
                     "server TLS needs --tls-relay-server-cert-file and "
                     "--tls-relay-server-key-file (or --disable-server-tls)");
  a.relay.tls.cert_file = server_cert;
  a.relay.tls.key_file = server_key;
  a.relay.tls.client_ca_files = splitComma(client_cas);
  return a;
}

}  // namespace cilium::hubble::relay
