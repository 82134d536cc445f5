// The security-relevant label filter: which of an endpoint's labels take part in its identity.
// Churning labels (pod-template-hash, controller-revision-hash, statefulset pod names, ...) are
// dropped so that pods of one workload share one identity. Defaults follow Cilium's list.
#pragma once

#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/labels/labels.h"

namespace cilium::labels {

class LabelFilter {
 public:
  // Cilium's default list: keep reserved:*, io.kubernetes.pod.namespace,
  // io.cilium.k8s.namespace.labels*, app.kubernetes.io*, io.cilium.k8s.policy.cluster; drop the
  // other io.kubernetes* and kubernetes.io* labels, statefulset.kubernetes.io/pod-name,
  // apps.kubernetes.io/pod-index, batch.kubernetes.io/job-completion-index,
  // *beta.kubernetes.io*, k8s.io*, pod-template-generation, pod-template-hash,
  // controller-revision-hash, annotation*, etcd_node; keep everything else.
  static LabelFilter defaults();

  // The defaults plus user prefixes as Cilium's --labels takes them: "[source:]prefix" keeps,
  // "[source:]!prefix" drops. A prefix is literal text where ".*" stands for any run of
  // characters. Once any keeping prefix is given, the filter is an allow-list: only labels that
  // a keeping prefix matches survive. reserved:* is always kept.
  static Result<LabelFilter> withPrefixes(const std::vector<std::string>& prefixes);

  struct Split {
    Labels identity;     // security-relevant: these form the identity
    Labels information;  // the rest, shown but not used for identity
  };
  // Per label: the longest matching keep-prefix against the shortest matching drop-prefix;
  // keep wins when its match is longer (so "io.kubernetes.pod.namespace" survives
  // "!io.kubernetes").
  Split filter(const Labels& labels) const;

  // Printed prefixes, for the agent's status output.
  std::vector<std::string> describe() const;

 private:
  struct Prefix {
    bool drop = false;
    bool has_source = false;
    Source source = Source::kUnspec;
    std::string pattern;  // literal, with ".*" wildcards

    // Length of the key's prefix that the pattern matches, or -1.
    int matchLength(const Label& l) const;
  };
  static Result<Prefix> parsePrefix(std::string_view text);

  std::vector<Prefix> prefixes_;
  bool allow_list_ = false;
};

}  // namespace cilium::labels
