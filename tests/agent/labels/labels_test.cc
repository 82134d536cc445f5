#include "agent/labels/labels.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/labels/k8s.h"

namespace cilium::labels {
namespace {

TEST(LabelTest, ParsesAndPrintsCiliumForm) {
  auto l = Label::parse("k8s:app=web");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->source, Source::kK8s);
  EXPECT_EQ(l->key, "app");
  EXPECT_EQ(l->value, "web");
  EXPECT_EQ(l->toString(), "k8s:app=web");

  auto host = Label::parse("reserved:host");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->source, Source::kReserved);
  EXPECT_EQ(host->value, "");
  EXPECT_EQ(host->toString(), "reserved:host");

  auto bare = Label::parse("app=web");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->source, Source::kUnspec);
  EXPECT_EQ(Label::parse("app=web", Source::kK8s)->source, Source::kK8s);

  // Values may contain ':' and '='; only a ':' before the first '=' starts a source.
  auto v = Label::parse("k8s:url=http://x=y");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->key, "url");
  EXPECT_EQ(v->value, "http://x=y");

  // IPv6 CIDR keys keep their colons.
  auto cidr = Label::parse("cidr:f00d::/64");
  ASSERT_TRUE(cidr.ok());
  EXPECT_EQ(cidr->source, Source::kCidr);
  EXPECT_EQ(cidr->key, "f00d::/64");

  EXPECT_FALSE(Label::parse("bogus:app=web").ok());
  EXPECT_FALSE(Label::parse("k8s:=web").ok());
  EXPECT_FALSE(Label::parse("").ok());
}

TEST(LabelsTest, SortedOneLabelPerKey) {
  Labels l{{Source::kK8s, "zeta", "1"}, {Source::kK8s, "alpha", "2"}, {Source::kK8s, "mid", "3"}};
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l.list()[0].key, "alpha");
  EXPECT_EQ(l.list()[2].key, "zeta");
  l.set({Source::kContainer, "alpha", "9"});
  EXPECT_EQ(l.size(), 3u);
  EXPECT_EQ(l.find("alpha")->value, "9");
  EXPECT_TRUE(l.has(Source::kContainer, "alpha"));
  EXPECT_TRUE(l.has(Source::kAny, "alpha"));
  EXPECT_FALSE(l.has(Source::kK8s, "alpha"));
  EXPECT_TRUE(l.erase("mid"));
  EXPECT_FALSE(l.erase("mid"));
  EXPECT_EQ(l.toStrings(), (std::vector<std::string>{"container:alpha=9", "k8s:zeta=1"}));
}

TEST(LabelsTest, EqualityAndIdentityKeyIgnoreInsertionOrder) {
  Labels a{{Source::kK8s, "a", "1"}, {Source::kK8s, "b", "2"}};
  Labels b{{Source::kK8s, "b", "2"}, {Source::kK8s, "a", "1"}};
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.sortedList(), "k8s:a=1;k8s:b=2;");
  EXPECT_EQ(a.sha256(), b.sha256());
  EXPECT_EQ(a.sha256().size(), 64u);
  Labels c{{Source::kK8s, "a", "1"}, {Source::kK8s, "b", "3"}};
  EXPECT_NE(a, c);
  EXPECT_NE(a.sha256(), c.sha256());
  // Source is part of the identity key.
  Labels d{{Source::kContainer, "a", "1"}, {Source::kK8s, "b", "2"}};
  EXPECT_NE(a.sortedList(), d.sortedList());
}

TEST(LabelsTest, Sha256OfSortedList) {
  // sha256("k8s:app=web;") computed independently (sha256sum).
  Labels l{{Source::kK8s, "app", "web"}};
  EXPECT_EQ(l.sha256(), "d7733133299d1e288889f2837ba173f9d90e620d3019f7d357cc10f2ec3dcdd7");
}

TEST(LabelsTest, ContainsIsSubset) {
  Labels all{{Source::kK8s, "a", "1"}, {Source::kK8s, "b", "2"}};
  EXPECT_TRUE(all.contains(Labels{{Source::kK8s, "a", "1"}}));
  EXPECT_TRUE(all.contains(Labels{}));
  EXPECT_FALSE(all.contains(Labels{{Source::kK8s, "a", "2"}}));
  EXPECT_FALSE(all.contains(Labels{{Source::kUnspec, "a", "1"}}));
}

TEST(LabelsTest, JsonRoundTripAndStringForm) {
  Labels l{{Source::kK8s, "a", "1"}, {Source::kReserved, "host", ""}};
  auto j = l.toJson();
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["source"], "k8s");
  auto back = Labels::fromJson(j, "labels");
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, l);

  auto strs = Labels::fromJson(nlohmann::json::array({"k8s:a=1", "reserved:host"}), "labels");
  ASSERT_TRUE(strs.ok());
  EXPECT_EQ(*strs, l);

  auto bad = Labels::fromJson(nlohmann::json::array({{{"key", 3}}}), "spec.labels");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "spec.labels[0].key: must be a string");
  EXPECT_FALSE(Labels::fromJson(nlohmann::json::object(), "x").ok());
}

TEST(K8sLabelsTest, PodLabelsCarryNamespaceServiceAccountAndCluster) {
  PodInfo pod;
  pod.labels = {{"app", "web"}, {"pod-template-hash", "abc"}};
  pod.namespace_name = "prod";
  pod.namespace_labels = {{"team", "blue"}};
  pod.service_account = "web-sa";
  Labels l = podLabels(pod);
  EXPECT_EQ(l.toStrings(),
            (std::vector<std::string>{
                "k8s:app=web",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod",
                "k8s:io.cilium.k8s.namespace.labels.team=blue",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
                "k8s:io.kubernetes.pod.namespace=prod",
                "k8s:pod-template-hash=abc",
            }));
}

TEST(K8sLabelsTest, PolicyLabels) {
  EXPECT_EQ(policyLabels("CiliumNetworkPolicy", "default", "rule1", "u-1").toStrings(),
            (std::vector<std::string>{"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
                                      "k8s:io.cilium.k8s.policy.name=rule1",
                                      "k8s:io.cilium.k8s.policy.namespace=default",
                                      "k8s:io.cilium.k8s.policy.uid=u-1"}));
  EXPECT_EQ(policyLabels("CiliumClusterwideNetworkPolicy", "", "all", "").size(), 2u);
}

}  // namespace
}  // namespace cilium::labels
