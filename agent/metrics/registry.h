// A Prometheus metrics registry: counters, gauges and histograms with labels, collectors that run
// at scrape time, and the text exposition format (version 0.0.4).
//
// Threading: every method is thread-safe. Updating a child (Counter::inc, Gauge::set,
// Histogram::observe) is lock-free; looking a child up by label values (Family::with) takes the
// family's lock, so hot paths keep the returned reference (children live as long as the registry).
// Collectors run on the scraping thread, under no registry lock, and must not block for long.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"

namespace cilium::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view metricTypeName(MetricType t);

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // Negative or NaN increments are ignored: a counter only goes up.
  void inc(double v = 1);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& upperBounds() const { return bounds_; }
  // Cumulative counts per bound (the +Inf bucket is count()).
  std::vector<uint64_t> cumulativeCounts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bound, not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Prometheus' default buckets (.005 .. 10 seconds).
std::vector<double> defaultBuckets();
// start, start*factor, ... (count bounds).
std::vector<double> exponentialBuckets(double start, double factor, int count);

// What a collector emits at scrape time: one sample per label-value tuple.
class SampleSink {
 public:
  virtual ~SampleSink() = default;
  virtual void add(const LabelValues& values, double value) = 0;
};
using CollectFn = std::function<void(SampleSink&)>;

struct MetricDesc {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;
};

class Registry;

// A metric name with its children, one per label-value tuple.
template <typename T>
class Family {
 public:
  // The child for these label values (in label_names order), created at 0 on first use.
  // Aborts when the number of values differs from the number of label names (a bug).
  T& with(const LabelValues& values);
  // The child without labels (for families declared with none).
  T& get() { return with({}); }
  const MetricDesc& desc() const { return desc_; }

 private:
  friend class Registry;
  Family(MetricDesc desc, std::vector<double> buckets)
      : desc_(std::move(desc)), buckets_(std::move(buckets)) {}
  MetricDesc desc_;
  std::vector<double> buckets_;
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not start
  // with "__"; a name registered twice is kAlreadyExists. The returned family lives as long as
  // the registry.
  Result<Family<Counter>*> counter(std::string name, std::string help,
                                   std::vector<std::string> label_names = {});
  Result<Family<Gauge>*> gauge(std::string name, std::string help,
                               std::vector<std::string> label_names = {});
  Result<Family<Histogram>*> histogram(std::string name, std::string help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> buckets = defaultBuckets());
  // A counter or gauge whose samples come from `fn` at every scrape (datapath counters, endpoint
  // counts kept elsewhere). Values the collector emits with the wrong number of labels are
  // skipped.
  Status addCollector(MetricDesc desc, CollectFn fn);

  // The exposition text (text/plain; version=0.0.4), metrics sorted by name, samples by labels.
  std::string expose() const;

 private:
  struct Entry;
  Status checkNew(const MetricDesc& desc) const;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

inline constexpr std::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Label value and help text escaping of the exposition format, and sample values as Prometheus
// prints them ("+Inf", "NaN", integers without a fraction). Exposed for tests.
std::string escapeLabelValue(std::string_view v);
std::string formatValue(double v);

}  // namespace cilium::metrics
