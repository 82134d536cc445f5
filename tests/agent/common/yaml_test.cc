// yaml::toJson: documents, scalars, and errors that say where (document, line, column).
#include "agent/common/yaml.h"

#include <gtest/gtest.h>

namespace cilium::yaml {
namespace {

TEST(YamlTest, MultiDocumentScalarsAndEmptyDocuments) {
  auto docs = toJson("a: 1\nb: '1'\n---\n---\n- x\n- true\n- ~\n");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0]["a"], 1);
  EXPECT_EQ((*docs)[0]["b"], "1");
  EXPECT_EQ((*docs)[1], nlohmann::json::parse(R"(["x", true, null])"));
}

TEST(YamlTest, ErrorsNameDocumentLineAndColumn) {
  auto bad = toJson("a: 1\n---\nb: 2\nc: [1,\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("document 2"), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("line 5"), std::string::npos) << bad.error().message();
  auto dup = toJson("---\nx: 1\n---\ny: 1\ny: 2\n");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().message(), "document 2: line 5, column 1: duplicate key \"y\"");
}

TEST(YamlTest, HostileInputIsRejectedNotHung) {
  // yaml-cpp 0.7 loops forever on this one.
  EXPECT_FALSE(toJson("{a: 1},").ok());
  EXPECT_FALSE(toJson(std::string(100, '[')).ok());
  EXPECT_FALSE(toJson("a: 1", Limits{.max_bytes = 2}).ok());
  EXPECT_FALSE(toJson("a: \xc3\x28").ok());
  std::string bomb =
      "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c]\n"
      "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
  EXPECT_FALSE(toJson(bomb, Limits{.max_nodes = 10000}).ok());
}

}  // namespace
}  // namespace cilium::yaml
