// Registry on prometheus-cpp: families, collectors and the exposition.
#include "agent/metrics/registry.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <set>
#include <type_traits>

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

namespace cilium::metrics {

namespace {

prometheus::MetricType promType(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return prometheus::MetricType::Counter;
    case MetricType::kGauge: return prometheus::MetricType::Gauge;
    case MetricType::kHistogram: return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

// prometheus-cpp 1.0 writes HELP verbatim; the format wants backslash and newline escaped.
std::string escapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// The family as the exposition shows it before any sample: name, help, type.
prometheus::MetricFamily emptyFamily(const MetricDesc& d) {
  prometheus::MetricFamily f;
  f.name = d.name;
  f.help = escapeHelp(d.help);
  f.type = promType(d.type);
  return f;
}

// prometheus-cpp keeps a child's labels in a std::map, so they come out sorted by name; put them
// back in declared order (as the agent has always exposed them) and the samples in label-value
// order, so that scrapes are stable and diffable. Every sample of a family has the same label
// names, so one permutation fits all.
void orderSamples(prometheus::MetricFamily& f, const std::vector<std::string>& names) {
  using Label = prometheus::ClientMetric::Label;
  auto& samples = f.metric;
  if (samples.empty()) return;
  const size_t n = names.size();
  if (n > 1 && samples.front().label.size() == n) {
    std::vector<size_t> from(n);
    const auto& first = samples.front().label;
    for (size_t i = 0; i < n; ++i) {
      auto it = std::find_if(first.begin(), first.end(),
                             [&](const Label& l) { return l.name == names[i]; });
      if (it == first.end()) std::abort();  // a family's labels are the ones it declared
      from[i] = static_cast<size_t>(it - first.begin());
    }
    std::vector<Label> scratch(n);
    for (auto& m : samples) {
      for (size_t i = 0; i < n; ++i) scratch[i] = std::move(m.label[from[i]]);
      for (size_t i = 0; i < n; ++i) m.label[i] = std::move(scratch[i]);
    }
  }
  if (samples.size() < 2 || n == 0) return;
  // Sort indices (a ClientMetric is large to move), comparing values only: names are equal.
  // Then put each sample in its place, following the permutation's cycles.
  std::vector<uint32_t> order(samples.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& la = samples[a].label;
    const auto& lb = samples[b].label;
    for (size_t i = 0; i < n; ++i) {
      int c = la[i].value.compare(lb[i].value);
      if (c != 0) return c < 0;
    }
    return false;
  });
  for (uint32_t start = 0; start < order.size(); ++start) {
    if (order[start] == start) continue;
    prometheus::ClientMetric held = std::move(samples[start]);
    uint32_t at = start;
    while (order[at] != start) {
      uint32_t next = order[at];
      samples[at] = std::move(samples[next]);
      order[at] = at;
      at = next;
    }
    samples[at] = std::move(held);
    order[at] = at;
  }
}

class MapSink : public SampleSink {
 public:
  explicit MapSink(size_t arity) : arity_(arity) {}
  void add(const LabelValues& values, double value) override {
    if (values.size() != arity_) return;
    // Two samples with the same labels would make an invalid exposition: they add up.
    samples[values] += value;
  }
  std::map<LabelValues, double> samples;

 private:
  size_t arity_;
};

// A collector function as a prometheus::Collectable: runs at every Collect().
class FnCollector final : public prometheus::Collectable {
 public:
  FnCollector(MetricDesc desc, CollectFn fn) : desc_(std::move(desc)), fn_(std::move(fn)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    MapSink sink(desc_.label_names.size());
    fn_(sink);
    auto f = emptyFamily(desc_);
    f.metric.reserve(sink.samples.size());
    for (const auto& [values, v] : sink.samples) {
      prometheus::ClientMetric m;
      m.label.reserve(values.size());
      for (size_t i = 0; i < values.size(); ++i)
        m.label.push_back({desc_.label_names[i], values[i]});
      if (desc_.type == MetricType::kCounter)
        m.counter.value = v;
      else
        m.gauge.value = v;
      f.metric.push_back(std::move(m));
    }
    return {std::move(f)};
  }

 private:
  MetricDesc desc_;
  CollectFn fn_;
};

}  // namespace

std::vector<double> defaultBuckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

template <typename T>
T Family<T>::with(const LabelValues& values) {
  if (values.size() != desc_.label_names.size()) std::abort();
  prometheus::Labels labels;
  for (size_t i = 0; i < values.size(); ++i) labels.emplace(desc_.label_names[i], values[i]);
  if constexpr (std::is_same_v<T, Histogram>)
    return T(impl_.Add(labels, buckets_));
  else
    return T(impl_.Add(labels));
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
  MetricDesc desc;
  // What Collect() asks: the prometheus::Family behind `family`, or `collector`.
  const prometheus::Collectable* source = nullptr;
  std::variant<std::monostate, std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
               std::unique_ptr<Family<Histogram>>>
      family;
  std::unique_ptr<FnCollector> collector;
};

Registry::Registry() : families_(prometheus::Registry::InsertBehavior::Throw) {}
Registry::~Registry() = default;

Status Registry::checkNew(const MetricDesc& d) const {
  if (!prometheus::CheckMetricName(d.name))
    return makeError(ErrorCode::kInvalidArgument, "metric name \"{}\" is not valid", d.name);
  std::set<std::string_view> seen;
  for (const auto& l : d.label_names) {
    if (!prometheus::CheckLabelName(l) || l == "le")
      return makeError(ErrorCode::kInvalidArgument, "metric {}: label name \"{}\" is not valid",
                       d.name, l);
    if (!seen.insert(l).second)
      return makeError(ErrorCode::kInvalidArgument, "metric {}: label name \"{}\" given twice",
                       d.name, l);
  }
  if (entries_.count(d.name))
    return makeError(ErrorCode::kAlreadyExists, "metric {} is already registered", d.name);
  return okStatus();
}

template <typename T>
Result<Family<T>*> Registry::add(MetricDesc desc, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(desc));
  prometheus::Family<typename T::Impl>* impl = nullptr;
  try {
    impl = &prometheus::detail::Builder<typename T::Impl>()
                .Name(desc.name)
                .Help(escapeHelp(desc.help))
                .Register(families_);
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInvalidArgument, "metric {}: {}", desc.name, e.what());
  }
  auto entry = std::make_shared<Entry>();
  entry->desc = desc;
  entry->source = impl;
  auto family =
      std::unique_ptr<Family<T>>(new Family<T>(std::move(desc), *impl, std::move(buckets)));
  auto* raw = family.get();
  entry->family = std::move(family);
  entries_[entry->desc.name] = std::move(entry);
  return raw;
}

Result<Family<Counter>*> Registry::counter(std::string name, std::string help,
                                           std::vector<std::string> label_names) {
  return add<Counter>(
      {std::move(name), std::move(help), MetricType::kCounter, std::move(label_names)}, {});
}

Result<Family<Gauge>*> Registry::gauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  return add<Gauge>({std::move(name), std::move(help), MetricType::kGauge, std::move(label_names)},
                    {});
}

Result<Family<Histogram>*> Registry::histogram(std::string name, std::string help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> buckets) {
  if (buckets.empty() || !std::is_sorted(buckets.begin(), buckets.end()) ||
      std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end())
    return makeError(ErrorCode::kInvalidArgument,
                     "histogram {}: buckets must be non-empty and strictly increasing", name);
  return add<Histogram>(
      {std::move(name), std::move(help), MetricType::kHistogram, std::move(label_names)},
      std::move(buckets));
}

Status Registry::addCollector(MetricDesc desc, CollectFn fn) {
  if (desc.type == MetricType::kHistogram)
    return makeError(ErrorCode::kInvalidArgument,
                     "collector {}: only counters and gauges can be collected", desc.name);
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(desc));
  auto entry = std::make_shared<Entry>();
  entry->desc = desc;
  entry->collector = std::make_unique<FnCollector>(std::move(desc), std::move(fn));
  entry->source = entry->collector.get();
  entries_[entry->desc.name] = std::move(entry);
  return okStatus();
}

std::vector<prometheus::MetricFamily> Registry::Collect() const {
  std::vector<std::shared_ptr<const Entry>> entries;
  {
    std::lock_guard lock(mu_);
    entries.reserve(entries_.size());
    for (const auto& [_, e] : entries_) entries.push_back(e);
  }
  std::vector<prometheus::MetricFamily> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    auto collected = e->source->Collect();
    if (collected.empty()) {
      out.push_back(emptyFamily(e->desc));
      continue;
    }
    for (auto& f : collected) {
      if (!e->collector) orderSamples(f, e->desc.label_names);
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::string Registry::expose() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace cilium::metrics
