// The one error type of the codebase: Result<T> holds either a value or an Error; Status is
// Result<void>. See docs/development.md ("Errors") for when to use which code.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace cilium {

enum class ErrorCode {
  kInvalidArgument,     // untrusted input failed validation (policy YAML, REST body, CNI stdin)
  kNotFound,            // the named thing does not exist
  kAlreadyExists,       // the thing exists and this call may not replace it
  kFailedPrecondition,  // the system is not in a state where this can run (not ready, not mounted)
  kResourceExhausted,   // a pool, map or range is full
  kPermissionDenied,    // the kernel refused for lack of privilege
  kUnavailable,         // a peer (agent, apiserver) could not be reached; retrying may help
  kDeadlineExceeded,    // a wait ran out of time
  kAborted,             // a concurrent change made this attempt lose; retry from the top
  kUnimplemented,       // a recognised but unsupported feature
  kInternal,            // a syscall or library failed in a way the caller cannot fix
};

std::string_view errorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code>: <message>", for logs and for error strings that cross an API.
  std::string toString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Error withContext(std::string_view context) const {
    return Error(code_, fmt::format("{}: {}", context, message_));
  }

 private:
  ErrorCode code_;
  std::string message_;
};

// Maps an errno value to the closest ErrorCode and appends strerror to the message.
Error errnoError(int err, std::string_view what);

template <typename... Args>
Error makeError(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Error(code, fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  template <typename U = T, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                        !std::is_same_v<std::decay_t<U>, Error> &&
                                                        !std::is_same_v<std::decay_t<U>, Result>>>
  Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}      // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

  template <typename U>
  T valueOr(U&& fallback) const& {
    return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status okStatus() { return {}; }

}  // namespace cilium

// Propagates the error of a Status or Result expression.
#define CILIUM_RETURN_IF_ERROR(expr)                        \
  do {                                                      \
    if (auto cilium_status_ = (expr); !cilium_status_.ok()) \
      return std::move(cilium_status_).error();             \
  } while (0)

#define CILIUM_CONCAT_INNER_(a, b) a##b
#define CILIUM_CONCAT_(a, b) CILIUM_CONCAT_INNER_(a, b)

// `CILIUM_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result, or returns its error.
#define CILIUM_ASSIGN_OR_RETURN(lhs, expr) \
  CILIUM_ASSIGN_OR_RETURN_IMPL_(CILIUM_CONCAT_(cilium_result_, __LINE__), lhs, expr)
// `tmp` is an identifier and `lhs` a declaration: neither may be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define CILIUM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).error();       \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
