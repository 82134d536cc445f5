// The FQDN cache (per endpoint, TTL-bounded, capped per name).
#include "agent/fqdn/cache.h"

#include <algorithm>

#include <fmt/chrono.h>
#include <nlohmann/json.hpp>

#include "agent/policy/fqdn_pattern.h"

namespace cilium::fqdn {

namespace {

std::string timeString(Clock::time_point t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(Clock::to_time_t(secs)));
}

int64_t unixSeconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

bool matches(const std::string& pattern, const std::string& name) {
  return pattern.empty() || policy::fqdnMatches(pattern, name);
}

}  // namespace

std::vector<IpAddr> DnsCache::update(uint16_t ep, const std::string& name,
                                     const std::vector<DnsAddress>& addresses,
                                     Clock::time_point now) {
  std::vector<IpAddr> added;
  if (addresses.empty()) return added;
  auto& ips = entries_[Key{ep, name}];
  for (const auto& a : addresses) {
    uint32_t ttl = std::max(a.ttl, options_.min_ttl);
    auto [it, fresh] = ips.try_emplace(a.ip);
    it->second.ttl = ttl;
    it->second.looked_up = now;
    it->second.expires = now + std::chrono::seconds(ttl);
    if (fresh && names_of_[a.ip][name]++ == 0) added.push_back(a.ip);
  }
  // Over the cap: the addresses looked up longest ago go first.
  while (options_.max_ips_per_host > 0 && ips.size() > options_.max_ips_per_host) {
    auto oldest = std::min_element(ips.begin(), ips.end(), [](const auto& x, const auto& y) {
      return x.second.looked_up < y.second.looked_up;
    });
    auto& names = names_of_[oldest->first];
    if (--names[name] == 0) names.erase(name);
    if (names.empty()) names_of_.erase(oldest->first);
    ips.erase(oldest);
  }
  return added;
}

std::vector<IpAddr> DnsCache::eraseIf(const std::function<bool(const Key&, const Value&)>& pred) {
  std::set<IpAddr> touched;
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto& ips = it->second;
    for (auto ip = ips.begin(); ip != ips.end();) {
      if (!pred(it->first, ip->second)) {
        ++ip;
        continue;
      }
      auto& names = names_of_[ip->first];
      if (--names[it->first.name] == 0) names.erase(it->first.name);
      if (names.empty()) names_of_.erase(ip->first);
      touched.insert(ip->first);
      ip = ips.erase(ip);
    }
    it = ips.empty() ? entries_.erase(it) : std::next(it);
  }
  return {touched.begin(), touched.end()};
}

std::vector<IpAddr> DnsCache::expire(Clock::time_point now) {
  return eraseIf([&](const Key&, const Value& v) { return v.expires + options_.grace < now; });
}

std::vector<IpAddr> DnsCache::clear(std::optional<uint16_t> ep, const std::string& pattern) {
  return eraseIf(
      [&](const Key& k, const Value&) { return (!ep || k.ep == *ep) && matches(pattern, k.name); });
}

std::set<std::string> DnsCache::namesOf(const IpAddr& ip) const {
  std::set<std::string> out;
  if (auto it = names_of_.find(ip); it != names_of_.end())
    for (const auto& [name, n] : it->second) out.insert(name);
  return out;
}

std::vector<std::string> DnsCache::namesOf(uint16_t ep, const IpAddr& ip) const {
  std::vector<std::string> out;
  auto it = names_of_.find(ip);
  if (it == names_of_.end()) return out;
  for (const auto& [name, n] : it->second) {
    auto e = entries_.find(Key{ep, name});
    if (e != entries_.end() && e->second.contains(ip)) out.push_back(name);
  }
  return out;
}

std::set<IpAddr> DnsCache::addresses() const {
  std::set<IpAddr> out;
  for (const auto& [ip, names] : names_of_) out.insert(ip);
  return out;
}

std::vector<CacheEntry> DnsCache::list(std::optional<uint16_t> ep,
                                       const std::string& pattern) const {
  std::vector<CacheEntry> out;
  for (const auto& [k, ips] : entries_) {
    if ((ep && k.ep != *ep) || !matches(pattern, k.name)) continue;
    for (const auto& [ip, v] : ips)
      out.push_back({k.ep, k.name, ip, v.ttl, v.looked_up, v.expires});
  }
  return out;
}

size_t DnsCache::size() const {
  size_t n = 0;
  for (const auto& [k, ips] : entries_) n += ips.size();
  return n;
}

nlohmann::json DnsCache::toJson(std::optional<uint16_t> ep, const std::string& pattern) const {
  auto out = nlohmann::json::array();
  for (const auto& [k, ips] : entries_) {
    if ((ep && k.ep != *ep) || !matches(pattern, k.name)) continue;
    // One object per (endpoint, name, lookup): Cilium's DNSLookup groups the addresses of one
    // answer; here the addresses sharing a lookup time form one object.
    std::map<std::pair<int64_t, uint32_t>, std::vector<std::pair<IpAddr, Value>>> groups;
    for (const auto& [ip, v] : ips) groups[{unixSeconds(v.looked_up), v.ttl}].push_back({ip, v});
    for (const auto& [g, members] : groups) {
      auto list = nlohmann::json::array();
      for (const auto& [ip, v] : members) list.push_back(ip.toString());
      const Value& v = members.front().second;
      out.push_back({{"fqdn", k.name},
                     {"ips", std::move(list)},
                     {"ttl", v.ttl},
                     {"lookup-time", timeString(v.looked_up)},
                     {"expiration-time", timeString(v.expires)},
                     {"lookup-time-unix", unixSeconds(v.looked_up)},
                     {"expiration-time-unix", unixSeconds(v.expires)},
                     {"endpoint-id", k.ep},
                     {"source", "lookup"}});
    }
  }
  return out;
}

Status DnsCache::restore(const nlohmann::json& j) {
  if (!j.is_array()) return Error(ErrorCode::kInvalidArgument, "DNS cache state: not a list");
  try {
    for (const auto& e : j) {
      std::string name = policy::normalizeDnsName(e.at("fqdn").get<std::string>());
      auto ep = e.at("endpoint-id").get<uint16_t>();
      Clock::time_point looked(std::chrono::seconds(e.at("lookup-time-unix").get<int64_t>()));
      Clock::time_point expires(std::chrono::seconds(e.at("expiration-time-unix").get<int64_t>()));
      for (const auto& s : e.at("ips")) {
        auto ip = IpAddr::parse(s.get<std::string>());
        if (!ip.ok()) return ip.error().withContext("DNS cache state");
        auto [it, fresh] = entries_[Key{ep, name}].try_emplace(*ip);
        it->second = Value{e.at("ttl").get<uint32_t>(), looked, expires};
        if (fresh) names_of_[*ip][name]++;
      }
    }
  } catch (const nlohmann::json::exception& ex) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("DNS cache state: {}", ex.what()));
  }
  return okStatus();
}

}  // namespace cilium::fqdn
