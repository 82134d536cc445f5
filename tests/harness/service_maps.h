// The service load balancer's maps as the datapath pinned them, for tests and benchmarks that
// program Services with a service::Manager and no agent.
#pragma once

#include <memory>
#include <string>

#include "agent/bpf/map.h"
#include "agent/service/service.h"

namespace cilium::testing {

struct ServiceMapSet {
  std::unique_ptr<bpf::KernelMap<lb4_key, lb4_service>> services;
  std::unique_ptr<bpf::KernelMap<lb4_slot_key, uint32_t>> slots;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb4_backend>> backends;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb4_reverse_nat>> revnat;
  std::unique_ptr<bpf::KernelMap<lb6_key, lb4_service>> services6;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb6_backend>> backends6;
  std::unique_ptr<bpf::KernelMap<uint32_t, lb6_reverse_nat>> revnat6;

  // For a Manager (no Maglev map: add one to the result where a test needs it).
  service::ServiceMaps maps() const {
    service::ServiceMaps m{services.get(), slots.get(), backends.get(), revnat.get()};
    m.services6 = services6.get();
    m.backends6 = backends6.get();
    m.revnat6 = revnat6.get();
    return m;
  }
};

// Opens cilium_lb4_{services,slots,backends,reverse_nat} and cilium_lb6_{services,backends,
// reverse_nat} under `pin_dir`.
Result<ServiceMapSet> openServiceMaps(const std::string& pin_dir);

}  // namespace cilium::testing
