// The IPAM state file part of the state_files fuzz target (see state_files_fuzz.cc).
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/common/files.h"
#include "agent/ipam/ipam.h"

namespace cilium::fuzz {

// ipam.json with `text` as its content, restored by Ipam::open in `dir`.
void ipamState(std::string_view text, const std::string& dir) {
  ipam::Config cfg;
  cfg.ipv4 = *IpPrefix::parse("10.200.0.0/24");
  cfg.ipv6 = *IpPrefix::parse("fd00:200::/120");
  cfg.state_file = dir + "/ipam.json";
  if (!writeFileAtomic(cfg.state_file, text, 0600).ok()) std::abort();
  auto opened = ipam::Ipam::open(cfg);
  if (!opened.ok()) {
    if (opened.error().code() != ErrorCode::kFailedPrecondition || opened.error().message().empty())
      std::abort();
    return;
  }
  // One more allocation is persisted with the restored ones; a second restart sees them all.
  (void)(*opened)->allocateNext(IpFamily::kV4, "fuzz/new");
  auto before = (*opened)->status();
  for (const auto& p : before)
    for (const auto& a : p.allocations)
      if (!p.cidr.contains(a.ip)) std::abort();
  opened->reset();
  auto reopened = ipam::Ipam::open(cfg);
  if (!reopened.ok()) std::abort();
  auto after = (*reopened)->status();
  if (after.size() != before.size()) std::abort();
  for (size_t i = 0; i < before.size(); i++)
    if (after[i].allocations != before[i].allocations) std::abort();
}

}  // namespace cilium::fuzz
