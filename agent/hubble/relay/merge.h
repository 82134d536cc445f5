// The time-ordered merge of several nodes' GetFlows streams with bounded buffers (hubble-relay).
//
// Each source (a node's stream, read by its own thread) pushes its events in the order the node
// sends them; one consumer pops them merged by event time. The merge is exact as long as every
// open source has an event buffered: the earliest head is sent. When an open source has nothing
// buffered (a quiet or slow node), the earliest head waits at most `drain_timeout` (counted
// from its arrival at the relay) for that source, then goes out; an event the quiet source sends
// later that is older than what was already sent goes out late, out of order (the price of not
// stalling on a quiet node; Cilium's relay pays it the same way). The same happens at once when
// a source's buffer is full: waiting then would only throttle every busy source to one buffer
// per drain timeout.
//
// Memory is bounded: each source buffers at most `per_source_capacity` events; a source's push
// blocks while its buffer is full, so a slow client slows the node streams (gRPC flow control),
// and a node that falls behind its own ring reports the loss as a LostEvent.
//
// Notices (node status events) bypass the ordering and go out at the next pop.
// The consumer takes what is due in batches (popBatch: one lock for the lot, so that the node
// streams' producers are not woken and made to wait once per event); a source whose producer
// waits for room is woken once, when the consumer took from it, not at every pop of any source.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/hubble/proto.h"

namespace cilium::hubble::relay {

class FlowMerger {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    size_t per_source_capacity = 100;
    std::chrono::milliseconds drain_timeout{1000};
    // Follow mode: sources may still be added, so pop never reports kEnd (until close()).
    bool keep_open = false;
  };
  explicit FlowMerger(Options opts);

  // A new open source; its id for push/end. Sources may be added while the merge runs (a node
  // that reconnects during a follow request).
  int addSource(std::string name);
  // Buffers `ev` from `source`, blocking while that source's buffer is full. An event without
  // a time takes the time of the source's previous event (lost-event notices keep their place).
  // False once the merger is closed (the consumer left): the source should stop.
  bool push(int source, observer::GetFlowsResponse ev);
  // The source sends no more; its buffered events still go out.
  void end(int source);
  // An event sent before any buffered flow, out of time order (node status).
  void notice(observer::GetFlowsResponse ev);
  // The consumer leaves: pushes return false from now on.
  void close();
  bool closed() const;

  enum class Pop { kEvent, kWait, kEnd };
  // Waits at most `max_wait` for the next event in order. kEvent fills `out`; kWait means no
  // event is due yet (call again; lets the caller check for a cancelled client); kEnd means every
  // source ended and every buffer is empty (or the merger was closed).
  Pop pop(observer::GetFlowsResponse& out, std::chrono::milliseconds max_wait);
  // As pop, but then also takes every further event due now, up to `max` in all, in the order
  // single pops would give them; appended to `out`. kEvent when at least one was taken.
  Pop popBatch(std::vector<observer::GetFlowsResponse>& out, size_t max,
               std::chrono::milliseconds max_wait);

  // Sources not ended yet.
  size_t openSources() const;

 private:
  struct Item {
    observer::GetFlowsResponse ev;
    int64_t time_ns;
    Clock::time_point arrived;
  };
  struct Source {
    explicit Source(std::string n) : name(std::move(n)) {}
    std::string name;
    std::deque<Item> buf;
    bool ended = false;
    bool waiting = false;  // its producer waits for room
    int64_t last_time_ns = 0;
    std::condition_variable room;  // the producer's wake-up
  };
  // The source whose head goes next and when it is due; -1 when nothing is buffered.
  int nextSource(Clock::time_point* due) const;
  // Moves the next event due now (a notice first) into `out`; false when none is due.
  // `*next` is the source that would go next (-1: none) and `*due` when, for the caller's wait.
  bool takeDue(observer::GetFlowsResponse& out, int* next, Clock::time_point* due);

  Options opts_;
  mutable std::mutex mu_;
  std::condition_variable consumer_cv_;
  // A deque: push() holds a reference to its source across waits while addSource() appends.
  std::deque<Source> sources_;
  std::deque<observer::GetFlowsResponse> notices_;
  bool closed_ = false;
};

// Nanoseconds since the epoch of a response's time (0 when unset).
int64_t eventTimeNs(const observer::GetFlowsResponse& ev);

}  // namespace cilium::hubble::relay
