// Hubble's rings: the last `capacity` events (flows and lost-event notices in the flow ring; agent
// and debug events in theirs), numbered by a sequence that only grows, so readers keep a position
// and learn how much they missed when the writer laps them.
//
// Threading: any number of writers and readers; all methods thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/hubble/proto.h"

namespace cilium::hubble {

template <class T>
class Ring {
 public:
  using Ptr = std::shared_ptr<const T>;

  explicit Ring(size_t capacity) : slots_(std::max<size_t>(capacity, 1)) {}

  void write(Ptr ev) {
    {
      std::lock_guard lock(mu_);
      slots_[next_ % slots_.size()] = std::move(ev);
      ++next_;
    }
    cv_.notify_all();
  }

  size_t capacity() const { return slots_.size(); }
  // Events currently held (at most capacity).
  size_t size() const {
    std::lock_guard lock(mu_);
    return std::min<uint64_t>(next_, slots_.size());
  }
  // Sequence number the next write gets; also the number of events ever written.
  uint64_t next() const {
    std::lock_guard lock(mu_);
    return next_;
  }
  // Oldest sequence number still held.
  uint64_t oldest() const {
    std::lock_guard lock(mu_);
    return oldestLocked();
  }

  struct Read {
    Ptr event;          // null when `seq` is not written yet
    uint64_t lost = 0;  // events overwritten before the reader got to them
    uint64_t seq = 0;   // the position actually read (>= the one asked for)
  };
  // The event at `seq`, or the oldest one held when `seq` was overwritten (lost says how many
  // were skipped). Returns a null event when `seq` is not written yet.
  Read read(uint64_t seq) const {
    std::lock_guard lock(mu_);
    return readLocked(seq);
  }
  // As read(), waiting up to `timeout` for `seq` to be written.
  Read waitRead(uint64_t seq, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return seq < next_; });
    return readLocked(seq);
  }
  struct ReadMany {
    uint64_t lost = 0;  // events overwritten before the reader got to them
    uint64_t next = 0;  // the position to read next
  };
  // Up to `max` events from `seq` on, appended to `out`, under one lock (a follower catching up
  // pays one lock per batch, not per event); waits up to `timeout` when none is written yet.
  ReadMany waitReadMany(uint64_t seq, std::chrono::milliseconds timeout, std::vector<Ptr>& out,
                        size_t max) const {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return seq < next_; });
    ReadMany r;
    uint64_t oldest = oldestLocked();
    if (seq < oldest) {
      r.lost = oldest - seq;
      seq = oldest;
    }
    for (; seq < next_ && max > 0; ++seq, --max) out.push_back(slots_[seq % slots_.size()]);
    r.next = seq;
    return r;
  }
  // Wakes every waitRead() (shutdown).
  void wakeAll() { cv_.notify_all(); }

 private:
  uint64_t oldestLocked() const { return next_ > slots_.size() ? next_ - slots_.size() : 0; }
  Read readLocked(uint64_t seq) const {
    Read r;
    uint64_t oldest = oldestLocked();
    if (seq < oldest) {
      r.lost = oldest - seq;
      seq = oldest;
    }
    r.seq = seq;
    if (seq < next_) r.event = slots_[seq % slots_.size()];
    return r;
  }

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Ptr> slots_;
  uint64_t next_ = 0;
};

using FlowRing = Ring<observer::GetFlowsResponse>;
using EventPtr = FlowRing::Ptr;
using AgentEventRing = Ring<observer::GetAgentEventsResponse>;
using DebugEventRing = Ring<observer::GetDebugEventsResponse>;

}  // namespace cilium::hubble
