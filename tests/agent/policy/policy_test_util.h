// Helpers for policy tests: readable map entries, a model of the datapath's policy lookup, and a
// fixture with an allocator and an engine.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/identity/allocator.h"
#include "agent/labels/k8s.h"
#include "agent/policy/policy.h"

namespace cilium::policy::testing {

inline std::string protoName(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP: return "TCP";
    case IPPROTO_UDP: return "UDP";
    case IPPROTO_SCTP: return "SCTP";
  }
  return std::to_string(p);
}

// "in 256 TCP/80 allow", "out 0 any allow", "in 2 TCP/8080-8087 deny", "in 5 UDP/* allow".
inline std::string describe(const datapath::PolicyEntry& e) {
  const auto& k = e.key;
  std::string what;
  if (k.prefixlen == POLICY_PREFIX_ANY_PROTO) {
    what = "any";
  } else if (k.prefixlen == POLICY_PREFIX_ANY_PORT) {
    what = protoName(k.protocol) + "/*";
  } else {
    uint32_t bits = k.prefixlen - POLICY_PREFIX_ANY_PORT;
    uint32_t start = ntohs(k.dport);
    uint32_t end = start + (1u << (16 - bits)) - 1;
    what = protoName(k.protocol) + "/" +
           (start == end ? std::to_string(start) : fmt::format("{}-{}", start, end));
  }
  EXPECT_EQ(e.value.prefix_len, k.prefixlen) << "prefix_len must copy the key's prefixlen";
  std::string verdict = (e.value.flags & POLICY_F_DENY) ? "deny" : "allow";
  if (e.value.proxy_port != 0) verdict = fmt::format("proxy {}", ntohs(e.value.proxy_port));
  return fmt::format("{} {} {} {}", k.egress ? "out" : "in", k.sec_label, what, verdict);
}

inline std::set<std::string> describe(const std::vector<datapath::PolicyEntry>& entries) {
  std::set<std::string> out;
  for (const auto& e : entries) out.insert(describe(e));
  EXPECT_EQ(out.size(), entries.size()) << "duplicate keys in map state";
  return out;
}

// The datapath's verdict (bpf/abi/policy.h): two longest-prefix lookups (remote identity, and
// identity 0); a deny from either drops; else an allow from either passes.
enum class Verdict { kAllow, kDeny, kNoMatch };

inline bool keyMatches(const policy_key& k, uint32_t identity, uint8_t dir, uint8_t proto,
                       uint16_t port) {
  if (k.sec_label != identity || k.egress != dir) return false;
  if (k.prefixlen == POLICY_PREFIX_ANY_PROTO) return true;
  if (k.protocol != proto) return false;
  uint32_t bits = k.prefixlen - POLICY_PREFIX_ANY_PORT;
  if (bits == 0) return true;
  uint16_t mask = static_cast<uint16_t>(0xffff << (16 - bits));
  return (ntohs(k.dport) & mask) == (port & mask);
}

inline const datapath::PolicyEntry* longestMatch(const std::vector<datapath::PolicyEntry>& m,
                                                 uint32_t identity, uint8_t dir, uint8_t proto,
                                                 uint16_t port) {
  const datapath::PolicyEntry* best = nullptr;
  for (const auto& e : m)
    if (keyMatches(e.key, identity, dir, proto, port) &&
        (best == nullptr || e.key.prefixlen > best->key.prefixlen))
      best = &e;
  return best;
}

inline Verdict datapathVerdict(const std::vector<datapath::PolicyEntry>& m, uint32_t identity,
                               uint8_t dir, uint8_t proto, uint16_t port) {
  const auto* l3 = longestMatch(m, identity, dir, proto, port);
  const auto* l4 = longestMatch(m, 0, dir, proto, port);
  if ((l3 && (l3->value.flags & POLICY_F_DENY)) || (l4 && (l4->value.flags & POLICY_F_DENY)))
    return Verdict::kDeny;
  if (l3 || l4) return Verdict::kAllow;
  return Verdict::kNoMatch;
}

inline labels::Labels pod(std::map<std::string, std::string> l, std::string ns = "default",
                          std::map<std::string, std::string> ns_labels = {}) {
  labels::PodInfo p;
  p.labels = std::move(l);
  p.namespace_name = std::move(ns);
  p.namespace_labels = std::move(ns_labels);
  return labels::podLabels(p);
}

// An allocator and an engine, plus helpers to make identities and subjects.
class EngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = identity::Allocator::open("");
    ASSERT_TRUE(a.ok());
    ids_ = std::move(*a);
    engine_ = std::make_unique<Engine>(*ids_);
  }
  void TearDown() override { engine_.reset(); }
  // Replaces the engine with one using `options` (same allocator).
  void restart(EngineOptions options) {
    engine_.reset();
    engine_ = std::make_unique<Engine>(*ids_, options);
  }

  identity::NumericIdentity allocate(const labels::Labels& l) {
    auto r = ids_->allocate(l);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? r->id : 0;
  }

  Subject subject(const labels::Labels& l, uint16_t endpoint_id = 1,
                  std::vector<NamedPort> ports = {}) {
    Subject s;
    s.endpoint_id = endpoint_id;
    s.identity = allocate(l);
    s.labels = l;
    s.named_ports = std::move(ports);
    return s;
  }

  void import(const std::string& text) {
    auto r = engine_->import(text);
    ASSERT_TRUE(r.ok()) << r.error().toString();
  }

  EndpointPolicy resolve(const Subject& s) {
    auto r = engine_->resolve(s);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().toString());
    return r.ok() ? *r : EndpointPolicy{};
  }

  std::set<std::string> entries(const Subject& s) { return describe(resolve(s).entries); }

  std::unique_ptr<identity::Allocator> ids_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace cilium::policy::testing
