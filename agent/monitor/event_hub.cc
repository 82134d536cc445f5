// EventHub: the polling thread and the subscriber list.
#include "agent/monitor/event_hub.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
  hub->wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!hub->wake_fd_) return errnoError(errno, "eventfd for the event hub");
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return errnoError(errno, "epoll for the event hub");
  for (int fd : {hub->reader_->fd(), hub->wake_fd_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return errnoError(errno, "epoll_ctl for the event hub");
  }
  hub->thread_ = std::thread(
      [raw, poll_interval, ep = std::move(ep)]() mutable { raw->run(std::move(ep), poll_interval); });
  return hub;
}

std::unique_ptr<EventHub> EventHub::detached() { return std::unique_ptr<EventHub>(new EventHub()); }

EventHub::~EventHub() {
  stop_ = true;
  if (wake_fd_) {
    uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
}

void EventHub::run(UniqueFd ep, std::chrono::milliseconds poll_interval) {
  uint64_t errors = 0;
  epoll_event evs[2];
  while (!stop_.load()) {
    // Woken by the datapath (its wakeup threshold), by sync(), or by the interval; the ring is
    // drained in each case, since records below the threshold raise no wakeup.
    int n = ::epoll_wait(ep.get(), evs, 2, static_cast<int>(poll_interval.count()));
    if (n < 0 && errno != EINTR && errors++ % 100 == 0)
      log()->warn("event hub epoll_wait failed errno={}", errno);
    uint64_t requested;
    {
      std::lock_guard lock(sync_mu_);
      requested = requested_;
    }
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.fd == wake_fd_.get()) {
        uint64_t v;
        (void)!::read(wake_fd_.get(), &v, sizeof(v));
      }
    }
    auto consumed = reader_->consume();
    if (!consumed.ok() && errors++ % 100 == 0)
      log()->warn("event ring read failed error={}", consumed.error().message());
    {
      std::lock_guard lock(sync_mu_);
      drained_ = requested;
    }
    sync_cv_.notify_all();
  }
  sync_cv_.notify_all();
}

bool EventHub::sync(std::chrono::milliseconds timeout) {
  if (!reader_) return true;
  uint64_t ticket;
  {
    std::lock_guard lock(sync_mu_);
    ticket = ++requested_;
  }
  uint64_t one = 1;
  if (::write(wake_fd_.get(), &one, sizeof(one)) < 0 && errno != EAGAIN) return false;
  std::unique_lock lock(sync_mu_);
  return sync_cv_.wait_for(lock, timeout, [&] { return drained_ >= ticket || stop_.load(); }) &&
         drained_ >= ticket;
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
