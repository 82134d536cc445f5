// Opening the pinned service maps.
#include "tests/harness/service_maps.h"

namespace cilium::testing {

Result<ServiceMapSet> openServiceMaps(const std::string& pin_dir) {
  ServiceMapSet m;
  CILIUM_ASSIGN_OR_RETURN(
      m.services,
      (bpf::KernelMap<lb4_key, lb4_service>::fromPinned(pin_dir + "/cilium_lb4_services")));
  CILIUM_ASSIGN_OR_RETURN(
      m.slots, (bpf::KernelMap<lb4_slot_key, uint32_t>::fromPinned(pin_dir + "/cilium_lb4_slots")));
  CILIUM_ASSIGN_OR_RETURN(
      m.backends,
      (bpf::KernelMap<uint32_t, lb4_backend>::fromPinned(pin_dir + "/cilium_lb4_backends")));
  CILIUM_ASSIGN_OR_RETURN(
      m.revnat,
      (bpf::KernelMap<uint32_t, lb4_reverse_nat>::fromPinned(pin_dir + "/cilium_lb4_reverse_nat")));
  CILIUM_ASSIGN_OR_RETURN(
      m.services6,
      (bpf::KernelMap<lb6_key, lb4_service>::fromPinned(pin_dir + "/cilium_lb6_services")));
  CILIUM_ASSIGN_OR_RETURN(
      m.backends6,
      (bpf::KernelMap<uint32_t, lb6_backend>::fromPinned(pin_dir + "/cilium_lb6_backends")));
  CILIUM_ASSIGN_OR_RETURN(
      m.revnat6,
      (bpf::KernelMap<uint32_t, lb6_reverse_nat>::fromPinned(pin_dir + "/cilium_lb6_reverse_nat")));
  return m;
}

}  // namespace cilium::testing
