#include "agent/labels/filter.h"

#include <gtest/gtest.h>

#include "agent/labels/k8s.h"

namespace cilium::labels {
namespace {

std::vector<std::string> kept(const LabelFilter& f, const Labels& l) {
  return f.filter(l).identity.toStrings();
}

TEST(LabelFilterTest, DefaultsDropChurningLabels) {
  PodInfo pod;
  pod.labels = {{"app", "web"},
                {"pod-template-hash", "5d8f"},
                {"controller-revision-hash", "7c9"},
                {"statefulset.kubernetes.io/pod-name", "db-0"},
                {"apps.kubernetes.io/pod-index", "0"},
                {"batch.kubernetes.io/job-completion-index", "3"},
                {"pod-template-generation", "2"},
                {"app.kubernetes.io/name", "shop"},
                {"beta.kubernetes.io/arch", "amd64"},
                {"kubernetes.io/hostname", "n1"},
                {"io.kubernetes.container.name", "c"},
                {"k8s.io/thing", "x"},
                {"annotation.foo", "y"},
                {"etcd_node", "e1"}};
  pod.namespace_name = "prod";
  pod.namespace_labels = {{"team", "blue"}};
  pod.service_account = "sa";
  auto split = LabelFilter::defaults().filter(podLabels(pod));
  EXPECT_EQ(split.identity.toStrings(),
            (std::vector<std::string>{
                "k8s:app=web",
                "k8s:app.kubernetes.io/name=shop",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod",
                "k8s:io.cilium.k8s.namespace.labels.team=blue",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=sa",
                "k8s:io.kubernetes.pod.namespace=prod",
            }));
  EXPECT_TRUE(split.information.find("pod-template-hash") != nullptr);
  EXPECT_TRUE(split.information.find("statefulset.kubernetes.io/pod-name") != nullptr);
  EXPECT_EQ(split.identity.size() + split.information.size(), podLabels(pod).size());
}

TEST(LabelFilterTest, ReservedAlwaysKept) {
  Labels l{{Source::kReserved, "host", ""}, {Source::kReserved, "health", ""}};
  EXPECT_EQ(kept(LabelFilter::defaults(), l).size(), 2u);
  auto allow = LabelFilter::withPrefixes({"k8s:app"});
  ASSERT_TRUE(allow.ok());
  EXPECT_EQ(kept(*allow, l).size(), 2u);
}

TEST(LabelFilterTest, UserKeepPrefixMakesAnAllowList) {
  auto f = LabelFilter::withPrefixes({"k8s:app", ""});
  ASSERT_TRUE(f.ok());
  Labels l{{Source::kK8s, "app", "web"},
           {Source::kK8s, "application", "x"},
           {Source::kContainer, "app2", "y"},
           {Source::kK8s, "version", "3"},
           {Source::kK8s, "io.kubernetes.pod.namespace", "ns"}};
  EXPECT_EQ(kept(*f, l), (std::vector<std::string>{"k8s:app=web", "k8s:application=x",
                                                   "k8s:io.kubernetes.pod.namespace=ns"}));
}

TEST(LabelFilterTest, UserDropPrefixKeepsTheRest) {
  auto f = LabelFilter::withPrefixes({"!version", "k8s:!io.cilium.k8s.policy.serviceaccount"});
  ASSERT_TRUE(f.ok());
  Labels l{{Source::kK8s, "app", "web"},
           {Source::kK8s, "version", "3"},
           {Source::kK8s, "io.cilium.k8s.policy.serviceaccount", "sa"}};
  EXPECT_EQ(kept(*f, l), (std::vector<std::string>{"k8s:app=web"}));
  auto g = LabelFilter::withPrefixes({"!k8s:version"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(kept(*g, l).size(), 2u);
}

TEST(LabelFilterTest, LongerKeepBeatsShorterDrop) {
  // "!foo" drops foo.*, but the longer keep prefix "foo.bar" rescues foo.bar.*.
  auto f = LabelFilter::withPrefixes({"!foo", "foo.bar"});
  ASSERT_TRUE(f.ok());
  Labels l{{Source::kK8s, "foo.bar.baz", "1"}, {Source::kK8s, "foo.qux", "2"}};
  EXPECT_EQ(kept(*f, l), (std::vector<std::string>{"k8s:foo.bar.baz=1"}));
}

TEST(LabelFilterTest, WildcardPatterns) {
  auto f = LabelFilter::withPrefixes({"!.*secret", "!tmp-.*"});
  ASSERT_TRUE(f.ok());
  Labels l{{Source::kK8s, "my-secret-thing", "1"},
           {Source::kK8s, "tmp-a", "2"},
           {Source::kK8s, "attmp-a", "3"},
           {Source::kK8s, "plain", "4"}};
  EXPECT_EQ(kept(*f, l), (std::vector<std::string>{"k8s:attmp-a=3", "k8s:plain=4"}));
  EXPECT_FALSE(LabelFilter::withPrefixes({"nosuch:app"}).ok());
  EXPECT_FALSE(LabelFilter::withPrefixes({"!"}).ok());
}

}  // namespace
}  // namespace cilium::labels
