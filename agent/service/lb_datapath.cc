// Loading bpf_sock, batched kernel map writes and the cgroup links of the socket LB.
#include "agent/service/lb_datapath.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include "agent/bpf/map.h"
#include "agent/bpf/skeleton.h"
#include "agent/common/log.h"
#include "bpf_sock_lb.skel.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service");
  return l;
}

// A kernel map whose batch writes go through BPF_MAP_UPDATE_BATCH: one syscall per chunk
// instead of one per entry, which is what makes programming 100k services fast.
template <typename K, typename V>
class BatchedMap final : public bpf::Map<K, V> {
 public:
  explicit BatchedMap(std::unique_ptr<bpf::KernelMap<K, V>> m) : m_(std::move(m)) {}
  const std::string& name() const override { return m_->name(); }
  uint32_t maxEntries() const override { return m_->maxEntries(); }
  Result<std::optional<V>> lookup(const K& k) const override { return m_->lookup(k); }
  Status update(const K& k, const V& v, bpf::UpdateFlag f) override { return m_->update(k, v, f); }
  Result<bool> remove(const K& k) override { return m_->remove(k); }
  Status forEach(const std::function<bool(const K&, const V&)>& fn) const override {
    return m_->forEach(fn);
  }
  Status updateBatch(std::span<const K> keys, std::span<const V> vals) override {
    if (keys.size() != vals.size())
      return Error(ErrorCode::kInvalidArgument, "updateBatch: key and value counts differ");
    constexpr size_t kChunk = 8192;
    for (size_t off = 0; off < keys.size(); off += kChunk) {
      uint32_t n = static_cast<uint32_t>(std::min(kChunk, keys.size() - off));
      LIBBPF_OPTS(bpf_map_batch_opts, opts);
      if (::bpf_map_update_batch(m_->fd(), keys.data() + off, vals.data() + off, &n, &opts) != 0) {
        if (errno == E2BIG || errno == ENOSPC)
          return makeError(ErrorCode::kResourceExhausted, "map {} is full", m_->name());
        return errnoError(errno, "batch update in " + m_->name());
      }
    }
    return okStatus();
  }

 private:
  std::unique_ptr<bpf::KernelMap<K, V>> m_;
};

template <typename K, typename V>
Result<std::unique_ptr<BatchedMap<K, V>>> borrow(const bpf_map* map) {
  CILIUM_ASSIGN_OR_RETURN(auto km, (bpf::KernelMap<K, V>::fromBorrowedFd(bpf_map__fd(map), bpf_map__name(map))));
  return std::make_unique<BatchedMap<K, V>>(std::move(km));
}

struct Hook {
  const char* name;
  bpf_attach_type type;
};
// IPv6 hooks are attached whatever enable-ipv6 says: they also balance IPv6 sockets talking
// to v4-mapped addresses of IPv4 frontends.
constexpr std::array<Hook, 8> kHooks = {{
    {"connect4", BPF_CGROUP_INET4_CONNECT},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME},
    {"connect6", BPF_CGROUP_INET6_CONNECT},
    {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
    {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG},
    {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
}};

}  // namespace

struct LbDatapath::State {
  std::unique_ptr<bpf::LoadedSkeleton<bpf_sock_lb>> skel;
  std::unique_ptr<BatchedMap<lb4_key, lb4_service>> services;
  std::unique_ptr<BatchedMap<lb4_slot_key, uint32_t>> slots;
  std::unique_ptr<BatchedMap<uint32_t, lb4_backend>> backends;
  std::unique_ptr<BatchedMap<uint32_t, lb4_reverse_nat>> revnat;
  std::unique_ptr<BatchedMap<lb4_affinity_key, lb4_affinity_val>> affinity;
  std::unique_ptr<BatchedMap<lb4_maglev_key, lb4_maglev_chunk>> maglev;
  std::unique_ptr<BatchedMap<lb6_key, lb4_service>> services6;
  std::unique_ptr<BatchedMap<uint32_t, lb6_backend>> backends6;
  std::unique_ptr<BatchedMap<uint32_t, lb6_reverse_nat>> revnat6;
  std::unique_ptr<BatchedMap<lb6_affinity_key, lb4_affinity_val>> affinity6;

  const bpf_program* prog(size_t i) const {
    switch (i) {
      case 0: return (*skel)->progs.cil_sock4_connect;
      case 1: return (*skel)->progs.cil_sock4_sendmsg;
      case 2: return (*skel)->progs.cil_sock4_recvmsg;
      case 3: return (*skel)->progs.cil_sock4_getpeername;
      case 4: return (*skel)->progs.cil_sock6_connect;
      case 5: return (*skel)->progs.cil_sock6_sendmsg;
      case 6: return (*skel)->progs.cil_sock6_recvmsg;
      default: return (*skel)->progs.cil_sock6_getpeername;
    }
  }
};

LbDatapath::~LbDatapath() = default;

Result<std::unique_ptr<LbDatapath>> LbDatapath::load(const LbDatapathConfig& cfg) {
  if (cfg.pin_dir.empty() || cfg.pin_dir[0] != '/')
    return makeError(ErrorCode::kInvalidArgument, "service datapath: pin_dir '{}' must be absolute",
                     cfg.pin_dir);
  CILIUM_ASSIGN_OR_RETURN(auto opened, bpf::OpenedSkeleton<bpf_sock_lb>::open({cfg.pin_dir}));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb4_services, cfg.services_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb4_slots, cfg.slots_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb4_backends, cfg.backends_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb4_reverse_nat, cfg.revnat_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb6_services, cfg.services_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb6_backends, cfg.backends_map_entries));
  CILIUM_RETURN_IF_ERROR(
      opened.setMaxEntries(opened->maps.cilium_lb6_reverse_nat, cfg.revnat_map_entries));
  CILIUM_ASSIGN_OR_RETURN(auto loaded, std::move(opened).load());

  std::unique_ptr<LbDatapath> dp(new LbDatapath());
  dp->pin_dir_ = cfg.pin_dir;
  dp->s_ = std::make_unique<State>();
  dp->s_->skel = std::make_unique<bpf::LoadedSkeleton<bpf_sock_lb>>(std::move(loaded));
  auto& m = (*dp->s_->skel)->maps;
  CILIUM_ASSIGN_OR_RETURN(dp->s_->services, (borrow<lb4_key, lb4_service>(m.cilium_lb4_services)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->slots, (borrow<lb4_slot_key, uint32_t>(m.cilium_lb4_slots)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->backends, (borrow<uint32_t, lb4_backend>(m.cilium_lb4_backends)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->revnat,
                          (borrow<uint32_t, lb4_reverse_nat>(m.cilium_lb4_reverse_nat)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->affinity,
                          (borrow<lb4_affinity_key, lb4_affinity_val>(m.cilium_lb4_affinity)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->maglev,
                          (borrow<lb4_maglev_key, lb4_maglev_chunk>(m.cilium_lb4_maglev)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->services6, (borrow<lb6_key, lb4_service>(m.cilium_lb6_services)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->backends6,
                          (borrow<uint32_t, lb6_backend>(m.cilium_lb6_backends)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->revnat6,
                          (borrow<uint32_t, lb6_reverse_nat>(m.cilium_lb6_reverse_nat)));
  CILIUM_ASSIGN_OR_RETURN(dp->s_->affinity6,
                          (borrow<lb6_affinity_key, lb4_affinity_val>(m.cilium_lb6_affinity)));
  std::error_code ec;
  std::filesystem::create_directories(cfg.pin_dir + "/links", ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}/links: {}", cfg.pin_dir, ec.message());
  log()->info("service datapath loaded pin_dir={} services={} slots={} backends={}", cfg.pin_dir,
              cfg.services_map_entries, cfg.slots_map_entries, cfg.backends_map_entries);
  return dp;
}

Status LbDatapath::attachCgroup(const std::string& cgroup_path) {
  UniqueFd cg(::open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return errnoError(errno, "open cgroup " + cgroup_path);
  for (size_t i = 0; i < kHooks.size(); i++) {
    int prog_fd = bpf_program__fd(s_->prog(i));
    std::string pin = pin_dir_ + "/links/sock_" + kHooks[i].name;
    if (::access(pin.c_str(), F_OK) == 0) {
      UniqueFd link(::bpf_obj_get(pin.c_str()));
      if (link && ::bpf_link_update(link.get(), prog_fd, nullptr) == 0) continue;
      // A link whose cgroup is gone, or not a link: attach afresh.
      ::unlink(pin.c_str());
    }
    UniqueFd link(::bpf_link_create(prog_fd, cg.get(), kHooks[i].type, nullptr));
    if (!link)
      return errnoError(errno, std::string("attach ") + kHooks[i].name + " to " + cgroup_path);
    if (::bpf_obj_pin(link.get(), pin.c_str()) != 0) return errnoError(errno, "pin " + pin);
  }
  log()->info("socket LB attached cgroup={}", cgroup_path);
  return okStatus();
}

Status LbDatapath::detachCgroup() {
  Status first = okStatus();
  for (const auto& h : kHooks) {
    std::string pin = pin_dir_ + "/links/sock_" + h.name;
    UniqueFd link(::bpf_obj_get(pin.c_str()));
    if (!link) continue;
    if (::bpf_link_detach(link.get()) != 0 && first.ok())
      first = errnoError(errno, std::string("detach ") + h.name);
    ::unlink(pin.c_str());
  }
  return first;
}

ServiceMaps LbDatapath::maps() {
  return {s_->services.get(), s_->slots.get(),     s_->backends.get(),  s_->revnat.get(),
          s_->maglev.get(),   s_->services6.get(), s_->backends6.get(), s_->revnat6.get()};
}

AffinityMap& LbDatapath::affinity() { return *s_->affinity; }

Affinity6Map& LbDatapath::affinity6() { return *s_->affinity6; }

}  // namespace cilium::service
