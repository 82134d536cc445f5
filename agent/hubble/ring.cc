// FlowRing: a fixed array indexed by sequence modulo capacity.
#include "agent/hubble/ring.h"

#include <algorithm>

namespace cilium::hubble {

FlowRing::FlowRing(size_t capacity) : slots_(std::max<size_t>(capacity, 1)) {}

void FlowRing::write(EventPtr ev) {
  {
    std::lock_guard lock(mu_);
    slots_[next_ % slots_.size()] = std::move(ev);
    ++next_;
  }
  cv_.notify_all();
}

size_t FlowRing::size() const {
  std::lock_guard lock(mu_);
  return std::min<uint64_t>(next_, slots_.size());
}

uint64_t FlowRing::next() const {
  std::lock_guard lock(mu_);
  return next_;
}

uint64_t FlowRing::oldest() const {
  std::lock_guard lock(mu_);
  return next_ > slots_.size() ? next_ - slots_.size() : 0;
}

FlowRing::Read FlowRing::readLocked(uint64_t seq) const {
  Read r;
  uint64_t oldest = next_ > slots_.size() ? next_ - slots_.size() : 0;
  if (seq < oldest) {
    r.lost = oldest - seq;
    seq = oldest;
  }
  r.seq = seq;
  if (seq < next_) r.event = slots_[seq % slots_.size()];
  return r;
}

FlowRing::Read FlowRing::read(uint64_t seq) const {
  std::lock_guard lock(mu_);
  return readLocked(seq);
}

FlowRing::Read FlowRing::waitRead(uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return seq < next_; });
  return readLocked(seq);
}

void FlowRing::wakeAll() { cv_.notify_all(); }

}  // namespace cilium::hubble
