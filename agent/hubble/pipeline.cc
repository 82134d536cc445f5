// FlowPipeline: bounded queue -> decoder -> ring -> observers.
#include "agent/hubble/pipeline.h"

#include <bit>

#include "agent/common/log.h"

namespace cilium::hubble {

namespace {
auto log() {
  static auto l = cilium::logger("hubble");
  return l;
}

size_t queueSize(const PipelineOptions& o) {
  if (o.queue_size) return o.queue_size;
  return std::bit_ceil(std::max<size_t>(o.ring_capacity, 1024));
}
}  // namespace

FlowPipeline::FlowPipeline(PipelineOptions opts, const EndpointResolver* endpoints,
                           const IdentityResolver* identities)
    : opts_(std::move(opts)),
      decoder_(DecoderOptions{opts_.node_name, 0, opts_.services, opts_.names}, endpoints, identities),
      ring_(opts_.ring_capacity),
      agent_ring_(opts_.event_ring_capacity),
      debug_ring_(opts_.event_ring_capacity),
      queue_(queueSize(opts_)),
      started_at_(std::chrono::steady_clock::now()) {}

FlowPipeline::~FlowPipeline() { stop(); }

void FlowPipeline::addFlowObserver(FlowObserver fn) { flow_observers_.push_back(std::move(fn)); }
void FlowPipeline::addLostObserver(LostObserver fn) { lost_observers_.push_back(std::move(fn)); }

Status FlowPipeline::start() {
  if (thread_.joinable())
    return makeError(ErrorCode::kFailedPrecondition, "flow pipeline already started");
  started_at_ = std::chrono::steady_clock::now();
  if (opts_.datapath_lost) {
    // The counter is cumulative over the datapath's life: losses from before this pipeline
    // started are not this pipeline's to report.
    dp_lost_reported_ = opts_.datapath_lost();
    dp_lost_.store(dp_lost_reported_);
  }
  thread_ = std::thread([this] { run(); });
  log()->info("flow pipeline started node={} ring_capacity={} queue_size={}", opts_.node_name,
              ring_.capacity(), queue_.size());
  return okStatus();
}

void FlowPipeline::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ring_.wakeAll();
  agent_ring_.wakeAll();
  debug_ring_.wakeAll();
  done_cv_.notify_all();
}

void FlowPipeline::onEvent(const cilium_event& ev) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (count_ == queue_.size()) {
      queue_lost_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_[(head_ + count_) % queue_.size()] = ev;
    wake = count_++ == 0;
    ++accepted_;
  }
  // Only the first record of a batch wakes the thread: the rest ride along.
  if (wake) cv_.notify_one();
}

void FlowPipeline::onAccessRecord(const proxy::AccessRecord& r) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    if (records_.size() >= queue_.size()) {
      queue_lost_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    wake = count_ == 0 && records_.empty();
    records_.push_back(r);
    ++accepted_;
  }
  if (wake) cv_.notify_one();
}

bool FlowPipeline::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  uint64_t target = accepted_;
  return done_cv_.wait_for(lock, timeout, [&] { return processed_ >= target || stopping_; }) &&
         processed_ >= target;
}

void FlowPipeline::setDrain(Drain drain) {
  std::lock_guard lock(drain_mu_);
  drain_ = std::move(drain);
}

bool FlowPipeline::sync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::lock_guard lock(drain_mu_);
    if (drain_ && !drain_(timeout)) return false;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return flush(std::max(left, std::chrono::milliseconds(0)));
}

void FlowPipeline::run() {
  std::vector<cilium_event> batch;
  batch.reserve(queue_.size());
  std::vector<proxy::AccessRecord> records;
  flow::Flow scratch;
  auto next_lost_check = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, opts_.lost_poll,
                   [&] { return count_ > 0 || !records_.empty() || stopping_; });
      if (stopping_) return;
      batch.clear();
      while (count_ > 0) {
        batch.push_back(queue_[head_]);
        head_ = (head_ + 1) % queue_.size();
        --count_;
      }
      records.clear();
      records.swap(records_);
    }
    processBatch(batch, scratch);
    processRecords(records, scratch);
    {
      std::lock_guard lock(mu_);
      processed_ += batch.size() + records.size();
    }
    done_cv_.notify_all();
    auto now = std::chrono::steady_clock::now();
    if ((batch.empty() && records.empty()) || now >= next_lost_check ||
        queue_lost_.load(std::memory_order_relaxed) != queue_lost_reported_) {
      checkLost();
      next_lost_check = now + opts_.lost_poll;
    }
  }
}

namespace {

void setNow(google::protobuf::Timestamp* ts) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

}  // namespace

void FlowPipeline::addAgentEvent(flow::AgentEvent ev) {
  auto resp = std::make_shared<observer::GetAgentEventsResponse>();
  resp->set_node_name(opts_.node_name);
  setNow(resp->mutable_time());
  *resp->mutable_agent_event() = std::move(ev);
  agent_ring_.write(std::move(resp));
}

void FlowPipeline::processBatch(std::vector<cilium_event>& batch, flow::Flow& scratch) {
  for (const auto& ev : batch) {
    if (ev.type == EVENT_DEBUG) {
      auto resp = std::make_shared<observer::GetDebugEventsResponse>();
      if (decoder_.decodeDebug(ev, *resp->mutable_debug_event()).ok()) {
        resp->set_node_name(opts_.node_name);
        *resp->mutable_time() = decoder_.eventTime(ev);
        debug_.fetch_add(1, std::memory_order_relaxed);
        debug_ring_.write(std::move(resp));
      } else {
        malformed_.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    auto st = decoder_.decode(ev, scratch);
    if (!st.ok()) {
      if (st.error().code() == ErrorCode::kUnimplemented)
        skipped_.fetch_add(1, std::memory_order_relaxed);
      else
        malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    emit(scratch);
  }
}

void FlowPipeline::processRecords(std::vector<proxy::AccessRecord>& records, flow::Flow& scratch) {
  for (const auto& r : records) {
    if (!decoder_.decodeL7(r, scratch).ok()) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    emit(scratch);
  }
}

void FlowPipeline::emit(flow::Flow& scratch) {
  auto resp = std::make_shared<observer::GetFlowsResponse>();
  resp->set_node_name(opts_.node_name);
  *resp->mutable_time() = scratch.time();
  resp->mutable_flow()->Swap(&scratch);
  seen_.fetch_add(1, std::memory_order_relaxed);
  for (const auto& o : flow_observers_) o(resp->flow());
  ring_.write(std::move(resp));
}

void FlowPipeline::reportLost(flow::LostEventSource source, uint64_t count) {
  auto resp = std::make_shared<observer::GetFlowsResponse>();
  resp->set_node_name(opts_.node_name);
  setNow(resp->mutable_time());
  resp->mutable_lost_events()->set_source(source);
  resp->mutable_lost_events()->set_num_events_lost(count);
  for (const auto& o : lost_observers_) o(source, count);
  ring_.write(std::move(resp));
}

void FlowPipeline::countReaderLost(uint64_t count) {
  ring_lost_.fetch_add(count, std::memory_order_relaxed);
}

void FlowPipeline::checkLost() {
  // Followers' misses go to the observers only: each follower got its own notice.
  uint64_t r = ring_lost_.load(std::memory_order_relaxed);
  if (r > ring_lost_reported_) {
    for (const auto& o : lost_observers_) o(flow::HUBBLE_RING_BUFFER, r - ring_lost_reported_);
    ring_lost_reported_ = r;
  }
  uint64_t q = queue_lost_.load(std::memory_order_relaxed);
  if (q > queue_lost_reported_) {
    reportLost(flow::OBSERVER_EVENTS_QUEUE, q - queue_lost_reported_);
    queue_lost_reported_ = q;
  }
  if (opts_.datapath_lost) {
    uint64_t d = opts_.datapath_lost();
    dp_lost_.store(d, std::memory_order_relaxed);
    if (d > dp_lost_reported_) {
      reportLost(flow::PERF_EVENT_RING_BUFFER, d - dp_lost_reported_);
      dp_lost_reported_ = d;
    }
  }
}

PipelineStats FlowPipeline::stats() const {
  PipelineStats s;
  s.seen_flows = seen_.load(std::memory_order_relaxed);
  s.queue_lost = queue_lost_.load(std::memory_order_relaxed);
  s.datapath_lost = dp_lost_.load(std::memory_order_relaxed);
  s.skipped = skipped_.load(std::memory_order_relaxed);
  s.malformed = malformed_.load(std::memory_order_relaxed);
  s.ring_lost = ring_lost_.load(std::memory_order_relaxed);
  s.debug_events = debug_.load(std::memory_order_relaxed);
  s.uptime = std::chrono::steady_clock::now() - started_at_;
  return s;
}

}  // namespace cilium::hubble
