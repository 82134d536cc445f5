// EventHub: the polling thread and the subscriber list.
#include "agent/monitor/event_hub.h"

#include "agent/common/log.h"

namespace cilium::monitor {
namespace {
auto log() {
  static auto l = logger("monitor");
  return l;
}
}  // namespace

EventHub::Subscription& EventHub::Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    reset();
    hub_ = o.hub_;
    id_ = o.id_;
    o.hub_ = nullptr;
    o.id_ = 0;
  }
  return *this;
}

void EventHub::Subscription::reset() {
  if (hub_ != nullptr) hub_->unsubscribe(id_);
  hub_ = nullptr;
  id_ = 0;
}

Result<std::unique_ptr<EventHub>> EventHub::start(const ReaderFactory& open_reader,
                                                  std::chrono::milliseconds poll_interval) {
  std::unique_ptr<EventHub> hub(new EventHub());
  EventHub* raw = hub.get();
  CILIUM_ASSIGN_OR_RETURN(hub->reader_,
                          open_reader([raw](const cilium_event& ev) { raw->publish(ev); }));
  hub->thread_ = std::thread([raw, poll_interval] { raw->run(poll_interval); });
  return hub;
}

std::unique_ptr<EventHub> EventHub::detached() { return std::unique_ptr<EventHub>(new EventHub()); }

EventHub::~EventHub() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void EventHub::run(std::chrono::milliseconds poll_interval) {
  uint64_t errors = 0;
  while (!stop_.load()) {
    auto n = reader_->poll(poll_interval);
    if (!n.ok() && errors++ % 100 == 0)
      log()->warn("event ring poll failed error={}", n.error().message());
  }
}

EventHub::Subscription EventHub::subscribe(Callback cb) {
  std::lock_guard lock(mu_);
  uint64_t id = next_id_++;
  subs_.emplace(id, std::move(cb));
  return Subscription(this, id);
}

void EventHub::unsubscribe(uint64_t id) {
  std::lock_guard lock(mu_);
  subs_.erase(id);
}

void EventHub::publish(const cilium_event& ev) {
  std::lock_guard lock(mu_);
  for (auto& [id, cb] : subs_) cb(ev);
  delivered_++;
}

size_t EventHub::subscribers() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

}  // namespace cilium::monitor
