# Finds every third-party dependency once and exposes each as an imported target.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf>=1.1)
pkg_check_modules(LIBELF REQUIRED IMPORTED_TARGET libelf)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
# cpp-httplib's .so was built with OpenSSL, zlib and brotli: the same defines must reach every user
# of the header or the classes differ between translation units.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# libyaml, the one YAML library (policy, manifests, --config-file): yaml-cpp 0.7 hangs on some
# malformed input (docs/development.md).
pkg_check_modules(LIBYAML REQUIRED IMPORTED_TARGET yaml-0.1)
# CLI11 (header-only): the command lines of cilium-agent, cilium-dbg, hubble and cilium-cni.
find_package(CLI11 2.1 REQUIRED)
# prometheus-cpp's core (registry, families, text exposition). Through pkg-config: the package's
# CMake config also looks for civetweb, zlib and curl, which only its pull and push parts use.
pkg_check_modules(PROMETHEUS_CPP REQUIRED IMPORTED_TARGET prometheus-cpp-core>=1.0)
# RE2 (gRPC depends on it too): the regular expressions of Hubble's http_path and dns_query
# filters, with Hubble's syntax and linear-time matching of untrusted patterns.
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

# The L7 proxy (docs/l7.md): RE2 for Cilium's HTTP rule regexes (also checked at policy import),
# nghttp2 for HTTP/2 and gRPC, http-parser (2.9, no pkg-config file) for HTTP/1.1.
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY NAMES http_parser REQUIRED)
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES
  IMPORTED_LOCATION "${HTTP_PARSER_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${HTTP_PARSER_INCLUDE_DIR}")

# Boost.Asio and Boost.Beast (header-only): the REST server (agent/api/server.cc).
find_package(Boost 1.74 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)

if(CILIUM_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(CILIUM_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

find_program(CLANG_BPF NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
