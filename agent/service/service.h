// Service load balancing, control plane: the Manager turns Services (ClusterIP, NodePort,
// LoadBalancer, externalIPs, with their ready/terminating backends) into the LB maps of
// bpf/abi/lb.h, one frontend per (address, port, protocol). Design: docs/services.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/service/huge_page_arena.h"

namespace cilium::service {

enum class Protocol : uint8_t { kTcp = 6, kUdp = 17 };
enum class FrontendType : uint8_t { kClusterIp, kNodePort, kExternalIp, kLoadBalancer };
enum class BackendState : uint8_t {
  kActive = LB_BACKEND_ACTIVE,            // ready: new connections may pick it
  kTerminating = LB_BACKEND_TERMINATING,  // kept for connections already using it
};
enum class TrafficPolicy : uint8_t { kCluster, kLocal };
// How a new connection picks its backend: at random among the active slots, or from the
// frontend's Maglev table by the connection's hash (agent/service/maglev.h).
enum class LbAlgorithm : uint8_t { kRandom, kMaglev };

std::string_view protocolName(Protocol p);           // "TCP", "UDP"
Result<Protocol> parseProtocol(std::string_view s);  // case-insensitive
std::string_view frontendTypeName(FrontendType t);   // "ClusterIP", "NodePort", ...

struct ServiceName {
  std::string ns;
  std::string name;
  std::string str() const { return ns + "/" + name; }
  auto operator<=>(const ServiceName&) const = default;
};

struct Backend {
  IpAddr ip;
  uint16_t port = 0;
  BackendState state = BackendState::kActive;
  bool local = false;  // runs on this node (externalTrafficPolicy=Local keeps only these)
  bool operator==(const Backend&) const = default;
};

struct Frontend {
  IpAddr ip;
  uint16_t port = 0;
  Protocol proto = Protocol::kTcp;
  auto operator<=>(const Frontend&) const = default;
};

// One frontend with its backends: the unit the datapath and the REST API (/service/{id}) know.
struct LbService {
  uint32_t id = 0;  // rev-nat index; assigned by the manager, stable while the frontend exists
  Frontend frontend;
  FrontendType type = FrontendType::kClusterIp;
  std::vector<Backend> backends;
  bool session_affinity = false;
  uint32_t affinity_timeout = 0;  // seconds
  TrafficPolicy ext_traffic_policy = TrafficPolicy::kCluster;
  LbAlgorithm algorithm = LbAlgorithm::kRandom;
  ServiceName owner;      // the Kubernetes Service it came from; empty for REST-made ones
  std::string port_name;  // the Service port it came from
};

// A Kubernetes Service port with the backends its EndpointSlices give for it.
struct ServicePort {
  std::string name;
  Protocol proto = Protocol::kTcp;
  uint16_t port = 0;
  uint16_t node_port = 0;         // 0 = none
  std::vector<Backend> backends;  // not-ready endpoints left out by the caller
};

// A Kubernetes Service as the sources (API server or manifests) describe it.
struct Service {
  ServiceName name;
  std::optional<IpAddr> cluster_ip;  // none for headless
  // spec.clusterIPs after the first: the other family's ClusterIP of a dual-stack Service.
  // Each ClusterIP's frontends get the backends of its own family only.
  std::vector<IpAddr> more_cluster_ips;
  std::vector<IpAddr> external_ips;
  std::vector<IpAddr> load_balancer_ips;  // status.loadBalancer.ingress
  std::vector<ServicePort> ports;
  bool session_affinity = false;      // sessionAffinity: ClientIP
  uint32_t affinity_timeout = 10800;  // sessionAffinityConfig.clientIP.timeoutSeconds
  TrafficPolicy ext_traffic_policy = TrafficPolicy::kCluster;
  // Annotation service.cilium.io/lb-algorithm; unset = the agent's bpf-lb-algorithm.
  std::optional<LbAlgorithm> lb_algorithm;
};

using ServicesMap = bpf::Map<lb4_key, lb4_service>;
using SlotsMap = bpf::Map<lb4_slot_key, uint32_t>;
using BackendsMap = bpf::Map<uint32_t, lb4_backend>;
using RevNatMap = bpf::Map<uint32_t, lb4_reverse_nat>;
using AffinityMap = bpf::Map<lb4_affinity_key, lb4_affinity_val>;
using MaglevMap = bpf::Map<lb4_maglev_key, lb4_maglev_chunk>;
// IPv6 twins of the maps keyed or valued by an address (bpf/abi/lb.h); slots and Maglev tables
// are shared by both families (one id space).
using Services6Map = bpf::Map<lb6_key, lb4_service>;
using Backends6Map = bpf::Map<uint32_t, lb6_backend>;
using RevNat6Map = bpf::Map<uint32_t, lb6_reverse_nat>;
using Affinity6Map = bpf::Map<lb6_affinity_key, lb4_affinity_val>;

// Non-owning; whoever built them keeps them alive.
struct ServiceMaps {
  ServicesMap* services = nullptr;
  SlotsMap* slots = nullptr;
  BackendsMap* backends = nullptr;
  RevNatMap* revnat = nullptr;
  MaglevMap* maglev = nullptr;  // without it, Maglev frontends are refused
  // Without all three, IPv6 frontends are refused (kFailedPrecondition).
  Services6Map* services6 = nullptr;
  Backends6Map* backends6 = nullptr;
  RevNat6Map* revnat6 = nullptr;
};

struct ManagerConfig {
  // Node addresses NodePort frontends are created on.
  std::vector<IpAddr> node_ips;
  // kube-proxy-replacement: NodePort, externalIPs and LoadBalancer frontends are created; off,
  // only ClusterIP (the rest is kube-proxy's, as in Cilium with kube-proxy-replacement=false).
  bool kube_proxy_replacement = true;
  // bpf-lb-algorithm and bpf-lb-maglev-table-size (one of maglevTableSizes()).
  LbAlgorithm algorithm = LbAlgorithm::kRandom;
  uint32_t maglev_table_size = LB_MAGLEV_DEFAULT_SIZE;
  // A sync of more frontends than this writes the maps in chunks of this many, on a second
  // thread, while it plans the next chunk.
  uint32_t write_chunk = 8192;
  // enable-ipv6: off, the IPv6 frontends of Services are skipped (one log line per change
  // naming how many), and REST-made ones are refused.
  bool enable_ipv6 = true;
};

// Expands a Service into its frontends (ClusterIP, externalIPs, LoadBalancer IPs, NodePort on
// every node address), each with the port's backends. kInvalidArgument naming the field.
Result<std::vector<LbService>> expandService(const Service& svc, const ManagerConfig& cfg);

// Thread-safe. Every change programs the maps before it returns; a failed change leaves the
// frontends in force as they were (backends and slots it wrote are cleaned up or reused later).
class Manager {
 public:
  Manager(ServiceMaps maps, ManagerConfig cfg);

  // Rebuilds the manager's state from the maps after an agent restart, so ids, backend ids and
  // generations continue where the previous agent left them and the datapath keeps forwarding.
  // Restored frontends have no owner until a source upserts them again; pruneRestored() then
  // removes the ones nobody claimed.
  Status restore();
  Status pruneRestored();

  // Creates or replaces a Kubernetes Service: its frontends are created, changed in place
  // (backend replacement is atomic per frontend), and those it no longer has are deleted.
  Status upsertService(const Service& svc);
  // Many at once with batched map writes (the first sync after start).
  Status upsertServices(std::span<const Service> svcs);
  // kNotFound when unknown.
  Status deleteService(const ServiceName& name);

  // Frontend-level changes (REST PUT /service/{id}): `id` 0 assigns one; a given id must be free
  // or already name this frontend. Returns the id.
  Result<uint32_t> upsertFrontend(LbService svc);
  Status deleteFrontend(uint32_t id);  // kNotFound when unknown

  std::vector<LbService> list() const;  // by id
  std::optional<LbService> get(uint32_t id) const;
  size_t frontendCount() const;

 private:
  // A backend of a frontend next to the id it was given.
  struct BackendEntry {
    Backend spec;
    uint32_t id = 0;
  };
  // A frontend as the manager keeps it: its LbService in compact form (the owner by pointer,
  // each backend next to its id) and what the maps hold for it. Kept small: the first sync of
  // 100k Services writes 100k of them into memory never touched before (docs/benchmarks.md).
  struct FrontendState {
    explicit FrontendState(std::pmr::memory_resource* r) : backends(r) {}
    uint32_t id = 0;
    Frontend frontend;
    FrontendType type = FrontendType::kClusterIp;
    TrafficPolicy ext_traffic_policy = TrafficPolicy::kCluster;
    LbAlgorithm algorithm = LbAlgorithm::kRandom;
    bool session_affinity = false;
    bool two_scopes = false;  // eTP=Local: an internal-scope entry exists too
    bool restored = false;
    uint32_t affinity_timeout = 0;
    uint16_t gen = 0;
    uint16_t count = 0;           // slots written under gen
    uint16_t internal_count = 0;  // slots of the internal scope, under gen | LB_GEN_INTERNAL
    uint16_t maglev_size = 0;     // Maglev tables written under gen (0 = none)
    // The key of its by_owner_ entry (stable: unordered_map nodes do not move); null for
    // REST-made and restored frontends.
    const ServiceName* owner = nullptr;
    std::string port_name;
    std::pmr::vector<BackendEntry> backends;  // every backend referenced (active and terminating)
  };
  struct BackendRef {
    uint32_t id = 0;
    uint32_t refs = 0;
    uint32_t active_refs = 0;  // references that list it as active
    uint8_t state = LB_BACKEND_ACTIVE;  // what the backends map holds
  };
  using BackendKey = std::tuple<IpAddr, uint16_t, uint8_t>;  // address, port (host), proto

  // The map writes of a change, in the order writeMaps() applies them. A large sync hands them
  // to a writer thread chunk by chunk while it plans the next chunk.
  struct Writes {
    std::vector<uint32_t> backend_keys;
    std::vector<lb4_backend> backend_vals;
    std::vector<uint32_t> revnat_keys;
    std::vector<lb4_reverse_nat> revnat_vals;
    std::vector<lb4_slot_key> slot_keys;
    std::vector<uint32_t> slot_vals;
    std::vector<lb4_maglev_key> maglev_keys;
    std::vector<lb4_maglev_chunk> maglev_vals;
    std::vector<lb4_key> fe_keys;
    std::vector<lb4_service> fe_vals;
    // IPv6 frontends, their backends and reverse NAT entries.
    std::vector<uint32_t> backend6_keys;
    std::vector<lb6_backend> backend6_vals;
    std::vector<uint32_t> revnat6_keys;
    std::vector<lb6_reverse_nat> revnat6_vals;
    std::vector<lb6_key> fe6_keys;
    std::vector<lb4_service> fe6_vals;
    void clear();  // keeps the capacity for the next chunk
  };
  // Plans the writes and removals of a change; applied by flush().
  struct Batch : Writes {
    std::vector<lb4_key> fe_deletes;  // after the writes (an internal scope no longer used)
    std::vector<lb6_key> fe6_deletes;
    std::vector<lb4_slot_key> slot_deletes;
    std::vector<lb4_maglev_key> maglev_deletes;
    // (id, referenced as active) whose reference is dropped after the flip
    std::vector<std::pair<uint32_t, bool>> backend_releases;
    std::vector<uint32_t> touched;  // backends whose state may change
  };

  Status validate(const LbService& svc) const;
  // Plans the write of backend `id`'s map entry (the map of its family).
  void planBackendWrite(uint32_t id, const BackendKey& key, uint8_t state, Writes& w) const;
  Status writeBackendState(uint32_t id, const BackendKey& key, uint8_t state) const;
  // Plans the write of a frontend entry (key of `fe` in `scope`) in its family's map.
  static void planFrontendWrite(const Frontend& fe, uint8_t scope, const lb4_service& v, Writes& w);
  Result<uint32_t> allocateId(uint32_t wanted);
  Result<uint32_t> acquireBackend(const Backend& b, Protocol proto, Batch& batch);
  void planUpsert(FrontendState& st, LbService spec, Batch& batch);
  void planDelete(const FrontendState& st, Batch& batch);
  Status flush(Batch& batch);
  // Only reads maps_: safe on a writer thread while the Manager plans the next chunk.
  Status writeMaps(const Writes& w) const;
  // The removals and backend releases, after every write of the batch.
  Status finishRemovals(Batch& batch);
  Status upsertLocked(std::span<const Service> svcs);
  // Removes the frontend's map entries (both scopes) before its slots and backends go.
  Status removeFrontendEntries(const FrontendState& st);
  LbService specOf(const FrontendState& st) const;
  // Plans the Maglev table of `ids` (backend ids) for generation `gen` of frontend `id`.
  void planMaglev(uint32_t id, uint16_t gen, const std::vector<uint32_t>& ids, Batch& batch);
  // Plans the deletion of the tables `st` has under its generation.
  void planMaglevDelete(const FrontendState& st, Batch& batch);

  ServiceMaps maps_;
  ManagerConfig cfg_;
  mutable std::mutex mu_;
  struct FrontendHash {
    size_t operator()(const Frontend& f) const;
  };
  struct NameHash {
    size_t operator()(const ServiceName& n) const;
  };
  struct BackendKeyHash {
    size_t operator()(const BackendKey& k) const;
  };
  // Hash tables whose nodes live in arena_ (declared first: destroyed last).
  HugePageArena arena_;
  std::pmr::unordered_map<uint32_t, FrontendState> frontends_;  // by id
  std::pmr::unordered_map<Frontend, uint32_t, FrontendHash> by_frontend_;
  std::pmr::unordered_map<ServiceName, std::pmr::vector<uint32_t>, NameHash> by_owner_;
  std::pmr::unordered_map<BackendKey, BackendRef, BackendKeyHash> backends_;
  std::pmr::unordered_map<uint32_t, BackendKey> backend_by_id_;
  uint32_t next_id_ = 1;
  uint32_t next_backend_id_ = 1;
  // Reused by every change so that programming many Services does not allocate per frontend.
  std::vector<LbService> scratch_fes_;
  std::vector<uint32_t> scratch_active_, scratch_all_, scratch_old_active_, scratch_old_all_;
};

// The map key of an IPv4 frontend (scope external: what every lookup tries first).
lb4_key frontendKey(const Frontend& fe);
// The key of its internal-scope entry (externalTrafficPolicy=Local: what pods and the node get).
lb4_key internalFrontendKey(const Frontend& fe);
// The IPv6 frontend's key in `scope` (LB_SCOPE_*).
lb6_key frontendKey6(const Frontend& fe, uint8_t scope = LB_SCOPE_EXTERNAL);

}  // namespace cilium::service
