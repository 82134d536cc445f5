// Pool arithmetic, round-robin allocation and the state file.
#include "agent/ipam/ipam.h"

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"

namespace cilium::ipam {
namespace {

auto log() {
  static auto l = logger("ipam");
  return l;
}

constexpr int kStateVersion = 1;
constexpr size_t kMaxOwnerLength = 253;

}  // namespace

// ---- Pool ----------------------------------------------------------------------------------

Result<Pool> Pool::create(const IpPrefix& cidr) {
  int host_bits = cidr.hostBits();
  if (host_bits > 64)
    return makeError(ErrorCode::kInvalidArgument,
                     "pod CIDR {} is too large: at most 64 host bits (use /64 or longer)",
                     cidr.toString());
  // IPv4 loses network, router and broadcast; IPv6 the anycast address and the router.
  uint64_t size_minus_one = host_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << host_bits) - 1;
  uint64_t last = cidr.family() == IpFamily::kV4 ? size_minus_one - 1 : size_minus_one;
  if (host_bits < 2 || last < kFirst)
    return makeError(ErrorCode::kInvalidArgument,
                     "pod CIDR {} leaves no address for endpoints after the router",
                     cidr.toString());
  return Pool(cidr, last);
}

Result<uint64_t> Pool::endpointOffset(const IpAddr& ip) const {
  if (!cidr_.contains(ip))
    return makeError(ErrorCode::kInvalidArgument, "{} is not in {}", ip.toString(),
                     cidr_.toString());
  uint64_t off = *ip.offsetFrom(cidr_.addr());
  if (off == 0)
    return makeError(ErrorCode::kInvalidArgument, "{} is the network address of {}", ip.toString(),
                     cidr_.toString());
  if (off == 1)
    return makeError(ErrorCode::kInvalidArgument,
                     "{} is the router address of {}, reserved for the node", ip.toString(),
                     cidr_.toString());
  if (off > last_)
    return makeError(ErrorCode::kInvalidArgument, "{} is the broadcast address of {}",
                     ip.toString(), cidr_.toString());
  return off;
}

Result<IpAddr> Pool::allocateNext(std::string_view owner) {
  // First free offset in [from, to], walking the ordered set of used offsets alongside.
  auto firstFree = [&](uint64_t from, uint64_t to) -> std::optional<uint64_t> {
    if (from > to) return std::nullopt;
    auto it = used_.lower_bound(from);
    for (uint64_t cand = from;; cand++) {
      if (it == used_.end() || it->first != cand) return cand;
      ++it;
      if (cand == to) return std::nullopt;
    }
  };
  std::optional<uint64_t> off;
  if (cursor_ < last_) off = firstFree(cursor_ + 1, last_);
  if (!off) off = firstFree(kFirst, cursor_);
  if (!off)
    return makeError(ErrorCode::kResourceExhausted, "no free address in {}: {} of {} in use",
                     cidr_.toString(), used_.size(), capacity());
  used_.emplace(*off, std::string(owner));
  cursor_ = *off;
  return cidr_.addr().plus(*off);
}

Status Pool::allocate(const IpAddr& ip, std::string_view owner) {
  CILIUM_ASSIGN_OR_RETURN(uint64_t off, endpointOffset(ip));
  auto it = used_.find(off);
  if (it != used_.end()) {
    if (it->second == owner) return okStatus();
    return makeError(ErrorCode::kAlreadyExists, "{} is already allocated{}", ip.toString(),
                     it->second.empty() ? "" : " to " + it->second);
  }
  used_.emplace(off, std::string(owner));
  return okStatus();
}

Status Pool::release(const IpAddr& ip) {
  CILIUM_ASSIGN_OR_RETURN(uint64_t off, endpointOffset(ip));
  if (used_.erase(off) == 0)
    return makeError(ErrorCode::kNotFound, "{} is not allocated", ip.toString());
  return okStatus();
}

std::vector<IpAddr> Pool::releaseOwner(std::string_view owner) {
  std::vector<IpAddr> out;
  for (auto it = used_.begin(); it != used_.end();) {
    if (it->second == owner) {
      out.push_back(cidr_.addr().plus(it->first));
      it = used_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::optional<std::string> Pool::ownerOf(const IpAddr& ip) const {
  auto off = endpointOffset(ip);
  if (!off.ok()) return std::nullopt;
  auto it = used_.find(*off);
  if (it == used_.end()) return std::nullopt;
  return it->second;
}

std::vector<Allocation> Pool::allocations() const {
  std::vector<Allocation> out;
  out.reserve(used_.size());
  for (const auto& [off, owner] : used_) out.push_back({cidr_.addr().plus(off), owner});
  return out;
}

// ---- Ipam ----------------------------------------------------------------------------------

Result<std::unique_ptr<Ipam>> Ipam::open(const Config& cfg) {
  std::unique_ptr<Ipam> ipam(new Ipam(cfg));
  if (cfg.ipv4) {
    if (cfg.ipv4->family() != IpFamily::kV4)
      return makeError(ErrorCode::kInvalidArgument, "IPv4 pool CIDR {} is not IPv4",
                       cfg.ipv4->toString());
    CILIUM_ASSIGN_OR_RETURN(auto p, Pool::create(*cfg.ipv4));
    ipam->v4_.emplace(std::move(p));
  }
  if (cfg.ipv6) {
    if (cfg.ipv6->family() != IpFamily::kV6)
      return makeError(ErrorCode::kInvalidArgument, "IPv6 pool CIDR {} is not IPv6",
                       cfg.ipv6->toString());
    CILIUM_ASSIGN_OR_RETURN(auto p, Pool::create(*cfg.ipv6));
    ipam->v6_.emplace(std::move(p));
  }
  std::lock_guard lock(ipam->mu_);
  if (cfg.restore && !cfg.state_file.empty()) CILIUM_RETURN_IF_ERROR(ipam->restoreLocked());
  // Written at once: the file then describes the pools in force, and an unwritable state
  // directory stops the agent at start rather than at the first pod.
  CILIUM_RETURN_IF_ERROR(ipam->persistLocked());
  return ipam;
}

Pool* Ipam::pool(IpFamily f) {
  auto& p = f == IpFamily::kV4 ? v4_ : v6_;
  return p ? &*p : nullptr;
}

bool Ipam::enabled(IpFamily f) const {
  std::lock_guard lock(mu_);
  return f == IpFamily::kV4 ? v4_.has_value() : v6_.has_value();
}

Status Ipam::validateOwner(std::string_view owner) {
  if (owner.size() > kMaxOwnerLength)
    return makeError(ErrorCode::kInvalidArgument, "owner is {} bytes long, at most {} allowed",
                     owner.size(), kMaxOwnerLength);
  for (char c : owner)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return Error(ErrorCode::kInvalidArgument, "owner contains a control character");
  return okStatus();
}

Result<Lease> Ipam::allocateNext(IpFamily f, std::string_view owner) {
  CILIUM_RETURN_IF_ERROR(validateOwner(owner));
  std::lock_guard lock(mu_);
  Pool* p = pool(f);
  if (!p) return makeError(ErrorCode::kUnimplemented, "{} allocation is disabled", ipFamilyName(f));
  uint64_t cursor = p->cursor();
  CILIUM_ASSIGN_OR_RETURN(IpAddr ip, p->allocateNext(owner));
  if (auto st = persistLocked(); !st.ok()) {
    (void)p->release(ip);
    p->setCursor(cursor);
    return std::move(st).error();
  }
  log()->debug("allocated ip={} owner={}", ip.toString(), owner);
  return Lease{ip, p->router(), p->cidr()};
}

Result<Lease> Ipam::allocate(const IpAddr& ip, std::string_view owner) {
  CILIUM_RETURN_IF_ERROR(validateOwner(owner));
  std::lock_guard lock(mu_);
  Pool* p = pool(ip.family());
  if (!p)
    return makeError(ErrorCode::kUnimplemented, "{} allocation is disabled",
                     ipFamilyName(ip.family()));
  bool held = p->ownerOf(ip).has_value();
  CILIUM_RETURN_IF_ERROR(p->allocate(ip, owner));
  if (!held) {
    if (auto st = persistLocked(); !st.ok()) {
      (void)p->release(ip);
      return std::move(st).error();
    }
    log()->debug("allocated ip={} owner={}", ip.toString(), owner);
  }
  return Lease{ip, p->router(), p->cidr()};
}

Status Ipam::release(const IpAddr& ip) {
  std::lock_guard lock(mu_);
  Pool* p = pool(ip.family());
  if (!p)
    return makeError(ErrorCode::kUnimplemented, "{} allocation is disabled",
                     ipFamilyName(ip.family()));
  auto owner = p->ownerOf(ip);
  CILIUM_RETURN_IF_ERROR(p->release(ip));
  if (auto st = persistLocked(); !st.ok()) {
    (void)p->allocate(ip, owner.value_or(""));
    return st;
  }
  log()->debug("released ip={} owner={}", ip.toString(), owner.value_or(""));
  return okStatus();
}

Result<std::vector<IpAddr>> Ipam::releaseOwner(std::string_view owner) {
  if (owner.empty())
    return Error(ErrorCode::kInvalidArgument, "an empty owner names no allocation");
  CILIUM_RETURN_IF_ERROR(validateOwner(owner));
  std::lock_guard lock(mu_);
  std::vector<IpAddr> released;
  for (Pool* p : {pool(IpFamily::kV4), pool(IpFamily::kV6)}) {
    if (!p) continue;
    auto r = p->releaseOwner(owner);
    released.insert(released.end(), r.begin(), r.end());
  }
  if (released.empty()) return makeError(ErrorCode::kNotFound, "owner {} holds no address", owner);
  if (auto st = persistLocked(); !st.ok()) {
    for (const auto& ip : released) (void)pool(ip.family())->allocate(ip, owner);
    return std::move(st).error();
  }
  log()->debug("released owner={} count={}", owner, released.size());
  return released;
}

std::vector<PoolStatus> Ipam::status() const {
  std::lock_guard lock(mu_);
  std::vector<PoolStatus> out;
  for (const auto* p : {v4_ ? &*v4_ : nullptr, v6_ ? &*v6_ : nullptr}) {
    if (!p) continue;
    out.push_back({p->cidr().family(), p->cidr(), p->router(), p->capacity(), p->allocations()});
  }
  return out;
}

std::optional<IpAddr> Ipam::router(IpFamily f) const {
  std::lock_guard lock(mu_);
  const auto& p = f == IpFamily::kV4 ? v4_ : v6_;
  if (!p) return std::nullopt;
  return p->router();
}

std::optional<IpAddr> Ipam::addressOf(IpFamily f, std::string_view owner) const {
  std::lock_guard lock(mu_);
  const auto& p = f == IpFamily::kV4 ? v4_ : v6_;
  if (!p) return std::nullopt;
  for (const auto& a : p->allocations())
    if (a.owner == owner) return a.ip;
  return std::nullopt;
}

std::optional<IpPrefix> Ipam::cidr(IpFamily f) const {
  std::lock_guard lock(mu_);
  const auto& p = f == IpFamily::kV4 ? v4_ : v6_;
  if (!p) return std::nullopt;
  return p->cidr();
}

// State file:
//   {"version": 1, "pools": {"ipv4": {"cidr": "10.200.0.0/24", "cursor": "10.200.0.7",
//                                    "allocations": {"10.200.0.2": "default/xwing", ...}}}}
Status Ipam::persistLocked() const {
  if (cfg_.state_file.empty()) return okStatus();
  nlohmann::json pools = nlohmann::json::object();
  for (const auto* p : {v4_ ? &*v4_ : nullptr, v6_ ? &*v6_ : nullptr}) {
    if (!p) continue;
    nlohmann::json allocs = nlohmann::json::object();
    for (const auto& a : p->allocations()) allocs[a.ip.toString()] = a.owner;
    pools[std::string(ipFamilyName(p->cidr().family()))] = {
        {"cidr", p->cidr().toString()},
        {"cursor", p->cidr().addr().plus(p->cursor()).toString()},
        {"allocations", std::move(allocs)},
    };
  }
  nlohmann::json doc = {{"version", kStateVersion}, {"pools", std::move(pools)}};
  auto st = writeFileAtomic(cfg_.state_file, doc.dump(2) + "\n", 0600);
  if (!st.ok()) return st.error().withContext("persist IPAM state");
  return okStatus();
}

Status Ipam::restoreLocked() {
  auto text = readFile(cfg_.state_file);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) return okStatus();
    return text.error();
  }
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kFailedPrecondition,
                     "IPAM state {} is unreadable ({}); fix it, or move it away to start with no "
                     "allocations",
                     cfg_.state_file, why);
  };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  if (!doc.is_object() || !doc.contains("version") || !doc["version"].is_number_integer())
    return bad("no version");
  if (doc["version"].get<int64_t>() != kStateVersion)
    return bad(fmt::format("version {} is not {}", doc["version"].dump(), kStateVersion));
  if (!doc.contains("pools") || !doc["pools"].is_object()) return bad("no pools object");
  size_t restored = 0;
  for (const auto& [fam_name, pj] : doc["pools"].items()) {
    auto fam = parseIpFamily(fam_name);
    if (!fam.ok()) return bad("unknown pool " + fam_name);
    if (!pj.is_object() || !pj.contains("cidr") || !pj["cidr"].is_string() ||
        !pj.contains("allocations") || !pj["allocations"].is_object())
      return bad("pool " + fam_name + " lacks cidr or allocations");
    auto old_cidr = IpPrefix::parse(pj["cidr"].get<std::string>());
    if (!old_cidr.ok()) return bad(old_cidr.error().message());
    Pool* p = pool(*fam);
    if (!p) {
      log()->warn("dropping restored allocations: {} allocation is now disabled cidr={} count={}",
                  fam_name, old_cidr->toString(), pj["allocations"].size());
      continue;
    }
    if (*old_cidr != p->cidr())
      log()->warn("pod CIDR changed old={} new={}: keeping the allocations that still fit",
                  old_cidr->toString(), p->cidr().toString());
    for (const auto& [ip_text, owner] : pj["allocations"].items()) {
      auto ip = IpAddr::parse(ip_text);
      if (!ip.ok() || !owner.is_string()) return bad("allocation " + ip_text + " is malformed");
      if (auto st = p->allocate(*ip, owner.get<std::string>()); !st.ok()) {
        log()->warn("dropping restored allocation ip={} owner={}: {}", ip_text,
                    owner.get<std::string>(), st.error().message());
        continue;
      }
      restored++;
    }
    if (*old_cidr == p->cidr() && pj.contains("cursor") && pj["cursor"].is_string()) {
      auto cur = IpAddr::parse(pj["cursor"].get<std::string>());
      if (cur.ok())
        if (auto off = cur->offsetFrom(p->cidr().addr())) p->setCursor(*off);
    }
  }
  log()->info("restored IPAM state file={} allocations={}", cfg_.state_file, restored);
  return okStatus();
}

}  // namespace cilium::ipam
