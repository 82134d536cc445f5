// planPolicyPatch: in-place policy map changes never let a packet through that neither the old
// nor the new policy allows, at any step, even when the datapath's two lookups (remote identity,
// then identity 0) see the map at different steps; unchanged policies write nothing; changes
// with no safe order, or that would not fit, are swaps. Checked against an independent model of
// the datapath lookup (bpf/lib/policy.h) over random policies that keep the engine's map-state
// rules.
#include "agent/datapath/policy_patch.h"

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "agent/datapath/fake_maps.h"

namespace cilium::datapath {
namespace {

constexpr uint8_t I = POLICY_INGRESS, E = POLICY_EGRESS;
constexpr uint8_t kTcp = 6, kUdp = 17;

PolicyEntry allow(uint32_t id, uint8_t dir, uint8_t proto = 0, uint16_t port = 0,
                  uint8_t bits = 0) {
  return normalizePolicyEntry({policyKey(id, dir, proto, port, bits), {}});
}
PolicyEntry deny(uint32_t id, uint8_t dir, uint8_t proto = 0, uint16_t port = 0, uint8_t bits = 0) {
  PolicyEntry e = allow(id, dir, proto, port, bits);
  e.value.flags = POLICY_F_DENY;
  return e;
}

// --- An independent model of the datapath lookup --------------------------------------------

using State = std::map<std::tuple<uint32_t, uint8_t, uint32_t, uint8_t, uint16_t>, PolicyEntry>;

State stateOf(const std::vector<PolicyEntry>& entries) {
  State s;
  for (const auto& e : entries)
    s[{e.key.sec_label, e.key.egress, e.key.prefixlen, e.key.protocol, ntohs(e.key.dport)}] = e;
  return s;
}

bool same(const State& a, const State& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j)
    if (i->first != j->first || std::memcmp(&i->second, &j->second, sizeof(PolicyEntry)) != 0)
      return false;
  return true;
}

struct Packet {
  uint32_t remote;
  uint8_t dir, proto;
  uint16_t port;
};

enum class Look { kDeny, kNone, kAllow };

// Longest-prefix match among the entries of one identity and direction.
Look lookup(const State& s, uint32_t identity, const Packet& p) {
  const PolicyEntry* best = nullptr;
  for (const auto& [k, e] : s) {
    if (e.key.sec_label != identity || e.key.egress != p.dir) continue;
    bool match = e.key.prefixlen == POLICY_PREFIX_ANY_PROTO;
    if (!match && e.key.protocol == p.proto) {
      uint32_t bits = e.key.prefixlen - POLICY_PREFIX_ANY_PORT;
      uint16_t mask = bits == 0 ? 0 : static_cast<uint16_t>(0xffff << (16 - bits));
      match = (p.port & mask) == ntohs(e.key.dport);
    }
    if (match && (!best || e.key.prefixlen > best->key.prefixlen)) best = &e;
  }
  if (!best) return Look::kNone;
  return (best->value.flags & POLICY_F_DENY) ? Look::kDeny : Look::kAllow;
}

// The verdict of bpf/lib/policy.h from its two lookups.
bool allowed(Look by_identity, Look wildcard) {
  if (by_identity == Look::kDeny || wildcard == Look::kDeny) return false;
  return by_identity == Look::kAllow || wildcard == Look::kAllow;
}
bool allowed(const State& s, const Packet& p) {
  return allowed(lookup(s, p.remote, p), p.remote ? lookup(s, 0, p) : Look::kNone);
}

std::vector<Packet> packets() {
  std::vector<Packet> out;
  for (uint32_t remote : {0u, 1001u, 1002u, 1003u})
    for (uint8_t dir : {I, E})
      for (uint8_t proto : {kTcp, kUdp, uint8_t{1}})
        for (uint16_t port = 76; port <= 100; port++)
          out.push_back({remote, dir, proto, proto == 1 ? uint16_t{0} : port});
  return out;
}

// Whether deny `d` covers allow `a` in the engine's sense: same identity and direction, and `d`
// matches every packet `a` matches.
bool covers(const policy_key& d, const policy_key& a) {
  if (d.sec_label != a.sec_label || d.egress != a.egress || d.prefixlen > a.prefixlen) return false;
  if (d.prefixlen == POLICY_PREFIX_ANY_PROTO) return true;
  if (d.protocol != a.protocol) return false;
  uint32_t bits = d.prefixlen - POLICY_PREFIX_ANY_PORT;
  uint16_t mask = bits == 0 ? 0 : static_cast<uint16_t>(0xffff << (16 - bits));
  return (ntohs(a.dport) & mask) == ntohs(d.dport);
}

// --- Random policies as the engine writes them ----------------------------------------------

std::vector<PolicyEntry> randomPolicy(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::vector<PolicyEntry> raw;
  int n = pick(9);
  for (int i = 0; i < n; i++) {
    uint32_t id = std::vector<uint32_t>{0, 1001, 1002}[pick(3)];
    uint8_t dir = pick(3) == 0 ? E : I;  // mostly ingress: more overlap
    uint8_t proto = std::vector<uint8_t>{0, kTcp, kUdp}[pick(3)];
    uint8_t bits = std::vector<uint8_t>{0, 12, 13, 14, 15, 16}[pick(6)];
    uint16_t port = static_cast<uint16_t>(80 + pick(16));
    raw.push_back(pick(3) == 0 ? deny(id, dir, proto, port, bits)
                               : allow(id, dir, proto, port, bits));
  }
  // The map-state rules: a key both allowed and denied is a deny; no allow that a deny of the
  // same identity and direction covers.
  State s;
  for (const auto& e : raw) {
    auto k = std::make_tuple(e.key.sec_label, e.key.egress, e.key.prefixlen, e.key.protocol,
                             ntohs(e.key.dport));
    if (!s.count(k) || (e.value.flags & POLICY_F_DENY)) s[k] = e;
  }
  std::vector<PolicyEntry> out;
  for (const auto& [k, e] : s) {
    bool covered = false;
    if (!(e.value.flags & POLICY_F_DENY))
      for (const auto& [k2, d] : s)
        covered |= (d.value.flags & POLICY_F_DENY) && covers(d.key, e.key);
    if (!covered) out.push_back(e);
  }
  return out;
}

// Applies `ops` to `start`, returning every state from the first to the last.
std::vector<State> trajectory(const std::vector<PolicyEntry>& start,
                              const std::vector<PolicyMapOp>& ops) {
  std::vector<State> out{stateOf(start)};
  for (const auto& op : ops) {
    State next = out.back();
    auto k = std::make_tuple(op.entry.key.sec_label, op.entry.key.egress, op.entry.key.prefixlen,
                             op.entry.key.protocol, ntohs(op.entry.key.dport));
    if (op.remove)
      next.erase(k);
    else
      next[k] = op.entry;
    out.push_back(std::move(next));
  }
  return out;
}

struct Violation {
  bool widened = false;   // a packet allowed that neither policy allows
  bool spurious = false;  // a packet both allow, dropped in a consistent snapshot
  std::string what;
};

// Every pair of steps a <= b: the identity lookup sees step a, the wildcard lookup step b.
Violation check(const std::vector<PolicyEntry>& old_set, const std::vector<PolicyEntry>& new_set,
                const std::vector<State>& steps) {
  State o = stateOf(old_set), n = stateOf(new_set);
  Violation v;
  for (const auto& p : packets()) {
    bool ok_old = allowed(o, p), ok_new = allowed(n, p);
    std::set<Look> seen;  // identity lookups at steps <= b
    for (size_t b = 0; b < steps.size(); b++) {
      Look mine = lookup(steps[b], p.remote, p);
      seen.insert(mine);
      Look wild = p.remote ? lookup(steps[b], 0, p) : Look::kNone;
      for (Look a : seen) {
        if (allowed(a, wild) && !ok_old && !ok_new && !v.widened) {
          v.widened = true;
          v.what = "remote " + std::to_string(p.remote) + " dir " + std::to_string(p.dir) +
                   " proto " + std::to_string(p.proto) + " port " + std::to_string(p.port) +
                   " at step " + std::to_string(b);
        }
      }
      if (ok_old && ok_new && !allowed(mine, wild) && !v.spurious) v.spurious = true;
    }
  }
  return v;
}

TEST(PolicyPatchTest, RandomChangesNeverAllowWhatNeitherPolicyAllows) {
  std::mt19937 rng(20261124);
  int in_place = 0, swaps = 0, unchanged = 0;
  for (int round = 0; round < 4000; round++) {
    auto old_set = randomPolicy(rng);
    // Half the time a small edit of the old policy (what restarts and most changes are).
    std::vector<PolicyEntry> new_set;
    if (round % 2 == 0) {
      new_set = old_set;
      if (!new_set.empty() && rng() % 2) new_set.erase(new_set.begin() + rng() % new_set.size());
      auto extra = randomPolicy(rng);
      if (!extra.empty() && rng() % 2) new_set.push_back(extra.front());
      // Keep the map-state rules.
      State s = stateOf(new_set);
      new_set.clear();
      for (const auto& [k, e] : s) new_set.push_back(e);
      std::vector<PolicyEntry> kept;
      for (const auto& e : new_set) {
        bool covered = false;
        if (!(e.value.flags & POLICY_F_DENY))
          for (const auto& d : new_set)
            covered |= (d.value.flags & POLICY_F_DENY) && covers(d.key, e.key);
        if (!covered) kept.push_back(e);
      }
      new_set = kept;
    } else {
      new_set = randomPolicy(rng);
    }
    PolicyPatch plan = planPolicyPatch(old_set, new_set, 1000);
    if (plan.swap) {
      swaps++;
      continue;
    }
    plan.ops.empty() ? unchanged++ : in_place++;
    auto steps = trajectory(old_set, plan.ops);
    ASSERT_TRUE(same(steps.back(), stateOf(new_set)))
        << "round " << round << ": the patch ends elsewhere";
    Violation v = check(old_set, new_set, steps);
    ASSERT_FALSE(v.widened) << "round " << round << ": " << v.what;
    ASSERT_FALSE(v.spurious) << "round " << round << ": a packet both policies allow was dropped";
  }
  RecordProperty("in_place", in_place);
  RecordProperty("swaps", swaps);
  RecordProperty("unchanged", unchanged);
  EXPECT_GT(in_place, 1000) << "most changes go in place";
  EXPECT_GT(swaps, 100) << "the generator makes changes that need a swap";
  EXPECT_GT(unchanged, 10);
}

// The checker above catches what a careless order does: the two policies give remote 1001 on
// TCP/80 a deny, one through identity 0, the other through 1001 itself. Deleting first, or
// writing first, or keeping the plan's order but reading the identity lookup before the change
// and the wildcard lookup after it, each lets the packet through.
TEST(PolicyPatchTest, TheCheckerCatchesOrdersThatWiden) {
  std::vector<PolicyEntry> old_set{allow(1001, I, kTcp, 80, 16), deny(0, I, kTcp)};
  std::vector<PolicyEntry> new_set{deny(1001, I, kTcp), allow(0, I, kTcp, 80, 16)};
  std::vector<PolicyMapOp> deletes_first{
      {true, old_set[1]}, {false, new_set[0]}, {true, old_set[0]}, {false, new_set[1]}};
  EXPECT_TRUE(check(old_set, new_set, trajectory(old_set, deletes_first)).widened);
  std::vector<PolicyMapOp> careful{
      {false, new_set[0]}, {true, old_set[0]}, {false, new_set[1]}, {true, old_set[1]}};
  auto steps = trajectory(old_set, careful);
  for (const auto& p : packets()) {
    // In one consistent snapshot the careful order is fine...
    for (const auto& s : steps) {
      bool either = allowed(stateOf(old_set), p) || allowed(stateOf(new_set), p);
      EXPECT_TRUE(!allowed(s, p) || either);
    }
  }
  // ...but not when the two lookups straddle it.
  EXPECT_TRUE(check(old_set, new_set, steps).widened);
  PolicyPatch plan = planPolicyPatch(old_set, new_set, 1000);
  EXPECT_TRUE(plan.swap) << "identity 0 and 1001 move in opposite senses: only a swap is safe";
  EXPECT_NE(plan.swap_reason.find("identity 1001"), std::string::npos) << plan.swap_reason;
}

TEST(PolicyPatchTest, UnchangedPolicyWritesNothing) {
  std::vector<PolicyEntry> p{allow(1001, I, kTcp, 80, 16), deny(1002, I), allow(0, E)};
  std::vector<PolicyEntry> shuffled{p[2], p[0], p[1]};
  PolicyPatch plan = planPolicyPatch(p, shuffled, 3);
  EXPECT_FALSE(plan.swap);
  EXPECT_TRUE(plan.ops.empty());
  // Entries as the engine hands them (value.prefix_len not filled in) compare equal too.
  std::vector<PolicyEntry> raw{{p[0].key, {}}, {p[1].key, p[1].value}, {p[2].key, {}}};
  raw[1].value.prefix_len = 0;
  EXPECT_TRUE(planPolicyPatch(p, raw, 3).ops.empty());
}

TEST(PolicyPatchTest, OrderIsNewDeniesNewAllowsOldAllowsOldDenies) {
  std::vector<PolicyEntry> old_set{allow(1001, I, kTcp, 80, 16), allow(1001, I, kUdp),
                                   deny(1002, I, kTcp)};
  std::vector<PolicyEntry> new_set{deny(1001, I, kTcp), allow(1001, I, kUdp, 53, 16),
                                   allow(1002, I)};
  PolicyPatch plan = planPolicyPatch(old_set, new_set, 100);
  ASSERT_FALSE(plan.swap) << plan.swap_reason;
  ASSERT_EQ(plan.ops.size(), 6u);
  auto is = [](const PolicyMapOp& op, bool remove, const PolicyEntry& e) {
    return op.remove == remove && std::memcmp(&op.entry.key, &e.key, sizeof(e.key)) == 0;
  };
  EXPECT_TRUE(is(plan.ops[0], false, new_set[0])) << "the new deny first";
  EXPECT_TRUE(is(plan.ops[1], false, new_set[1])) << "then the new allows";
  EXPECT_TRUE(is(plan.ops[2], false, new_set[2]));
  EXPECT_TRUE(is(plan.ops[3], true, old_set[1])) << "then the old allows go";
  EXPECT_TRUE(is(plan.ops[4], true, old_set[0]));
  EXPECT_TRUE(is(plan.ops[5], true, old_set[2])) << "old denies last";
}

TEST(PolicyPatchTest, ChangesThatWouldNotFitAreSwaps) {
  std::vector<PolicyEntry> old_set{allow(1001, I), allow(1002, I)};
  std::vector<PolicyEntry> new_set{allow(1003, I), allow(1004, I)};
  EXPECT_FALSE(planPolicyPatch(old_set, new_set, 4).swap);
  PolicyPatch plan = planPolicyPatch(old_set, new_set, 3);
  EXPECT_TRUE(plan.swap) << "the new allows are written before the old ones go: 4 at once";
  EXPECT_TRUE(plan.ops.empty());
}

TEST(PolicyPatchTest, WildcardChangesAloneOrMovingTogetherGoInPlace) {
  // Enforcement switched on: the wildcard allow goes, identities get allows: opposite senses.
  EXPECT_TRUE(
      planPolicyPatch(std::vector{allow(0, I)}, std::vector{allow(1001, I, kTcp, 80, 16)}, 10)
          .swap);
  // Only the wildcard changes (every peer on a new port): in place.
  EXPECT_FALSE(planPolicyPatch(std::vector{allow(1001, I)},
                               std::vector{allow(1001, I), allow(0, I, kTcp, 443, 16)}, 10)
                   .swap);
  // Everything narrows (a deny for all and for one identity): in place.
  EXPECT_FALSE(planPolicyPatch(std::vector{allow(1001, I), allow(0, I, kTcp)},
                               std::vector{deny(1001, I, kUdp), deny(0, I, kTcp, 22, 16),
                                           allow(1001, I), allow(0, I, kTcp)},
                               10)
                   .swap);
  // The other direction does not matter.
  EXPECT_FALSE(planPolicyPatch(std::vector{allow(0, E)},
                               std::vector{allow(0, E, kUdp, 53, 16), allow(1001, I)}, 10)
                   .swap);
}

// The fake follows the plan: an unchanged or patched map keeps its inner map; swaps of many
// endpoints are one outer-map write.
TEST(PolicyPatchTest, FakeMapsKeepInnerMapsAndBatchSwaps) {
  FakePolicyMaps pm;
  std::vector<PolicyEntry> a{allow(1001, I, kTcp, 80, 16)}, b{allow(1001, I), allow(1002, I)};
  ASSERT_TRUE(pm.replace(1, a).ok());
  uint64_t id = pm.innerMapId(1);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(pm.replace(1, a).ok());
  EXPECT_EQ(pm.innerMapId(1), id);
  EXPECT_EQ(pm.counters().unchanged, 1u);
  ASSERT_TRUE(pm.replace(1, b).ok());
  EXPECT_EQ(pm.innerMapId(1), id) << "patched in place";
  EXPECT_EQ(pm.counters().patched, 1u);
  EXPECT_EQ(pm.dump(1)->size(), 2u);
  ASSERT_TRUE(pm.replace(1, std::vector{allow(0, I)}).ok());
  EXPECT_NE(pm.innerMapId(1), id) << "identity 0 and 1001/1002 in opposite senses: swapped";
  uint64_t writes = pm.counters().outer_writes;
  std::vector<PolicyReplacement> many;
  for (uint16_t ep = 10; ep < 20; ep++) many.push_back({ep, a});
  auto results = pm.replaceMany(many);
  for (const auto& r : results) EXPECT_TRUE(r.ok());
  EXPECT_EQ(pm.counters().outer_writes, writes + 1) << "ten new maps, one outer write";
  EXPECT_EQ(pm.endpoints()->size(), 11u);
}

}  // namespace
}  // namespace cilium::datapath
