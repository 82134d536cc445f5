// Untrusted YAML (or JSON, a YAML subset) -> nlohmann::json documents, parsed with libyaml
// because yaml-cpp 0.7 loops forever, allocating, on input as small as "{a: 1},".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"

namespace cilium::yaml {

struct Limits {
  size_t max_bytes = 8 << 20;
  int max_depth = 64;
  // Alias expansion can make a small document huge ("billion laughs"): cap the node count.
  size_t max_nodes = 1 << 19;
};

// One JSON value per "---" document; empty documents are skipped. Plain scalars become numbers,
// booleans or null when they read as such (YAML 1.2 core schema); quoted and block scalars stay
// strings. Errors are kInvalidArgument and say where: "document 2: line 3, column 5: ...".
// Never throws, never recurses (nesting is bounded by `max_depth`, not by the stack).
Result<std::vector<nlohmann::json>> toJson(std::string_view text, const Limits& limits = {});

// One entry of a flat "key: value" mapping, as written: for configuration files, whose values
// are text the caller validates (so "0x10" stays "0x10", not 16).
struct FlatEntry {
  std::string key;
  std::string value;  // the scalar as written; "" for an empty or null plain scalar
  bool scalar = true;  // false: the value is a sequence or a mapping (value is "")
  size_t line = 0;     // 1-based line where the value starts
};
// The text as one flat mapping, entries in document order. The text must be valid YAML within
// `limits` (toJson's checks and errors); empty text (or an empty document) is no entries; more
// than one document, or a document that is not a mapping, is kInvalidArgument.
Result<std::vector<FlatEntry>> flatMapping(std::string_view text, const Limits& limits = {});

}  // namespace cilium::yaml
