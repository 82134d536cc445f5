// What the REST server and its clients agree on besides the schemas: the ErrorCode <-> HTTP status
// mapping and the percent-encoding of path segments and query values.
#pragma once

#include <string>
#include <string_view>

#include "agent/common/error.h"

namespace cilium::api {

// The one mapping between the codebase's ErrorCode and HTTP (docs/api.md lists it):
// kInvalidArgument 400, kPermissionDenied 403, kNotFound 404, kAlreadyExists 409, kAborted 409,
// kFailedPrecondition 412, kResourceExhausted 507, kInternal 500, kUnimplemented 501,
// kUnavailable 503, kDeadlineExceeded 504.
int httpStatusFor(ErrorCode code);
// The inverse, for clients: every status the server sends maps back to the code it came from.
ErrorCode errorCodeForHttpStatus(int status);

// Splits and percent-decodes; used by the router and, in reverse, by the client.
std::string percentEncode(std::string_view s);  // everything but unreserved characters
Result<std::string> percentDecode(std::string_view s, bool plus_is_space);

}  // namespace cilium::api
