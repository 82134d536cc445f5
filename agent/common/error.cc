// Error formatting and errno mapping.
#include "agent/common/error.h"

namespace cilium {

std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kFailedPrecondition: return "failed precondition";
    case ErrorCode::kResourceExhausted: return "resource exhausted";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kDeadlineExceeded: return "deadline exceeded";
    case ErrorCode::kAborted: return "aborted";
    case ErrorCode::kUnimplemented: return "unimplemented";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Error::toString() const {
  return fmt::format("{}: {}", errorCodeName(code_), message_);
}

Error errnoError(int err, std::string_view what) {
  if (err < 0) err = -err;
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case ENOENT:
    case ESRCH:
    case ENODEV:
    case ENXIO: code = ErrorCode::kNotFound; break;
    case EEXIST: code = ErrorCode::kAlreadyExists; break;
    case EPERM:
    case EACCES: code = ErrorCode::kPermissionDenied; break;
    case EINVAL:
    case E2BIG: code = ErrorCode::kInvalidArgument; break;
    case ENOSPC:
    case ENOMEM: code = ErrorCode::kResourceExhausted; break;
    case ECONNREFUSED:
    case EAGAIN:
    case ECONNRESET:
    case EHOSTUNREACH: code = ErrorCode::kUnavailable; break;
    case ETIMEDOUT: code = ErrorCode::kDeadlineExceeded; break;
    case EOPNOTSUPP: code = ErrorCode::kUnimplemented; break;
    default: break;
  }
  return Error(code, fmt::format("{}: {}", what, std::strerror(err)));
}

}  // namespace cilium
