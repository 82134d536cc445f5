#include "agent/labels/selector.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cilium::labels {
namespace {

using nlohmann::json;

LabelSelector sel(const char* text, Source def = Source::kAny) {
  auto s = LabelSelector::fromJson(json::parse(text), "sel", def);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
  return s.ok() ? *s : LabelSelector{};
}

const Labels kWeb{{Source::kK8s, "app", "web"},
                  {Source::kK8s, "tier", "front"},
                  {Source::kContainer, "runtime", "runc"}};

TEST(SelectorTest, EmptyMatchesEverything) {
  EXPECT_TRUE(LabelSelector().matches(kWeb));
  EXPECT_TRUE(LabelSelector().matches(Labels{}));
  EXPECT_TRUE(sel("{}").empty());
  EXPECT_EQ(sel("{}").toString(), "{}");
}

TEST(SelectorTest, MatchLabelsWithSources) {
  EXPECT_TRUE(sel(R"({"matchLabels": {"app": "web"}})").matches(kWeb));
  EXPECT_TRUE(sel(R"({"matchLabels": {"any:app": "web"}})").matches(kWeb));
  EXPECT_TRUE(sel(R"({"matchLabels": {"k8s:app": "web"}})").matches(kWeb));
  EXPECT_FALSE(sel(R"({"matchLabels": {"container:app": "web"}})").matches(kWeb));
  EXPECT_FALSE(sel(R"({"matchLabels": {"app": "db"}})").matches(kWeb));
  EXPECT_FALSE(sel(R"({"matchLabels": {"app": "web", "tier": "back"}})").matches(kWeb));
  EXPECT_TRUE(sel(R"({"matchLabels": {"app": "web", "tier": "front"}})").matches(kWeb));
  EXPECT_TRUE(sel(R"({"matchLabels": {"runtime": "runc"}})").matches(kWeb));
  // The default source applies to keys without a prefix (NetworkPolicy uses k8s).
  EXPECT_FALSE(sel(R"({"matchLabels": {"runtime": "runc"}})", Source::kK8s).matches(kWeb));
}

TEST(SelectorTest, EveryOperator) {
  struct Case {
    const char* expr;
    bool match;
  } cases[] = {
      {R"({"key": "app", "operator": "In", "values": ["db", "web"]})", true},
      {R"({"key": "app", "operator": "In", "values": ["db"]})", false},
      {R"({"key": "missing", "operator": "In", "values": ["x"]})", false},
      {R"({"key": "app", "operator": "NotIn", "values": ["db"]})", true},
      {R"({"key": "app", "operator": "NotIn", "values": ["web"]})", false},
      {R"({"key": "missing", "operator": "NotIn", "values": ["x"]})", true},
      {R"({"key": "app", "operator": "Exists"})", true},
      {R"({"key": "missing", "operator": "Exists"})", false},
      {R"({"key": "app", "operator": "DoesNotExist"})", false},
      {R"({"key": "missing", "operator": "DoesNotExist"})", true},
      // Source restrictions apply to expressions too.
      {R"({"key": "k8s:app", "operator": "Exists"})", true},
      {R"({"key": "container:app", "operator": "Exists"})", false},
      {R"({"key": "container:app", "operator": "DoesNotExist"})", true},
      {R"({"key": "container:app", "operator": "NotIn", "values": ["web"]})", true},
      {R"({"key": "k8s:app", "operator": "NotIn", "values": ["web"]})", false},
  };
  for (const auto& c : cases) {
    std::string text = std::string(R"({"matchExpressions": [)") + c.expr + "]}";
    EXPECT_EQ(sel(text.c_str()).matches(kWeb), c.match) << c.expr;
  }
}

TEST(SelectorTest, ExpressionsAndLabelsAreAnded) {
  auto s = sel(R"({"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]})");
  EXPECT_FALSE(s.matches(kWeb));
}

TEST(SelectorTest, CanonicalTextIgnoresOrder) {
  auto a = sel(R"({"matchLabels": {"b": "2", "a": "1"},
                   "matchExpressions": [{"key": "x", "operator": "In", "values": ["q", "p"]},
                                        {"key": "w", "operator": "Exists"}]})");
  auto b = sel(R"({"matchExpressions": [{"key": "w", "operator": "Exists"},
                                        {"key": "x", "operator": "In", "values": ["p", "q", "p"]}],
                   "matchLabels": {"a": "1", "b": "2"}})");
  EXPECT_EQ(a.toString(), b.toString());
  EXPECT_EQ(a, b);
  EXPECT_NE(a.toString(), sel(R"({"matchLabels": {"a": "1"}})").toString());
  EXPECT_EQ(sel(R"({"matchLabels": {"app": "web"}})").toString(),
            R"({"matchLabels":{"any:app":"web"}})");
}

TEST(SelectorTest, JsonRoundTrip) {
  auto a = sel(R"({"matchLabels": {"k8s:app": "web", "tier": "x"},
                   "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]})");
  auto back = LabelSelector::fromJson(a.toJson(), "x", Source::kK8s);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, a);
}

TEST(SelectorTest, KeyPrefixAndHelpers) {
  auto ns = LabelSelector::fromJson(json::parse(R"({"matchLabels": {"team": "blue"}})"), "ns",
                                    Source::kK8s, "io.cilium.k8s.namespace.labels.");
  ASSERT_TRUE(ns.ok());
  EXPECT_TRUE(ns->hasKey(Source::kK8s, "io.cilium.k8s.namespace.labels.team"));
  EXPECT_TRUE(ns->hasKeyPrefix(Source::kK8s, "io.cilium.k8s.namespace.labels."));
  EXPECT_FALSE(ns->hasKeyPrefix(Source::kAny, "io.cilium.k8s.namespace.labels."));
  Labels pod{{Source::kK8s, "io.cilium.k8s.namespace.labels.team", "blue"}};
  EXPECT_TRUE(ns->matches(pod));

  LabelSelector m = *ns;
  m.merge(sel(R"({"matchLabels": {"app": "web"}})"));
  EXPECT_FALSE(m.matches(pod));
  pod.set({Source::kK8s, "app", "web"});
  EXPECT_TRUE(m.matches(pod));
  m.removeKey("app");
  EXPECT_EQ(m, *ns);
}

TEST(SelectorTest, ConflictingMatchLabelsMatchNothing) {
  LabelSelector s;
  s.addMatch(Source::kK8s, "app", "a");
  s.addMatch(Source::kK8s, "app", "b");
  EXPECT_FALSE(s.matches(Labels{{Source::kK8s, "app", "a"}}));
  EXPECT_FALSE(s.matches(Labels{{Source::kK8s, "app", "b"}}));
  auto back = LabelSelector::fromJson(s.toJson(), "x", Source::kAny);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, s);
}

TEST(SelectorTest, ErrorsNameTheField) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {R"([])", "sel: a label selector must be an object"},
      {R"({"matchLabel": {}})", "sel.matchLabel: unknown field"},
      {R"({"matchLabels": {"app": 3}})", "sel.matchLabels.app: value must be a string (quote it)"},
      {R"({"matchLabels": {"bad:app": "x"}})",
       "sel.matchLabels.bad:app: \"bad:app\" has an unknown label source \"bad\""},
      {R"({"matchExpressions": [{"key": "a", "operator": "Has"}]})",
       "sel.matchExpressions[0].operator: \"Has\" is not one of In, NotIn, Exists, DoesNotExist"},
      {R"({"matchExpressions": [{"key": "a", "operator": "In"}]})",
       "sel.matchExpressions[0].values: must not be empty for operator In"},
      {R"({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})",
       "sel.matchExpressions[0].values: must be empty for operator Exists"},
      {R"({"matchExpressions": [{"operator": "Exists"}]})",
       "sel.matchExpressions[0].key: required"},
      {R"({"matchExpressions": [{"key": "", "operator": "Exists"}]})",
       "sel.matchExpressions[0].key: label key must not be empty"},
      {R"({"matchExpressions": {}})", "sel.matchExpressions: must be a list"},
  };
  for (const auto& c : cases) {
    auto s = LabelSelector::fromJson(json::parse(c.text), "sel", Source::kAny);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message(), c.error) << c.text;
  }
}

}  // namespace
}  // namespace cilium::labels
