// DNS name patterns: a small glob matcher (linear, no backtracking blow-up: `*` never crosses a
// dot, so each label is matched on its own with the classic two-pointer glob).
#include "agent/policy/fqdn_pattern.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace cilium::policy {

namespace {

constexpr size_t kMaxNameLength = 253;

bool isDnsChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::vector<std::string_view> splitLabels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

// Glob of one label: `*` matches any run (possibly empty) of characters of the label.
bool labelMatches(std::string_view pat, std::string_view label) {
  size_t p = 0, l = 0, star = std::string_view::npos, mark = 0;
  while (l < label.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = l;
    } else if (p < pat.size() && pat[p] == label[l]) {
      p++;
      l++;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      l = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') p++;
  return p == pat.size();
}

}  // namespace

std::string normalizeDnsName(std::string_view name) {
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

Result<std::string> normalizeFqdnMatch(std::string_view text, bool pattern) {
  std::string n = normalizeDnsName(text);
  const char* what = pattern ? "matchPattern" : "matchName";
  if (n.empty()) return Error(ErrorCode::kInvalidArgument, fmt::format("{} is empty", what));
  if (n.size() > kMaxNameLength)
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{} \"{}\" is longer than {} characters", what, text, kMaxNameLength));
  if (pattern && n == "*") return n;
  for (char c : n) {
    if (isDnsChar(c) || c == '.') continue;
    if (c == '*' && pattern) continue;
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{} \"{}\": character '{}' is not allowed in a DNS name{}", what, text,
                             c, c == '*' ? " (use matchPattern for wildcards)" : ""));
  }
  for (auto label : splitLabels(n))
    if (label.empty())
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("{} \"{}\" has an empty label", what, text));
  return n;
}

bool fqdnMatches(std::string_view pattern, std::string_view name) {
  if (pattern == "*") return !name.empty();
  if (pattern.find('*') == std::string_view::npos) return pattern == name;
  auto pl = splitLabels(pattern);
  auto nl = splitLabels(name);
  if (pl.size() != nl.size()) return false;
  for (size_t i = 0; i < pl.size(); i++)
    if (!labelMatches(pl[i], nl[i])) return false;
  return true;
}

}  // namespace cilium::policy
