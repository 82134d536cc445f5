// Fuzz target: the state files an agent reads back at restart, which a crash, a full disk or a
// hand edit may have mangled. The first byte picks the file; the rest is its content:
//   0 endpoint state (<state-dir>/endpoints/<id>.json, endpoint::fromStateJson)
//   1 IPAM state (ipam.json, restored by ipam::Ipam::open)
//   2 identity state (identities.json, restored by identity::LocalBackend::open)
//   3 policy state (policy.json, restored with policy::Engine::importRules)
// Beyond "never crash": a file is either refused with a message or restored, and what was
// restored survives its own persist-then-restore trip unchanged (a restart after a restart
// gives the same state).
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/endpoint/endpoint.h"
#include "agent/identity/allocator.h"
#include "agent/ipam/ipam.h"
#include "agent/policy/policy.h"
#include "tests/fuzz/scratch_dir.h"

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

namespace {

using cilium::ErrorCode;

void write(const std::string& path, std::string_view content) {
  if (!cilium::writeFileAtomic(path, content, 0600).ok()) std::abort();
}

void refusedWithMessage(const cilium::Error& e, ErrorCode want) {
  if (e.code() != want || e.message().empty()) std::abort();
}

void endpointState(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto ep = cilium::endpoint::fromStateJson(j, "fuzz.json");
  if (!ep.ok()) {
    if (ep.error().message().empty()) std::abort();
    return;
  }
  nlohmann::json saved = cilium::endpoint::toStateJson(*ep);
  auto again = cilium::endpoint::fromStateJson(saved, "fuzz.json");
  if (!again.ok() || cilium::endpoint::toStateJson(*again) != saved) std::abort();
}

void identityState(std::string_view text) {
  using cilium::identity::LocalBackend;
  const std::string dir = cilium::fuzz::scratchDir() + "/identity";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  write(dir + "/identities.json", text);
  auto backend = LocalBackend::open(dir, 256, 65535, "identities.json");
  if (!backend.ok()) return refusedWithMessage(backend.error(), ErrorCode::kFailedPrecondition);
  auto restored = (*backend)->restoreInUse();
  if (!restored.ok()) std::abort();
  for (const auto& id : *restored)
    if (id.id < 256 || id.id > 65535 || id.labels.empty()) std::abort();
  // Labels seen before get their number back; new labels get a number never handed out.
  cilium::labels::Labels fresh{{cilium::labels::Source::kK8s, "app", "fuzz-fresh-labels"}};
  auto added = (*backend)->acquire(fresh, std::nullopt);
  backend->reset();
  auto reopened = LocalBackend::open(dir, 256, 65535, "identities.json");
  if (!reopened.ok()) std::abort();
  auto again = (*reopened)->restoreInUse();
  if (!again.ok()) std::abort();
  size_t want = restored->size() + (added.ok() ? 1 : 0);
  bool had_fresh = false;
  for (const auto& id : *restored) had_fresh = had_fresh || id.labels == fresh;
  if (had_fresh) want--;
  if (again->size() != want) std::abort();
  for (const auto& id : *restored) {
    auto same = (*reopened)->acquire(id.labels, std::nullopt);
    if (!same.ok() || *same != id.id) std::abort();
  }
}

void policyState(std::string_view text) {
  // As the daemon restores policy.json: a JSON array of rules, imported as they are.
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array() || j.empty()) return;
  auto ids = cilium::identity::Allocator::open("");
  if (!ids.ok()) std::abort();
  cilium::policy::Engine engine(**ids);
  auto r = engine.importRules(text);
  if (!r.ok()) {
    if (r.error().message().empty()) std::abort();
    return;
  }
  // What persistPolicy() writes restores to the same rules.
  nlohmann::json saved = engine.rulesJson();
  cilium::policy::Engine restarted(**ids);
  auto again = restarted.importRules(saved.dump());
  if (!again.ok() || again->added != r->added || restarted.rulesJson() != saved) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (cilium::setLogLevel("off"), true);
  (void)quiet;
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: endpointState(text); break;
    case 1: cilium::fuzz::ipamState(text, cilium::fuzz::scratchDir()); break;
    case 2: identityState(text); break;
    case 3: policyState(text); break;
  }
  return 0;
}
