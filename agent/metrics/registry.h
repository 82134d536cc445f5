// The agent's Prometheus registries on prometheus-cpp: families, label sets, counters, gauges
// and histograms are prometheus-cpp's, collectors that run at scrape time are
// prometheus::Collectables, and the text exposition (version 0.0.4) is its TextSerializer. This
// layer adds what the agent relies on: errors as Status instead of exceptions, label values given
// by position, counters that refuse NaN, and a stable exposition (metrics sorted by name, labels
// in declared order, samples sorted by label values, HELP/TYPE of families with no samples yet).
//
// Threading: every method is thread-safe. Updating a child (Counter::inc, Gauge::set) is
// lock-free, Histogram::observe takes the child's lock; looking a child up by label values
// (Family::with) takes the family's lock and allocates, so hot paths keep the returned handle
// (children live as long as the registry). Collectors run on the scraping thread, under no
// registry lock, and must not block for long.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "agent/common/error.h"

namespace cilium::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

using LabelValues = std::vector<std::string>;

// Handles to one child of a family (one tuple of label values): a pointer to the
// prometheus-cpp metric, cheap to copy, valid as long as the registry.
class Counter {
 public:
  using Impl = prometheus::Counter;
  explicit Counter(Impl& c) : c_(&c) {}
  // Negative or NaN increments are ignored: a counter only goes up.
  void inc(double v = 1) const {
    if (v >= 0) c_->Increment(v);
  }
  double value() const { return c_->Value(); }

 private:
  Impl* c_;
};

class Gauge {
 public:
  using Impl = prometheus::Gauge;
  explicit Gauge(Impl& g) : g_(&g) {}
  void set(double v) const { g_->Set(v); }
  void add(double v) const { g_->Increment(v); }
  double value() const { return g_->Value(); }

 private:
  Impl* g_;
};

class Histogram {
 public:
  using Impl = prometheus::Histogram;
  explicit Histogram(Impl& h) : h_(&h) {}
  void observe(double v) const { h_->Observe(v); }

 private:
  Impl* h_;
};

// Prometheus' default buckets (.005 .. 10 seconds).
std::vector<double> defaultBuckets();

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

// A metric name with its children, one per label-value tuple (a prometheus::Family).
template <typename T>
class Family {
 public:
  // The child for these label values (in label_names order), created at 0 on first use.
  // Aborts when the number of values differs from the number of label names (a bug).
  T with(const LabelValues& values);
  // The child without labels (for families declared with none).
  T get() { return with({}); }
  const MetricDesc& desc() const { return desc_; }

 private:
  friend class Registry;
  Family(MetricDesc desc, prometheus::Family<typename T::Impl>& impl, std::vector<double> buckets)
      : desc_(std::move(desc)), impl_(impl), buckets_(std::move(buckets)) {}
  MetricDesc desc_;
  prometheus::Family<typename T::Impl>& impl_;
  std::vector<double> buckets_;  // histograms only
};

class Registry : public prometheus::Collectable {
 public:
  Registry();
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and not start with "__", label names
  // [a-zA-Z_][a-zA-Z0-9_]* and not start with "__" ("le" is reserved); a name registered twice
  // is kAlreadyExists. The returned family lives as long as the registry.
  Result<Family<Counter>*> counter(std::string name, std::string help,
                                   std::vector<std::string> label_names = {});
  Result<Family<Gauge>*> gauge(std::string name, std::string help,
                               std::vector<std::string> label_names = {});
  Result<Family<Histogram>*> histogram(std::string name, std::string help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> buckets = defaultBuckets());
  // A counter or gauge whose samples come from `fn` at every scrape (datapath counters, endpoint
  // counts kept elsewhere). Values the collector emits with the wrong number of labels are
  // skipped; two samples with the same labels add up.
  Status addCollector(MetricDesc desc, CollectFn fn);

  // Every family, sorted by name, each sample's labels in declared order, samples sorted by
  // label values; families without samples are there with none.
  std::vector<prometheus::MetricFamily> Collect() const override;
  // The exposition text (text/plain; version=0.0.4) of Collect().
  std::string expose() const;

 private:
  struct Entry;
  Status checkNew(const MetricDesc& desc) const;
  template <typename T>
  Result<Family<T>*> add(MetricDesc desc, std::vector<double> buckets);

  mutable std::mutex mu_;
  prometheus::Registry families_;  // owns the prometheus::Family objects
  std::map<std::string, std::shared_ptr<const Entry>> entries_;
};

inline constexpr std::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace cilium::metrics
