// FlowMerger: bounded per-source buffers, earliest head first, quiet sources waited for at most
// the drain timeout.
#include "agent/hubble/relay/merge.h"

namespace cilium::hubble::relay {

int64_t eventTimeNs(const observer::GetFlowsResponse& ev) {
  const auto& t = ev.has_time() ? ev.time() : ev.flow().time();
  return t.seconds() * 1000000000 + t.nanos();
}

FlowMerger::FlowMerger(Options opts) : opts_(opts) {
  if (opts_.per_source_capacity == 0) opts_.per_source_capacity = 1;
}

int FlowMerger::addSource(std::string name) {
  std::lock_guard lock(mu_);
  sources_.emplace_back(std::move(name));
  // A new open source changes what the consumer may send: it now has to wait for this one.
  consumer_cv_.notify_all();
  return static_cast<int>(sources_.size()) - 1;
}

bool FlowMerger::push(int source, observer::GetFlowsResponse ev) {
  std::unique_lock lock(mu_);
  auto& s = sources_.at(static_cast<size_t>(source));
  if (!closed_ && s.buf.size() >= opts_.per_source_capacity) {
    s.waiting = true;
    s.room.wait(lock, [&] { return closed_ || s.buf.size() < opts_.per_source_capacity; });
    s.waiting = false;
  }
  if (closed_) return false;
  int64_t t = eventTimeNs(ev);
  if (t == 0) t = s.last_time_ns;
  s.last_time_ns = t;
  s.buf.push_back(Item{std::move(ev), t, Clock::now()});
  consumer_cv_.notify_all();
  return true;
}

void FlowMerger::end(int source) {
  std::lock_guard lock(mu_);
  sources_.at(static_cast<size_t>(source)).ended = true;
  consumer_cv_.notify_all();
}

void FlowMerger::notice(observer::GetFlowsResponse ev) {
  std::lock_guard lock(mu_);
  notices_.push_back(std::move(ev));
  consumer_cv_.notify_all();
}

void FlowMerger::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& s : sources_) s.room.notify_all();
  consumer_cv_.notify_all();
}

bool FlowMerger::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

size_t FlowMerger::openSources() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& s : sources_) n += s.ended ? 0 : 1;
  return n;
}

int FlowMerger::nextSource(Clock::time_point* due) const {
  int best = -1;
  bool all_heads = true;  // every open source has something buffered
  bool any_full = false;  // some source is blocked on its full buffer
  for (size_t i = 0; i < sources_.size(); ++i) {
    const auto& s = sources_[i];
    any_full = any_full || s.buf.size() >= opts_.per_source_capacity;
    if (s.buf.empty()) {
      if (!s.ended) all_heads = false;
      continue;
    }
    if (best < 0 || s.buf.front().time_ns < sources_[best].buf.front().time_ns)
      best = static_cast<int>(i);
  }
  if (best < 0) return -1;
  // With a head from every open source the earliest one is final. Otherwise it waits for the
  // quiet source until the drain timeout after its arrival, unless a buffer is full: then
  // waiting would only stall the busy sources (a quiet node would throttle the cluster to a
  // buffer per drain timeout), so it goes now.
  *due = all_heads || any_full ? Clock::time_point::min()
                               : sources_[best].buf.front().arrived + opts_.drain_timeout;
  return best;
}

bool FlowMerger::takeDue(observer::GetFlowsResponse& out, int* next, Clock::time_point* due) {
  if (!notices_.empty()) {
    out = std::move(notices_.front());
    notices_.pop_front();
    return true;
  }
  *next = nextSource(due);
  if (*next < 0 || *due > Clock::now()) return false;
  auto& s = sources_[static_cast<size_t>(*next)];
  out = std::move(s.buf.front().ev);
  s.buf.pop_front();
  // Its producer waits only on a full buffer: wake it once, as room appears.
  if (s.waiting && s.buf.size() + 1 == opts_.per_source_capacity) s.room.notify_one();
  return true;
}

FlowMerger::Pop FlowMerger::pop(observer::GetFlowsResponse& out,
                                std::chrono::milliseconds max_wait) {
  std::vector<observer::GetFlowsResponse> one;
  auto r = popBatch(one, 1, max_wait);
  if (r == Pop::kEvent) out = std::move(one.front());
  return r;
}

FlowMerger::Pop FlowMerger::popBatch(std::vector<observer::GetFlowsResponse>& out, size_t max,
                                     std::chrono::milliseconds max_wait) {
  std::unique_lock lock(mu_);
  const auto deadline = Clock::now() + max_wait;
  observer::GetFlowsResponse ev;
  for (;;) {
    if (closed_) return Pop::kEnd;
    int i = -1;
    Clock::time_point due;
    if (takeDue(ev, &i, &due)) {
      out.push_back(std::move(ev));
      for (size_t n = 1; n < max && takeDue(ev, &i, &due); ++n) out.push_back(std::move(ev));
      return Pop::kEvent;
    }
    if (i < 0 && !opts_.keep_open) {
      bool all_ended = true;
      for (const auto& s : sources_) all_ended = all_ended && s.ended;
      if (all_ended) return Pop::kEnd;
    }
    if (Clock::now() >= deadline) return Pop::kWait;
    consumer_cv_.wait_until(lock, i >= 0 ? std::min(due, deadline) : deadline);
  }
}

}  // namespace cilium::hubble::relay
