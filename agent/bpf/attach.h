// tc attachment of programs to network devices through tcx links (Linux >= 6.6).
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium::bpf {

enum class TcDirection { kIngress, kEgress };

std::string_view directionName(TcDirection dir);

// A tcx link: a program attached to one hook of one device, in the network namespace of the
// calling thread. Closing an unpinned link detaches the program; a pinned link stays attached
// until detach() or until the device goes away, which is how the datapath outlives the agent.
class TcLink {
 public:
  static Result<TcLink> attach(const bpf_program* prog, int ifindex, TcDirection dir);
  // Reopens a link pinned by an earlier process.
  static Result<TcLink> openPinned(const std::string& path);

  TcLink(TcLink&&) noexcept = default;
  TcLink& operator=(TcLink&&) noexcept = default;

  // Pins the link at `path` (on bpffs) so the attachment survives this process.
  Status pin(const std::string& path);
  // Swaps the attached program atomically; packets see either the old or the new one.
  Status replaceProgram(const bpf_program* prog);
  // Detaches now and removes the pin, if any.
  Status detach();

  const std::string& pinPath() const { return pin_path_; }

 private:
  explicit TcLink(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  std::string pin_path_;
};

// Ids of the programs attached to a device hook through tcx, in order.
Result<std::vector<uint32_t>> tcxProgramIds(int ifindex, TcDirection dir);

}  // namespace cilium::bpf
