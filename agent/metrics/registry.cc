// Prometheus registry and text exposition.
#include "agent/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <variant>

#include <fmt/format.h>

namespace cilium::metrics {

std::string_view metricTypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

namespace {

void atomicAdd(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

bool validName(std::string_view n, bool colon_ok) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

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

void appendLabels(std::string& out, const std::vector<std::string>& names,
                  const LabelValues& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

}  // namespace

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

void Counter::inc(double v) {
  if (!(v >= 0)) return;
  atomicAdd(v_, v);
}

void Gauge::add(double v) { atomicAdd(v_, v); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size())) {
  for (size_t i = 0; i < bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  if (it != bounds_.end()) buckets_[it - bounds_.begin()].fetch_add(1, std::memory_order_relaxed);
  atomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

std::vector<double> defaultBuckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

std::vector<double> exponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

template <typename T>
T& Family<T>::with(const LabelValues& values) {
  if (values.size() != desc_.label_names.size()) std::abort();
  std::lock_guard lock(mu_);
  auto& slot = children_[values];
  if (!slot) {
    if constexpr (std::is_same_v<T, Histogram>)
      slot = std::make_unique<T>(buckets_);
    else
      slot = std::make_unique<T>();
  }
  return *slot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
  MetricDesc desc;
  std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
               std::unique_ptr<Family<Histogram>>, CollectFn>
      impl;
};

Status Registry::checkNew(const MetricDesc& d) const {
  if (!validName(d.name, true))
    return makeError(ErrorCode::kInvalidArgument, "metric name \"{}\" is not valid", d.name);
  for (const auto& l : d.label_names) {
    if (!validName(l, false) || l.starts_with("__") || l == "le")
      return makeError(ErrorCode::kInvalidArgument, "metric {}: label name \"{}\" is not valid",
                       d.name, l);
  }
  if (entries_.count(d.name))
    return makeError(ErrorCode::kAlreadyExists, "metric {} is already registered", d.name);
  return okStatus();
}

Result<Family<Counter>*> Registry::counter(std::string name, std::string help,
                                           std::vector<std::string> label_names) {
  MetricDesc d{std::move(name), std::move(help), MetricType::kCounter, std::move(label_names)};
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(d));
  auto e = std::make_shared<Entry>();
  e->desc = d;
  auto fam = std::unique_ptr<Family<Counter>>(new Family<Counter>(d, {}));
  auto* raw = fam.get();
  e->impl = std::move(fam);
  entries_[d.name] = std::move(e);
  return raw;
}

Result<Family<Gauge>*> Registry::gauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  MetricDesc d{std::move(name), std::move(help), MetricType::kGauge, std::move(label_names)};
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(d));
  auto e = std::make_shared<Entry>();
  e->desc = d;
  auto fam = std::unique_ptr<Family<Gauge>>(new Family<Gauge>(d, {}));
  auto* raw = fam.get();
  e->impl = std::move(fam);
  entries_[d.name] = std::move(e);
  return raw;
}

Result<Family<Histogram>*> Registry::histogram(std::string name, std::string help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> buckets) {
  MetricDesc d{std::move(name), std::move(help), MetricType::kHistogram, std::move(label_names)};
  if (buckets.empty() || !std::is_sorted(buckets.begin(), buckets.end()) ||
      std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end())
    return makeError(ErrorCode::kInvalidArgument,
                     "histogram {}: buckets must be non-empty and strictly increasing", d.name);
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(d));
  auto e = std::make_shared<Entry>();
  e->desc = d;
  auto fam = std::unique_ptr<Family<Histogram>>(new Family<Histogram>(d, std::move(buckets)));
  auto* raw = fam.get();
  e->impl = std::move(fam);
  entries_[d.name] = std::move(e);
  return raw;
}

Status Registry::addCollector(MetricDesc desc, CollectFn fn) {
  if (desc.type == MetricType::kHistogram)
    return makeError(ErrorCode::kInvalidArgument,
                     "collector {}: only counters and gauges can be collected", desc.name);
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(checkNew(desc));
  auto e = std::make_shared<Entry>();
  e->desc = desc;
  e->impl = std::move(fn);
  entries_[desc.name] = std::move(e);
  return okStatus();
}

namespace {

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

}  // namespace

std::string Registry::expose() const {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [_, e] : entries_) entries.push_back(e);
  }
  std::string out;
  for (const auto& e : entries) {
    const auto& d = e->desc;
    std::string body;
    if (auto* c = std::get_if<std::unique_ptr<Family<Counter>>>(&e->impl)) {
      std::map<LabelValues, double> vals;
      {
        std::lock_guard lock((*c)->mu_);
        for (const auto& [k, v] : (*c)->children_) vals[k] = v->value();
      }
      for (const auto& [k, v] : vals) {
        body += d.name;
        appendLabels(body, d.label_names, k);
        body += ' ' + formatValue(v) + '\n';
      }
    } else if (auto* g = std::get_if<std::unique_ptr<Family<Gauge>>>(&e->impl)) {
      std::map<LabelValues, double> vals;
      {
        std::lock_guard lock((*g)->mu_);
        for (const auto& [k, v] : (*g)->children_) vals[k] = v->value();
      }
      for (const auto& [k, v] : vals) {
        body += d.name;
        appendLabels(body, d.label_names, k);
        body += ' ' + formatValue(v) + '\n';
      }
    } else if (auto* h = std::get_if<std::unique_ptr<Family<Histogram>>>(&e->impl)) {
      std::map<LabelValues, const Histogram*> kids;
      {
        std::lock_guard lock((*h)->mu_);
        for (const auto& [k, v] : (*h)->children_) kids[k] = v.get();
      }
      for (const auto& [k, hist] : kids) {
        // Read count first: observe() bumps the bucket before the count, so buckets never
        // exceed the +Inf bucket written from this value.
        uint64_t count = hist->count();
        double sum = hist->sum();
        auto cum = hist->cumulativeCounts();
        for (size_t i = 0; i < cum.size(); ++i) {
          body += d.name + "_bucket";
          appendLabels(body, d.label_names, k, "le", formatValue(hist->upperBounds()[i]));
          body += ' ' + formatValue(static_cast<double>(std::min(cum[i], count))) + '\n';
        }
        body += d.name + "_bucket";
        appendLabels(body, d.label_names, k, "le", "+Inf");
        body += ' ' + formatValue(static_cast<double>(count)) + '\n';
        body += d.name + "_sum";
        appendLabels(body, d.label_names, k);
        body += ' ' + formatValue(sum) + '\n';
        body += d.name + "_count";
        appendLabels(body, d.label_names, k);
        body += ' ' + formatValue(static_cast<double>(count)) + '\n';
      }
    } else if (auto* fn = std::get_if<CollectFn>(&e->impl)) {
      MapSink sink(d.label_names.size());
      (*fn)(sink);
      for (const auto& [k, v] : sink.samples) {
        body += d.name;
        appendLabels(body, d.label_names, k);
        body += ' ' + formatValue(v) + '\n';
      }
    }
    out += "# HELP " + d.name + ' ' + escapeHelp(d.help) + '\n';
    out += "# TYPE " + d.name + ' ' + std::string(metricTypeName(d.type)) + '\n';
    out += body;
  }
  return out;
}

}  // namespace cilium::metrics
