// Runs every fuzz target over its seed corpus (tests/fuzz/corpus/<name>/) and over deterministic
// mutations of it, so that the targets and their invariants are exercised in the unit tier until
// the libFuzzer build runs them for real.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/common/log.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {
namespace {

namespace fs = std::filesystem;

struct Target {
  const char* name;
  int (*fn)(const uint8_t*, size_t);
};

const Target kTargets[] = {
    {"endpoint_change_request", endpointChangeRequest},
    {"daemon_configuration_spec", daemonConfigurationSpec},
    {"api_models", apiModels},
    {"api_request", apiRequest},
    {"config_file", configFile},
};

std::vector<std::string> corpus(const std::string& name) {
  std::vector<std::string> out;
  fs::path dir = fs::path(CILIUM_SOURCE_DIR) / "tests/fuzz/corpus" / name;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

int call(const Target& t, const std::string& input) {
  return t.fn(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

class FuzzCorpusTest : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override { setLogLevel("off"); }
  void TearDown() override { setLogLevel("info"); }
};

TEST_P(FuzzCorpusTest, SeedsAndMutations) {
  const Target& t = GetParam();
  auto seeds = corpus(t.name);
  ASSERT_GE(seeds.size(), 5u) << "corpus of " << t.name;
  EXPECT_EQ(call(t, ""), 0);
  std::mt19937 rng(20240601);
  for (const auto& seed : seeds) {
    EXPECT_EQ(call(t, seed), 0);
    for (int i = 0; i < 400; i++) {
      std::string m = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !m.empty(); e++) {
        size_t pos = rng() % m.size();
        switch (rng() % 4) {
          case 0: m[pos] = static_cast<char>(rng()); break;
          case 1: m.insert(pos, 1, "{}[]\":,0a-/\\%\n"[rng() % 15]); break;
          case 2: m.erase(pos, 1 + rng() % 8); break;
          case 3: m.resize(pos); break;
        }
      }
      ASSERT_EQ(call(t, m), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpusTest, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace cilium::fuzz
