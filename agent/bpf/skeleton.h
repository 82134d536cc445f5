// RAII ownership of bpftool skeletons in two phases:
//   OpenedSkeleton<S>  before load: set .rodata configuration and map sizes;
//   LoadedSkeleton<S>  after load:  seed maps, attach programs. .rodata is frozen.
// Maps declared with PIN_BY_NAME are pinned under OpenOptions::pin_dir and reused across loads
// (and agent restarts) when their layout is unchanged; a pinned map whose layout changed is
// replaced, with a warning, because the new programs cannot use it.
#pragma once

#include <bpf/libbpf.h>

#include <memory>
#include <string>
#include <typeinfo>

#include "agent/common/error.h"

namespace cilium::bpf {

struct OpenOptions {
  std::string pin_dir;  // directory on bpffs for PIN_BY_NAME maps; empty disables pinning
};

// Gives every map of `obj` whose pin exists (with the same type, key and value size) the pinned
// map's size. An object sharing maps another one created (sized from the agent's configuration)
// then reuses them, instead of the pin check replacing them under the first object's feet.
// Call between open and load.
Status adoptPinnedSizes(bpf_object* obj);

namespace detail {
// Unpins maps of `obj` whose pinned twin is incompatible with the object's definition.
Status reconcilePins(bpf_object* obj);
Error openError(const char* mangled_type_name, int err);
// Clears the pin path of every map, so that loading pins nothing.
void disablePinning(bpf_object* obj);
}  // namespace detail

template <typename S>
class LoadedSkeleton {
 public:
  explicit LoadedSkeleton(S* skel) : skel_(skel) {}
  LoadedSkeleton(LoadedSkeleton&&) noexcept = default;
  LoadedSkeleton& operator=(LoadedSkeleton&&) noexcept = default;

  S* get() const { return skel_.get(); }
  S* operator->() const { return skel_.get(); }

 private:
  struct Deleter {
    void operator()(S* s) const { S::destroy(s); }
  };
  std::unique_ptr<S, Deleter> skel_;
};

// S is a skeleton struct from `bpftool gen skeleton`, whose C++ static members open/load/destroy
// this uses. Include a given "<name>.skel.h" in one translation unit only: it embeds the object.
template <typename S>
class OpenedSkeleton {
 public:
  static Result<OpenedSkeleton> open(const OpenOptions& opts = {}) {
    bpf_object_open_opts o{};
    o.sz = sizeof(o);
    if (!opts.pin_dir.empty()) o.pin_root_path = opts.pin_dir.c_str();
    S* s = S::open(&o);
    if (s == nullptr) return detail::openError(typeid(S).name(), errno);
    OpenedSkeleton opened(s);
    // Without a root, libbpf would pin PIN_BY_NAME maps under /sys/fs/bpf itself.
    if (opts.pin_dir.empty()) detail::disablePinning(s->obj);
    return opened;
  }

  S* get() const { return skel_.get(); }
  // Access to .rodata (const volatile globals) and maps, before load.
  S* operator->() const { return skel_.get(); }

  Status setMaxEntries(bpf_map* map, uint32_t entries) {
    if (int err = bpf_map__set_max_entries(map, entries); err != 0)
      return errnoError(err, std::string("set max_entries of ") + bpf_map__name(map));
    return okStatus();
  }

  // Verifies and loads every program, creating or reusing maps. Consumes the opened skeleton.
  Result<LoadedSkeleton<S>> load() && {
    CILIUM_RETURN_IF_ERROR(detail::reconcilePins(skel_->obj));
    if (int err = S::load(skel_.get()); err != 0)
      return errnoError(err, std::string("load BPF object ") + bpf_object__name(skel_->obj) +
                                 " (the verifier log is in the log at debug level)");
    return LoadedSkeleton<S>(skel_.release());
  }

 private:
  explicit OpenedSkeleton(S* s) : skel_(s) {}
  struct Deleter {
    void operator()(S* s) const { S::destroy(s); }
  };
  std::unique_ptr<S, Deleter> skel_;
};

}  // namespace cilium::bpf
