// Feeds the endpoint manager from a source's Pods and Namespaces (the API server or a manifests
// directory), and writes the endpoints back as CiliumEndpoints (API server only):
//
// - a CNI ADD for pod ns/name takes the pod's labels (labels::podLabels: pod labels, namespace,
//   namespace labels, service account, cluster) and its named container ports, waiting briefly
//   for the pod to reach the cache (kUnavailable after `pod_wait`: CNI code 11, try again);
// - a change of a pod's labels, service account or ports, or of its namespace's labels, relabels
//   the pod's endpoint (new identity, regenerated);
// - every pod's named ports (any node) fill the cluster's policy::NamedPortTable under the pod's
//   identity labels; a change regenerates the endpoints whose egress rules name ports;
// - with an API client, a CiliumEndpoint per local pod, reconciled every `publish_interval` on a
//   thread of its own (a slow API server never holds up a handler).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/endpoint/manager.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/resources.h"
#include "agent/labels/labels.h"
#include "agent/policy/policy.h"

namespace cilium::k8s {
class Client;
class Source;
}  // namespace cilium::k8s

namespace cilium::endpoint {

struct K8sFeedOptions {
  std::string cluster_name = "default";
  // How long a CNI ADD waits for its pod to appear in the cache before "try again later".
  std::chrono::milliseconds pod_wait{5000};
  // CiliumEndpoints are written through it; null (the manifests source) writes nothing back.
  k8s::Client* client = nullptr;
  // How often CiliumEndpoints are reconciled with the endpoint manager.
  std::chrono::milliseconds publish_interval{1000};
  // This node's address, written as status.networking.node (other nodes tunnel to it); asked at
  // every reconcile, so an address learned late or changed is published. Unset or "": none.
  std::function<std::string()> node_ip;
};

// The named ports a pod gives: lowercase names, protocol defaulting to TCP.
std::vector<policy::NamedPort> namedPortsOf(const k8s::Pod& pod);

class K8sFeed {
 public:
  // Registers the handlers (every pod and namespace already stored is processed before this
  // returns) and becomes the manager's pod resolver. The source must have synced; the source,
  // manager, engine and table must outlive the feed.
  static Result<std::unique_ptr<K8sFeed>> start(Manager& manager, policy::Engine& engine,
                                                policy::NamedPortTable& ports,
                                                k8s::Source& source, K8sFeedOptions options);
  // Unregisters, clears the pod resolver, stops the writer. The endpoints stay.
  ~K8sFeed();
  // Reconciles the CiliumEndpoints now rather than at the next interval (an endpoint was added,
  // removed or relabelled): other nodes learn a new pod within one API round trip.
  void kick();
  K8sFeed(const K8sFeed&) = delete;
  K8sFeed& operator=(const K8sFeed&) = delete;

 private:
  K8sFeed(Manager& manager, policy::Engine& engine, policy::NamedPortTable& ports,
          k8s::Source& source, K8sFeedOptions options);
  Manager::PodMetadata podMetadata(const k8s::Pod& pod,
                                   const labels::Labels& runtime_labels) const;
  Result<Manager::PodMetadata> resolve(const Spec& spec) const;
  void relabel(const k8s::Pod& pod);
  void trackPorts(const k8s::Pod& pod, bool deleted = false);
  void relabelNamespace(const std::string& ns);
  void watch();
  void publishEndpoints();
  void writerLoop();

  Manager& manager_;
  policy::Engine& engine_;
  policy::NamedPortTable& ports_;
  k8s::Source& source_;
  K8sFeedOptions opts_;
  // The endpoint manager's filter (its default): a pod's identity labels, wherever it runs.
  const labels::LabelFilter identity_filter_ = labels::LabelFilter::defaults();
  std::atomic<bool> started_{false};
  std::vector<std::function<void()>> unregister_;

  std::unique_ptr<k8s::CiliumEndpointPublisher> ceps_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stopping_ = false;
  std::thread writer_;
  std::map<std::string, k8s::EndpointState> published_;  // writer thread only
};

}  // namespace cilium::endpoint
