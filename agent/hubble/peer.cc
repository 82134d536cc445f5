// peer.Peer/Notify over a PeerSource.
#include "agent/hubble/peer.h"

#include <map>
#include <thread>

#include <fmt/format.h>

namespace cilium::hubble {

namespace {

peer::ChangeNotification notification(const PeerInfo& p, peer::ChangeNotificationType type) {
  peer::ChangeNotification n;
  n.set_name(p.name);
  n.set_address(p.address);
  n.set_type(type);
  if (!p.tls_server_name.empty()) n.mutable_tls()->set_server_name(p.tls_server_name);
  return n;
}

}  // namespace

grpc::Status PeerService::Notify(grpc::ServerContext* ctx, const peer::NotifyRequest*,
                                 grpc::ServerWriter<peer::ChangeNotification>* writer) {
  std::map<std::string, PeerInfo> known;
  for (const auto& p : source_.peers()) {
    if (!writer->Write(notification(p, peer::PEER_ADDED))) return grpc::Status::OK;
    known[p.name] = p;
  }
  auto next = std::chrono::steady_clock::now() + poll_;
  while (!stopping_ && !ctx->IsCancelled()) {
    // Short sleeps: a cancelled client or a server shutdown is noticed within 50 ms.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() < next) continue;
    next = std::chrono::steady_clock::now() + poll_;
    std::map<std::string, PeerInfo> now;
    for (const auto& p : source_.peers()) now[p.name] = p;
    for (const auto& [name, p] : now) {
      auto it = known.find(name);
      if (it == known.end()) {
        if (!writer->Write(notification(p, peer::PEER_ADDED))) return grpc::Status::OK;
      } else if (!(it->second == p)) {
        if (!writer->Write(notification(p, peer::PEER_UPDATED))) return grpc::Status::OK;
      }
    }
    for (const auto& [name, p] : known)
      if (!now.contains(name) && !writer->Write(notification(p, peer::PEER_DELETED)))
        return grpc::Status::OK;
    known = std::move(now);
  }
  return grpc::Status::OK;
}

std::string hubbleTlsServerName(std::string_view cluster, std::string_view node) {
  std::string n(node);
  for (auto& c : n)
    if (c == '.') c = '-';
  return fmt::format("{}.{}.hubble-grpc.cilium.io", n, cluster.empty() ? "default" : cluster);
}

}  // namespace cilium::hubble
