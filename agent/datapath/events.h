// Reading datapath events: the cilium_events ring buffer decoded into cilium_event records, and
// the emission counters the programs keep in cilium_event_stats.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "agent/common/error.h"
#include "agent/common/fd.h"
#include "agent/datapath/maps.h"

struct ring_buffer;

namespace cilium::datapath {

// Decodes one ring-buffer record. Records are fixed-size; a shorter one is kInvalidArgument
// (a longer one, from a newer datapath with appended fields, is read up to what we know).
Result<cilium_event> decodeEvent(std::span<const uint8_t> record);

struct EventCounters {
  uint64_t emitted = 0;       // records the programs wrote
  uint64_t lost = 0;          // records dropped because the ring was full
  uint64_t rate_limited = 0;  // records suppressed by the per-CPU rate limit
};

// Sums the per-CPU counters of cilium_event_stats.
Result<EventCounters> readEventCounters(const EventStatsMap& stats);

// A consumer of the cilium_events ring (RAII over libbpf's ring_buffer). The callback runs on the
// thread that calls poll() or consume(), once per record, in order. Not thread-safe: one thread
// polls. The datapath wakes readers only once Config::events_wakeup_bytes are waiting (waking
// on every record would cost each packet an interrupt), so readers poll with a timeout: poll()
// hands over whatever is waiting when it returns. Event loops can wait on fd() with a timeout
// and call consume() on either outcome.
class EventReader {
 public:
  using Callback = std::function<void(const cilium_event&)>;

  // `ring_fd` is borrowed (duplicated here).
  static Result<std::unique_ptr<EventReader>> open(int ring_fd, Callback cb);
  // Opens <pin_dir>/cilium_events, as a process other than the loader does.
  static Result<std::unique_ptr<EventReader>> openPinned(const std::string& pin_dir, Callback cb);
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  int fd() const;
  // Waits up to `timeout` for a wakeup, then handles every record waiting; returns how many.
  Result<int> poll(std::chrono::milliseconds timeout);
  // Handles the records available now without waiting; returns how many.
  Result<int> consume();
  // Records shorter than cilium_event, skipped.
  uint64_t malformed() const { return malformed_; }

 private:
  EventReader(UniqueFd ring, Callback cb) : ring_fd_(std::move(ring)), cb_(std::move(cb)) {}
  static int onRecord(void* self, void* data, size_t size);

  UniqueFd ring_fd_;
  Callback cb_;
  ring_buffer* rb_ = nullptr;
  uint64_t handled_ = 0;
  uint64_t malformed_ = 0;
};

}  // namespace cilium::datapath
