// tcx links through bpf_link_create: libbpf 1.1 has no tcx API, but the kernel's is stable.
#include "agent/bpf/attach.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <vector>

namespace cilium::bpf {
namespace {

// enum bpf_attach_type values from Linux 6.6 (newer than the build host's UAPI headers).
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

int attachType(TcDirection dir) {
  return dir == TcDirection::kIngress ? kBpfTcxIngress : kBpfTcxEgress;
}

}  // namespace

std::string_view directionName(TcDirection dir) {
  return dir == TcDirection::kIngress ? "ingress" : "egress";
}

Result<TcLink> TcLink::attach(const bpf_program* prog, int ifindex, TcDirection dir) {
  int prog_fd = bpf_program__fd(prog);
  if (prog_fd < 0) return Error(ErrorCode::kFailedPrecondition, "program is not loaded");
  int fd =
      ::bpf_link_create(prog_fd, ifindex, static_cast<bpf_attach_type>(attachType(dir)), nullptr);
  if (fd < 0) {
    int err = errno;
    auto e = errnoError(err, fmt::format("tcx attach {} to ifindex {} {}", bpf_program__name(prog),
                                         ifindex, directionName(dir)));
    if (err == EINVAL) return e.withContext("kernel without tcx (needs Linux >= 6.6)?");
    return e;
  }
  return TcLink(UniqueFd(fd));
}

Result<TcLink> TcLink::openPinned(const std::string& path) {
  int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) return errnoError(errno, "open pinned link " + path);
  TcLink link{UniqueFd(fd)};
  link.pin_path_ = path;
  return link;
}

Status TcLink::pin(const std::string& path) {
  if (::bpf_obj_pin(fd_.get(), path.c_str()) != 0) return errnoError(errno, "pin link at " + path);
  pin_path_ = path;
  return okStatus();
}

Status TcLink::replaceProgram(const bpf_program* prog) {
  if (::bpf_link_update(fd_.get(), bpf_program__fd(prog), nullptr) != 0)
    return errnoError(errno, std::string("replace program with ") + bpf_program__name(prog));
  return okStatus();
}

Status TcLink::detach() {
  if (!pin_path_.empty()) {
    if (::unlink(pin_path_.c_str()) != 0 && errno != ENOENT)
      return errnoError(errno, "unpin link " + pin_path_);
    pin_path_.clear();
  }
  // Detaching an already-defunct link (device deleted) reports ENOLINK: nothing is left to do.
  if (::bpf_link_detach(fd_.get()) != 0 && errno != ENOLINK && errno != EINVAL)
    return errnoError(errno, "detach link");
  fd_.reset();
  return okStatus();
}

Result<std::vector<uint32_t>> tcxProgramIds(int ifindex, TcDirection dir) {
  std::vector<uint32_t> ids(64);
  // bpf_prog_query with a tcx attach type returns the attached programs in order.
  __u32 count = static_cast<__u32>(ids.size());
  __u32 attach_flags = 0;
  if (::bpf_prog_query(ifindex, static_cast<bpf_attach_type>(attachType(dir)), 0, &attach_flags,
                       ids.data(), &count) != 0)
    return errnoError(errno, fmt::format("query tcx programs of ifindex {}", ifindex));
  ids.resize(count);
  return ids;
}

}  // namespace cilium::bpf
