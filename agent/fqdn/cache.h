// The FQDN cache: what the DNS proxy learned, per endpoint: name -> addresses, each with the
// time it expires (the answer's TTL, raised to tofqdns-min-ttl), at most max-ips-per-host
// addresses per name (the ones seen last win). Pure data; the NameManager turns it into
// identities. Not thread-safe (the NameManager serialises it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/fqdn/dns_message.h"

namespace cilium::fqdn {

using Clock = std::chrono::system_clock;

struct CacheOptions {
  uint32_t min_ttl = 0;           // seconds (tofqdns-min-ttl)
  size_t max_ips_per_host = 50;   // tofqdns-max-ips-per-host
  std::chrono::seconds grace{0};  // kept this long past expiry (idle-connection grace)
};

struct CacheEntry {
  uint16_t endpoint_id = 0;
  std::string name;
  IpAddr ip;
  uint32_t ttl = 0;             // as used (floored at min_ttl)
  Clock::time_point looked_up;  // the last answer that carried it
  Clock::time_point expires;    // looked_up + ttl
};

class DnsCache {
 public:
  explicit DnsCache(CacheOptions options) : options_(options) {}

  // Records an answer for `name` to endpoint `ep` at `now`; returns the addresses that `name`
  // did not resolve to before (for any endpoint).
  std::vector<IpAddr> update(uint16_t ep, const std::string& name,
                             const std::vector<DnsAddress>& addresses, Clock::time_point now);
  // Removes entries whose expiry plus the grace is before `now`; returns the addresses removed.
  std::vector<IpAddr> expire(Clock::time_point now);
  // Removes the entries of `ep` (every endpoint when nullopt) whose name matches `pattern`
  // (normalised; "" = all); returns the addresses removed.
  std::vector<IpAddr> clear(std::optional<uint16_t> ep, const std::string& pattern);

  // The names (of every endpoint) that currently resolve to `ip`.
  std::set<std::string> namesOf(const IpAddr& ip) const;
  // The names endpoint `ep` looked up that currently resolve to `ip`, sorted.
  std::vector<std::string> namesOf(uint16_t ep, const IpAddr& ip) const;
  // Every address in the cache.
  std::set<IpAddr> addresses() const;
  // Entries (filtered as clear()), sorted by endpoint, name, address.
  std::vector<CacheEntry> list(std::optional<uint16_t> ep, const std::string& pattern) const;
  size_t size() const;

  // Cilium's DNSLookup JSON list ({fqdn, ips, ttl, lookup-time, expiration-time, endpoint-id})
  // and back (the state file: restored entries keep their original expiry).
  nlohmann::json toJson(std::optional<uint16_t> ep, const std::string& pattern) const;
  Status restore(const nlohmann::json& j);

 private:
  struct Key {
    uint16_t ep;
    std::string name;
    auto operator<=>(const Key&) const = default;
  };
  struct Value {
    uint32_t ttl = 0;
    Clock::time_point looked_up, expires;
  };
  std::vector<IpAddr> eraseIf(const std::function<bool(const Key&, const Value&)>& pred);

  CacheOptions options_;
  std::map<Key, std::map<IpAddr, Value>> entries_;
  std::map<IpAddr, std::map<std::string, size_t>> names_of_;  // ip -> name -> entries holding it
};

}  // namespace cilium::fqdn
