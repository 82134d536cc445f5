// peer.Peer/Notify over a PeerSource.
#include "agent/hubble/peer.h"

#include <map>
#include <thread>

#include <fmt/format.h>

namespace cilium::hubble {

namespace {

// "ip:port", IPv6 in brackets (as gRPC targets want it).
std::string hostPort(const IpAddr& ip, int port) {
  return ip.isV4() ? fmt::format("{}:{}", ip.toString(), port)
                   : fmt::format("[{}]:{}", ip.toString(), port);
}

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

std::vector<PeerInfo> ClusterPeerSource::peers() const {
  std::vector<PeerInfo> out;
  bool self_listed = false;
  bool default_cluster = cluster_.empty() || cluster_ == "default";
  for (const auto& n : lister_()) {
    if (n.name == self_node_) {
      PeerInfo self = self_;
      if (!self_address_fixed_ && n.address) self.address = hostPort(*n.address, port_);
      out.push_back(std::move(self));
      self_listed = true;
      continue;
    }
    if (!n.address) continue;
    PeerInfo p;
    p.name = default_cluster ? n.name : cluster_ + "/" + n.name;
    p.address = hostPort(*n.address, port_);
    if (tls_) p.tls_server_name = hubbleTlsServerName(cluster_, n.name);
    out.push_back(std::move(p));
  }
  if (!self_listed) out.push_back(self_);
  return out;
}

std::string hubbleTlsServerName(std::string_view cluster, std::string_view node) {
  std::string n(node);
  for (auto& c : n)
    if (c == '.') c = '-';
  return fmt::format("{}.{}.hubble-grpc.cilium.io", n, cluster.empty() ? "default" : cluster);
}

}  // namespace cilium::hubble
