# Warning and sanitizer flags, applied per target (never through global CMAKE_CXX_FLAGS).

add_library(cilium_compile_options INTERFACE)
target_compile_options(cilium_compile_options INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers
  # Line tables only: full debug info doubles compile time for little use in this build.
  $<$<CONFIG:RelWithDebInfo>:-g1>)
if(CILIUM_SANITIZE)
  target_compile_options(cilium_compile_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    # GCC 12 reports false maybe-uninitialized positives in libstdc++ under the sanitizers.
    -Wno-maybe-uninitialized)
  target_link_options(cilium_compile_options INTERFACE -fsanitize=address,undefined)
endif()

if(CILIUM_FUZZ)
  # Coverage for libFuzzer in every library; the fuzzer binaries add -fsanitize=fuzzer.
  target_compile_options(cilium_compile_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(cilium_compile_options INTERFACE -fsanitize=address,undefined)
endif()

# cilium_library(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# One module = one static library whose public include root is the repository root, so that code
# includes "agent/bpf/map.h" with the module path spelled out.
function(cilium_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE cilium_compile_options ${ARG_PRIVATE_DEPS})
endfunction()

# cilium_executable(<name> SOURCES ... [DEPS ...])
function(cilium_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PRIVATE cilium_compile_options ${ARG_DEPS})
endfunction()
