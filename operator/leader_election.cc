// Leader election on a Lease: acquire, renew, take over an expired one, release.
#include "operator/leader_election.h"

#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/k8s/resources.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("leader-election");
  return l;
}

using nlohmann::json;

// RFC 3339 with microseconds, as Lease times are written.
std::string nowMicroTime() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, us % 1000000);
}

}  // namespace

LeaderElector::LeaderElector(k8s::Client& client, LeaderElectionOptions options,
                             std::function<void()> on_started, std::function<void()> on_stopped)
    : client_(client),
      options_(std::move(options)),
      on_started_(std::move(on_started)),
      on_stopped_(std::move(on_stopped)) {}

LeaderElector::~LeaderElector() { stop(); }

void LeaderElector::start() {
  thread_ = std::thread([this] { run(); });
}

void LeaderElector::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaderElector::run() {
  auto last_renew = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    bool held = tryAcquireOrRenew();
    auto now = std::chrono::steady_clock::now();
    if (held) last_renew = now;
    if (held && !leading_) {
      leading_ = true;
      log()->info("became leader lease={}/{} identity={}", options_.namespace_name,
                  options_.lease_name, options_.identity);
      if (on_started_) on_started_();
    } else if (!held && leading_ && now - last_renew > options_.renew_deadline) {
      leading_ = false;
      log()->warn("lost leadership: could not renew within the renew deadline lease={}/{}",
                  options_.namespace_name, options_.lease_name);
      if (on_stopped_) on_stopped_();
    }
    lock.lock();
    cv_.wait_for(lock, options_.retry_period, [this] { return stopping_; });
  }
  lock.unlock();
  if (leading_) {
    leading_ = false;
    if (on_stopped_) on_stopped_();
    release();
  }
}

bool LeaderElector::tryAcquireOrRenew() {
  const auto info = k8s::leaseResource();
  const std::string path = info.objectPath(options_.namespace_name, options_.lease_name);
  const int64_t duration_s = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.lease_duration).count());
  auto got = client_.get(path);
  if (!got.ok()) return false;
  std::string now = nowMicroTime();
  if (got->status == 404) {
    json lease = {
        {"apiVersion", info.apiVersion()},
        {"kind", "Lease"},
        {"metadata", {{"name", options_.lease_name}, {"namespace", options_.namespace_name}}},
        {"spec",
         {{"holderIdentity", options_.identity},
          {"leaseDurationSeconds", duration_s},
          {"acquireTime", now},
          {"renewTime", now},
          {"leaseTransitions", 0}}}};
    auto r = client_.request("POST", info.collectionPath(options_.namespace_name), lease.dump());
    return r.ok() && r->ok();
  }
  if (!got->ok()) return false;
  json lease = json::parse(got->body, nullptr, false);
  if (!lease.is_object() || !lease.contains("metadata") || !lease["metadata"].is_object())
    return false;
  json& spec = lease["spec"];
  if (!spec.is_object()) spec = json::object();
  std::string holder = spec.value("holderIdentity", "");
  std::string rv = lease["metadata"].value("resourceVersion", "");
  auto local_now = std::chrono::steady_clock::now();
  if (rv != observed_rv_) {
    observed_rv_ = rv;
    observed_at_ = local_now;
  }
  if (!holder.empty() && holder != options_.identity) {
    int64_t secs =
        spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()
            ? spec["leaseDurationSeconds"].get<int64_t>()
            : duration_s;
    if (local_now < observed_at_ + std::chrono::seconds(secs)) return false;  // held, not expired
    log()->info("taking over expired lease lease={}/{} from={}", options_.namespace_name,
                options_.lease_name, holder);
  }
  if (holder != options_.identity) {
    int64_t transitions = spec.value("leaseTransitions", int64_t{0});
    spec["leaseTransitions"] = transitions + 1;
    spec["acquireTime"] = now;
    spec["holderIdentity"] = options_.identity;
  }
  spec["leaseDurationSeconds"] = duration_s;
  spec["renewTime"] = now;
  // The resourceVersion read above: a concurrent writer makes this a 409, and it loses.
  auto r = client_.request("PUT", path, lease.dump());
  if (!r.ok() || !r->ok()) return false;
  json written = json::parse(r->body, nullptr, false);
  if (written.is_object() && written.contains("metadata") && written["metadata"].is_object()) {
    observed_rv_ = written["metadata"].value("resourceVersion", "");
    observed_at_ = local_now;
  }
  return true;
}

void LeaderElector::release() {
  const auto info = k8s::leaseResource();
  const std::string path = info.objectPath(options_.namespace_name, options_.lease_name);
  auto got = client_.get(path);
  if (!got.ok() || !got->ok()) return;
  json lease = json::parse(got->body, nullptr, false);
  if (!lease.is_object() || !lease["spec"].is_object() ||
      lease["spec"].value("holderIdentity", "") != options_.identity)
    return;
  // As client-go's ReleaseOnCancel: an empty holder and a 1 s duration let the next replica in.
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  auto r = client_.request("PUT", path, lease.dump());
  if (r.ok() && r->ok())
    log()->info("released lease={}/{}", options_.namespace_name, options_.lease_name);
}

}  // namespace cilium::op
