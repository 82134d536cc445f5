// Hubble's configuration keys.
#include "agent/hubble/config.h"

#include "agent/hubble/metrics_spec.h"

namespace cilium::hubble {

namespace {
Status checkMetricsSpec(std::string_view v) {
  auto spec = parseMetricsSpec(v);
  if (!spec.ok()) return spec.error();
  return okStatus();
}
}  // namespace

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->boolean("enable-hubble", "Enable the Hubble server", &Config::enable_hubble);
    r->string("hubble-listen-address",
              "Additional host:port for the Hubble server (\"\": socket only)",
              &Config::hubble_listen_address, config::checkListenAddress);
    r->boolean("hubble-disable-tls", "Serve the Hubble TCP listener without TLS",
               &Config::hubble_disable_tls);
    r->path("hubble-tls-cert-file", "PEM certificate (chain) of the Hubble server",
            &Config::hubble_tls_cert_file, true);
    r->path("hubble-tls-key-file", "PEM private key of the Hubble server",
            &Config::hubble_tls_key_file, true);
    r->string("hubble-tls-client-ca-files",
              "Comma-separated PEM CA files; clients must present a certificate they signed",
              &Config::hubble_tls_client_ca_files);
    r->path("hubble-socket-path", "Unix socket of the Hubble server", &Config::hubble_socket_path);
    r->uint("hubble-event-buffer-capacity", "Number of flows kept in Hubble's ring buffer",
            &Config::hubble_event_buffer_capacity, 1, 1 << 20);
    r->uint("hubble-event-queue-size",
            "Datapath events waiting for Hubble's decoder before new ones are lost (0: auto)",
            &Config::hubble_event_queue_size, 0, 1 << 20);
    r->string("hubble-metrics-server", "host:port to serve Hubble metrics on (\"\": off)",
              &Config::hubble_metrics_server, config::checkListenAddress)
        .defaultNote("off");
    r->string("hubble-metrics",
              "Hubble flow metrics and their options (drop:sourceContext=pod,tcp,flow,...)",
              &Config::hubble_metrics, checkMetricsSpec)
        .defaultNote("all, without context labels");
    r->check([](const Config& c) {
      return config::checkSocketPathLength("hubble-socket-path", c.hubble_socket_path);
    });
    return r;
  }();
  return *r;
}

}  // namespace cilium::hubble
