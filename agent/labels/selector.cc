// Label selector decoding, matching and canonical printing.
#include "agent/labels/selector.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "agent/labels/k8s.h"

namespace cilium::labels {

namespace {

struct SelectorKey {
  Source source;
  std::string key;
};

// "k8s:app" -> (k8s, app); "app" -> (default, app). `prefix` goes in front of the key.
Result<SelectorKey> parseKey(std::string_view text, Source default_source, std::string_view prefix,
                             std::string_view path, KeySyntax syntax) {
  SelectorKey k{default_source, {}};
  std::string_view rest = text;
  auto colon = rest.find(':');
  if (colon != std::string_view::npos && syntax != KeySyntax::kKubernetes) {
    auto src = parseSource(rest.substr(0, colon));
    if (!src)
      return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" has an unknown label source \"{}\"",
                       path, text, rest.substr(0, colon));
    k.source = *src;
    rest.remove_prefix(colon + 1);
  }
  if (rest.empty())
    return makeError(ErrorCode::kInvalidArgument, "{}: label key must not be empty", path);
  if (syntax != KeySyntax::kUnchecked) {
    if (auto why = labelKeyError(rest))
      return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" is not a valid label key: {}", path,
                       text, *why);
  }
  k.key = std::string(prefix) + std::string(rest);
  return k;
}

Status checkValue(const std::string& value, KeySyntax syntax, std::string_view path) {
  if (syntax == KeySyntax::kUnchecked) return okStatus();
  if (auto why = labelValueError(value))
    return makeError(ErrorCode::kInvalidArgument, "{}: \"{}\" is not a valid label value: {}", path,
                     value, *why);
  return okStatus();
}

std::string printedKey(Source s, const std::string& key) {
  std::string out(sourceName(s));
  out.push_back(':');
  out.append(key);
  return out;
}

bool sourceMatches(Source want, const Label& l) { return want == Source::kAny || want == l.source; }

}  // namespace

std::string_view operatorName(Operator op) {
  switch (op) {
    case Operator::kIn: return "In";
    case Operator::kNotIn: return "NotIn";
    case Operator::kExists: return "Exists";
    case Operator::kDoesNotExist: return "DoesNotExist";
  }
  return "In";
}

bool Requirement::matches(const Labels& labels) const {
  const Label* l = labels.find(key);
  bool present = l != nullptr && sourceMatches(source, *l);
  switch (op) {
    case Operator::kExists: return present;
    case Operator::kDoesNotExist: return !present;
    case Operator::kIn:
      return present && std::binary_search(values.begin(), values.end(), l->value);
    case Operator::kNotIn:
      return !present || !std::binary_search(values.begin(), values.end(), l->value);
  }
  return false;
}

std::string Requirement::printedKey() const { return labels::printedKey(source, key); }

Result<LabelSelector> LabelSelector::fromJson(const nlohmann::json& j, std::string_view path,
                                              Source default_source, std::string_view key_prefix,
                                              KeySyntax syntax) {
  LabelSelector sel;
  if (j.is_null()) return sel;
  if (!j.is_object())
    return makeError(ErrorCode::kInvalidArgument, "{}: a label selector must be an object", path);
  for (const auto& [field, value] : j.items()) {
    if (field == "matchLabels") {
      if (value.is_null()) continue;
      if (!value.is_object())
        return makeError(ErrorCode::kInvalidArgument, "{}.matchLabels: must be a map of strings",
                         path);
      for (const auto& [k, v] : value.items()) {
        std::string fpath = fmt::format("{}.matchLabels.{}", path, k);
        CILIUM_ASSIGN_OR_RETURN(SelectorKey key,
                                parseKey(k, default_source, key_prefix, fpath, syntax));
        if (v.is_null()) {
          sel.match_labels_.push_back({key.source, std::move(key.key), {}});
          continue;
        }
        if (!v.is_string())
          return makeError(ErrorCode::kInvalidArgument, "{}: value must be a string (quote it)",
                           fpath);
        CILIUM_RETURN_IF_ERROR(checkValue(v.get_ref<const std::string&>(), syntax, fpath));
        sel.match_labels_.push_back({key.source, std::move(key.key), v.get<std::string>()});
      }
    } else if (field == "matchExpressions") {
      if (value.is_null()) continue;
      if (!value.is_array())
        return makeError(ErrorCode::kInvalidArgument, "{}.matchExpressions: must be a list", path);
      for (size_t i = 0; i < value.size(); i++) {
        std::string epath = fmt::format("{}.matchExpressions[{}]", path, i);
        const auto& e = value[i];
        if (!e.is_object())
          return makeError(ErrorCode::kInvalidArgument, "{}: must be an object", epath);
        Requirement r;
        bool have_key = false, have_op = false;
        const nlohmann::json* values = nullptr;
        for (const auto& [ef, ev] : e.items()) {
          if (ef == "key") {
            if (!ev.is_string())
              return makeError(ErrorCode::kInvalidArgument, "{}.key: must be a string", epath);
            CILIUM_ASSIGN_OR_RETURN(SelectorKey key,
                                    parseKey(ev.get_ref<const std::string&>(), default_source,
                                             key_prefix, epath + ".key", syntax));
            r.source = key.source;
            r.key = std::move(key.key);
            have_key = true;
          } else if (ef == "operator") {
            if (!ev.is_string())
              return makeError(ErrorCode::kInvalidArgument, "{}.operator: must be a string", epath);
            const auto& op = ev.get_ref<const std::string&>();
            if (op == "In")
              r.op = Operator::kIn;
            else if (op == "NotIn")
              r.op = Operator::kNotIn;
            else if (op == "Exists")
              r.op = Operator::kExists;
            else if (op == "DoesNotExist")
              r.op = Operator::kDoesNotExist;
            else
              return makeError(ErrorCode::kInvalidArgument,
                               "{}.operator: \"{}\" is not one of In, NotIn, Exists, DoesNotExist",
                               epath, op);
            have_op = true;
          } else if (ef == "values") {
            values = &ev;
          } else {
            return makeError(ErrorCode::kInvalidArgument, "{}.{}: unknown field", epath, ef);
          }
        }
        if (!have_key) return makeError(ErrorCode::kInvalidArgument, "{}.key: required", epath);
        if (!have_op) return makeError(ErrorCode::kInvalidArgument, "{}.operator: required", epath);
        if (values != nullptr && !values->is_null()) {
          if (!values->is_array())
            return makeError(ErrorCode::kInvalidArgument, "{}.values: must be a list of strings",
                             epath);
          for (size_t k = 0; k < values->size(); k++) {
            if (!(*values)[k].is_string())
              return makeError(ErrorCode::kInvalidArgument,
                               "{}.values[{}]: must be a string (quote it)", epath, k);
            CILIUM_RETURN_IF_ERROR(checkValue((*values)[k].get_ref<const std::string&>(), syntax,
                                              fmt::format("{}.values[{}]", epath, k)));
            r.values.push_back((*values)[k].get<std::string>());
          }
        }
        bool set_op = r.op == Operator::kIn || r.op == Operator::kNotIn;
        if (set_op && r.values.empty())
          return makeError(ErrorCode::kInvalidArgument,
                           "{}.values: must not be empty for operator {}", epath,
                           operatorName(r.op));
        if (!set_op && !r.values.empty())
          return makeError(ErrorCode::kInvalidArgument, "{}.values: must be empty for operator {}",
                           epath, operatorName(r.op));
        sel.addRequirement(std::move(r));
      }
    } else {
      return makeError(ErrorCode::kInvalidArgument, "{}.{}: unknown field", path, field);
    }
  }
  sel.canonicalize();
  return sel;
}

void LabelSelector::addMatch(Source source, std::string key, std::string value) {
  match_labels_.push_back({source, std::move(key), std::move(value)});
  canonicalize();
}

void LabelSelector::addRequirement(Requirement r) {
  std::sort(r.values.begin(), r.values.end());
  r.values.erase(std::unique(r.values.begin(), r.values.end()), r.values.end());
  expressions_.push_back(std::move(r));
  canonicalize();
}

void LabelSelector::merge(const LabelSelector& other) {
  match_labels_.insert(match_labels_.end(), other.match_labels_.begin(), other.match_labels_.end());
  expressions_.insert(expressions_.end(), other.expressions_.begin(), other.expressions_.end());
  canonicalize();
}

void LabelSelector::removeKey(std::string_view key) {
  std::erase_if(match_labels_, [&](const Match& m) { return m.key == key; });
  std::erase_if(expressions_, [&](const Requirement& r) { return r.key == key; });
  canonicalize();
}

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& m : match_labels_) {
    const Label* l = labels.find(m.key);
    if (l == nullptr || !sourceMatches(m.source, *l) || l->value != m.value) return false;
  }
  for (const auto& r : expressions_)
    if (!r.matches(labels)) return false;
  return true;
}

bool LabelSelector::hasKey(Source source, std::string_view key) const {
  for (const auto& m : match_labels_)
    if (m.source == source && m.key == key) return true;
  for (const auto& r : expressions_)
    if (r.source == source && r.key == key) return true;
  return false;
}

bool LabelSelector::hasKeyPrefix(Source source, std::string_view prefix) const {
  for (const auto& m : match_labels_)
    if (m.source == source && std::string_view(m.key).starts_with(prefix)) return true;
  for (const auto& r : expressions_)
    if (r.source == source && std::string_view(r.key).starts_with(prefix)) return true;
  return false;
}

bool LabelSelector::hasSource(Source source) const {
  for (const auto& m : match_labels_)
    if (m.source == source) return true;
  for (const auto& r : expressions_)
    if (r.source == source) return true;
  return false;
}

nlohmann::json LabelSelector::toJson() const {
  auto j = nlohmann::json::object();
  if (!match_labels_.empty()) {
    auto ml = nlohmann::json::object();
    for (const auto& m : match_labels_) ml[printedKey(m.source, m.key)] = m.value;
    j["matchLabels"] = std::move(ml);
  }
  if (!expressions_.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& r : expressions_) {
      nlohmann::json e = {{"key", r.printedKey()}, {"operator", operatorName(r.op)}};
      if (!r.values.empty()) e["values"] = r.values;
      arr.push_back(std::move(e));
    }
    j["matchExpressions"] = std::move(arr);
  }
  return j;
}

void LabelSelector::canonicalize() {
  std::sort(match_labels_.begin(), match_labels_.end(), [](const Match& a, const Match& b) {
    return std::tie(a.key, a.source, a.value) < std::tie(b.key, b.source, b.value);
  });
  match_labels_.erase(std::unique(match_labels_.begin(), match_labels_.end()), match_labels_.end());
  std::sort(expressions_.begin(), expressions_.end(),
            [](const Requirement& a, const Requirement& b) {
              return std::tie(a.key, a.source, a.op, a.values) <
                     std::tie(b.key, b.source, b.op, b.values);
            });
  expressions_.erase(std::unique(expressions_.begin(), expressions_.end()), expressions_.end());
  // Two matchLabels on one printed key cannot be a JSON map: they become In requirements, which
  // keeps the selector's meaning (both must hold) and its text unambiguous.
  for (size_t i = 0; i + 1 < match_labels_.size();) {
    if (match_labels_[i].key == match_labels_[i + 1].key &&
        match_labels_[i].source == match_labels_[i + 1].source) {
      for (size_t k = i; k < i + 2; k++) {
        Requirement r{
            match_labels_[k].source, match_labels_[k].key, Operator::kIn, {match_labels_[k].value}};
        expressions_.push_back(std::move(r));
      }
      match_labels_.erase(match_labels_.begin() + static_cast<std::ptrdiff_t>(i),
                          match_labels_.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      canonicalize();
      return;
    }
    i++;
  }
  // Never throws: invalid UTF-8 (only possible from callers that skipped validation) is replaced.
  text_ = toJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cilium::labels
