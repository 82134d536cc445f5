// Label parsing, printing and the sorted label set.
#include "agent/labels/labels.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "agent/common/utf8.h"

namespace cilium::labels {

namespace {

constexpr std::array<std::pair<Source, std::string_view>, 7> kSourceNames = {{
    {Source::kUnspec, "unspec"},
    {Source::kK8s, "k8s"},
    {Source::kReserved, "reserved"},
    {Source::kContainer, "container"},
    {Source::kCidr, "cidr"},
    {Source::kFqdn, "fqdn"},
    {Source::kAny, "any"},
}};

bool keyLess(const Label& a, std::string_view key) { return a.key < key; }

}  // namespace

std::string_view sourceName(Source s) {
  for (const auto& [src, name] : kSourceNames)
    if (src == s) return name;
  return "unspec";
}

std::optional<Source> parseSource(std::string_view name) {
  for (const auto& [src, n] : kSourceNames)
    if (n == name) return src;
  return std::nullopt;
}

std::string Label::toString() const {
  std::string out;
  out.reserve(key.size() + value.size() + 12);
  out.append(sourceName(source));
  out.push_back(':');
  out.append(key);
  if (!value.empty()) {
    out.push_back('=');
    out.append(value);
  }
  return out;
}

Result<Label> Label::parse(std::string_view text, Source default_source) {
  if (!isValidUtf8(text)) return makeError(ErrorCode::kInvalidArgument, "label is not valid UTF-8");
  Label l;
  l.source = default_source;
  std::string_view rest = text;
  // The source prefix ends at the first ':' that comes before any '='. CIDR keys of IPv6 prefixes
  // contain ':' too, so only the first one splits.
  auto colon = rest.find(':');
  auto eq = rest.find('=');
  if (colon != std::string_view::npos && (eq == std::string_view::npos || colon < eq)) {
    auto src = parseSource(rest.substr(0, colon));
    if (!src)
      return makeError(ErrorCode::kInvalidArgument, "label \"{}\": unknown source \"{}\"", text,
                       rest.substr(0, colon));
    l.source = *src;
    rest.remove_prefix(colon + 1);
    eq = rest.find('=');
  }
  if (eq == std::string_view::npos) {
    l.key = std::string(rest);
  } else {
    l.key = std::string(rest.substr(0, eq));
    l.value = std::string(rest.substr(eq + 1));
  }
  if (l.key.empty()) return makeError(ErrorCode::kInvalidArgument, "label \"{}\": empty key", text);
  return l;
}

Labels::Labels(std::initializer_list<Label> labels) {
  for (const auto& l : labels) set(l);
}

Labels::Labels(std::vector<Label> labels) {
  for (auto& l : labels) set(std::move(l));
}

Result<Labels> Labels::parse(const std::vector<std::string>& texts, Source default_source) {
  Labels out;
  for (const auto& t : texts) {
    CILIUM_ASSIGN_OR_RETURN(Label l, Label::parse(t, default_source));
    out.set(std::move(l));
  }
  return out;
}

void Labels::set(Label label) {
  auto it = std::lower_bound(labels_.begin(), labels_.end(), label.key, keyLess);
  if (it != labels_.end() && it->key == label.key) {
    *it = std::move(label);
    return;
  }
  labels_.insert(it, std::move(label));
}

bool Labels::erase(std::string_view key) {
  auto it = std::lower_bound(labels_.begin(), labels_.end(), key, keyLess);
  if (it == labels_.end() || it->key != key) return false;
  labels_.erase(it);
  return true;
}

void Labels::merge(const Labels& other) {
  for (const auto& l : other) set(l);
}

const Label* Labels::find(std::string_view key) const {
  auto it = std::lower_bound(labels_.begin(), labels_.end(), key, keyLess);
  if (it == labels_.end() || it->key != key) return nullptr;
  return &*it;
}

bool Labels::has(Source source, std::string_view key) const {
  const Label* l = find(key);
  return l != nullptr && (source == Source::kAny || l->source == source);
}

bool Labels::contains(const Labels& subset) const {
  for (const auto& l : subset) {
    const Label* mine = find(l.key);
    if (mine == nullptr || *mine != l) return false;
  }
  return true;
}

bool Labels::hasSource(Source source) const {
  return std::any_of(labels_.begin(), labels_.end(),
                     [&](const Label& l) { return l.source == source; });
}

std::string Labels::sortedList() const {
  std::string out;
  for (const auto& l : labels_) {
    out.append(sourceName(l.source));
    out.push_back(':');
    out.append(l.key);
    out.push_back('=');
    out.append(l.value);
    out.push_back(';');
  }
  return out;
}

std::string Labels::sha256() const {
  std::string data = sortedList();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size_t{len} * 2);
  for (unsigned i = 0; i < len; i++) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::vector<std::string> Labels::toStrings() const {
  std::vector<std::string> out;
  out.reserve(labels_.size());
  for (const auto& l : labels_) out.push_back(l.toString());
  return out;
}

std::string Labels::toString() const {
  std::string out;
  for (const auto& l : labels_) {
    if (!out.empty()) out.append(", ");
    out.append(l.toString());
  }
  return out;
}

nlohmann::json Labels::toJson() const {
  auto arr = nlohmann::json::array();
  for (const auto& l : labels_)
    arr.push_back({{"key", l.key}, {"value", l.value}, {"source", sourceName(l.source)}});
  return arr;
}

Result<Labels> Labels::fromJson(const nlohmann::json& j, std::string_view path,
                                Source default_source) {
  if (!j.is_array())
    return makeError(ErrorCode::kInvalidArgument, "{}: must be a list of labels", path);
  Labels out;
  for (size_t i = 0; i < j.size(); i++) {
    const auto& e = j[i];
    if (e.is_string()) {
      auto l = Label::parse(e.get_ref<const std::string&>(), default_source);
      if (!l.ok()) return l.error().withContext(fmt::format("{}[{}]", path, i));
      out.set(std::move(*l));
      continue;
    }
    if (!e.is_object())
      return makeError(ErrorCode::kInvalidArgument,
                       "{}[{}]: a label is a \"source:key=value\" string or {{key, value, source}}",
                       path, i);
    Label l;
    l.source = default_source;
    for (const auto& [k, v] : e.items()) {
      if (!v.is_string())
        return makeError(ErrorCode::kInvalidArgument, "{}[{}].{}: must be a string", path, i, k);
      const auto& s = v.get_ref<const std::string&>();
      if (k == "key") {
        l.key = s;
      } else if (k == "value") {
        l.value = s;
      } else if (k == "source") {
        auto src = parseSource(s);
        if (!src)
          return makeError(ErrorCode::kInvalidArgument, "{}[{}].source: unknown source \"{}\"",
                           path, i, s);
        l.source = *src;
      } else {
        return makeError(ErrorCode::kInvalidArgument, "{}[{}].{}: unknown field", path, i, k);
      }
    }
    if (l.key.empty())
      return makeError(ErrorCode::kInvalidArgument, "{}[{}].key: must not be empty", path, i);
    out.set(std::move(l));
  }
  return out;
}

}  // namespace cilium::labels
