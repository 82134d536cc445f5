// The agent's single reader of the datapath event ring: one thread polls it and fans every record
// out to subscribers (GET /monitor, Hubble). Records consumed by one reader are gone for any
// other, so nothing else in the agent may open an EventReader on cilium_events.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "agent/bpf/abi.h"
#include "agent/common/error.h"
#include "agent/datapath/events.h"

namespace cilium::monitor {

class EventHub {
 public:
  using Callback = std::function<void(const cilium_event&)>;
  // Opens the ring reader with the hub's dispatch function as its callback (for example
  // [&](auto cb) { return datapath.openEventReader(std::move(cb)); }).
  using ReaderFactory = std::function<Result<std::unique_ptr<datapath::EventReader>>(
      datapath::EventReader::Callback)>;

  // RAII: destroying it unsubscribes; after that its callback is never called again. Movable.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& o) noexcept { *this = std::move(o); }
    Subscription& operator=(Subscription&& o) noexcept;
    ~Subscription() { reset(); }
    void reset();
    explicit operator bool() const { return hub_ != nullptr; }

   private:
    friend class EventHub;
    Subscription(EventHub* hub, uint64_t id) : hub_(hub), id_(id) {}
    EventHub* hub_ = nullptr;
    uint64_t id_ = 0;
  };

  // Opens the reader and starts the polling thread. `poll_interval` bounds how long records may
  // wait in the ring below the datapath's wakeup threshold.
  static Result<std::unique_ptr<EventHub>> start(
      const ReaderFactory& open_reader,
      std::chrono::milliseconds poll_interval = std::chrono::milliseconds(100));
  // A hub without a ring (tests feed it with publish()).
  static std::unique_ptr<EventHub> detached();
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // cb runs on the hub's thread, in ring order; it must be quick and never block (copy into
  // your own bounded queue if you do I/O). Subscriptions must not outlive the hub.
  [[nodiscard]] Subscription subscribe(Callback cb);

  // Delivers one record to every subscriber, as the polling thread does.
  void publish(const cilium_event& ev);

  uint64_t delivered() const { return delivered_.load(); }
  size_t subscribers() const;

 private:
  EventHub() = default;
  void unsubscribe(uint64_t id);
  void run(std::chrono::milliseconds poll_interval);

  std::unique_ptr<datapath::EventReader> reader_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> delivered_{0};
  // Held while callbacks run, so unsubscribe() returns only once its callback has finished.
  mutable std::mutex mu_;
  std::map<uint64_t, Callback> subs_;
  uint64_t next_id_ = 1;
};

}  // namespace cilium::monitor
