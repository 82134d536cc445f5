// Labels as Cilium has them: {source, key, value}, kept in a sorted set with one label per key.
// Label sets are the key of security identities, and what selectors match.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"

namespace cilium::labels {

// Where a label came from. In selectors, kAny ("any:") accepts every source.
enum class Source : uint8_t {
  kUnspec,     // "unspec": no source given
  kK8s,        // "k8s": Kubernetes pod labels and the labels derived from the pod (namespace, ...)
  kReserved,   // "reserved": identities with a fixed meaning (host, world, ...)
  kContainer,  // "container": runtime labels
  kCidr,       // "cidr": key is an address prefix ("cidr:10.0.0.0/8")
  kFqdn,       // "fqdn": DNS names (later)
  kAny,        // "any": selectors only; matches every source
};

std::string_view sourceName(Source s);
// "k8s" -> kK8s; nullopt for unknown names.
std::optional<Source> parseSource(std::string_view name);

struct Label {
  Source source = Source::kUnspec;
  std::string key;
  std::string value;

  Label() = default;
  Label(Source s, std::string k, std::string v = {})
      : source(s), key(std::move(k)), value(std::move(v)) {}

  // Cilium's printed form: "k8s:app=web", "reserved:host" (no "=" when the value is empty).
  std::string toString() const;
  // Parses the printed form. Without a "source:" prefix the source is `default_source`. An
  // unknown source name is an error. "k8s:app" has an empty value; "=x" (empty key) is an error.
  static Result<Label> parse(std::string_view text, Source default_source = Source::kUnspec);

  auto operator<=>(const Label&) const = default;  // NOLINT(modernize-use-nullptr): tidy 14 bug
};

// A set of labels sorted by key, holding at most one label per key (as Cilium's labels map):
// setting a key that exists replaces that label, whatever its source.
class Labels {
 public:
  Labels() = default;
  Labels(std::initializer_list<Label> labels);
  explicit Labels(std::vector<Label> labels);

  // Parses printed labels ("k8s:app=web"); the first bad one is the error.
  static Result<Labels> parse(const std::vector<std::string>& texts,
                              Source default_source = Source::kUnspec);

  void set(Label label);
  bool erase(std::string_view key);
  // Adds every label of `other`, replacing labels with the same key.
  void merge(const Labels& other);

  const Label* find(std::string_view key) const;
  // True when a label with this key exists and `source` is kAny or its source.
  bool has(Source source, std::string_view key) const;
  // True when every label of `subset` is in this set (same source, key and value).
  bool contains(const Labels& subset) const;
  bool hasSource(Source source) const;

  bool empty() const { return labels_.empty(); }
  size_t size() const { return labels_.size(); }
  auto begin() const { return labels_.begin(); }
  auto end() const { return labels_.end(); }
  const std::vector<Label>& list() const { return labels_; }

  // "k8s:a=1;k8s:b=2;" in key order: Cilium's SortedList, the string identities are keyed by.
  std::string sortedList() const;
  // Hex SHA-256 of sortedList() (the `labelsSHA256` of the identity API).
  std::string sha256() const;
  // Printed labels in key order: ["k8s:a=1", "k8s:b=2"].
  std::vector<std::string> toStrings() const;
  // Printed labels joined with ", " (for logs).
  std::string toString() const;

  // Cilium's LabelArray JSON: [{"key": "a", "value": "1", "source": "k8s"}, ...].
  nlohmann::json toJson() const;
  // Accepts the LabelArray JSON above and also printed strings (["k8s:a=1"]). Errors name `path`.
  static Result<Labels> fromJson(const nlohmann::json& j, std::string_view path,
                                 Source default_source = Source::kUnspec);

  bool operator==(const Labels&) const = default;
  auto operator<=>(const Labels& o) const { return labels_ <=> o.labels_; }

 private:
  std::vector<Label> labels_;  // sorted by key, keys unique
};

}  // namespace cilium::labels
