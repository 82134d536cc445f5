// Create-if-absent identity allocation against CiliumIdentity objects.
#include "agent/k8s/crd_identity.h"

#include <charconv>
#include <cstring>

#include <openssl/sha.h>

#include "agent/common/log.h"

namespace cilium::k8s {

namespace {
using nlohmann::json;
auto log() {
  static auto l = logger("k8s");
  return l;
}
}  // namespace

StringMap securityLabels(const labels::Labels& labels) {
  StringMap m;
  for (const auto& l : labels)
    m[fmt::format("{}:{}", labels::sourceName(l.source), l.key)] = l.value;
  return m;
}

Result<labels::Labels> labelsOfSecurityLabels(const StringMap& security_labels) {
  labels::Labels out;
  for (const auto& [k, v] : security_labels) {
    CILIUM_ASSIGN_OR_RETURN(auto l, labels::Label::parse(k));
    l.value = v;
    out.set(std::move(l));
  }
  return out;
}

CrdIdentityBackend::CrdIdentityBackend(Client& client, const Store<CiliumIdentity>& cache,
                                       identity::NumericIdentity min_id,
                                       identity::NumericIdentity max_id)
    : client_(client), cache_(cache), min_(min_id), max_(max_id) {}

Result<std::optional<labels::Labels>> CrdIdentityBackend::fetch(identity::NumericIdentity id) {
  auto info = Resource<CiliumIdentity>::info();
  CILIUM_ASSIGN_OR_RETURN(Response res, client_.get(info.objectPath("", std::to_string(id))));
  if (res.status == 404) return std::optional<labels::Labels>();
  if (!res.ok())
    return makeError(ErrorCode::kUnavailable, "get ciliumidentity {}: HTTP {}", id, res.status);
  json j = json::parse(res.body, nullptr, false);
  auto obj = Resource<CiliumIdentity>::decode(j);
  if (!obj.ok()) return obj.error().withContext(fmt::format("ciliumidentity {}", id));
  CILIUM_ASSIGN_OR_RETURN(auto l, labelsOfSecurityLabels(obj->security_labels));
  return std::optional<labels::Labels>(std::move(l));
}

Result<identity::NumericIdentity> CrdIdentityBackend::acquire(
    const labels::Labels& labels, std::optional<identity::NumericIdentity> known) {
  StringMap want = securityLabels(labels);
  // Already in the cluster (the informer's view): no write needed.
  if (known) {
    if (auto c = cache_.get("", std::to_string(*known)); c && c->security_labels == want)
      return *known;
  }
  for (const auto& c : cache_.list()) {
    if (c.security_labels != want) continue;
    uint64_t id = 0;
    auto [p, ec] = std::from_chars(c.meta.name.data(), c.meta.name.data() + c.meta.name.size(), id);
    if (ec == std::errc() && id >= min_ && id <= max_)
      return static_cast<identity::NumericIdentity>(id);
  }
  // Probe order: start at a hash of the labels, then step by one (wrapping).
  std::string key = labels.sortedList();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  uint64_t h;
  std::memcpy(&h, digest, sizeof(h));
  uint64_t range = static_cast<uint64_t>(max_) - min_ + 1;
  auto info = Resource<CiliumIdentity>::info();
  int vanished = 0;
  for (uint64_t i = 0; i < range; i++) {
    auto id = static_cast<identity::NumericIdentity>(min_ + (h + i) % range);
    // Known to hold other labels: skip without a request.
    if (auto c = cache_.get("", std::to_string(id)); c && c->security_labels != want) continue;
    CiliumIdentity obj;
    obj.meta.name = std::to_string(id);
    obj.security_labels = want;
    CILIUM_ASSIGN_OR_RETURN(Response res,
                            client_.request("POST", info.collectionPath(), toJson(obj).dump()));
    if (res.status == 201 || res.status == 200) {
      log()->info("identity allocated through CRD id={} labels={}", id, labels.toString());
      return id;
    }
    if (res.status != 409)
      return makeError(ErrorCode::kUnavailable, "create ciliumidentity {}: HTTP {}", id,
                       res.status);
    CILIUM_ASSIGN_OR_RETURN(auto existing, fetch(id));
    if (!existing) {
      // Deleted between our create and our read: try the same number again, a few times.
      if (++vanished > 5)
        return makeError(ErrorCode::kAborted, "ciliumidentity {} keeps vanishing", id);
      i--;
      continue;
    }
    if (*existing == labels) return id;  // another agent created the same identity first
  }
  return makeError(ErrorCode::kResourceExhausted, "no free identity in [{}, {}]", min_, max_);
}

Status CrdIdentityBackend::release(identity::NumericIdentity, const labels::Labels&) {
  return okStatus();
}

namespace {
std::optional<identity::NumericIdentity> identityNumber(const CiliumIdentity& ci) {
  char* end = nullptr;
  unsigned long v = std::strtoul(ci.meta.name.c_str(), &end, 10);
  if (ci.meta.name.empty() || *end != '\0' || v == 0 || v > UINT32_MAX) return std::nullopt;
  return static_cast<identity::NumericIdentity>(v);
}
}  // namespace

RemoteIdentities::RemoteIdentities(Store<CiliumIdentity>& store, identity::Allocator& allocator)
    : store_(store), allocator_(allocator) {
  Handlers<CiliumIdentity> h;
  h.on_add = [this](const CiliumIdentity& ci) { upsert(ci); };
  h.on_update = [this](const CiliumIdentity&, const CiliumIdentity& ci) { upsert(ci); };
  h.on_delete = [this](const CiliumIdentity& ci) {
    if (auto id = identityNumber(ci)) allocator_.removeRemote(*id);
  };
  handlers_ = store_.addHandlers(std::move(h));
}

RemoteIdentities::~RemoteIdentities() { store_.removeHandlers(handlers_); }

void RemoteIdentities::upsert(const CiliumIdentity& ci) {
  auto id = identityNumber(ci);
  auto lbls = labelsOfSecurityLabels(ci.security_labels);
  if (!id || !lbls.ok()) {
    log()->warn("skipping CiliumIdentity name={}: not a numeric identity with valid labels",
                ci.meta.name);
    return;
  }
  allocator_.upsertRemote(identity::Identity{*id, std::move(*lbls)});
}

}  // namespace cilium::k8s
