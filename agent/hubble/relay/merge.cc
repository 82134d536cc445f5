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
  sources_.push_back(Source{std::move(name), {}, false, 0});
  // A new open source changes what the consumer may send: it now has to wait for this one.
  consumer_cv_.notify_all();
  return static_cast<int>(sources_.size()) - 1;
}

bool FlowMerger::push(int source, observer::GetFlowsResponse ev) {
  std::unique_lock lock(mu_);
  auto& s = sources_.at(static_cast<size_t>(source));
  producer_cv_.wait(lock, [&] { return closed_ || s.buf.size() < opts_.per_source_capacity; });
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
  producer_cv_.notify_all();
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

FlowMerger::Pop FlowMerger::pop(observer::GetFlowsResponse& out,
                                std::chrono::milliseconds max_wait) {
  std::unique_lock lock(mu_);
  const auto deadline = Clock::now() + max_wait;
  for (;;) {
    if (closed_) return Pop::kEnd;
    if (!notices_.empty()) {
      out = std::move(notices_.front());
      notices_.pop_front();
      return Pop::kEvent;
    }
    Clock::time_point due;
    int i = nextSource(&due);
    auto now = Clock::now();
    if (i >= 0 && due <= now) {
      auto& s = sources_[static_cast<size_t>(i)];
      out = std::move(s.buf.front().ev);
      s.buf.pop_front();
      producer_cv_.notify_all();
      return Pop::kEvent;
    }
    if (i < 0 && !opts_.keep_open) {
      bool all_ended = true;
      for (const auto& s : sources_) all_ended = all_ended && s.ended;
      if (all_ended) return Pop::kEnd;
    }
    if (now >= deadline) return Pop::kWait;
    consumer_cv_.wait_until(lock, i >= 0 ? std::min(due, deadline) : deadline);
  }
}

}  // namespace cilium::hubble::relay
