// Kernel map facts shared by every KernelMap instantiation.
#include "agent/bpf/map.h"

#include <bpf/libbpf.h>

namespace cilium::bpf {

Result<MapInfo> mapInfo(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return errnoError(errno, "map info");
  MapInfo out;
  out.name = info.name;
  out.type = info.type;
  out.key_size = info.key_size;
  out.value_size = info.value_size;
  out.max_entries = info.max_entries;
  out.flags = info.map_flags;
  out.id = info.id;
  return out;
}

size_t possibleCpus() {
  static const size_t n = [] {
    int r = libbpf_num_possible_cpus();
    return r > 0 ? static_cast<size_t>(r) : size_t{1};
  }();
  return n;
}

Result<UniqueFd> openPinned(const std::string& path) {
  int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) return errnoError(errno, "open pinned " + path);
  return UniqueFd(fd);
}

}  // namespace cilium::bpf
