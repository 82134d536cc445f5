// Node and endpoint keys in etcd: their JSON, publishing under the lease, mirroring into the node
// manager and the ipcache.
#include "agent/kvstore/cluster.h"

#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/endpoint/manager.h"

namespace cilium::kvstore {

namespace {

using nlohmann::json;

auto& log() {
  static auto l = cilium::logger("kvstore");
  return l;
}

std::string base64(const uint8_t* p, size_t n) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = p[i] << 16;
    if (i + 1 < n) v |= p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(kTable[(v >> 18) & 63]);
    out.push_back(kTable[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kTable[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kTable[v & 63] : '=');
  }
  return out;
}

// The prefix length of a base64 netmask (Go's net.IPMask in JSON); nullopt when malformed.
std::optional<int> maskLength(const std::string& b64) {
  int bits = 0;
  bool ended = false;
  std::string_view table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t acc = 0;
  int nacc = 0;
  std::vector<uint8_t> bytes;
  for (char c : b64) {
    if (c == '=') break;
    auto pos = table.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    nacc += 6;
    if (nacc >= 8) {
      nacc -= 8;
      bytes.push_back(static_cast<uint8_t>((acc >> nacc) & 0xff));
    }
  }
  if (bytes.size() != 4 && bytes.size() != 16) return std::nullopt;
  for (uint8_t b : bytes)
    for (int i = 7; i >= 0; i--) {
      bool one = (b >> i) & 1;
      if (one && ended) return std::nullopt;  // not contiguous
      if (one)
        bits++;
      else
        ended = true;
    }
  return bits;
}

json cidrJson(const IpPrefix& p) {
  std::array<uint8_t, 16> mask{};
  int width = p.addr().bits();
  for (int i = 0; i < p.len(); i++) mask[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
  return json{{"IP", p.addr().toString()}, {"Mask", base64(mask.data(), width / 8)}};
}

Result<IpPrefix> cidrOfJson(const json& j) {
  if (j.is_string()) return IpPrefix::parse(j.get<std::string>());
  if (!j.is_object() || !j.contains("IP") || !j["IP"].is_string() || !j.contains("Mask") ||
      !j["Mask"].is_string())
    return Error(ErrorCode::kInvalidArgument, "CIDR: want {\"IP\": ..., \"Mask\": ...}");
  CILIUM_ASSIGN_OR_RETURN(auto ip, IpAddr::parse(j["IP"].get<std::string>()));
  auto len = maskLength(j["Mask"].get<std::string>());
  if (!len || *len > ip.bits()) return Error(ErrorCode::kInvalidArgument, "CIDR: bad Mask");
  return IpPrefix(ip, *len);
}

std::string str(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

}  // namespace

std::string nodeToJson(const node::Node& n, const std::string& cluster) {
  json addrs = json::array();
  for (const auto& a : n.addresses)
    addrs.push_back({{"Type", node::addressTypeName(a.type)}, {"IP", a.ip.toString()}});
  json j = {{"Name", n.name},           {"Cluster", cluster},       {"IPAddresses", addrs},
            {"IPv4AllocCIDR", nullptr}, {"IPv6AllocCIDR", nullptr}, {"IPv4HealthIP", ""},
            {"IPv6HealthIP", ""},       {"ClusterID", 0},           {"Source", "local"},
            {"EncryptionKey", 0},       {"NodeIdentity", 0},        {"BootID", n.boot_id}};
  for (const auto& c : n.pod_cidrs) {
    const char* key = c.addr().family() == IpFamily::kV4 ? "IPv4AllocCIDR" : "IPv6AllocCIDR";
    if (j[key].is_null()) j[key] = cidrJson(c);
  }
  for (const auto& h : n.health) {
    const char* key = h.family() == IpFamily::kV4 ? "IPv4HealthIP" : "IPv6HealthIP";
    if (j[key] == "") j[key] = h.toString();
  }
  return j.dump();
}

Result<node::Node> nodeFromJson(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Error(ErrorCode::kInvalidArgument, "node: not a JSON object");
  node::Node n;
  n.name = str(j, "Name");
  if (n.name.empty()) return Error(ErrorCode::kInvalidArgument, "node: no Name");
  if (j.contains("IPAddresses") && j["IPAddresses"].is_array()) {
    for (const auto& a : j["IPAddresses"]) {
      if (!a.is_object()) continue;
      auto type = node::parseAddressType(str(a, "Type"));
      auto ip = IpAddr::parse(str(a, "IP"));
      if (!type || !ip.ok())
        return makeError(ErrorCode::kInvalidArgument, "node {}: bad address {}", n.name, a.dump());
      n.addresses.push_back({*type, *ip});
    }
  }
  for (const char* key : {"IPv4AllocCIDR", "IPv6AllocCIDR"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    auto c = cidrOfJson(j[key]);
    if (!c.ok()) return c.error().withContext(fmt::format("node {}: {}", n.name, key));
    n.pod_cidrs.push_back(*c);
  }
  for (const char* key : {"IPv4HealthIP", "IPv6HealthIP"}) {
    std::string h = str(j, key);
    if (h.empty()) continue;
    auto ip = IpAddr::parse(h);
    if (!ip.ok()) return ip.error().withContext(fmt::format("node {}: {}", n.name, key));
    n.health.push_back(*ip);
  }
  n.boot_id = str(j, "BootID");
  return n;
}

std::string ipPairToJson(const IpPair& p) {
  json j = {{"IP", p.ip.toString()},
            {"Mask", nullptr},
            {"HostIP", p.host_ip ? p.host_ip->toString() : ""},
            {"ID", p.id},
            {"Key", 0},
            {"Metadata", ""},
            {"K8sNamespace", p.k8s_namespace},
            {"K8sPodName", p.k8s_pod_name}};
  return j.dump();
}

Result<IpPair> ipPairFromJson(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Error(ErrorCode::kInvalidArgument, "ip pair: not a JSON object");
  IpPair p;
  auto ip = IpAddr::parse(str(j, "IP"));
  if (!ip.ok()) return ip.error().withContext("ip pair: IP");
  p.ip = *ip;
  if (!j.contains("ID") || !j["ID"].is_number_unsigned() || j["ID"].get<uint64_t>() == 0 ||
      j["ID"].get<uint64_t>() > UINT32_MAX)
    return Error(ErrorCode::kInvalidArgument, "ip pair: ID must be an identity number");
  p.id = j["ID"].get<identity::NumericIdentity>();
  if (std::string h = str(j, "HostIP"); !h.empty()) {
    auto hip = IpAddr::parse(h);
    if (!hip.ok()) return hip.error().withContext("ip pair: HostIP");
    p.host_ip = *hip;
  }
  p.k8s_namespace = str(j, "K8sNamespace");
  p.k8s_pod_name = str(j, "K8sPodName");
  return p;
}

// ---- NodeSync ----

NodeSync::NodeSync(Client& client, Session& session, node::Manager& manager, std::string cluster,
                   std::string self)
    : client_(client),
      session_(session),
      manager_(manager),
      cluster_(std::move(cluster)),
      self_(std::move(self)) {}

NodeSync::~NodeSync() { stop(); }

Status NodeSync::start(std::chrono::milliseconds timeout) {
  std::string prefix = std::string(kNodesPrefix) + cluster_ + "/";
  auto name_of = [prefix](const std::string& key) { return key.substr(prefix.size()); };
  MirrorHandler h;
  h.on_upsert = [this, name_of](const KeyValue& kv) {
    std::string name = name_of(kv.key);
    if (name == self_ || name.empty()) return;
    auto n = nodeFromJson(kv.value);
    if (!n.ok() || n->name != name) {
      log()->warn("skipping node key={}: {}", kv.key,
                  n.ok() ? "Name differs from the key" : n.error().message());
      return;
    }
    {
      std::lock_guard lock(mu_);
      known_.insert(name);
    }
    manager_.updateFromKvstore(name, std::move(*n));
  };
  h.on_delete = [this, name_of](const std::string& key) {
    std::string name = name_of(key);
    {
      std::lock_guard lock(mu_);
      if (known_.erase(name) == 0) return;
    }
    manager_.updateFromKvstore(name, std::nullopt);
  };
  mirror_ = std::make_unique<Mirror>(client_, prefix, std::move(h));
  mirror_->start();
  if (!mirror_->waitForSync(timeout))
    return makeError(ErrorCode::kUnavailable, "kvstore: nodes not listed within {} ms",
                     timeout.count());
  return okStatus();
}

void NodeSync::stop() {
  if (mirror_) mirror_->stop();
}

void NodeSync::publish(const node::Node& self) {
  session_.put(std::string(kNodesPrefix) + cluster_ + "/" + self_, nodeToJson(self, cluster_));
}

size_t NodeSync::size() const {
  std::lock_guard lock(mu_);
  return known_.size();
}

// ---- EndpointSync ----

EndpointSync::EndpointSync(Client& client, Session& session, ipcache::IpCache& ipcache,
                           std::optional<IpAddr> host_ip)
    : client_(client), session_(session), ipcache_(ipcache), host_ip_(host_ip) {}

EndpointSync::~EndpointSync() { stop(); }

Status EndpointSync::start(std::chrono::milliseconds timeout, std::function<void()> on_synced) {
  mirror_ = std::make_unique<Mirror>(
      client_, std::string(kIpPrefix),
      MirrorHandler{[this](const KeyValue& kv) { onUpsert(kv); },
                    [this](const std::string& key) { onDelete(key); }, std::move(on_synced)});
  mirror_->start();
  if (!mirror_->waitForSync(timeout))
    return makeError(ErrorCode::kUnavailable, "kvstore: endpoints not listed within {} ms",
                     timeout.count());
  return okStatus();
}

void EndpointSync::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (follower_.joinable()) follower_.join();
  if (mirror_) mirror_->stop();
}

void EndpointSync::onUpsert(const KeyValue& kv) {
  auto p = ipPairFromJson(kv.value);
  if (!p.ok()) {
    log()->warn("skipping ip key={}: {}", kv.key, p.error().message());
    onDelete(kv.key);  // whatever the key said before no longer holds
    return;
  }
  const bool own = host_ip_ && p->host_ip && *p->host_ip == *host_ip_;
  IpPrefix prefix = IpPrefix::host(p->ip);
  std::optional<IpPrefix> old;
  {
    std::lock_guard lock(mu_);
    if (auto it = remote_.find(kv.key); it != remote_.end()) old = it->second;
    if (own)
      remote_.erase(kv.key);
    else
      remote_[kv.key] = prefix;
  }
  if (old && (own || *old != prefix)) (void)ipcache_.remove(*old, ipcache::Source::kKvstore);
  if (own) return;
  ipcache::Info info;
  info.identity = p->id;
  info.tunnel_endpoint = p->host_ip;
  if (auto st = ipcache_.upsert(prefix, info, ipcache::Source::kKvstore); !st.ok())
    log()->warn("ipcache upsert {} from kvstore: {}", prefix.toString(), st.error().message());
}

void EndpointSync::onDelete(const std::string& key) {
  std::optional<IpPrefix> old;
  {
    std::lock_guard lock(mu_);
    auto it = remote_.find(key);
    if (it == remote_.end()) return;
    old = it->second;
    remote_.erase(it);
  }
  if (auto st = ipcache_.remove(*old, ipcache::Source::kKvstore); !st.ok())
    log()->warn("ipcache remove {} from kvstore: {}", old->toString(), st.error().message());
}

size_t EndpointSync::remoteCount() const {
  std::lock_guard lock(mu_);
  return remote_.size();
}

void EndpointSync::publish(const std::vector<IpPair>& local) {
  std::map<std::string, std::string> now;
  for (const auto& p : local) now[std::string(kIpPrefix) + p.ip.toString()] = ipPairToJson(p);
  std::lock_guard lock(mu_);
  for (const auto& [k, v] : now) {
    auto it = published_.find(k);
    if (it != published_.end() && it->second == v) continue;
    session_.put(k, v);
  }
  for (const auto& [k, v] : published_)
    if (!now.count(k)) session_.remove(k);
  published_ = std::move(now);
}

void EndpointSync::follow(endpoint::Manager& manager, std::chrono::milliseconds resync) {
  follower_ = std::thread([this, &manager, resync] { followLoop(manager, resync); });
}

void EndpointSync::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void EndpointSync::followLoop(endpoint::Manager& manager, std::chrono::milliseconds resync) {
  for (;;) {
    std::vector<IpPair> local;
    for (const auto& ep : manager.list()) {
      if (ep.identity == identity::kUnknown) continue;
      // A pair per address: a dual-stack endpoint is reached at both through the same node.
      for (const auto& ip : {ep.spec.ipv4, ep.spec.ipv6})
        if (ip)
          local.push_back(
              IpPair{*ip, ep.identity, host_ip_, ep.spec.pod_namespace, ep.spec.pod_name});
    }
    publish(local);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, resync, [this] { return stopping_ || kicked_; });
    if (stopping_) return;
    kicked_ = false;
  }
}

}  // namespace cilium::kvstore
