# Registers GoogleTest binaries as CTest tests with a tier label.
#
#   cilium_test(<name> TIER unit|bpf|netns|e2e SOURCES ... [DEPS ...] [TIMEOUT s])
#
# unit tests link gtest_main. Privileged tiers (bpf, netns, e2e) link the harness main, which
# checks for root and a working bpf() first and exits with 77 (reported by CTest as "Skipped")
# when they are missing, unless CILIUM_TEST_REQUIRE_PRIVILEGED=1 makes that a failure.
# Every privileged test runs serially with the others (RESOURCE_LOCK) and is followed by the
# sweeper fixture that removes namespaces, pins and cgroups left by killed tests.

set(CILIUM_TEST_TIERS unit bpf netns e2e)

# `unit_tests` builds every unit-tier binary and nothing else (the sanitizer pass uses it).
add_custom_target(unit_tests)

function(cilium_test name)
  cmake_parse_arguments(ARG "" "TIER;TIMEOUT" "SOURCES;DEPS" ${ARGN})
  if(NOT ARG_TIER IN_LIST CILIUM_TEST_TIERS)
    message(FATAL_ERROR "cilium_test(${name}): TIER must be one of ${CILIUM_TEST_TIERS}")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  cilium_executable(${name} SOURCES ${ARG_SOURCES} DEPS ${ARG_DEPS} GTest::gmock)
  # Test code is template-heavy (gtest, JSON) and gains nothing from -O2.
  target_compile_options(${name} PRIVATE -O1)
  if(ARG_TIER STREQUAL "unit")
    add_dependencies(unit_tests ${name})
    target_link_libraries(${name} PRIVATE GTest::gtest_main)
    add_test(NAME ${name} COMMAND ${name})
  else()
    target_link_libraries(${name} PRIVATE cilium_test_privileged_main)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES
      SKIP_RETURN_CODE 77
      RESOURCE_LOCK privileged
      FIXTURES_REQUIRED cilium_sweep)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS ${ARG_TIER} TIMEOUT ${ARG_TIMEOUT})
endfunction()
