#include "tests/harness/privileges.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include "agent/bpf/fs.h"
#include "agent/common/fd.h"

namespace cilium::testing {

std::string privilegedUnavailableReason() {
  if (::geteuid() != 0) return "not running as root";
  int fd = ::bpf_map_create(BPF_MAP_TYPE_ARRAY, "cilt_probe", 4, 4, 1, nullptr);
  if (fd < 0) return std::string("bpf() does not work: ") + std::strerror(errno);
  UniqueFd probe(fd);
  if (auto s = bpf::ensureBpffs("/sys/fs/bpf"); !s.ok()) return s.error().toString();
  if (::access("/run/netns", F_OK) != 0 && ::access("/sbin/ip", X_OK) != 0 &&
      ::access("/usr/sbin/ip", X_OK) != 0 && ::access("/usr/bin/ip", X_OK) != 0)
    return "iproute2 (ip) is not installed";
  return "";
}

}  // namespace cilium::testing
