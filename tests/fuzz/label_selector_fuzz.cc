// Fuzz target: label text and label selectors (JSON), as endpoint labels arrive over the REST
// API and selectors inside policies. A selector must read back from its own JSON unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/labels/filter.h"
#include "agent/labels/selector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using cilium::labels::LabelSelector;
  using cilium::labels::Source;
  // Every line is also tried as a printed label.
  cilium::labels::Labels labels;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    auto l = cilium::labels::Label::parse(text.substr(start, end - start));
    if (l.ok()) {
      auto again = cilium::labels::Label::parse(l->toString());
      if (!again.ok() || *again != *l) std::abort();
      labels.set(*l);
    }
    start = end + 1;
  }
  (void)cilium::labels::LabelFilter::defaults().filter(labels);
  if (text.size() > (1 << 16)) return 0;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto sel = LabelSelector::fromJson(j, "sel", Source::kAny);
  if (!sel.ok()) return 0;
  (void)sel->matches(labels);
  auto back = LabelSelector::fromJson(sel->toJson(), "sel", Source::kAny);
  if (!back.ok() || !(*back == *sel)) std::abort();
  return 0;
}
