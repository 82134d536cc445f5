// The agent's kvstore (kvstore=etcd), as two Daemon components around the control plane:
//
//   KvstoreComponent (added before the control plane): the etcd client from the etcd.config file
//     of kvstore-opt, the agent's lease (Session) and the mirror of identities, so that
//     identity-allocation-mode=kvstore has its backend when the allocator starts. An etcd that
//     does not answer does not stop the agent: it starts from its restored state and everything
//     below converges when etcd comes back.
//   KvstoreFeedComponent (added after the control plane): other nodes' identities into the
//     allocator, this node and its endpoints published, every other node and endpoint into the
//     node manager and the ipcache, and the identity garbage collector (leader-less: every agent
//     runs it; each deletion is a transaction, see kvstore/identities.h).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/daemon/control_plane_component.h"
#include "agent/daemon/daemon.h"

namespace cilium::identity {
class Backend;
}
namespace cilium::kvstore {
class Client;
class Session;
class Identities;
class NodeSync;
class EndpointSync;
}  // namespace cilium::kvstore

namespace cilium::daemon {

class KvstoreComponent final : public Component {
 public:
  KvstoreComponent();
  ~KvstoreComponent() override;
  std::string_view name() const override { return "kvstore"; }
  // Configuration errors (an etcd.config that does not parse, TLS files missing) fail the start;
  // an unreachable etcd does not.
  Status start(Host& daemon) override;
  void stop() override;

  // Null without kvstore.
  kvstore::Client* client() { return client_.get(); }
  kvstore::Session* session() { return session_.get(); }
  kvstore::Identities* identities() { return identities_.get(); }
  // identity-allocation-mode=kvstore: the factory for ControlPlaneOptions::cluster_identities.
  std::function<Result<std::unique_ptr<identity::Backend>>()> identityBackend();
  // Asks etcd for its version again (status shows it).
  void refreshVersion();

 private:
  void statusOf(api::StatusResponse& s);
  std::mutex mu_;  // guards the pointers for the status provider
  std::unique_ptr<kvstore::Client> client_;
  std::unique_ptr<kvstore::Session> session_;
  std::unique_ptr<kvstore::Identities> identities_;
  std::string version_;
};

class KvstoreFeedComponent final : public Component {
 public:
  // Both must outlive it.
  KvstoreFeedComponent(KvstoreComponent& kvstore, ControlPlaneComponent& control_plane);
  ~KvstoreFeedComponent() override;
  std::string_view name() const override { return "kvstore-feed"; }
  Status start(Host& daemon) override;
  void stop() override;

 private:
  void maintenance(std::chrono::seconds gc_interval);
  KvstoreComponent& kvstore_;
  ControlPlaneComponent& control_plane_;
  bool attached_ = false;
  std::unique_ptr<kvstore::NodeSync> nodes_;
  std::unique_ptr<kvstore::EndpointSync> endpoints_;
  uint64_t ipcache_subscription_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cilium::daemon
