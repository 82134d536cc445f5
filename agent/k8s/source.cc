// The informer-backed source.
#include "agent/k8s/source.h"

#include <algorithm>
#include <thread>

namespace cilium::k8s {

bool Source::waitForSync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!hasSynced()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

struct ApiSource::Running {
  virtual ~Running() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual std::string_view kind() const = 0;
  virtual Reflector& reflector() = 0;
};

namespace {
template <typename T>
struct RunningInformer final : ApiSource::Running {
  RunningInformer(Client& c, Store<T>& s, ReflectorOptions o) : informer(c, s, std::move(o)) {}
  void start() override { informer.start(); }
  void stop() override { informer.stop(); }
  std::string_view kind() const override { return Resource<T>::info().kind; }
  Reflector& reflector() override { return informer.reflector(); }
  Informer<T> informer;
};
}  // namespace

ApiSource::ApiSource(Client& client, ApiSourceOptions options)
    : client_(client), options_(std::move(options)) {}

ApiSource::~ApiSource() { stop(); }

Status ApiSource::start() {
  if (!running_.empty()) return okStatus();
  for (const auto& k : options_.kinds) {
    if (!findResourceByKind(k))
      return makeError(ErrorCode::kInvalidArgument, "kinds: unknown kind \"{}\"", k);
  }
  auto served = [&](std::string_view kind) {
    return options_.kinds.empty() ||
           std::find(options_.kinds.begin(), options_.kinds.end(), kind) != options_.kinds.end();
  };
  stores_.forEach([&](auto& store) {
    using T = typename std::remove_reference_t<decltype(store.list())>::value_type;
    if (!served(Resource<T>::info().kind)) {
      store.markSynced();
      return;
    }
    ReflectorOptions o = options_.reflector;
    if constexpr (std::is_same_v<T, Pod>) {
      if (!options_.node_name.empty()) o.field_selector = "spec.nodeName=" + options_.node_name;
    }
    running_.push_back(std::make_unique<RunningInformer<T>>(client_, store, std::move(o)));
  });
  for (auto& r : running_) r->start();
  return okStatus();
}

void ApiSource::stop() {
  for (auto& r : running_) r->stop();
}

Reflector* ApiSource::reflector(std::string_view kind) {
  for (auto& r : running_)
    if (r->kind() == kind) return &r->reflector();
  return nullptr;
}

}  // namespace cilium::k8s
