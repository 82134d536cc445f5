// The etcd client against a real etcd: KV and transactions, leases, the Session re-creating its
// keys after a lost lease and an outage, and the Mirror resuming a watch and relisting after a
// compaction without keeping stale keys.
#include "agent/kvstore/etcd.h"

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "tests/harness/etcd_server.h"
#include "tests/harness/etcd_skip.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::kvstore {
namespace {

using cilium::testing::EtcdServer;
using cilium::testing::eventually;
using cilium::testing::TcpRelay;
using namespace std::chrono_literals;

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CILIUM_REQUIRE_ETCD();
    auto st = etcd_.start();
    ASSERT_TRUE(st.ok()) << st.error().message();
    auto c = Client::create(etcd_.config(), {.call_timeout = 2000ms});
    ASSERT_TRUE(c.ok()) << c.error().message();
    client_ = std::move(*c);
  }
  // A client that reaches etcd through `relay` (cut to make etcd unreachable for it alone).
  std::unique_ptr<Client> clientVia(const TcpRelay& relay) {
    EtcdConfig cfg;
    cfg.endpoints = {relay.endpoint()};
    return std::move(*Client::create(cfg, {.call_timeout = 1000ms}));
  }
  std::map<std::string, std::string> contents(const std::string& prefix) {
    std::map<std::string, std::string> out;
    auto r = client_->getPrefix(prefix);
    EXPECT_TRUE(r.ok());
    if (r.ok())
      for (const auto& kv : r->kvs) out[kv.key] = kv.value;
    return out;
  }
  EtcdServer etcd_;
  std::unique_ptr<Client> client_;
};

// A handler that keeps what the mirror told, and every deletion.
struct Recorder {
  std::mutex mu;
  std::map<std::string, std::string> keys;
  std::vector<std::string> deleted;
  std::atomic<int> synced{0};
  MirrorHandler handler() {
    return MirrorHandler{[this](const KeyValue& kv) {
                           std::lock_guard l(mu);
                           keys[kv.key] = kv.value;
                         },
                         [this](const std::string& k) {
                           std::lock_guard l(mu);
                           keys.erase(k);
                           deleted.push_back(k);
                         },
                         [this] { synced++; }};
  }
  std::map<std::string, std::string> get() {
    std::lock_guard l(mu);
    return keys;
  }
};

TEST(EtcdConfigTest, ParsesCiliumsFile) {
  auto c = parseEtcdConfig(
      "endpoints:\n- https://10.0.0.1:2379\n- https://10.0.0.2:2379\n"
      "trusted-ca-file: /ca.crt\ncert-file: /c.crt\nkey-file: /c.key\n"
      "username: cilium\npassword: secret\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->endpoints.size(), 2u);
  EXPECT_EQ(c->trusted_ca_file, "/ca.crt");
  EXPECT_EQ(c->key_file, "/c.key");
  EXPECT_EQ(c->username, "cilium");
}

TEST(EtcdConfigTest, RefusesBadFiles) {
  for (const char* bad :
       {"", "endpoints: []\n", "endpoints: [127.0.0.1:2379]\n",
        "endpoints: [http://a:1]\nbogus: 1\n", "endpoints: [http://a:1]\ncert-file: /c\n",
        "endpoints: [http://a:1]\nusername: u\n", "- a\n", "endpoints: 3\n"}) {
    auto c = parseEtcdConfig(bad);
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  EtcdConfig tls_mix;
  tls_mix.endpoints = {"http://127.0.0.1:1", "https://127.0.0.1:2"};
  EXPECT_FALSE(Client::create(tls_mix).ok());
}

TEST(EtcdConfigTest, PrefixEnd) {
  EXPECT_EQ(prefixEnd("a/"), "a0");
  EXPECT_EQ(prefixEnd("a\xff"), "b");
}

TEST_F(EtcdTest, PutGetDeleteAndCreateOnlyTxn) {
  ASSERT_TRUE(client_->put("t/a", "1").ok());
  ASSERT_TRUE(client_->put("t/b", "2").ok());
  ASSERT_TRUE(client_->put("u/c", "3").ok());
  EXPECT_EQ(contents("t/"), (std::map<std::string, std::string>{{"t/a", "1"}, {"t/b", "2"}}));
  auto one = client_->get("t/a");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->kvs.size(), 1u);
  EXPECT_GT(one->kvs[0].create_revision, 0);

  // Create-only: the first wins, the second reads what is there.
  auto create = [&](const std::string& v) {
    return client_->txn({{"t/x", "", Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""}},
                        {{TxnOp::Kind::kPut, "t/x", "", v, 0}},
                        {{TxnOp::Kind::kRange, "t/x", "", "", 0}});
  };
  auto first = create("first");
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE(first->succeeded);
  auto second = create("second");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  ASSERT_EQ(second->ranges[0].size(), 1u);
  EXPECT_EQ(second->ranges[0][0].value, "first");

  // A compare over an empty range holds (no key has a create revision other than 0).
  auto empty = client_->txn(
      {{"none/", prefixEnd("none/"), Compare::Target::kCreateRevision, Compare::Op::kEqual, 0, ""}},
      {}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->succeeded);

  EXPECT_EQ(*client_->removePrefix("t/"), 3);
  EXPECT_TRUE(contents("t/").empty());
  EXPECT_EQ(contents("u/").size(), 1u);
}

TEST_F(EtcdTest, LeaseKeysVanishWithTheLease) {
  auto lease = client_->grantLease(30s);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  ASSERT_TRUE(client_->put("l/a", "1", *lease).ok());
  auto ttl = client_->keepAlive(*lease);
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(*ttl, 0);
  ASSERT_TRUE(client_->revokeLease(*lease).ok());
  EXPECT_TRUE(contents("l/").empty());
  auto gone = client_->keepAlive(*lease);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
}

// etcd with authentication on: the client logs in with the etcd.config credentials, for unary
// calls, the Session and the Mirror's watch; a wrong password is refused.
TEST_F(EtcdTest, UsernameAndPassword) {
  auto ctl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"etcdctl", "--endpoints=" + etcd_.endpoint()};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions so;
    so.extra_env = {"ETCDCTL_API=3"};
    return runChecked(argv, so, std::chrono::seconds(10));
  };
  ASSERT_TRUE(ctl({"user", "add", "root:rootpw"}).ok());
  ASSERT_TRUE(ctl({"auth", "enable"}).ok());
  // Without credentials: refused.
  auto anon = client_->put("a/x", "1");
  ASSERT_FALSE(anon.ok());
  EtcdConfig cfg = etcd_.config();
  cfg.username = "root";
  cfg.password = "rootpw";
  auto c = Client::create(cfg, {.call_timeout = 2000ms});
  ASSERT_TRUE(c.ok());
  auto& authed = **c;
  ASSERT_TRUE(authed.put("a/x", "1").ok());
  Recorder rec;
  Mirror mirror(authed, "a/", rec.handler());
  mirror.start();
  ASSERT_TRUE(mirror.waitForSync(10s));
  Session session(authed, {.lease_ttl = 10s});
  session.start();
  session.put("a/y", "2");
  EXPECT_TRUE(eventually([&] {
    return rec.get() == std::map<std::string, std::string>{{"a/x", "1"}, {"a/y", "2"}};
  }));
  session.stop();
  mirror.stop();
  cfg.password = "wrong";
  auto bad = Client::create(cfg, {.call_timeout = 2000ms});
  ASSERT_TRUE(bad.ok());
  auto r = (*bad)->get("a/x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("authentication failed"), std::string::npos)
      << r.error().message();
}

// etcd over TLS with client certificates (certificates made with the openssl CLI): the client
// connects with the etcd.config files; without a client certificate, or trusting another CA, it
// does not.
TEST(EtcdTlsTest, ClientCertificates) {
  CILIUM_REQUIRE_ETCD();
  cilium::testing::TempDir dir;
  auto ssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    auto r = runChecked(args);
    ASSERT_TRUE(r.ok()) << r.error().message();
  };
  auto req = [&](const std::string& name, const std::string& cn, bool x509) {
    std::vector<std::string> a = {
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
    if (x509) a.push_back("-x509");
    a.insert(a.end(), {"-keyout", dir.file(name + ".key"), "-out",
                       dir.file(name + (x509 ? ".crt" : ".csr")), "-subj", "/CN=" + cn});
    if (x509) a.insert(a.end(), {"-days", "1"});
    ssl(a);
  };
  auto sign = [&](const std::string& name, const std::string& ext) {
    std::vector<std::string> a = {"x509",
                                  "-req",
                                  "-in",
                                  dir.file(name + ".csr"),
                                  "-CA",
                                  dir.file("ca.crt"),
                                  "-CAkey",
                                  dir.file("ca.key"),
                                  "-CAcreateserial",
                                  "-out",
                                  dir.file(name + ".crt"),
                                  "-days",
                                  "1"};
    if (!ext.empty()) a.insert(a.end(), {"-extfile", ext});
    ssl(a);
  };
  req("ca", "test-ca", true);
  req("other-ca", "other-ca", true);
  req("server", "127.0.0.1", false);
  std::ofstream(dir.file("san.ext")) << "subjectAltName=IP:127.0.0.1\n";
  sign("server", dir.file("san.ext"));
  std::ofstream(dir.file("client.ext")) << "extendedKeyUsage=clientAuth\n";
  req("client", "cilium-agent", false);
  sign("client", dir.file("client.ext"));
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  EtcdServer etcd;
  etcd.enableTls(dir.file("ca.crt"), dir.file("server.crt"), dir.file("server.key"),
                 dir.file("client.crt"), dir.file("client.key"));
  auto st = etcd.start();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(etcd.endpoint().rfind("https://", 0), 0u);
  auto c = Client::create(etcd.config(), {.call_timeout = 2000ms});
  ASSERT_TRUE(c.ok()) << c.error().message();
  ASSERT_TRUE((*c)->put("t/a", "1").ok());
  EXPECT_EQ((*c)->get("t/a")->kvs.at(0).value, "1");

  EtcdConfig no_cert = etcd.config();
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  EXPECT_FALSE((*Client::create(no_cert, {.call_timeout = 1000ms}))->get("t/a").ok());
  EtcdConfig other_ca = etcd.config();
  other_ca.trusted_ca_file = dir.file("other-ca.crt");
  EXPECT_FALSE((*Client::create(other_ca, {.call_timeout = 1000ms}))->get("t/a").ok());
  EtcdConfig missing = etcd.config();
  missing.cert_file = dir.file("nope.crt");
  EXPECT_FALSE(Client::create(missing).ok());
}

TEST_F(EtcdTest, UnreachableIsUnavailable) {
  etcd_.kill();
  auto r = client_->get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().code() == ErrorCode::kUnavailable ||
              r.error().code() == ErrorCode::kDeadlineExceeded)
      << r.error().message();
}

TEST_F(EtcdTest, MirrorListsThenWatches) {
  ASSERT_TRUE(client_->put("m/a", "1").ok());
  ASSERT_TRUE(client_->put("other", "x").ok());
  Recorder rec;
  Mirror mirror(*client_, "m/", rec.handler());
  mirror.start();
  ASSERT_TRUE(mirror.waitForSync(10s));
  EXPECT_EQ(rec.get(), (std::map<std::string, std::string>{{"m/a", "1"}}));
  ASSERT_TRUE(client_->put("m/b", "2").ok());
  ASSERT_TRUE(client_->put("m/a", "3").ok());
  ASSERT_TRUE(client_->remove("m/b").ok());
  ASSERT_TRUE(client_->put("m/c", "4").ok());
  EXPECT_TRUE(eventually([&] {
    return rec.get() == std::map<std::string, std::string>{{"m/a", "3"}, {"m/c", "4"}};
  }));
  EXPECT_EQ(mirror.lists(), 1u);
  mirror.stop();
}

// A broken stream resumes from the next revision: nothing missed, no relist.
TEST_F(EtcdTest, MirrorResumesAfterAnOutage) {
  TcpRelay relay(etcd_.port());
  auto via = clientVia(relay);
  Recorder rec;
  Mirror mirror(*via, "m/", rec.handler());
  mirror.start();
  ASSERT_TRUE(mirror.waitForSync(10s));
  relay.cut();
  ASSERT_TRUE(client_->put("m/a", "1").ok());
  ASSERT_TRUE(client_->put("m/b", "2").ok());
  ASSERT_TRUE(client_->remove("m/a").ok());
  relay.heal();
  EXPECT_TRUE(eventually([&] {
    return rec.get() == std::map<std::string, std::string>{{"m/b", "2"}};
  }));
  EXPECT_EQ(mirror.lists(), 1u);
  EXPECT_EQ(mirror.compactions(), 0u);
}

// The revision to resume from was compacted while the mirror was cut off: it lists again and
// tells exactly the differences (a key deleted meanwhile is deleted, not kept stale).
TEST_F(EtcdTest, MirrorRelistsAfterCompaction) {
  ASSERT_TRUE(client_->put("m/stay", "1").ok());
  ASSERT_TRUE(client_->put("m/gone", "1").ok());
  ASSERT_TRUE(client_->put("m/changed", "1").ok());
  TcpRelay relay(etcd_.port());
  auto via = clientVia(relay);
  Recorder rec;
  Mirror mirror(*via, "m/", rec.handler());
  mirror.start();
  ASSERT_TRUE(mirror.waitForSync(10s));
  EXPECT_EQ(rec.get().size(), 3u);
  relay.cut();
  ASSERT_TRUE(client_->remove("m/gone").ok());
  ASSERT_TRUE(client_->put("m/changed", "2").ok());
  auto rev = client_->put("m/new", "1");
  ASSERT_TRUE(rev.ok());
  ASSERT_TRUE(client_->compact(*rev).ok());
  relay.heal();
  EXPECT_TRUE(eventually([&] {
    return rec.get() ==
           std::map<std::string, std::string>{{"m/stay", "1"}, {"m/changed", "2"}, {"m/new", "1"}};
  }));
  EXPECT_EQ(mirror.compactions(), 1u);
  EXPECT_EQ(mirror.lists(), 2u);
  {
    std::lock_guard l(rec.mu);
    EXPECT_EQ(rec.deleted, std::vector<std::string>{"m/gone"});
  }
  // And it watches on from the relist.
  ASSERT_TRUE(client_->put("m/after", "1").ok());
  EXPECT_TRUE(eventually([&] { return rec.get().count("m/after") == 1; }));
}

// etcd killed and restarted (same data): the mirror reconnects and catches up.
TEST_F(EtcdTest, MirrorSurvivesEtcdRestart) {
  Recorder rec;
  Mirror mirror(*client_, "m/", rec.handler());
  mirror.start();
  ASSERT_TRUE(mirror.waitForSync(10s));
  ASSERT_TRUE(client_->put("m/a", "1").ok());
  EXPECT_TRUE(eventually([&] { return rec.get().size() == 1; }));
  etcd_.kill();
  ASSERT_TRUE(etcd_.start().ok());
  ASSERT_TRUE(client_->put("m/b", "2").ok());
  EXPECT_TRUE(eventually([&] { return rec.get().size() == 2; }));
}

TEST_F(EtcdTest, SessionRecreatesKeysWhenTheLeaseIsLost) {
  Session session(*client_, {.lease_ttl = 10s});
  session.start();
  session.put("s/a", "1");
  session.put("s/b", "2");
  ASSERT_TRUE(eventually([&] { return contents("s/").size() == 2; }));
  auto lease = session.lease();
  ASSERT_NE(lease, 0);
  // Someone revokes our lease (as its expiry would): the keys go, then come back on a new one.
  ASSERT_TRUE(client_->revokeLease(lease).ok());
  EXPECT_TRUE(contents("s/").empty());
  ASSERT_TRUE(eventually(
      [&] {
        return contents("s/") == std::map<std::string, std::string>{{"s/a", "1"}, {"s/b", "2"}};
      },
      15s));
  EXPECT_NE(session.lease(), lease);
  EXPECT_EQ(session.leaseRenewals(), 1u);
  auto r = client_->get("s/a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kvs[0].lease, session.lease());
  session.remove("s/a");
  EXPECT_TRUE(eventually([&] { return contents("s/").size() == 1; }));
}

// Writes made while etcd is down land when it is back; keys whose lease expired meanwhile come
// back under a new lease.
TEST_F(EtcdTest, SessionWritesThroughAnOutage) {
  Session session(*client_, {.lease_ttl = 2s});
  session.start();
  session.put("s/a", "1");
  ASSERT_TRUE(eventually([&] { return contents("s/").size() == 1; }));
  etcd_.kill();
  session.put("s/b", "2");
  EXPECT_TRUE(eventually([&] { return !session.connected(); }));
  // Down for longer than the TTL: the session gives its lease up.
  EXPECT_TRUE(eventually([&] { return session.lease() == 0; }));
  ASSERT_TRUE(etcd_.start().ok());
  EXPECT_TRUE(eventually(
      [&] {
        return contents("s/") == std::map<std::string, std::string>{{"s/a", "1"}, {"s/b", "2"}};
      },
      20s));
  EXPECT_TRUE(eventually([&] { return session.connected(); }));
}

}  // namespace
}  // namespace cilium::kvstore
