// Hubble's configuration keys.
#include "agent/hubble/config.h"

namespace cilium::hubble {

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->boolean("enable-hubble", "Enable the Hubble server", &Config::enable_hubble);
    r->string("hubble-listen-address",
              "Additional host:port for the Hubble server (\"\": socket only)",
              &Config::hubble_listen_address, config::checkListenAddress)
        .defaultNote("socket only");
    r->path("hubble-socket-path", "Unix socket of the Hubble server", &Config::hubble_socket_path);
    r->uint("hubble-event-buffer-capacity", "Number of flows kept in Hubble's ring buffer",
            &Config::hubble_event_buffer_capacity, 1, 1 << 20);
    r->uint("hubble-event-queue-size",
            "Datapath events waiting for Hubble's decoder before new ones are lost (0: auto)",
            &Config::hubble_event_queue_size, 0, 1 << 20);
    r->string("hubble-metrics-server", "host:port to serve Hubble metrics on (\"\": off)",
              &Config::hubble_metrics_server, config::checkListenAddress)
        .defaultNote("off");
    r->check([](const Config& c) {
      return config::checkSocketPathLength("hubble-socket-path", c.hubble_socket_path);
    });
    return r;
  }();
  return *r;
}

}  // namespace cilium::hubble
