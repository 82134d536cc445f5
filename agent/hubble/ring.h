// Hubble's flow ring: the last `capacity` events (flows and lost-event notices), numbered by a
// sequence that only grows, so readers keep a position and learn how much they missed when the
// writer laps them.
//
// Threading: one writer (the pipeline thread), any number of readers; all methods thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "agent/hubble/proto.h"

namespace cilium::hubble {

using EventPtr = std::shared_ptr<const observer::GetFlowsResponse>;

class FlowRing {
 public:
  explicit FlowRing(size_t capacity);

  void write(EventPtr ev);

  size_t capacity() const { return slots_.size(); }
  // Events currently held (at most capacity).
  size_t size() const;
  // Sequence number the next write gets; also the number of events ever written.
  uint64_t next() const;
  // Oldest sequence number still held.
  uint64_t oldest() const;

  struct Read {
    EventPtr event;     // null when `seq` is not written yet
    uint64_t lost = 0;  // events overwritten before the reader got to them
    uint64_t seq = 0;   // the position actually read (>= the one asked for)
  };
  // The event at `seq`, or the oldest one held when `seq` was overwritten (lost says how many
  // were skipped). Returns a null event when `seq` is not written yet.
  Read read(uint64_t seq) const;
  // As read(), waiting up to `timeout` for `seq` to be written.
  Read waitRead(uint64_t seq, std::chrono::milliseconds timeout) const;
  // Wakes every waitRead() (shutdown).
  void wakeAll();

 private:
  Read readLocked(uint64_t seq) const;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<EventPtr> slots_;
  uint64_t next_ = 0;
};

}  // namespace cilium::hubble
