// Property tests: (1) the datapath's verdict over the resolved map state equals the policy's
// meaning, computed independently, for random rules and packets; (2) applying incremental deltas
// gives exactly the full recomputation's map state, through identity and address churn, with
// ipBlocks that select pods and egress named ports.
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/datapath/fake_maps.h"
#include "agent/ipcache/ipcache.h"
#include "policy_test_util.h"

namespace cilium::policy {
namespace {

using nlohmann::json;
using testing::datapathVerdict;
using testing::describe;
using testing::Verdict;

const char* const kApps[] = {"a", "b", "c"};
const char* const kTiers[] = {"x", "y"};

// One random rule element with its meaning kept next to its JSON.
struct Element {
  // kIpBlock (a NetworkPolicy ipBlock, `value` its CIDR) only in the incremental test.
  enum class Peer { kApp, kTier, kAll, kCluster, kWorld, kPortsOnly, kIpBlock } peer;
  std::string value;
  struct Port {
    uint8_t proto;  // 0 = ANY
    uint16_t port;
    uint16_t end;
    bool named = false;  // the port named "web" (incremental test only)
  };
  std::vector<Port> ports;  // empty: any protocol, any port
  bool deny = false;
  bool egress = false;

  bool selects(identity::NumericIdentity id, const labels::Labels& l) const {
    switch (peer) {
      case Peer::kApp: return l.find("app") && l.find("app")->value == value;
      case Peer::kTier: return l.find("tier") && l.find("tier")->value == value;
      case Peer::kAll:
      case Peer::kPortsOnly: return true;
      case Peer::kCluster:
        return id != 0 && id != identity::kWorld && id != identity::kWorldIpv4 &&
               id != identity::kWorldIpv6 && !l.empty();
      case Peer::kWorld:
        return id == identity::kWorld || id == identity::kWorldIpv4 || id == identity::kWorldIpv6;
      case Peer::kIpBlock: return false;  // not modelled here
    }
    return false;
  }
  bool matchesPort(uint8_t proto, uint16_t port) const {
    if (ports.empty()) return true;
    for (const auto& p : ports) {
      bool proto_ok = p.proto == 0
                          ? (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP)
                          : proto == p.proto;
      if (!proto_ok) continue;
      if (p.port == 0) return true;
      uint16_t end = p.end > p.port ? p.end : p.port;
      if (port >= p.port && port <= end) return true;
    }
    return false;
  }

  json toJson() const {
    json j = json::object();
    const char* dir = egress ? "to" : "from";
    switch (peer) {
      case Peer::kApp:
        j[std::string(dir) + "Endpoints"] = {{{"matchLabels", {{"app", value}}}}};
        break;
      case Peer::kTier:
        j[std::string(dir) + "Endpoints"] = {{{"matchLabels", {{"tier", value}}}}};
        break;
      case Peer::kAll: j[std::string(dir) + "Entities"] = {"all"}; break;
      case Peer::kCluster: j[std::string(dir) + "Entities"] = {"cluster"}; break;
      case Peer::kWorld: j[std::string(dir) + "Entities"] = {"world"}; break;
      case Peer::kPortsOnly: break;
      case Peer::kIpBlock:
        j[std::string(dir) + "CIDRSet"] = {
            {{"cidr", value}, {"except", {"10.0.0.16/28"}}, {"selectsPods", true}}};
        break;
    }
    if (!ports.empty()) {
      json pl = json::array();
      for (const auto& p : ports) {
        json pj = {{"port", p.named ? std::string("web") : std::to_string(p.port)},
                   {"protocol", p.proto == 0             ? "ANY"
                                : p.proto == IPPROTO_TCP ? "TCP"
                                                         : "UDP"}};
        if (p.end > p.port) pj["endPort"] = p.end;
        pl.push_back(pj);
      }
      j["toPorts"] = {{{"ports", pl}}};
    }
    return j;
  }
};

// `extended`: also ipBlocks and named ports.
Element randomElement(std::mt19937& rng, bool extended = false) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Element e;
  e.peer = static_cast<Element::Peer>(pick(extended ? 7 : 6));
  e.value = e.peer == Element::Peer::kTier ? kTiers[pick(2)] : kApps[pick(3)];
  if (e.peer == Element::Peer::kIpBlock) e.value = pick(2) ? "10.0.0.0/26" : "10.0.0.0/25";
  e.deny = pick(3) == 0;
  e.egress = pick(2) == 0;
  int nports = e.peer == Element::Peer::kPortsOnly ? 1 + pick(2) : pick(3);
  static const uint16_t kPorts[] = {0, 80, 81, 8080, 8088, 443};
  for (int i = 0; i < nports; i++) {
    Element::Port p;
    static const uint8_t kProtos[] = {0, IPPROTO_TCP, IPPROTO_UDP};
    p.proto = kProtos[pick(3)];
    p.port = kPorts[pick(6)];
    p.end = p.port != 0 && pick(3) == 0 ? static_cast<uint16_t>(p.port + pick(40)) : 0;
    p.named = extended && pick(3) == 0;
    if (p.named) p.end = 0;
    e.ports.push_back(p);
  }
  return e;
}

json rulesJson(const std::vector<Element>& elements) {
  json rule = {{"endpointSelector", json::object()}};
  for (const auto& e : elements) {
    const char* key =
        e.egress ? (e.deny ? "egressDeny" : "egress") : (e.deny ? "ingressDeny" : "ingress");
    if (!rule.contains(key)) rule[key] = json::array();
    rule[key].push_back(e.toJson());
  }
  return json::array({rule});
}

labels::Labels randomPodLabels(std::mt19937& rng) {
  labels::Labels l{{labels::Source::kK8s, "app", kApps[rng() % 3]}};
  if (rng() % 2) l.set({labels::Source::kK8s, "tier", kTiers[rng() % 2]});
  if (rng() % 2) l.set({labels::Source::kK8s, "n", std::to_string(rng() % 5)});
  return l;
}

TEST(PolicyPropertyTest, DatapathVerdictMatchesPolicyMeaning) {
  auto ids = identity::Allocator::open("");
  ASSERT_TRUE(ids.ok());
  std::mt19937 rng(20240601);
  std::vector<std::pair<identity::NumericIdentity, labels::Labels>> peers;
  for (const auto& r : identity::reservedIdentities()) peers.emplace_back(r.id, r.labels);
  for (int i = 0; i < 12; i++) {
    auto l = randomPodLabels(rng);
    auto a = (*ids)->allocate(l);
    ASSERT_TRUE(a.ok());
    peers.emplace_back(a->id, l);
  }
  peers.emplace_back(4242, labels::Labels{});  // an identity the agent has not heard of yet
  const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP};
  const uint16_t ports[] = {1,    79,   80,   81,   82,   100,  443,  444,
                            8079, 8080, 8087, 8088, 8095, 8120, 65535};

  size_t checked = 0;
  for (int round = 0; round < 150; round++) {
    Engine engine(**ids);
    std::vector<Element> elements;
    int n = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; i++) elements.push_back(randomElement(rng));
    auto imported = engine.importRules(rulesJson(elements).dump());
    ASSERT_TRUE(imported.ok()) << imported.error().toString() << "\n"
                               << rulesJson(elements).dump(1);
    Subject subject{1, peers[10].first, peers[10].second, {}};
    auto policy = engine.resolve(subject);
    ASSERT_TRUE(policy.ok());
    for (uint8_t dir : {0, 1}) {
      bool enforced = std::any_of(elements.begin(), elements.end(),
                                  [&](const Element& e) { return e.egress == (dir == 1); });
      ASSERT_EQ(dir ? policy->egress_enforced : policy->ingress_enforced, enforced);
      for (const auto& [id, l] : peers) {
        for (uint8_t proto : protos) {
          for (uint16_t port : ports) {
            bool denied = false, allowed = !enforced;
            for (const auto& e : elements) {
              if (e.egress != (dir == 1) || !e.selects(id, l)) continue;
              if (!e.matchesPort(proto, proto == IPPROTO_ICMP ? 0 : port)) continue;
              (e.deny ? denied : allowed) = true;
            }
            if (dir == 0 && enforced && id == identity::kHost) allowed = true;  // allow-localhost
            Verdict want = denied ? Verdict::kDeny : allowed ? Verdict::kAllow : Verdict::kNoMatch;
            Verdict got =
                datapathVerdict(policy->entries, id, dir, proto, proto == IPPROTO_ICMP ? 0 : port);
            // A deny and "no match" both drop; only allow vs drop is what users see, but a deny
            // must also be reported as the explicit deny it is.
            ASSERT_EQ(got, want) << "round " << round << " identity " << id << " dir " << int(dir)
                                 << " proto " << int(proto) << " port " << port << "\nrules "
                                 << rulesJson(elements).dump() << "\nmap:\n"
                                 << ::testing::PrintToString(describe(policy->entries));
            checked++;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 100000u);
}

// Applies the engine's deltas to fake policy maps while identities come and go, and checks after
// every step that each endpoint's map equals a full recomputation.
TEST(PolicyPropertyTest, IncrementalDeltasEqualFullRecomputation) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    std::mt19937 rng(seed);
    auto ids = identity::Allocator::open("");
    ASSERT_TRUE(ids.ok());
    // Every label set randomPodLabels() makes names port "web" with its own number (some of
    // them twice).
    NamedPortTable ports;
    int pod_number = 0;
    for (const char* app : kApps)
      for (const char* tier : {"", "x", "y"})
        for (int n = -1; n < 5; n++) {
          labels::Labels l{{labels::Source::kK8s, "app", app}};
          if (*tier) l.set({labels::Source::kK8s, "tier", tier});
          if (n >= 0) l.set({labels::Source::kK8s, "n", std::to_string(n)});
          auto number = static_cast<uint16_t>(8000 + pod_number++);
          std::vector<NamedPort> named = {{"web", number, Protocol::kTcp}};
          if (n == 1) named.push_back({"web", 9000, Protocol::kUdp});
          ports.setPod(fmt::format("pod-{}", pod_number), l, named);
        }
    ipcache::IpCache addresses(nullptr, nullptr);
    Engine engine(**ids, {}, nullptr, &ports, &addresses);
    datapath::FakePolicyMaps maps;

    std::set<uint16_t> changed;
    engine.setChangeListener(
        [&](const std::vector<uint16_t>& eps) { changed.insert(eps.begin(), eps.end()); });

    std::vector<Subject> subjects;
    for (uint16_t ep = 1; ep <= 4; ep++) {
      auto l = randomPodLabels(rng);
      auto a = (*ids)->allocate(l);
      ASSERT_TRUE(a.ok());
      subjects.push_back({ep, a->id, l, {}});
    }
    auto importRandom = [&] {
      std::vector<Element> elements;
      for (int i = 0; i < 4; i++) elements.push_back(randomElement(rng, true));
      json rules = rulesJson(elements);
      // Select only some endpoints.
      rules[0]["endpointSelector"] = {{"matchLabels", {{"app", kApps[rng() % 3]}}}};
      ImportOptions opts;
      opts.extra_labels.set({labels::Source::kUnspec, "round", std::to_string(rng())});
      auto r = engine.importRules(rules.dump(), opts);
      ASSERT_TRUE(r.ok()) << r.error().toString();
      for (uint16_t ep : r->affected_endpoints) {
        auto p = engine.attach(subjects[ep - 1]);
        ASSERT_TRUE(p.ok());
        ASSERT_TRUE(maps.replace(ep, p->entries).ok());
      }
    };
    for (int i = 0; i < 4; i++) importRandom();
    for (const auto& s : subjects) {
      auto p = engine.attach(s);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(maps.replace(s.endpoint_id, p->entries).ok());
    }

    std::vector<identity::NumericIdentity> live;
    for (const auto& s : subjects) live.push_back(s.identity);
    for (int step = 0; step < 300; step++) {
      int op = static_cast<int>(rng() % 12);
      if (op < 4) {
        auto a = (*ids)->allocate(randomPodLabels(rng));
        ASSERT_TRUE(a.ok());
        live.push_back(a->id);
      } else if (op < 7 && live.size() > subjects.size()) {
        size_t k = subjects.size() + rng() % (live.size() - subjects.size());
        ASSERT_TRUE((*ids)->release(live[k]).ok());
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      } else if (op < 11) {
        // An address (inside the blocks, inside the except, or outside) moves to an identity
        // (maybe one released meanwhile) or goes away.
        auto prefix = *IpPrefix::parseMasked(fmt::format("10.0.0.{}/32", rng() % 160));
        if (rng() % 3 == 0 || live.empty()) {
          ASSERT_TRUE(addresses.remove(prefix, ipcache::Source::kLocal).ok());
        } else {
          ipcache::Info info{live[rng() % live.size()], std::nullopt, 0, 0};
          ASSERT_TRUE(addresses.upsert(prefix, info, ipcache::Source::kLocal).ok());
        }
      } else {
        importRandom();
      }
      for (uint16_t ep : changed) {
        auto delta = engine.consumeChanges(ep);
        ASSERT_TRUE(delta.ok());
        ASSERT_TRUE(maps.update(ep, delta->upserts, delta->deletes).ok());
      }
      changed.clear();
      for (const auto& s : subjects) {
        auto full = engine.resolve(s);
        ASSERT_TRUE(full.ok());
        auto dumped = maps.dump(s.endpoint_id);
        ASSERT_TRUE(dumped.ok());
        ASSERT_EQ(describe(*dumped), describe(full->entries))
            << "seed " << seed << " step " << step << " endpoint " << s.endpoint_id;
      }
    }
    // Nothing is left to consume once everything was applied.
    for (const auto& s : subjects) EXPECT_TRUE(engine.consumeChanges(s.endpoint_id)->empty());
  }
}

TEST(PolicyPropertyTest, DeltaOrderNeverLetsAnAllowActAlone) {
  auto ids = identity::Allocator::open("");
  ASSERT_TRUE(ids.ok());
  Engine engine(**ids);
  labels::Labels web{{labels::Source::kK8s, "app", "web"}};
  auto w = (*ids)->allocate(web);
  ASSERT_TRUE(engine
                  .importRules(R"([{"endpointSelector": {},
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "db"}}]}],
                    "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "db"}}],
                                     "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}]}])")
                  .ok());
  ASSERT_TRUE(engine.attach({1, w->id, web, {}}).ok());
  auto db = (*ids)->allocate(labels::Labels{{labels::Source::kK8s, "app", "db"}});
  auto delta = engine.consumeChanges(1);
  ASSERT_TRUE(delta.ok());
  ASSERT_EQ(delta->upserts.size(), 2u);
  EXPECT_TRUE(delta->upserts[0].value.flags & POLICY_F_DENY) << "denies go in first";
  EXPECT_FALSE(delta->upserts[1].value.flags & POLICY_F_DENY);
  ASSERT_TRUE((*ids)->release(db->id).ok());
  delta = engine.consumeChanges(1);
  ASSERT_EQ(delta->deletes.size(), 2u);
  EXPECT_EQ(delta->deletes[0].prefixlen, uint32_t{POLICY_PREFIX_ANY_PROTO})
      << "allows go out first";
}

}  // namespace
}  // namespace cilium::policy
