// Host-scope IP address management: endpoint addresses handed out from the node's pod CIDR, one
// pool per address family, persisted in the state directory so that a restarted agent keeps
// every address it gave out. Pure logic plus one state file; see docs/ipam.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::ipam {

struct Allocation {
  IpAddr ip;
  std::string owner;  // "namespace/pod", a container id, or empty
  bool operator==(const Allocation&) const = default;
};

// The addresses of one family in one CIDR. Offsets count from the network address:
//   IPv4: 0 network, 1 router (the node's address on the pod network), 2 .. 2^h-2 endpoints,
//         2^h-1 broadcast;
//   IPv6: 0 subnet-router anycast, 1 router, 2 .. 2^h-1 endpoints.
// Allocation goes round-robin from the last allocated address, so a just-released address is
// reused only after the rest of the range has been handed out. Not thread-safe (Ipam locks).
class Pool {
 public:
  // kInvalidArgument when the CIDR leaves no endpoint address (IPv4 /31, /32, IPv6 /127, /128) or
  // has more than 64 host bits (IPv6 shorter than /64).
  static Result<Pool> create(const IpPrefix& cidr);

  const IpPrefix& cidr() const { return cidr_; }
  IpAddr router() const { return cidr_.addr().plus(1); }
  // Endpoint addresses in the range (the router is not one of them).
  uint64_t capacity() const { return last_ - kFirst + 1; }
  size_t used() const { return used_.size(); }

  // kResourceExhausted when every endpoint address is taken.
  Result<IpAddr> allocateNext(std::string_view owner);
  // Reserves `ip`. Re-reserving an address for the owner that holds it succeeds (restores are
  // idempotent); kAlreadyExists when another owner holds it; kInvalidArgument when `ip` is not an
  // endpoint address of this pool (outside, network, broadcast, router).
  Status allocate(const IpAddr& ip, std::string_view owner);
  // kNotFound when `ip` is not allocated (including a second release).
  Status release(const IpAddr& ip);
  // Releases every address of `owner`; returns them (empty when it held none).
  std::vector<IpAddr> releaseOwner(std::string_view owner);

  std::optional<std::string> ownerOf(const IpAddr& ip) const;
  std::vector<Allocation> allocations() const;  // by address

  // The round-robin position (offset of the last allocation), for persistence.
  uint64_t cursor() const { return cursor_; }
  void setCursor(uint64_t c) { cursor_ = (c >= kFirst && c <= last_) ? c : last_; }

 private:
  static constexpr uint64_t kFirst = 2;
  Pool(IpPrefix cidr, uint64_t last) : cidr_(cidr), last_(last), cursor_(last) {}
  Result<uint64_t> endpointOffset(const IpAddr& ip) const;

  IpPrefix cidr_;
  uint64_t last_;    // offset of the last endpoint address
  uint64_t cursor_;  // offset of the last allocation
  std::map<uint64_t, std::string> used_;
};

struct Config {
  std::optional<IpPrefix> ipv4;  // the node's IPv4 pod CIDR; nullopt = IPv4 allocation disabled
  std::optional<IpPrefix> ipv6;
  std::string state_file;  // JSON state; empty = not persisted (tests)
  bool restore = true;     // read state_file at open
};

// What an allocation hands back: the address and how to reach the rest of the network.
struct Lease {
  IpAddr ip;
  IpAddr gateway;  // the pool's router address
  IpPrefix cidr;
};

struct PoolStatus {
  IpFamily family;
  IpPrefix cidr;
  IpAddr router;
  uint64_t capacity = 0;
  std::vector<Allocation> allocations;
};

// Both families behind one lock, with every change persisted before it is acknowledged: when
// the state file cannot be written, the change is undone and the error returned.
class Ipam {
 public:
  // Restores allocations from cfg.state_file when cfg.restore and the file exists. Allocations
  // that fall outside a changed CIDR are dropped with a warning; an unreadable state file is an
  // error (kFailedPrecondition), never silently discarded: handing out addresses that running
  // pods still use would be worse than not starting.
  static Result<std::unique_ptr<Ipam>> open(const Config& cfg);

  bool enabled(IpFamily f) const;
  // kUnimplemented when the family is disabled.
  Result<Lease> allocateNext(IpFamily f, std::string_view owner);
  Result<Lease> allocate(const IpAddr& ip, std::string_view owner);
  Status release(const IpAddr& ip);
  // Releases every address `owner` holds in any family; kNotFound when it holds none.
  Result<std::vector<IpAddr>> releaseOwner(std::string_view owner);

  std::vector<PoolStatus> status() const;
  std::optional<IpAddr> router(IpFamily f) const;
  // The first address of family `f` that `owner` holds; nullopt: none.
  std::optional<IpAddr> addressOf(IpFamily f, std::string_view owner) const;
  std::optional<IpPrefix> cidr(IpFamily f) const;

 private:
  explicit Ipam(Config cfg) : cfg_(std::move(cfg)) {}
  Pool* pool(IpFamily f);
  Status persistLocked() const;
  Status restoreLocked();
  static Status validateOwner(std::string_view owner);

  Config cfg_;
  mutable std::mutex mu_;
  std::optional<Pool> v4_;
  std::optional<Pool> v6_;
};

}  // namespace cilium::ipam
