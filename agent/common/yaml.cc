// libyaml parse events -> nlohmann::json, iteratively and with limits, for untrusted text.
#include "agent/common/yaml.h"

#include <yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "agent/common/utf8.h"

namespace cilium::yaml {

namespace {

using nlohmann::json;

template <typename... Args>
Error invalid(fmt::format_string<Args...> f, Args&&... args) {
  return makeError(ErrorCode::kInvalidArgument, f, std::forward<Args>(args)...);
}

bool isPlainNull(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<json> plainNumber(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  bool digits = std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(),
                            [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return json(v);
    return std::nullopt;  // out of range: stays a string, validation names it
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), v, s[1] == 'x' ? 16 : 8);
    if (ec == std::errc() && p == s.data() + s.size() && v <= INT64_MAX)
      return json(static_cast<int64_t>(v));
    return std::nullopt;
  }
  // Floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  size_t k = i;
  size_t int_digits = 0, frac_digits = 0;
  while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) k++, int_digits++;
  if (k < s.size() && s[k] == '.') {
    k++;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) k++, frac_digits++;
  }
  if (int_digits + frac_digits == 0) return std::nullopt;
  if (k < s.size() && (s[k] == 'e' || s[k] == 'E')) {
    k++;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) k++;
    size_t exp_digits = 0;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) k++, exp_digits++;
    if (exp_digits == 0) return std::nullopt;
  }
  if (k != s.size()) return std::nullopt;
  double d = 0;
  auto [p, ec] = std::from_chars(s.data() + (s[0] == '+' ? 1 : 0), s.data() + s.size(), d);
  if (ec != std::errc() || !std::isfinite(d)) return std::nullopt;
  return json(d);
}

json plainScalar(const std::string& s) {
  if (isPlainNull(s)) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (auto n = plainNumber(s)) return *n;
  return s;
}

// Builds JSON documents from libyaml's parse events, iteratively.
class YamlBuilder {  // NOLINT(bugprone-exception-escape): json's allocation only
 public:
  explicit YamlBuilder(const Limits& limits)
      : max_depth_(limits.max_depth), budget_(limits.max_nodes) {}

  Status scalar(const yaml_event_t& e) {
    const auto& d = e.data.scalar;
    std::string v(reinterpret_cast<const char*>(d.value), d.length);
    std::string tag = d.tag ? reinterpret_cast<const char*>(d.tag) : "";
    json value;
    if (!tag.empty() && tag != "!") {
      if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float") {
        auto n = plainNumber(v);
        if (!n) return invalid("\"{}\" is not a number", v);
        value = *n;
      } else if (tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
        value = plainScalar(v);
      } else {
        value = v;  // !!str and tags we do not interpret
      }
    } else if (d.style == YAML_PLAIN_SCALAR_STYLE && tag.empty()) {
      value = plainScalar(v);
    } else {
      value = v;  // quoted and block scalars are strings
    }
    CILIUM_RETURN_IF_ERROR(spend(1));
    return add(std::move(value), 1, anchorOf(d.anchor));
  }

  Status alias(const yaml_event_t& e) {
    std::string name(reinterpret_cast<const char*>(e.data.alias.anchor));
    auto it = anchors_.find(name);
    if (it == anchors_.end()) return invalid("unknown alias \"*{}\"", name);
    CILIUM_RETURN_IF_ERROR(spend(it->second.second));
    return add(it->second.first, it->second.second, {});
  }

  Status start(bool mapping, const yaml_char_t* anchor) {
    if (!stack_.empty() && stack_.back().value.is_object() && stack_.back().expect_key)
      return invalid("mapping keys must be scalars");
    if (stack_.size() >= static_cast<size_t>(max_depth_))
      return invalid("document nests deeper than {} levels", max_depth_);
    CILIUM_RETURN_IF_ERROR(spend(1));
    stack_.push_back(
        Frame{mapping ? json::object() : json::array(), {}, true, anchorOf(anchor), 1});
    return okStatus();
  }

  Status end() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    return add(std::move(f.value), f.nodes, f.anchor);
  }

  // The finished document's root (null for an empty document).
  json takeRoot() {
    json r = std::move(root_);
    root_ = nullptr;
    return r;
  }

 private:
  struct Frame {
    json value;
    std::string key;
    bool expect_key;
    std::string anchor;
    size_t nodes;  // size of the subtree, for alias expansion accounting
  };

  static std::string anchorOf(const yaml_char_t* a) {
    return a ? std::string(reinterpret_cast<const char*>(a)) : std::string();
  }

  Status spend(size_t n) {
    if (n > budget_) return invalid("document is too large once its aliases are expanded");
    budget_ -= n;
    return okStatus();
  }

  Status add(json value, size_t nodes, const std::string& anchor) {
    if (!anchor.empty()) anchors_[anchor] = {value, nodes};
    if (stack_.empty()) {
      root_ = std::move(value);
      return okStatus();
    }
    Frame& parent = stack_.back();
    parent.nodes += nodes;
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(value));
      return okStatus();
    }
    if (parent.expect_key) {
      if (value.is_object() || value.is_array()) return invalid("mapping keys must be scalars");
      parent.key = value.is_string() ? value.get<std::string>() : value.dump();
      if (parent.value.contains(parent.key)) return invalid("duplicate key \"{}\"", parent.key);
      parent.expect_key = false;
      return okStatus();
    }
    parent.value[parent.key] = std::move(value);
    parent.expect_key = true;
    return okStatus();
  }

  std::vector<Frame> stack_;
  std::map<std::string, std::pair<json, size_t>> anchors_;
  json root_;
  int max_depth_;
  size_t budget_;
};

}  // namespace

Result<std::vector<json>> toJson(std::string_view text, const Limits& limits) {
  if (text.size() > limits.max_bytes)
    return invalid("text is {} bytes, more than the {} allowed", text.size(), limits.max_bytes);
  if (auto bad = invalidUtf8Offset(text); bad != std::string_view::npos)
    return invalid("text is not valid UTF-8 (byte {})", bad);
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return makeError(ErrorCode::kInternal, "libyaml init failed");
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  std::vector<json> out;
  YamlBuilder builder(limits);
  size_t document = 1;
  Status st;
  for (bool done = false; !done && st.ok();) {
    yaml_event_t e;
    if (!yaml_parser_parse(&parser, &e)) {
      st = invalid("document {}: not valid YAML or JSON: line {}, column {}: {}{}{}", document,
                   parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                   parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                   parser.context ? parser.context : "");
      break;
    }
    switch (e.type) {
      case YAML_STREAM_END_EVENT: done = true; break;
      case YAML_DOCUMENT_END_EVENT:
        if (json root = builder.takeRoot(); !root.is_null()) out.push_back(std::move(root));
        document++;
        break;
      case YAML_MAPPING_START_EVENT: st = builder.start(true, e.data.mapping_start.anchor); break;
      case YAML_SEQUENCE_START_EVENT:
        st = builder.start(false, e.data.sequence_start.anchor);
        break;
      case YAML_MAPPING_END_EVENT:
      case YAML_SEQUENCE_END_EVENT: st = builder.end(); break;
      case YAML_SCALAR_EVENT: st = builder.scalar(e); break;
      case YAML_ALIAS_EVENT: st = builder.alias(e); break;
      default: break;
    }
    if (!st.ok())
      st = st.error().withContext(fmt::format("document {}: line {}, column {}", document,
                                              e.start_mark.line + 1, e.start_mark.column + 1));
    yaml_event_delete(&e);
  }
  yaml_parser_delete(&parser);
  if (!st.ok()) return st.error();
  return out;
}

Result<std::vector<FlatEntry>> flatMapping(std::string_view text, const Limits& limits) {
  // toJson checks syntax, limits, keys and duplicates; the walk below then needs no checks of
  // its own beyond the shape.
  CILIUM_ASSIGN_OR_RETURN(auto docs, toJson(text, limits));
  if (docs.size() > 1) return invalid("expected one YAML document, found {}", docs.size());
  if (docs.empty()) return std::vector<FlatEntry>{};
  if (!docs[0].is_object()) return invalid("expected a mapping of key: value");

  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return makeError(ErrorCode::kInternal, "libyaml init failed");
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  std::vector<FlatEntry> out;
  std::map<std::string, std::string> scalar_anchors;  // anchors of scalars, for aliases
  int depth = 0;           // 1 = inside the top-level mapping
  bool expect_key = true;  // at depth 1
  FlatEntry entry;
  Status st;
  auto str = [](const yaml_char_t* p) {
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  };
  for (bool done = false; !done;) {
    yaml_event_t e;
    if (!yaml_parser_parse(&parser, &e)) {  // toJson accepted the text: cannot happen
      st = invalid("not valid YAML");
      break;
    }
    size_t line = e.start_mark.line + 1;
    switch (e.type) {
      case YAML_STREAM_END_EVENT: done = true; break;
      case YAML_MAPPING_START_EVENT:
      case YAML_SEQUENCE_START_EVENT:
        if (depth == 1) {  // a value (keys are scalars: toJson checked)
          entry.value.clear();
          entry.scalar = false;
          entry.line = line;
          out.push_back(entry);
          expect_key = true;
        }
        depth++;
        break;
      case YAML_MAPPING_END_EVENT:
      case YAML_SEQUENCE_END_EVENT: depth--; break;
      case YAML_SCALAR_EVENT: {
        const auto& d = e.data.scalar;
        std::string v(reinterpret_cast<const char*>(d.value), d.length);
        if (d.anchor) scalar_anchors[str(d.anchor)] = v;
        if (depth != 1) break;
        if (expect_key) {
          entry = FlatEntry{v, "", true, 0};
          expect_key = false;
          break;
        }
        bool plain = d.style == YAML_PLAIN_SCALAR_STYLE;
        entry.value = plain && isPlainNull(v) ? std::string() : v;
        entry.scalar = true;
        entry.line = line;
        out.push_back(entry);
        expect_key = true;
        break;
      }
      case YAML_ALIAS_EVENT: {
        if (depth != 1) break;
        auto it = scalar_anchors.find(str(e.data.alias.anchor));
        if (expect_key) {  // an aliased key: toJson resolved it to a scalar
          entry = FlatEntry{it == scalar_anchors.end() ? "" : it->second, "", true, 0};
          expect_key = false;
          break;
        }
        entry.scalar = it != scalar_anchors.end();
        entry.value = entry.scalar ? it->second : std::string();
        entry.line = line;
        out.push_back(entry);
        expect_key = true;
        break;
      }
      default: break;
    }
    yaml_event_delete(&e);
  }
  yaml_parser_delete(&parser);
  if (!st.ok()) return st.error();
  return out;
}

}  // namespace cilium::yaml
