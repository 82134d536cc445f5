// The UI's page, script and style, compiled into the binary (agent/hubble/ui/assets/,
// embedded by CMakeLists.txt).
#pragma once

#include <span>
#include <string_view>

namespace cilium::hubble::ui {

struct Asset {
  std::string_view path;          // "/", "/app.js", "/style.css"
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

std::span<const Asset> assets();

}  // namespace cilium::hubble::ui
