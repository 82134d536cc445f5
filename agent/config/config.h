// Configuration keys declared by the module that uses them: a Registry<T> lists the keys over a
// module's own struct T (name, type, help, aliases, mutability, parser and validation; the
// default is the field's initializer in T), and the agent composes the registries of its parts
// into one (daemon/config.h). Pure: no I/O.
//
// A module declares, next to the code that reads it:
//   struct Config { uint32_t hubble_event_buffer_capacity = 4095; };   // the default
//   const config::Registry<Config>& configKeys() {
//     static const auto* r = [] {
//       auto* r = new config::Registry<Config>;
//       r->uint("hubble-event-buffer-capacity", "Flows kept in Hubble's ring",
//               &Config::hubble_event_buffer_capacity, 1, 1 << 20);
//       return r;
//     }();
//     return *r;
//   }
// Errors from `set` say what is wrong with the value only ("'x' is not a boolean (true or
// false)"); the loader adds the key and the source.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::config {

// Value parsers and checks shared by every module's keys.
Result<bool> parseBool(std::string_view v);      // true/false/1/0/enabled/disabled, any case
Result<uint64_t> parseUint(std::string_view v);  // decimal
Status checkNoControl(std::string_view v);
// "60s", "500ms", "1m", "1m30s", "15m0s" (Go's duration units h, m, s, ms); kInvalidArgument
// otherwise.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);
// The reverse, shortest form ("1m30s", "500ms", "0s").
std::string durationText(std::chrono::milliseconds d);
Status checkAbsolutePath(std::string_view v, bool allow_empty);
// "[host]:port", "host:port" or ":port"; empty allowed (off).
Status checkListenAddress(std::string_view v);
// A CIDR of `family` that leaves room for endpoints ("auto" is handled by the caller).
Result<IpPrefix> parseNodeCidr(std::string_view v, IpFamily family);
std::string lower(std::string_view s);
inline Error invalidValue(std::string text) {
  return Error(ErrorCode::kInvalidArgument, std::move(text));
}

// One key over a struct T. `set` parses and validates text into T; `get` renders the current
// value as typed JSON (GET /config's daemonConfigurationMap).
template <class T>
struct Key {
  std::string name;
  std::string type;  // "string", "path", "bool", "uint", "cidr", or "a|b|c"
  std::string description;
  bool mutable_at_runtime = false;
  std::vector<std::string> aliases;  // other accepted names (Cilium's option names, e.g. "Debug")
  // What an empty default stands for, for --help and docs ("$K8S_NODE_NAME, else the hostname").
  std::string default_note;
  std::function<Status(T&, std::string_view)> set;
  std::function<nlohmann::json(const T&)> get;

  Key& mutableAtRuntime() {
    mutable_at_runtime = true;
    return *this;
  }
  Key& alias(std::string a) {
    aliases.push_back(std::move(a));
    return *this;
  }
  Key& defaultNote(std::string note) {
    default_note = std::move(note);
    return *this;
  }
};

// A module's keys over its struct T, in documentation order, with its cross-key checks.
template <class T>
class Registry {
 public:
  using Check = std::function<Status(const T&)>;

  const std::vector<Key<T>>& keys() const { return keys_; }
  const std::vector<Check>& checks() const { return checks_; }

  Key<T>& add(Key<T> k) {
    keys_.push_back(std::move(k));
    return keys_.back();
  }
  // A check over several keys, run after every source is applied (and after each PATCH).
  void check(Check c) { checks_.push_back(std::move(c)); }

  // A string with an optional check of its own.
  Key<T>& string(std::string name, std::string help, std::string T::*m,
                 std::function<Status(std::string_view)> check = nullptr,
                 std::string type = "string") {
    Key<T> k = base(std::move(name), std::move(type), std::move(help));
    k.set = [m, check](T& c, std::string_view v) -> Status {
      CILIUM_RETURN_IF_ERROR(checkNoControl(v));
      if (check) CILIUM_RETURN_IF_ERROR(check(v));
      c.*m = std::string(v);
      return okStatus();
    };
    k.get = [m](const T& c) { return nlohmann::json(c.*m); };
    return add(std::move(k));
  }
  // An absolute path (or empty, with allow_empty: off).
  Key<T>& path(std::string name, std::string help, std::string T::*m, bool allow_empty = false) {
    return string(
        std::move(name), std::move(help), m,
        [allow_empty](std::string_view v) { return checkAbsolutePath(v, allow_empty); }, "path");
  }
  // One of `choices`, case-insensitive, stored lower-case. Where the default is empty (chosen
  // at start from other keys), the empty value is accepted too and means that default.
  Key<T>& choice(std::string name, std::string help, std::string T::*m,
                 std::vector<std::string> choices) {
    std::string type;
    for (const auto& c : choices) type += (type.empty() ? "" : "|") + c;
    Key<T> k = base(std::move(name), std::move(type), std::move(help));
    const bool empty_default = (T{}.*m).empty();
    k.set = [m, choices, empty_default](T& c, std::string_view v) -> Status {
      std::string l = lower(v);
      if (!(l.empty() && empty_default) &&
          std::find(choices.begin(), choices.end(), l) == choices.end())
        return makeError(ErrorCode::kInvalidArgument, "'{}' is not one of {}", v,
                         fmt::format("{}", fmt::join(choices, ", ")));
      c.*m = l;
      return okStatus();
    };
    k.get = [m](const T& c) { return nlohmann::json(c.*m); };
    return add(std::move(k));
  }
  Key<T>& boolean(std::string name, std::string help, bool T::*m) {
    Key<T> k = base(std::move(name), "bool", std::move(help));
    k.set = [m](T& c, std::string_view v) -> Status {
      CILIUM_ASSIGN_OR_RETURN(c.*m, parseBool(v));
      return okStatus();
    };
    k.get = [m](const T& c) { return nlohmann::json(c.*m); };
    return add(std::move(k));
  }
  // lo..hi, and 0 too with zero_ok.
  Key<T>& uint(std::string name, std::string help, uint32_t T::*m, uint32_t lo, uint32_t hi,
               bool zero_ok = false) {
    Key<T> k = base(std::move(name), "uint", std::move(help));
    k.set = [m, lo, hi, zero_ok](T& c, std::string_view v) -> Status {
      CILIUM_ASSIGN_OR_RETURN(uint64_t n, parseUint(v));
      if (!(zero_ok && n == 0) && (n < lo || n > hi))
        return makeError(ErrorCode::kInvalidArgument, "{} is not {}{}..{}", n,
                         zero_ok ? "0 or " : "", lo, hi);
      c.*m = static_cast<uint32_t>(n);
      return okStatus();
    };
    k.get = [m](const T& c) { return nlohmann::json(c.*m); };
    return add(std::move(k));
  }
  // Whole seconds lo..hi (and 0 with zero_ok), as bare seconds ("900") or as a Go duration the
  // way Cilium's ConfigMap writes them ("15m0s"); shown as seconds.
  Key<T>& seconds(std::string name, std::string help, uint32_t T::*m, uint32_t lo, uint32_t hi,
                  bool zero_ok = false) {
    Key<T> k = base(std::move(name), "seconds", std::move(help));
    k.set = [m, lo, hi, zero_ok](T& c, std::string_view v) -> Status {
      uint64_t n = 0;
      if (auto plain = parseUint(v); plain.ok()) {
        n = *plain;
      } else {
        auto d = parseDuration(v);
        if (!d.ok())
          return makeError(ErrorCode::kInvalidArgument,
                           "'{}' is neither seconds nor a duration (e.g. 900, 15m0s)", v);
        if (d->count() % 1000 != 0)
          return makeError(ErrorCode::kInvalidArgument, "'{}' is not whole seconds", v);
        n = static_cast<uint64_t>(d->count() / 1000);
      }
      if (!(zero_ok && n == 0) && (n < lo || n > hi))
        return makeError(ErrorCode::kInvalidArgument, "{}s is not {}{}..{} seconds", n,
                         zero_ok ? "0 or " : "", lo, hi);
      c.*m = static_cast<uint32_t>(n);
      return okStatus();
    };
    k.get = [m](const T& c) { return nlohmann::json(c.*m); };
    return add(std::move(k));
  }
  // A node's pod CIDR of `family`, or "auto" (nullopt).
  Key<T>& cidr(std::string name, std::string help, std::optional<IpPrefix> T::*m,
               IpFamily family) {
    Key<T> k = base(std::move(name), "cidr", std::move(help));
    k.set = [m, family](T& c, std::string_view v) -> Status {
      if (v == "auto") {
        c.*m = std::nullopt;
        return okStatus();
      }
      CILIUM_ASSIGN_OR_RETURN(c.*m, parseNodeCidr(v, family));
      return okStatus();
    };
    k.get = [m](const T& c) {
      return c.*m ? nlohmann::json((c.*m)->toString()) : nlohmann::json("auto");
    };
    return add(std::move(k));
  }

  // Adds a part's keys and checks; Part is a base of T (the agent's configuration derives from
  // every module's part, so a key reads and writes the whole through its part).
  template <class Part>
  void include(const Registry<Part>& part) {
    static_assert(std::is_base_of_v<Part, T>, "a registry includes only its bases' registries");
    for (const Key<Part>& pk : part.keys()) {
      Key<T> k;
      k.name = pk.name;
      k.type = pk.type;
      k.description = pk.description;
      k.mutable_at_runtime = pk.mutable_at_runtime;
      k.aliases = pk.aliases;
      k.default_note = pk.default_note;
      k.set = [set = pk.set](T& whole, std::string_view v) {
        return set(static_cast<Part&>(whole), v);
      };
      k.get = [get = pk.get](const T& whole) { return get(static_cast<const Part&>(whole)); };
      keys_.push_back(std::move(k));
    }
    for (const auto& c : part.checks())
      checks_.push_back([c](const T& whole) { return c(static_cast<const Part&>(whole)); });
  }

  // By name or alias; nullptr when unknown.
  const Key<T>* find(std::string_view name) const {
    for (const auto& k : keys_) {
      if (k.name == name) return &k;
      for (const auto& a : k.aliases)
        if (a == name) return &k;
    }
    return nullptr;
  }

  // Every check, in order; the first failure.
  Status validate(const T& v) const {
    for (const auto& c : checks_) CILIUM_RETURN_IF_ERROR(c(v));
    return okStatus();
  }

 private:
  static Key<T> base(std::string name, std::string type, std::string help) {
    Key<T> k;
    k.name = std::move(name);
    k.type = std::move(type);
    k.description = std::move(help);
    return k;
  }

  std::vector<Key<T>> keys_;
  std::vector<Check> checks_;
};

// A key's value as text: strings as they are, "auto" for an unset CIDR, numbers and booleans
// as JSON prints them.
template <class T>
std::string valueText(const Key<T>& key, const T& v) {
  nlohmann::json j = key.get(v);
  return j.is_string() ? j.get<std::string>() : j.dump();
}

// Unix socket paths: sockaddr_un holds 108 bytes including the terminator.
Status checkSocketPathLength(std::string_view key, const std::string& path);

}  // namespace cilium::config
