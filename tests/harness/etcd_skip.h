// Skips a test without an etcd binary, unless CI asked for every test to run.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tests/harness/etcd_server.h"

#define CILIUM_REQUIRE_ETCD()                                                           \
  do {                                                                                  \
    if (!::cilium::testing::haveEtcd()) {                                               \
      const char* req = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED");                  \
      if (req != nullptr && std::string(req) == "1") FAIL() << "etcd is not installed"; \
      GTEST_SKIP() << "etcd is not installed (scripts/install-deps.sh)";                \
    }                                                                                   \
  } while (0)
