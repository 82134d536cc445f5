// DNS names and the matchName / matchPattern strings of rules.dns and toFQDNs: normalisation
// (lowercase, no trailing dot), validation, and matching with Cilium's wildcard semantics.
#pragma once

#include <string>
#include <string_view>

#include "agent/common/error.h"

namespace cilium::policy {

// A DNS name as the cache and the matchers hold it: lowercase, without the trailing dot.
std::string normalizeDnsName(std::string_view name);

// Checks and normalises a matchName (no `*`) or a matchPattern (`*` matches any run of DNS
// characters inside one label, `*` alone matches every name). Letters, digits, `-`, `_`, `.`
// (and `*` in patterns) only; at most 253 characters; no empty label. kInvalidArgument says why.
Result<std::string> normalizeFqdnMatch(std::string_view text, bool pattern);

// Whether `name` (normalised) is matched by `pattern` (normalised by normalizeFqdnMatch; a
// matchName is a pattern without `*`).
bool fqdnMatches(std::string_view pattern, std::string_view name);

}  // namespace cilium::policy
