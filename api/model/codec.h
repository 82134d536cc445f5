// JSON encoding and decoding of the REST API models, driven by one field list per schema.
//
// A model lists its fields once, for both directions:
//
//   struct AddressPair {
//     std::string ipv4;
//     template <class S, class V> static void fields(S& s, V& v) { v("ipv4", s.ipv4); }
//   };
//
// decode<T>() rejects wrong JSON types, missing required fields (v.required(...)) and enum values
// outside the schema, with errors that name the field path ("addressing.ipv4: expected a string,
// got a number"); unknown fields are ignored (forward compatibility, as go-swagger does) and
// null counts as absent. A model may add `static cilium::Status validate(const T&, const
// std::string& path)` for format checks (addresses, MACs, ranges); decode<T>() calls it.
// encode() omits empty strings, zero numbers, false, empty containers and nullopt, like Go's
// omitempty; required fields are always written.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"

namespace cilium::api {

using Json = nlohmann::json;

// Specialised per enum: `static constexpr std::array<std::pair<E, std::string_view>, N> kNames`.
template <typename E>
struct EnumNames;

template <typename E>
concept ApiEnum = std::is_enum_v<E> && requires {
  EnumNames<E>::kNames;
};

template <ApiEnum E>
std::string_view enumName(E e) {
  for (const auto& [v, n] : EnumNames<E>::kNames)
    if (v == e) return n;
  return "";
}

template <ApiEnum E>
std::string enumChoices() {
  std::string out;
  for (const auto& [v, n] : EnumNames<E>::kNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

template <ApiEnum E>
Result<E> parseEnum(std::string_view s) {
  for (const auto& [v, n] : EnumNames<E>::kNames)
    if (n == s) return v;
  return makeError(ErrorCode::kInvalidArgument, "'{}' is not one of {}", s, enumChoices<E>());
}

class Encoder;
class Decoder;

template <typename T>
concept Model = requires(T& t, const T& ct, Encoder& e, Decoder& d) {
  T::fields(ct, e);
  T::fields(t, d);
};

template <typename T>
concept ValidatedModel = Model<T> && requires(const T& t, const std::string& p) {
  { T::validate(t, p) } -> std::same_as<Status>;
};

// "a string", "an object", ... for error messages.
std::string_view jsonTypeName(const Json& j);
std::string joinPath(const std::string& base, std::string_view key);

// Parses JSON text; the error names `what` and the byte offset.
Result<Json> parseJson(std::string_view text, std::string_view what = "body");

class Encoder {
 public:
  explicit Encoder(Json& out) : out_(out) {}

  template <typename F>
  void operator()(std::string_view key, const F& field) {
    if (!isEmpty(field)) out_[std::string(key)] = encodeValue(field);
  }
  template <typename F>
  void required(std::string_view key, const F& field) {
    out_[std::string(key)] = encodeValue(field);
  }

  template <typename F>
  static bool isEmpty(const F& f) {
    if constexpr (std::is_same_v<F, std::string>) {
      return f.empty();
    } else if constexpr (std::is_same_v<F, bool>) {
      return !f;
    } else if constexpr (std::is_arithmetic_v<F>) {
      return f == 0;
    } else if constexpr (std::is_same_v<F, Json>) {
      return f.is_null();
    } else if constexpr (requires { f.has_value(); }) {
      return !f.has_value();
    } else if constexpr (requires { f.empty(); }) {
      return f.empty();
    } else {
      return false;  // nested models are written even when all their fields are empty
    }
  }

  template <typename F>
  static Json encodeValue(const F& f);

 private:
  Json& out_;
};

template <Model T>
Json encode(const T& m) {
  Json out = Json::object();
  Encoder e(out);
  T::fields(m, e);
  return out;
}

template <typename F>
Json Encoder::encodeValue(const F& f) {
  if constexpr (std::is_same_v<F, Json>) {
    return f;
  } else if constexpr (ApiEnum<F>) {
    return std::string(enumName(f));
  } else if constexpr (Model<F>) {
    return encode(f);
  } else if constexpr (requires {
                         f.has_value();
                         *f;
                       }) {
    return f ? encodeValue(*f) : Json();
  } else if constexpr (requires { typename F::mapped_type; }) {
    Json o = Json::object();
    for (const auto& [k, v] : f) o[k] = encodeValue(v);
    return o;
  } else if constexpr (requires {
                         typename F::value_type;
                         f.begin();
                       } &&
                       !std::is_same_v<F, std::string>) {
    Json a = Json::array();
    for (const auto& v : f) a.push_back(encodeValue(v));
    return a;
  } else {
    return Json(f);
  }
}

class Decoder {
 public:
  Decoder(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  template <typename F>
  void operator()(std::string_view key, F& field) {
    if (!error_.ok()) return;
    auto it = obj_.find(std::string(key));
    if (it == obj_.end() || it->is_null()) return;
    decodeInto(*it, joinPath(path_, key), field);
  }
  template <typename F>
  void required(std::string_view key, F& field) {
    if (!error_.ok()) return;
    auto it = obj_.find(std::string(key));
    if (it == obj_.end() || it->is_null()) {
      fail(makeError(ErrorCode::kInvalidArgument, "{}: required field is missing",
                     joinPath(path_, key)));
      return;
    }
    decodeInto(*it, joinPath(path_, key), field);
  }

  const Status& status() const { return error_; }

  template <typename F>
  static Status decodeValue(const Json& j, const std::string& path, F& out);

 private:
  template <typename F>
  void decodeInto(const Json& j, const std::string& path, F& out) {
    auto st = decodeValue(j, path, out);
    if (!st.ok()) fail(std::move(st).error());
  }
  void fail(Error e) {
    if (error_.ok()) error_ = std::move(e);
  }

  const Json& obj_;
  std::string path_;
  Status error_;
};

Error typeError(const std::string& path, std::string_view want, const Json& got);
Status decodeInteger(const Json& j, const std::string& path, int64_t& out);
Status decodeUnsigned(const Json& j, const std::string& path, uint64_t& out);

// Decodes one model from a JSON value. `path` prefixes error messages ("" at the top).
template <Model T>
Result<T> decode(const Json& j, const std::string& path = "") {
  if (!j.is_object()) return typeError(path, "an object", j);
  T out{};
  Decoder d(j, path);
  T::fields(out, d);
  if (!d.status().ok()) return d.status().error();
  if constexpr (ValidatedModel<T>) CILIUM_RETURN_IF_ERROR(T::validate(out, path));
  return out;
}

// Parses text and decodes a model (or a list of models, via decodeValue).
template <Model T>
Result<T> decodeText(std::string_view text, std::string_view what = "body") {
  CILIUM_ASSIGN_OR_RETURN(Json j, parseJson(text, what));
  return decode<T>(j);
}

template <typename F>
Status Decoder::decodeValue(const Json& j, const std::string& path, F& out) {
  if constexpr (std::is_same_v<F, std::string>) {
    if (!j.is_string()) return typeError(path, "a string", j);
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<F, bool>) {
    if (!j.is_boolean()) return typeError(path, "a boolean", j);
    out = j.get<bool>();
  } else if constexpr (std::is_same_v<F, int64_t>) {
    return decodeInteger(j, path, out);
  } else if constexpr (std::is_same_v<F, uint64_t>) {
    return decodeUnsigned(j, path, out);
  } else if constexpr (std::is_same_v<F, double>) {
    if (!j.is_number()) return typeError(path, "a number", j);
    out = j.get<double>();
  } else if constexpr (std::is_same_v<F, Json>) {
    out = j;
  } else if constexpr (ApiEnum<F>) {
    if (!j.is_string()) return typeError(path, "a string", j);
    auto e = parseEnum<F>(j.get<std::string>());
    if (!e.ok()) return e.error().withContext(path);
    out = *e;
  } else if constexpr (Model<F>) {
    CILIUM_ASSIGN_OR_RETURN(out, decode<F>(j, path));
  } else if constexpr (requires {
                         out.emplace();
                         *out;
                       }) {
    typename F::value_type v{};
    CILIUM_RETURN_IF_ERROR(decodeValue(j, path, v));
    out = std::move(v);
  } else if constexpr (requires { typename F::mapped_type; }) {
    if (!j.is_object()) return typeError(path, "an object", j);
    out.clear();
    for (const auto& [k, item] : j.items()) {
      typename F::mapped_type v{};
      CILIUM_RETURN_IF_ERROR(decodeValue(item, joinPath(path, k), v));
      out.emplace(k, std::move(v));
    }
  } else {
    static_assert(
        requires { out.push_back(std::declval<typename F::value_type>()); },
        "unsupported model field type");
    if (!j.is_array()) return typeError(path, "an array", j);
    out.clear();
    for (size_t i = 0; i < j.size(); i++) {
      typename F::value_type v{};
      CILIUM_RETURN_IF_ERROR(decodeValue(j[i], fmt::format("{}[{}]", path, i), v));
      out.push_back(std::move(v));
    }
  }
  return okStatus();
}

// A JSON array of models (responses such as GET /endpoint).
template <Model T>
Result<std::vector<T>> decodeList(const Json& j, const std::string& path = "") {
  std::vector<T> out;
  CILIUM_RETURN_IF_ERROR(Decoder::decodeValue(j, path, out));
  return out;
}

template <Model T>
Json encodeList(const std::vector<T>& items) {
  return Encoder::encodeValue(items);
}

}  // namespace cilium::api
