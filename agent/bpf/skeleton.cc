// Pin reconciliation and sizing shared by every skeleton.
#include "agent/bpf/skeleton.h"

#include <unistd.h>

#include "agent/bpf/map.h"
#include "agent/common/log.h"

namespace cilium::bpf::detail {

Error openError(const char* mangled_type_name, int err) {
  // typeid of a C struct `foo` is "3foo": drop the length prefix.
  std::string name(mangled_type_name);
  name.erase(0, name.find_first_not_of("0123456789"));
  return errnoError(err, "open BPF object " + name);
}

void disablePinning(bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) bpf_map__set_pin_path(map, nullptr);
}

Status reconcilePins(bpf_object* obj) {
  static auto log = logger("bpf");
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* path = bpf_map__pin_path(map);
    if (path == nullptr || ::access(path, F_OK) != 0) continue;
    auto fd = openPinned(path);
    if (!fd.ok()) return fd.error().withContext("reuse pinned map");
    auto info = mapInfo(fd->get());
    if (!info.ok()) return info.error();
    bool same = info->type == bpf_map__type(map) && info->key_size == bpf_map__key_size(map) &&
                info->value_size == bpf_map__value_size(map) &&
                info->max_entries == bpf_map__max_entries(map) &&
                info->flags == bpf_map__map_flags(map);
    if (same) continue;
    log->warn(
        "replacing pinned map with a different layout map={} path={} old=type:{}/key:{}/value:{}/"
        "max:{}/flags:{:#x} new=type:{}/key:{}/value:{}/max:{}/flags:{:#x}",
        bpf_map__name(map), path, info->type, info->key_size, info->value_size, info->max_entries,
        info->flags, static_cast<int>(bpf_map__type(map)), bpf_map__key_size(map),
        bpf_map__value_size(map), bpf_map__max_entries(map), bpf_map__map_flags(map));
    if (::unlink(path) != 0) return errnoError(errno, std::string("unpin ") + path);
  }
  return okStatus();
}

}  // namespace cilium::bpf::detail

namespace cilium::bpf {

Status adoptPinnedSizes(bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* path = bpf_map__pin_path(map);
    if (path == nullptr || ::access(path, F_OK) != 0) continue;
    CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, openPinned(path));
    CILIUM_ASSIGN_OR_RETURN(MapInfo info, mapInfo(fd.get()));
    if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
        info.value_size != bpf_map__value_size(map) || info.max_entries == 0)
      continue;
    if (int err = bpf_map__set_max_entries(map, info.max_entries); err != 0)
      return errnoError(-err, std::string("size map ") + bpf_map__name(map));
  }
  return okStatus();
}

}  // namespace cilium::bpf
