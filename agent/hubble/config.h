// Hubble's configuration keys (enable-hubble, hubble-*): declared here, composed by the agent.
#pragma once

#include <cstdint>
#include <string>

#include "agent/config/config.h"

namespace cilium::hubble {

struct Config {
  bool enable_hubble = false;
  std::string hubble_listen_address;  // "" = Unix socket only
  std::string hubble_socket_path = "/var/run/cilium/hubble.sock";
  uint32_t hubble_event_buffer_capacity = 4095;  // flows kept in Hubble's ring
  uint32_t hubble_event_queue_size = 0;          // events waiting for the decoder; 0 = auto
  std::string hubble_metrics_server;             // "" = off; Cilium's Helm default ":9965"
};
const config::Registry<Config>& configKeys();

}  // namespace cilium::hubble
