# Fuzz targets for parsers of untrusted input (libFuzzer). See docs/development.md ("Fuzzing").
#
#   cilium_fuzz(<name> SOURCES ... [DEPS ...])
#
# The sources define `extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t)`.
# - Always: `<name>_regression`, a plain binary that feeds every file of
#   tests/fuzz/corpus/<name>/ to the target, registered as the unit-tier CTest `fuzz_<name>`, so
#   an input that crashed once (saved into the corpus) stays fixed. Works with g++.
# - With -DCILIUM_FUZZ=ON and clang (-DCMAKE_CXX_COMPILER=clang++): also `<name>_fuzzer`, a real
#   libFuzzer binary with ASan and UBSan. Every library is then compiled with coverage
#   instrumentation (-fsanitize=fuzzer-no-link) through cilium_compile_options.

set(CILIUM_FUZZ_CORPUS_DIR ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus)

if(CILIUM_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "CILIUM_FUZZ=ON needs clang: -DCMAKE_CXX_COMPILER=clang++")
endif()

# `fuzzers` builds every libFuzzer binary and only the libraries they need (scripts/fuzz.sh and
# the `fuzz` tier of scripts/test.sh build it).
add_custom_target(fuzzers)

function(cilium_fuzz name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  set(corpus ${CILIUM_FUZZ_CORPUS_DIR}/${name})
  if(NOT IS_DIRECTORY ${corpus})
    message(FATAL_ERROR "cilium_fuzz(${name}): seed corpus ${corpus} is missing")
  endif()

  cilium_executable(${name}_regression
    SOURCES ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/regression_main.cc
    DEPS ${ARG_DEPS})
  add_test(NAME fuzz_${name} COMMAND ${name}_regression ${corpus})
  add_dependencies(unit_tests ${name}_regression)
  set_tests_properties(fuzz_${name} PROPERTIES LABELS unit TIMEOUT 300)

  if(CILIUM_FUZZ)
    cilium_executable(${name}_fuzzer SOURCES ${ARG_SOURCES} DEPS ${ARG_DEPS})
    target_compile_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer)
    target_link_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzzers ${name}_fuzzer)
  endif()
endfunction()
