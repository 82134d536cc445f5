// Hubble's configuration keys (enable-hubble, hubble-*): declared here, composed by the agent.
#pragma once

#include <cstdint>
#include <string>

#include "agent/config/config.h"

namespace cilium::hubble {

struct Config {
  bool enable_hubble = false;
  // TCP listener of the Hubble server, as Cilium's default; "" = Unix socket only. With TLS on
  // (the default) it listens only once hubble-tls-cert-file and hubble-tls-key-file are given.
  std::string hubble_listen_address = ":4244";
  bool hubble_disable_tls = false;
  std::string hubble_tls_cert_file;
  std::string hubble_tls_key_file;
  std::string hubble_tls_client_ca_files;  // comma-separated; any = clients need certificates
  std::string hubble_socket_path = "/var/run/cilium/hubble.sock";
  uint32_t hubble_event_buffer_capacity = 4095;  // flows kept in Hubble's ring
  uint32_t hubble_event_queue_size = 0;          // events waiting for the decoder; 0 = auto
  std::string hubble_metrics_server;             // "" = off; Cilium's Helm default ":9965"
  // Cilium's hubble-metrics: which flow metrics and their options, e.g.
  // "drop:sourceContext=pod;destinationContext=namespace,tcp,flow,port-distribution,icmp"
  // (agent/hubble/metrics.h). "" = all of them without context labels.
  std::string hubble_metrics;
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::hubble
