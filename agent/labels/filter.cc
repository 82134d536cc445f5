// The security-relevant label filter (Cilium's label prefix semantics, without regexes).
#include "agent/labels/filter.h"

#include <fmt/format.h>

namespace cilium::labels {

namespace {

// Longest end position at which `pattern` (literal text with ".*" wildcards) matches a prefix of
// `text`, or -1. Greedy like the regexes Cilium uses: a wildcard takes as much as it can.
int greedyMatch(std::string_view pattern, std::string_view text) {
  auto star = pattern.find(".*");
  if (star == std::string_view::npos)
    return text.starts_with(pattern) ? static_cast<int>(pattern.size()) : -1;
  std::string_view head = pattern.substr(0, star);
  std::string_view tail = pattern.substr(star + 2);
  if (!text.starts_with(head)) return -1;
  // Try the longest run for the wildcard first.
  for (size_t skip = text.size() - head.size() + 1; skip-- > 0;) {
    int m = greedyMatch(tail, text.substr(head.size() + skip));
    if (m >= 0) return static_cast<int>(head.size() + skip) + m;
  }
  return -1;
}

}  // namespace

int LabelFilter::Prefix::matchLength(const Label& l) const {
  if (has_source && source != l.source) return -1;
  return greedyMatch(pattern, l.key);
}

Result<LabelFilter::Prefix> LabelFilter::parsePrefix(std::string_view text) {
  Prefix p;
  std::string_view rest = text;
  // Both "!k8s:foo" and Cilium's "k8s:!foo" drop.
  if (rest.starts_with('!')) {
    p.drop = true;
    rest.remove_prefix(1);
  }
  auto colon = rest.find(':');
  if (colon != std::string_view::npos) {
    auto src = parseSource(rest.substr(0, colon));
    if (!src)
      return makeError(ErrorCode::kInvalidArgument, "label prefix \"{}\": unknown source \"{}\"",
                       text, rest.substr(0, colon));
    p.has_source = *src != Source::kAny;
    p.source = *src;
    rest.remove_prefix(colon + 1);
  }
  if (rest.starts_with('!')) {
    p.drop = true;
    rest.remove_prefix(1);
  }
  // Accept regex-escaped dots ("io\.kubernetes") as users copy them from Cilium's list.
  for (size_t i = 0; i < rest.size(); i++) {
    if (rest[i] == '\\' && i + 1 < rest.size()) continue;
    p.pattern.push_back(rest[i]);
  }
  if (p.pattern.empty())
    return makeError(ErrorCode::kInvalidArgument, "label prefix \"{}\": empty prefix", text);
  return p;
}

LabelFilter LabelFilter::defaults() {
  static const char* const kDefaults[] = {
      "reserved:.*",
      "io.kubernetes.pod.namespace",
      "io.cilium.k8s.namespace.labels",
      "app.kubernetes.io",
      "io.cilium.k8s.policy.cluster",
      "!io.kubernetes",
      "!kubernetes.io",
      "!statefulset.kubernetes.io/pod-name",
      "!apps.kubernetes.io/pod-index",
      "!batch.kubernetes.io/job-completion-index",
      "!.*beta.kubernetes.io",
      "!k8s.io",
      "!pod-template-generation",
      "!pod-template-hash",
      "!controller-revision-hash",
      "!annotation.*",
      "!etcd_node",
  };
  LabelFilter f;
  for (const char* d : kDefaults) {
    auto p = parsePrefix(d);
    if (!p.ok()) std::abort();  // a bug in the table above
    f.prefixes_.push_back(std::move(*p));
  }
  return f;
}

Result<LabelFilter> LabelFilter::withPrefixes(const std::vector<std::string>& prefixes) {
  LabelFilter f = defaults();
  for (const auto& text : prefixes) {
    if (text.empty()) continue;
    CILIUM_ASSIGN_OR_RETURN(Prefix p, parsePrefix(text));
    if (!p.drop) f.allow_list_ = true;
    f.prefixes_.push_back(std::move(p));
  }
  return f;
}

LabelFilter::Split LabelFilter::filter(const Labels& labels) const {
  Split out;
  for (const auto& l : labels) {
    int keep = -1;
    int drop = -1;
    for (const auto& p : prefixes_) {
      int m = p.matchLength(l);
      if (m < 0) continue;
      if (p.drop) {
        if (drop < 0 || m < drop) drop = m;
      } else if (m > keep) {
        keep = m;
      }
    }
    bool accepted = (!allow_list_ && drop < 0) || (keep >= 0 && keep > drop);
    (accepted ? out.identity : out.information).set(l);
  }
  return out;
}

std::vector<std::string> LabelFilter::describe() const {
  std::vector<std::string> out;
  for (const auto& p : prefixes_)
    out.push_back(fmt::format("{}{}{}",
                              p.has_source ? fmt::format("{}:", sourceName(p.source)) : "",
                              p.drop ? "!" : "", p.pattern));
  return out;
}

}  // namespace cilium::labels
