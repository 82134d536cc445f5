// The flow pipeline: datapath events in, flows out. onEvent() copies a record into a bounded
// queue and returns (the ring-buffer reader never waits on Hubble); the pipeline thread decodes
// each into a flow, appends it to the flow ring and hands it to observers (Hubble metrics).
// Records that find the queue full are counted and reported as a LostEvent
// (OBSERVER_EVENTS_QUEUE); events the datapath could not write to its ring are reported as
// PERF_EVENT_RING_BUFFER from the counter `datapath_lost` reads. Debug records become DebugEvents
// in a ring of their own; agent events (addAgentEvent) go to a third ring. The L7 proxy's access
// records (onAccessRecord) share the queue's bound and become L7 flows in the flow ring.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/common/error.h"
#include "agent/hubble/decoder.h"
#include "agent/hubble/ring.h"

namespace cilium::hubble {

struct PipelineOptions {
  std::string node_name;              // "cluster/node"
  size_t ring_capacity = 4095;        // flows kept (Hubble's default)
  size_t event_ring_capacity = 1023;  // agent events and debug events kept, each
  // Names the services of flows; null = not filled. Must outlive the pipeline.
  const ServiceResolver* services = nullptr;
  // Names peers from the DNS cache (source_names / destination_names); null = not filled.
  // Must outlive the pipeline.
  const NameResolver* names = nullptr;
  // Records waiting for the decoder; 0 = the ring capacity rounded up to a power of two.
  size_t queue_size = 0;
  // Cumulative events the datapath lost (cilium_event_stats.lost); empty = not reported.
  std::function<uint64_t()> datapath_lost;
  // How often datapath_lost is read.
  std::chrono::milliseconds lost_poll{1000};
};

struct PipelineStats {
  uint64_t seen_flows = 0;     // flows decoded since start (ServerStatus seen_flows)
  uint64_t queue_lost = 0;     // records dropped because the queue was full
  uint64_t datapath_lost = 0;  // as last read from datapath_lost
  uint64_t skipped = 0;        // records that make no flow (debug events)
  uint64_t debug_events = 0;   // debug records turned into DebugEvents
  uint64_t malformed = 0;      // records the decoder refused
  // Events followers missed because the flow ring lapped them (HUBBLE_RING_BUFFER), summed
  // over followers: each follower that misses an event counts it.
  uint64_t ring_lost = 0;
  std::chrono::nanoseconds uptime{0};
};

class FlowPipeline {
 public:
  using FlowObserver = std::function<void(const flow::Flow&)>;
  using LostObserver = std::function<void(flow::LostEventSource, uint64_t count)>;

  // Resolvers may be null; when set they must outlive the pipeline.
  FlowPipeline(PipelineOptions opts, const EndpointResolver* endpoints,
               const IdentityResolver* identities);
  ~FlowPipeline();  // stop()
  FlowPipeline(const FlowPipeline&) = delete;
  FlowPipeline& operator=(const FlowPipeline&) = delete;

  // Before start(). Observers run on the pipeline thread, once per flow or loss, and must be
  // quick.
  void addFlowObserver(FlowObserver fn);
  void addLostObserver(LostObserver fn);

  Status start();
  // Idempotent; the records still queued are dropped.
  void stop();

  // Never blocks for longer than a queue append; safe from any thread (the EventHub thread).
  void onEvent(const cilium_event& ev);
  // The same for an access record of the L7 proxy (the proxy manager's reader thread).
  void onAccessRecord(const proxy::AccessRecord& r);

  // Waits until every record given to onEvent() before this call is in the ring (or counted
  // as skipped/malformed); false on timeout.
  bool flush(std::chrono::milliseconds timeout);

  // The upstream of onEvent() (the event hub): hands over, before it returns true, every record
  // the datapath wrote before the call. Set by whoever feeds onEvent(); empty = none.
  using Drain = std::function<bool(std::chrono::milliseconds timeout)>;
  void setDrain(Drain drain);
  // Brings the ring up to date with the datapath: drain, then flush. Queries call it first, so
  // a flow is in their answer as soon as its packet has passed the datapath, not after the
  // datapath's wakeup threshold or poll interval. False on timeout (the query then answers
  // with what the ring holds).
  bool sync(std::chrono::milliseconds timeout);

  FlowRing& ring() { return ring_; }
  const FlowRing& ring() const { return ring_; }
  AgentEventRing& agentEvents() { return agent_ring_; }
  DebugEventRing& debugEvents() { return debug_ring_; }
  // Records an agent event (endpoint regenerated, policy updated, ...) with the current time.
  // Thread-safe; never blocks on the pipeline.
  void addAgentEvent(flow::AgentEvent ev);
  PipelineStats stats() const;
  // A follower of the flow ring was lapped and missed `count` events (the server calls it);
  // reported to the lost observers as HUBBLE_RING_BUFFER (hubble_lost_events_total) by the
  // pipeline thread. Thread-safe.
  void countReaderLost(uint64_t count);
  const std::string& nodeName() const { return opts_.node_name; }

 private:
  void run();
  void processBatch(std::vector<cilium_event>& batch, flow::Flow& scratch);
  void processRecords(std::vector<proxy::AccessRecord>& records, flow::Flow& scratch);
  // Hands a decoded flow (taken from `scratch`) to the observers and the ring.
  void emit(flow::Flow& scratch);
  void reportLost(flow::LostEventSource source, uint64_t count);
  void checkLost();

  PipelineOptions opts_;
  Decoder decoder_;
  FlowRing ring_;
  AgentEventRing agent_ring_;
  DebugEventRing debug_ring_;
  std::vector<FlowObserver> flow_observers_;
  std::vector<LostObserver> lost_observers_;
  std::mutex drain_mu_;
  Drain drain_;

  std::mutex mu_;
  std::condition_variable cv_;       // work for the pipeline thread
  std::condition_variable done_cv_;  // progress for flush()
  std::vector<cilium_event> queue_;  // circular, queue_size entries
  size_t head_ = 0, count_ = 0;
  std::vector<proxy::AccessRecord> records_;  // at most queue_size
  uint64_t accepted_ = 0, processed_ = 0;
  bool stopping_ = false;

  std::atomic<uint64_t> seen_{0}, queue_lost_{0}, skipped_{0}, malformed_{0}, dp_lost_{0},
      debug_{0}, ring_lost_{0};
  uint64_t queue_lost_reported_ = 0, dp_lost_reported_ = 0, ring_lost_reported_ = 0;
  std::chrono::steady_clock::time_point started_at_;
  std::thread thread_;
};

}  // namespace cilium::hubble
