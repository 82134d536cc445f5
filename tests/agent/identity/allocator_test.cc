#include "agent/identity/allocator.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/harness/eventually.h"

namespace cilium::identity {
namespace {

using labels::Label;
using namespace std::chrono_literals;
using labels::Labels;
using labels::Source;

Labels app(const std::string& name) { return Labels{{Source::kK8s, "app", name}}; }

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ =
        std::filesystem::temp_directory_path() /
        ("cilium-identity-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::remove_all(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::filesystem::path path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// Records what an observer was told, as the set of present identities.
struct Tracker {
  std::map<NumericIdentity, Labels> present;
  int adds = 0;
  int removes = 0;
  bool consistent = true;  // no double add, no removal of something absent
  Observer observer() {
    return [this](const std::vector<IdentityChange>& changes) {
      for (const auto& c : changes) {
        if (c.kind == IdentityChange::Kind::kAdded) {
          adds++;
          consistent &= present.emplace(c.identity.id, c.identity.labels).second;
        } else {
          removes++;
          consistent &= present.erase(c.identity.id) == 1;
        }
      }
    };
  }
};

std::unique_ptr<Allocator> memoryAllocator() {
  auto a = Allocator::open("");
  EXPECT_TRUE(a.ok());
  return std::move(*a);
}

TEST(IdentityTest, ReservedNumbersAndLabels) {
  struct {
    NumericIdentity id;
    const char* name;
  } expected[] = {{1, "host"},       {2, "world"},       {3, "unmanaged"},      {4, "health"},
                  {5, "init"},       {6, "remote-node"}, {7, "kube-apiserver"}, {8, "ingress"},
                  {9, "world-ipv4"}, {10, "world-ipv6"}};
  auto alloc = memoryAllocator();
  for (const auto& e : expected) {
    EXPECT_EQ(reservedName(e.id), e.name);
    EXPECT_EQ(reservedByName(e.name), e.id);
    auto ident = alloc->lookup(e.id);
    ASSERT_TRUE(ident.has_value()) << e.name;
    EXPECT_EQ(ident->labels.toStrings(),
              std::vector<std::string>{std::string("reserved:") + e.name});
    // Allocating the reserved label set gives the reserved number.
    auto a = alloc->allocate(ident->labels);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->id, e.id);
  }
  EXPECT_EQ(reservedIdentities().size(), 10u);
  EXPECT_EQ(alloc->list().size(), 10u);
  EXPECT_TRUE(alloc->release(kHost).ok());
  EXPECT_TRUE(alloc->lookup(kHost).has_value());
}

TEST(IdentityTest, ReservedLabelRules) {
  auto alloc = memoryAllocator();
  // The host keeps its number with node labels next to reserved:host.
  auto host =
      alloc->allocate(Labels{{Source::kReserved, "host", ""}, {Source::kK8s, "node", "n1"}});
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->id, kHost);
  auto init = alloc->allocate(Labels{{Source::kReserved, "init", ""}, {Source::kK8s, "x", "y"}});
  ASSERT_TRUE(init.ok());
  EXPECT_EQ(init->id, kInit);
  auto mixed =
      alloc->allocate(Labels{{Source::kReserved, "world", ""}, {Source::kK8s, "app", "a"}});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(alloc->allocate(Labels{{Source::kReserved, "bogus", ""}}).ok());
  EXPECT_FALSE(alloc->allocate(Labels{}).ok());
}

TEST(IdentityTest, AllocatesFrom256WithReferenceCounting) {
  auto alloc = memoryAllocator();
  Tracker t;
  alloc->subscribe(t.observer());
  EXPECT_EQ(t.present.size(), 10u);  // the reserved identities come first

  auto web = alloc->allocate(app("web"));
  auto db = alloc->allocate(app("db"));
  auto web2 = alloc->allocate(app("web"));
  ASSERT_TRUE(web.ok() && db.ok() && web2.ok());
  EXPECT_EQ(web->id, 256u);
  EXPECT_EQ(db->id, 257u);
  EXPECT_EQ(web2->id, 256u);
  EXPECT_EQ(t.present.count(256), 1u);
  EXPECT_EQ(t.adds, 12);

  EXPECT_TRUE(alloc->release(256).ok());
  EXPECT_TRUE(alloc->lookup(256).has_value()) << "one reference is left";
  EXPECT_EQ(t.removes, 0);
  EXPECT_TRUE(alloc->release(256).ok());
  EXPECT_FALSE(alloc->lookup(256).has_value());
  EXPECT_EQ(t.removes, 1);
  EXPECT_EQ(t.present.count(256), 0u);

  auto again = alloc->release(256);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(alloc->release(9999).ok());
  EXPECT_TRUE(t.consistent);

  auto found = alloc->lookupByLabels(app("db"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, 257u);
  auto entries = alloc->list();
  ASSERT_EQ(entries.size(), 11u);
  EXPECT_EQ(entries.back().identity.id, 257u);
  EXPECT_EQ(entries.back().references, 1u);
  EXPECT_TRUE(entries.front().reserved);
}

TEST(IdentityTest, ReleasedNumberComesBackForTheSameLabels) {
  auto alloc = memoryAllocator();
  ASSERT_EQ(alloc->allocate(app("a"))->id, 256u);
  ASSERT_TRUE(alloc->release(256).ok());
  EXPECT_EQ(alloc->allocate(app("b"))->id, 257u) << "new labels get a fresh number";
  EXPECT_EQ(alloc->allocate(app("a"))->id, 256u) << "old labels get their old number";
}

TEST(IdentityTest, CidrIdentitiesAreNodeLocal) {
  auto alloc = memoryAllocator();
  auto p = *IpPrefix::parseMasked("10.0.0.0/8");
  auto c = alloc->allocateCidr(p);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(isLocal(c->id));
  EXPECT_EQ(c->id, kMinLocal);
  EXPECT_EQ(c->labels.toStrings(), (std::vector<std::string>{"cidr:10.0.0.0/8", "reserved:world"}));
  EXPECT_EQ(cidrOfLabels(c->labels), p);
  EXPECT_EQ(alloc->allocateCidr(p)->id, c->id);
  EXPECT_EQ(alloc->allocateCidr(*IpPrefix::parseMasked("192.168.0.0/16"))->id, kMinLocal + 1);
  // CIDR labels only come through allocateCidr.
  EXPECT_FALSE(alloc->allocate(Labels{{Source::kCidr, "1.0.0.0/8", ""}}).ok());
  EXPECT_TRUE(alloc->release(c->id).ok());
  EXPECT_TRUE(alloc->release(c->id).ok());
  EXPECT_FALSE(alloc->lookup(c->id).has_value());
}

TEST(IdentityTest, RangeExhaustionReusesLeastRecentlyReleased) {
  auto cluster = LocalBackend::open("", 256, 258, "x");
  auto local = LocalBackend::open("", kMinLocal, kMaxLocal, "y");
  ASSERT_TRUE(cluster.ok() && local.ok());
  auto a = Allocator::create(std::move(*cluster), std::move(*local));
  ASSERT_TRUE(a.ok());
  auto& alloc = **a;
  ASSERT_EQ(alloc.allocate(app("a"))->id, 256u);
  ASSERT_EQ(alloc.allocate(app("b"))->id, 257u);
  ASSERT_EQ(alloc.allocate(app("c"))->id, 258u);
  auto full = alloc.allocate(app("d"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  ASSERT_TRUE(alloc.release(257).ok());
  ASSERT_TRUE(alloc.release(256).ok());
  EXPECT_EQ(alloc.allocate(app("d"))->id, 257u) << "257 was released first";
  EXPECT_EQ(alloc.allocate(app("e"))->id, 256u);
  EXPECT_FALSE(alloc.allocate(app("a")).ok()) << "a lost its number and the range is full";
}

TEST(IdentityTest, RestartKeepsNumbersAndHoldsRestoredIdentities) {
  TempDir dir;
  NumericIdentity web, db, cidr;
  {
    auto alloc = Allocator::open(dir.str());
    ASSERT_TRUE(alloc.ok()) << alloc.error().message();
    web = (*alloc)->allocate(app("web"))->id;
    db = (*alloc)->allocate(app("db"))->id;
    auto gone = (*alloc)->allocate(app("gone"))->id;
    ASSERT_TRUE((*alloc)->release(gone).ok());
    cidr = (*alloc)->allocateCidr(*IpPrefix::parseMasked("8.8.8.0/24"))->id;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "identities.json"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "local_identities.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "identities.json.tmp"));

  auto alloc = Allocator::open(dir.str());
  ASSERT_TRUE(alloc.ok()) << alloc.error().message();
  Tracker t;
  (*alloc)->subscribe(t.observer());
  // Identities in use at shutdown are present again before anyone allocates them.
  EXPECT_EQ(t.present.count(web), 1u);
  EXPECT_EQ(t.present.count(db), 1u);
  EXPECT_EQ(t.present.count(cidr), 1u);
  EXPECT_EQ(t.present.count(258), 0u) << "released before the restart";
  auto listed = (*alloc)->list();
  EXPECT_TRUE(std::any_of(listed.begin(), listed.end(),
                          [&](const auto& e) { return e.identity.id == web && e.restored; }));

  // The endpoint using web comes back: same number. db does not.
  EXPECT_EQ((*alloc)->allocate(app("web"))->id, web);
  (*alloc)->releaseRestored();
  EXPECT_EQ(t.present.count(web), 1u);
  EXPECT_EQ(t.present.count(db), 0u);
  EXPECT_EQ(t.present.count(cidr), 0u);
  EXPECT_TRUE(t.consistent);
  // Numbers stay bound to their labels across the restart, and new labels get fresh numbers.
  EXPECT_EQ((*alloc)->allocate(app("gone"))->id, 258u);
  EXPECT_EQ((*alloc)->allocate(app("db"))->id, db);
  EXPECT_EQ((*alloc)->allocate(app("new"))->id, 259u);
}

TEST(IdentityTest, CorruptStateIsAnErrorNotAReset) {
  TempDir dir;
  std::filesystem::create_directories(dir.path());
  {
    std::ofstream f(dir.path() / "identities.json");
    f << "{\"version\": 1, \"next\": 300, \"seq\": 0, \"identities\": [{\"id\": 256}]}";
  }
  auto alloc = Allocator::open(dir.str());
  ASSERT_FALSE(alloc.ok());
  EXPECT_EQ(alloc.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(alloc.error().message().find("identities.json"), std::string::npos);
  {
    std::ofstream f(dir.path() / "identities.json");
    f << "not json";
  }
  EXPECT_FALSE(Allocator::open(dir.str()).ok());
}

TEST(IdentityTest, ObserverMayAllocateFromItsCallback) {
  auto alloc = memoryAllocator();
  std::vector<NumericIdentity> seen;
  bool nested = false;
  alloc->subscribe([&](const std::vector<IdentityChange>& changes) {
    for (const auto& c : changes) {
      if (c.kind != IdentityChange::Kind::kAdded || isReserved(c.identity.id)) continue;
      seen.push_back(c.identity.id);
      if (!nested) {
        nested = true;
        EXPECT_EQ(alloc->allocate(app("from-callback"))->id, 257u);
      }
    }
  });
  ASSERT_TRUE(alloc->allocate(app("first")).ok());
  EXPECT_EQ(seen, (std::vector<NumericIdentity>{256, 257}));
}

TEST(IdentityTest, RemoteIdentitiesArePresentWhileReported) {
  auto alloc = memoryAllocator();
  Tracker t;
  alloc->subscribe(t.observer());
  alloc->upsertRemote({4000, app("remote")});
  EXPECT_EQ(t.present.count(4000), 1u);
  // This node starts using it too: same number, no second add.
  auto local = alloc->allocate(app("remote"));
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->id, 4000u);
  alloc->removeRemote(4000);
  EXPECT_EQ(t.present.count(4000), 1u) << "still used on this node";
  ASSERT_TRUE(alloc->release(4000).ok());
  EXPECT_EQ(t.present.count(4000), 0u);
  // A remote report conflicting with local labels is ignored.
  auto mine = alloc->allocate(app("mine"));
  alloc->upsertRemote({mine->id, app("theirs")});
  EXPECT_EQ(alloc->lookup(mine->id)->labels, app("mine"));
  EXPECT_TRUE(t.consistent);
}

TEST(IdentityTest, ConcurrentUseKeepsObserversConsistent) {
  auto alloc = memoryAllocator();
  Tracker t;
  alloc->subscribe(t.observer());
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; w++) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 300; i++) {
        auto id = alloc->allocate(app("x" + std::to_string((i + w) % 17)));
        ASSERT_TRUE(id.ok());
        if (i % 3 != 0) {
          ASSERT_TRUE(alloc->release(id->id).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(t.consistent);
  std::set<NumericIdentity> listed, observed;
  for (const auto& e : alloc->list()) listed.insert(e.identity.id);
  for (const auto& [id, l] : t.present) observed.insert(id);
  EXPECT_EQ(listed, observed);
}

TEST(IdentityTest, UnsubscribedObserverHearsNothing) {
  auto alloc = memoryAllocator();
  int calls = 0;
  auto sid = alloc->subscribe([&](const std::vector<IdentityChange>&) { calls++; });
  EXPECT_EQ(calls, 1);
  alloc->unsubscribe(sid);
  ASSERT_TRUE(alloc->allocate(app("a")).ok());
  EXPECT_EQ(calls, 1);
}

// A cluster backend whose calls for app=slow block until opened, counting every call; numbers
// from 1000 in order of first acquire.
class GateBackend final : public Backend {
 public:
  Result<NumericIdentity> acquire(const Labels& lbls, std::optional<NumericIdentity>) override {
    std::string key = lbls.sortedList();
    {
      std::lock_guard l(mu_);
      acquires_[key]++;
      in_flight_++;
      max_in_flight_ = std::max(max_in_flight_, in_flight_);
    }
    if (lbls == app("slow")) {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return open_; });
    }
    std::lock_guard l(mu_);
    in_flight_--;
    auto [it, added] = numbers_.emplace(key, 1000 + static_cast<NumericIdentity>(numbers_.size()));
    return it->second;
  }
  Status release(NumericIdentity, const Labels& lbls) override {
    std::lock_guard l(mu_);
    releases_[lbls.sortedList()]++;
    return okStatus();
  }
  Result<std::vector<Identity>> restoreInUse() override { return std::vector<Identity>{}; }
  std::string name() const override { return "gate"; }

  void open() {
    std::lock_guard l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int acquires(const Labels& lbls) {
    std::lock_guard l(mu_);
    return acquires_[lbls.sortedList()];
  }
  int inFlight() {
    std::lock_guard l(mu_);
    return in_flight_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int in_flight_ = 0, max_in_flight_ = 0;
  std::map<std::string, NumericIdentity> numbers_;
  std::map<std::string, int> acquires_, releases_;
};

TEST(IdentityTest, LabelSetsAllocateConcurrentlyAndOneLabelSetOnce) {
  auto gate_owned = std::make_unique<GateBackend>();
  GateBackend* gate = gate_owned.get();
  auto local = LocalBackend::open("", kMinLocal, kMaxLocal, "x");
  ASSERT_TRUE(local.ok());
  auto a = Allocator::create(std::move(gate_owned), std::move(*local));
  ASSERT_TRUE(a.ok());
  // Whatever happens below, the blocked calls are let go before the allocator goes.
  struct Opener {
    GateBackend* g;
    ~Opener() { g->open(); }
  } opener{gate};
  auto slow1 = std::async(std::launch::async, [&] { return (*a)->allocate(app("slow")); });
  ASSERT_TRUE(cilium::testing::eventually([&] { return gate->inFlight() == 1; }, 5s));
  auto slow2 = std::async(std::launch::async, [&] { return (*a)->allocate(app("slow")); });
  // Another label set is not held up by the call in flight (it used to wait for the lock).
  auto fast = std::async(std::launch::async, [&] { return (*a)->allocate(app("fast")); });
  ASSERT_EQ(fast.wait_for(5s), std::future_status::ready) << "app=fast waited for app=slow";
  ASSERT_TRUE(fast.get().ok());
  EXPECT_TRUE((*a)->lookupByLabels(app("fast")).has_value());
  EXPECT_FALSE((*a)->lookupByLabels(app("slow")).has_value()) << "not allocated before the call";
  EXPECT_EQ(slow2.wait_for(100ms), std::future_status::timeout);
  gate->open();
  auto id1 = slow1.get();
  auto id2 = slow2.get();
  ASSERT_TRUE(id1.ok() && id2.ok());
  EXPECT_EQ(id1->id, id2->id);
  EXPECT_EQ(gate->acquires(app("slow")), 1) << "the second caller took a reference, no call";
  // Two references: the first release keeps it, the second reaches the backend.
  EXPECT_TRUE((*a)->release(id1->id).ok());
  EXPECT_TRUE((*a)->lookup(id1->id).has_value());
  EXPECT_TRUE((*a)->release(id1->id).ok());
  EXPECT_FALSE((*a)->lookup(id1->id).has_value());
  auto again = (*a)->allocate(app("slow"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, id1->id);
  EXPECT_EQ(gate->acquires(app("slow")), 2);
}

}  // namespace
}  // namespace cilium::identity
