// Kubernetes label selectors (matchLabels + matchExpressions) over Cilium label sets, where a key
// may carry a source prefix: "k8s:app" matches only k8s labels, "any:app" or "app" (when the
// default source is kAny) matches a label with key "app" from any source.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/labels/labels.h"

namespace cilium::labels {

enum class Operator : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };

std::string_view operatorName(Operator op);

// One requirement. Semantics are Kubernetes': In needs the label with one of `values`; NotIn
// holds when the label is absent or its value is not in `values`; Exists / DoesNotExist test
// presence. "The label" means the label with `key` whose source is `source` (any when kAny).
struct Requirement {
  Source source = Source::kAny;
  std::string key;
  Operator op = Operator::kExists;
  std::vector<std::string> values;  // sorted, unique

  bool matches(const Labels& labels) const;
  // "k8s:app" / "any:app": the key as printed in selectors.
  std::string printedKey() const;
  auto operator<=>(const Requirement&) const = default;
};

// How strictly fromJson() checks keys and values.
enum class KeySyntax : uint8_t {
  kUnchecked,   // "[source:]key", any key text (bare Cilium rules: the listing format)
  kCilium,      // "[source:]key" with a Kubernetes label key, Kubernetes label values (CNP)
  kKubernetes,  // Kubernetes label keys (no source prefix) and values (NetworkPolicy)
};

class LabelSelector {
 public:
  // The empty selector: it matches every label set.
  LabelSelector() = default;

  // Decodes a Kubernetes LabelSelector object ({"matchLabels": {...}, "matchExpressions":
  // [...]}). Keys without "source:" get `default_source`; `key_prefix` is prepended to every key
  // (after the source) - NetworkPolicy namespaceSelectors use it to reach namespace labels.
  // Errors are kInvalidArgument and name the field under `path`
  // (`spec.endpointSelector.matchExpressions[0].operator: "Foo" is not ...`). `syntax` says how
  // keys (before `key_prefix`) and values are checked (see KeySyntax).
  static Result<LabelSelector> fromJson(const nlohmann::json& j, std::string_view path,
                                        Source default_source, std::string_view key_prefix = {},
                                        KeySyntax syntax = KeySyntax::kUnchecked);

  // matchLabels entry: the label `key` from `source` must have `value`.
  void addMatch(Source source, std::string key, std::string value);
  void addRequirement(Requirement r);
  // ANDs every requirement of `other` into this selector.
  void merge(const LabelSelector& other);
  // Drops matchLabels and requirements on `key` (any source).
  void removeKey(std::string_view key);

  bool matches(const Labels& labels) const;
  bool empty() const { return match_labels_.empty() && expressions_.empty(); }

  // Whether a matchLabels entry or a requirement uses `key` with exactly `source`.
  bool hasKey(Source source, std::string_view key) const;
  // Whether some key with exactly `source` starts with `prefix`.
  bool hasKeyPrefix(Source source, std::string_view prefix) const;
  bool hasSource(Source source) const;

  // Canonical text, independent of the order the selector was written in; equal selectors have
  // equal strings. Example: `{"any:app":"web","k8s:io.kubernetes.pod.namespace":"default"}`
  // followed by expressions as `any:tier In [a,b]`.
  const std::string& toString() const { return text_; }
  // The Kubernetes LabelSelector JSON with printed (source-prefixed) keys; fromJson reads it back.
  nlohmann::json toJson() const;

  bool operator==(const LabelSelector& o) const { return text_ == o.text_; }

 private:
  struct Match {
    Source source;
    std::string key;
    std::string value;
    auto operator<=>(const Match&) const = default;
  };
  void canonicalize();

  std::vector<Match> match_labels_;       // sorted
  std::vector<Requirement> expressions_;  // sorted
  std::string text_ = "{}";
};

}  // namespace cilium::labels
