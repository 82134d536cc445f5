// The event ring reader on libbpf's ring_buffer.
#include "agent/datapath/events.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cstring>

#include "agent/bpf/map.h"

namespace cilium::datapath {

Result<cilium_event> decodeEvent(std::span<const uint8_t> record) {
  if (record.size() < sizeof(cilium_event))
    return makeError(ErrorCode::kInvalidArgument, "event record of {} bytes, expected {}",
                     record.size(), sizeof(cilium_event));
  cilium_event ev;
  std::memcpy(&ev, record.data(), sizeof(ev));
  return ev;
}

Result<EventCounters> readEventCounters(const EventStatsMap& stats) {
  CILIUM_ASSIGN_OR_RETURN(auto v, stats.lookup(0));
  EventCounters out;
  if (!v) return out;
  for (const auto& c : v->values) {
    out.emitted += c.emitted;
    out.lost += c.lost;
    out.rate_limited += c.rate_limited;
  }
  return out;
}

Result<std::unique_ptr<EventReader>> EventReader::open(int ring_fd, Callback cb) {
  int dup = ::fcntl(ring_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errnoError(errno, "dup cilium_events fd");
  std::unique_ptr<EventReader> r(new EventReader(UniqueFd(dup), std::move(cb)));
  r->rb_ = ::ring_buffer__new(r->ring_fd_.get(), &EventReader::onRecord, r.get(), nullptr);
  if (r->rb_ == nullptr) return errnoError(errno, "open cilium_events ring buffer");
  return r;
}

Result<std::unique_ptr<EventReader>> EventReader::openPinned(const std::string& pin_dir,
                                                             Callback cb) {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, bpf::openPinned(pin_dir + "/cilium_events"));
  return open(fd.get(), std::move(cb));
}

EventReader::~EventReader() {
  if (rb_ != nullptr) ::ring_buffer__free(rb_);
}

int EventReader::fd() const { return ::ring_buffer__epoll_fd(rb_); }

int EventReader::onRecord(void* self, void* data, size_t size) {
  auto* r = static_cast<EventReader*>(self);
  auto ev = decodeEvent({static_cast<const uint8_t*>(data), size});
  if (!ev.ok()) {
    r->malformed_++;
    return 0;
  }
  r->handled_++;
  r->cb_(*ev);
  return 0;
}

Result<int> EventReader::poll(std::chrono::milliseconds timeout) {
  uint64_t before = handled_;
  int n = ::ring_buffer__poll(rb_, static_cast<int>(timeout.count()));
  if (n < 0 && n != -EINTR) return errnoError(-n, "poll cilium_events");
  // Records below the wakeup threshold raise no wakeup: collect them too.
  n = ::ring_buffer__consume(rb_);
  if (n < 0) return errnoError(-n, "consume cilium_events");
  return static_cast<int>(handled_ - before);
}

Result<int> EventReader::consume() {
  uint64_t before = handled_;
  int n = ::ring_buffer__consume(rb_);
  if (n < 0) return errnoError(-n, "consume cilium_events");
  return static_cast<int>(handled_ - before);
}

}  // namespace cilium::datapath
