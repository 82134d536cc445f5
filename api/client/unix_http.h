// A minimal HTTP/1.1 client for one request over a Unix stream socket: what the REST client
// needs to talk to the agent, without cpp-httplib. cilium-cni runs once per pod operation, and
// loading cpp-httplib's shared library (which pulls in OpenSSL and initialises it) cost about
// 15 ms of CPU per start, more than the plugin's own work.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/common/error.h"

namespace cilium::api {

struct UnixHttpRequest {
  std::string method;
  std::string target;  // already percent-encoded path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> body;
};

struct UnixHttpResponse {
  int status = 0;
  std::string body;  // empty when the body went to a streaming callback
};

// Receives the decoded body as it arrives (after the status is known); returning false stops
// reading and closes the connection, which then counts as a complete response.
using UnixHttpBodySink = std::function<bool(int status, std::string_view data)>;

// Sends `req` on a new connection to `socket_path` ("Connection: close") and reads the answer:
// Content-Length, chunked, or until the peer closes. `timeout` bounds the connect and each
// read or write. Errors: kUnavailable when the socket cannot be reached, the connection breaks
// or a read times out; kDeadlineExceeded when the connect times out; kInternal for a response
// that is not HTTP. Every message names the socket.
Result<UnixHttpResponse> unixHttpRoundTrip(const std::string& socket_path,
                                           const UnixHttpRequest& req,
                                           std::chrono::milliseconds timeout,
                                           const UnixHttpBodySink& sink = {});

}  // namespace cilium::api
