// The policy engine: the rule repository (import, replace, delete, list, revision), the selector
// cache, and resolution of an endpoint's policy into datapath map state, with incremental deltas
// when identities appear or disappear. Pure logic: the caller writes the results with
// datapath::PolicyMaps (replace() for full states, update() for deltas) and bumps the datapath
// policy revision. Semantics of the map state: bpf/abi/policy.h and docs/policy.md.
//
// Threading: every method is thread-safe (one internal mutex). Callbacks (the change listener,
// the CIDR identity provider) are called without that mutex held.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/datapath/maps.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/labels/labels.h"
#include "agent/policy/decode.h"
#include "agent/policy/rule.h"
#include "agent/policy/selector_cache.h"

namespace cilium::policy {

struct NamedPort {
  std::string name;  // lowercase
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  bool operator==(const NamedPort&) const = default;
};

// Named container ports of the cluster's pods, by the pods' security-relevant labels (the labels
// their identity is of), for egress rules that name a port of the destination: the number comes
// from the pods behind each destination identity, as Kubernetes defines it. Must be callable
// from inside Engine calls (no call back into it).
class NamedPortProvider {
 public:
  virtual ~NamedPortProvider() = default;
  // The ports called `name` on pods whose identity labels are `identity_labels` (the union over
  // those pods).
  virtual std::vector<NamedPort> lookup(const labels::Labels& identity_labels,
                                        std::string_view name) const = 0;
};

// A NamedPortProvider the Kubernetes watchers fill from the pod store (every pod of the
// cluster, wherever it runs). Thread-safe.
class NamedPortTable final : public NamedPortProvider {
 public:
  std::vector<NamedPort> lookup(const labels::Labels& identity_labels,
                                std::string_view name) const override;
  // Sets what pod `key` ("namespace/name") contributes, replacing what it contributed before;
  // true when the answer of some lookup changed.
  bool setPod(const std::string& key, const labels::Labels& identity_labels,
              std::vector<NamedPort> ports);
  // Forgets pod `key`; true when the answer of some lookup changed.
  bool removePod(const std::string& key);

 private:
  struct Pod {
    labels::Labels labels;
    std::vector<NamedPort> ports;
  };
  bool addLocked(const Pod& pod);
  bool removeLocked(const Pod& pod);

  mutable std::mutex mu_;
  std::unordered_map<std::string, Pod> pods_;  // pods with named ports only
  // Identity labels -> (name, port, protocol) -> pods naming it.
  std::map<labels::Labels, std::map<std::tuple<std::string, uint16_t, Protocol>, size_t>> refs_;
};

// Gives node-local identities to the prefixes that CIDR rules reference (and puts them in the
// ipcache), so that addresses in those prefixes resolve to identities the CIDR selectors can
// select. Reference counted per prefix. Called without the Engine's mutex held.
class CidrIdentityProvider {
 public:
  virtual ~CidrIdentityProvider() = default;
  virtual Status acquire(const std::vector<IpPrefix>& prefixes) = 0;
  virtual void release(const std::vector<IpPrefix>& prefixes) = 0;
};

// What an endpoint's policy is resolved for.
struct Subject {
  uint16_t endpoint_id = 0;
  identity::NumericIdentity identity = identity::kUnknown;
  labels::Labels labels;               // the identity's labels
  std::vector<NamedPort> named_ports;  // the endpoint's own ports, for ingress named ports
};

// One rule of an endpoint's L7 policy, as the proxies enforce it (docs/l7.md): traffic in `dir`
// to protocol `proto` (0 = any) and the ports of the aligned block `port`/`bits` (bits 16 = one
// port, 0 = every port) from (ingress) or to (egress) one of `identities` (identity 0 = any) is
// allowed whole when `allow_all` (an L3/L4 rule covers it), else request by request when it
// matches one of `http` (or `dns`). A port redirected to a proxy for some peer carries the rules
// of every allow of that direction that overlaps it, so the proxy allows exactly what the
// policy's union allows.
struct L7PortRule {
  Direction dir = Direction::kIngress;
  uint8_t proto = 0;
  uint16_t port = 0;
  uint8_t bits = 0;
  std::vector<identity::NumericIdentity> identities;  // sorted
  bool allow_all = false;
  std::vector<HttpRule> http;
  std::vector<DnsRule> dns;
  bool operator==(const L7PortRule&) const = default;
};
struct L7Policy {
  std::vector<L7PortRule> rules;
  bool empty() const { return rules.empty(); }
  bool operator==(const L7Policy&) const = default;
};

struct EndpointPolicy {
  uint64_t revision = 0;  // repository revision the policy was computed at
  bool ingress_enforced = false;
  bool egress_enforced = false;
  // The complete map state, sorted by (identity, direction, protocol, port, prefix length).
  std::vector<datapath::PolicyEntry> entries;
  // What the L7 proxies enforce for the entries that redirect to them (empty: none do). Hand it
  // to the proxies before the entries reach the map.
  L7Policy l7;
};

// Changes to apply to an endpoint's current map with PolicyMaps::update(). Upserts list denies
// before allows and deletes list allows before denies, so applying them in order never lets an
// allow act where a deny is meant to be.
struct MapDelta {
  std::vector<datapath::PolicyEntry> upserts;
  std::vector<policy_key> deletes;
  // Set when the endpoint has L7 rules: its L7 policy with the new selections, for the proxies
  // (before the upserts are applied).
  std::optional<L7Policy> l7;
  bool empty() const { return upserts.empty() && deletes.empty(); }
};

enum class EnforcementMode : uint8_t {
  kDefault,  // a direction is default-deny once a rule selects the endpoint in it
  kAlways,   // every endpoint is default-deny in both directions
  kNever,    // nothing is enforced
};

enum class L7Mode : uint8_t {
  kReject,    // reject policies with L7 rules (kUnimplemented), as Cilium without its proxy
  kRedirect,  // redirect the ports L7 rules cover to the proxies (EngineOptions::proxy_ports)
};

// The proxy ports the agent allocated (agent/proxy/ports.h); every one must be set with
// L7Mode::kRedirect. DNS rules exist only on egress.
struct ProxyPorts {
  uint16_t http_ingress = 0, http_egress = 0, dns_egress = 0;
};

struct EngineOptions {
  EnforcementMode mode = EnforcementMode::kDefault;
  // L7 rules are never allowed at L4 alone: enforced through a proxy, or refused.
  L7Mode l7 = L7Mode::kReject;
  ProxyPorts proxy_ports;
  // Allow ingress from reserved:host into endpoints whose ingress is enforced (Cilium's
  // allow-localhost, needed by kubelet probes). A deny rule still overrides it.
  bool allow_localhost = true;
  // Largest map state an endpoint may have (the inner map size); more is kResourceExhausted.
  size_t max_entries = CILIUM_POLICY_MAP_SIZE;
};

// Who put a rule in force. Each owner replaces and removes only its own rules, so a resync of the
// cluster state never drops a rule imported through the REST API (even one carrying Kubernetes
// labels), and a REST delete never removes what the cluster state holds (docs/policy.md).
enum class Owner : uint8_t {
  kApi,      // PUT /v1/policy (cilium-dbg policy import)
  kCluster,  // the cluster state source: Kubernetes API objects or the manifests directory
};
std::string_view ownerName(Owner o);  // "api", "cluster"

// A Kubernetes object whose rules are in force.
struct ObjectRef {
  std::string kind, namespace_name, name;
  auto operator<=>(const ObjectRef&) const = default;
};

struct ImportOptions {
  Owner owner = Owner::kApi;
  // Added to every imported rule's labels (the REST API tags its rules with them).
  labels::Labels extra_labels;
  // Before adding, delete rules of the same owner whose labels equal a new rule's labels
  // (`policy import --replace`). Objects (kind, namespace, name) always replace their own
  // earlier rules of the same owner.
  bool replace = false;
  // Before adding, delete rules of the same owner whose labels contain these (when not empty).
  labels::Labels replace_with_labels;
};

struct ImportResult {
  uint64_t revision = 0;
  size_t added = 0;    // rules added
  size_t deleted = 0;  // rules replaced
  // Attached endpoints selected by an added or a deleted rule: regenerate these with attach().
  std::vector<uint16_t> affected_endpoints;
  std::vector<std::string> warnings;
};

struct DeleteResult {
  uint64_t revision = 0;
  size_t deleted = 0;
  std::vector<uint16_t> affected_endpoints;
};

class Engine {
 public:
  // Subscribes to `ids` (which must outlive the Engine) for identity changes. `cidrs`,
  // `named_ports` and `addresses` are optional and, when given, must outlive the Engine. From
  // `addresses` (the ipcache) the engine learns which addresses each identity has, for
  // NetworkPolicy ipBlocks that select pods; without it they select no pod.
  Engine(identity::Allocator& ids, EngineOptions options = {},
         CidrIdentityProvider* cidrs = nullptr, const NamedPortProvider* named_ports = nullptr,
         ipcache::IpCache* addresses = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // --- Repository ------------------------------------------------------------------------------

  // Imports policy text (see decode.h): Kubernetes objects replace the rules of the object with
  // the same kind, namespace and name; bare rule arrays are added (see ImportOptions). The whole
  // text is applied in one revision, or nothing is (the error names the field).
  Result<ImportResult> import(std::string_view text, const ImportOptions& options = {});
  // Imports a JSON array of Cilium rules (PUT /v1/policy).
  Result<ImportResult> importRules(std::string_view json_array, const ImportOptions& options = {});
  // Imports already decoded objects (the Kubernetes watcher decodes objects itself).
  Result<ImportResult> importObjects(std::vector<PolicyObject> objects,
                                     const ImportOptions& options = {});
  // Deletes every rule of `owner` (any owner when nullopt) whose labels contain `labels` (all
  // rules when empty). kNotFound when nothing matched (the message says when rules of another
  // owner did); the revision is then unchanged.
  Result<DeleteResult> deleteByLabels(const labels::Labels& labels,
                                      std::optional<Owner> owner = std::nullopt);
  // Deletes the rules of one Kubernetes object (a watch DELETE event) that `owner` put in force.
  Result<DeleteResult> deleteObject(std::string_view kind, std::string_view namespace_name,
                                    std::string_view name,
                                    std::optional<Owner> owner = std::nullopt);
  // The objects with rules of `owner` in force.
  std::vector<ObjectRef> objects(Owner owner) const;

  // Every rule with its owner, for the state directory: {"rules": [{"owner": "api", "rule":
  // {...}}, ...]}. restoreState() puts such a state (or an older plain rule array, whose rules
  // it takes as the API's, except those derived from Kubernetes objects) back in force in one
  // revision, all or nothing.
  nlohmann::json stateJson() const;
  Result<ImportResult> restoreState(const nlohmann::json& state);

  // Starts at 1; +1 for every import and every delete that changed something.
  uint64_t revision() const;
  size_t ruleCount() const;
  // The rules (Cilium's JSON rule array) whose labels contain `filter`.
  nlohmann::json rulesJson(const labels::Labels& filter = {}) const;
  // GET /v1/policy/selectors.
  std::vector<SelectorInfo> selectors() const;
  // Every prefix the current rules reference.
  std::vector<IpPrefix> cidrPrefixes() const;
  // Every toFQDNs pattern the current rules hold (normalised, sorted, unique).
  std::vector<std::string> fqdnSelectors() const;
  // Called (outside the mutex) after every import or delete that changed the rules, so the DNS
  // name manager (agent/fqdn) relabels the addresses it learned for the new set of toFQDNs
  // selectors. May call fqdnSelectors(). Replaces any earlier listener (nullptr: none).
  void setFqdnListener(std::function<void()> listener);

  // --- Resolution ------------------------------------------------------------------------------

  // The policy of `subject` at the current revision, without registering it.
  Result<EndpointPolicy> resolve(const Subject& subject) const;
  // Registers (or re-registers) `subject`, resolves its full policy and takes that as what the
  // endpoint's map holds: deltas from consumeChanges() are relative to it. Apply the result with
  // PolicyMaps::replace(). Per endpoint, apply results in the order the calls returned.
  Result<EndpointPolicy> attach(const Subject& subject);
  void detach(uint16_t endpoint_id);
  std::vector<uint16_t> attachedEndpoints() const;

  // The map changes identity and address changes caused for an attached endpoint since its last
  // attach() or consumeChanges(); kNotFound for an endpoint that is not attached.
  Result<MapDelta> consumeChanges(uint16_t endpoint_id);
  // Called (outside the mutex) with the endpoints that have new changes to consume after an
  // identity or address change. Set it before identities change; replaces any earlier listener.
  void setChangeListener(std::function<void(const std::vector<uint16_t>&)> listener);
  // Called once per import or delete with its outcome, for cilium_policy_change_total; it must
  // not call back into the Engine. Replaces any earlier listener (nullptr: none).
  void setOutcomeListener(std::function<void(bool ok)> listener);

  // The cluster's named ports (or the labels of pods with named ports) changed: the attached
  // endpoints whose egress rules name ports. Regenerate them with attach().
  std::vector<uint16_t> namedPortsChanged() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cilium::policy
