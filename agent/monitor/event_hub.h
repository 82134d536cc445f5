// The agent's single reader of the datapath event ring: one thread polls it and fans every record
// out to subscribers (GET /monitor, Hubble). Records consumed by one reader are gone for any
// other, so nothing else in the agent may open an EventReader on cilium_events.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "agent/bpf/abi.h"
#include "agent/common/error.h"
#include "agent/common/fd.h"
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

  // Returns once every record the datapath had written to the ring before the call has been
  // delivered to the subscribers: the polling thread is woken and drains the ring at once,
  // instead of waiting for the datapath's wakeup threshold or the poll interval. This is what
  // lets a query right after a packet see its event. False on timeout (or a stopping hub).
  // Safe from any thread but the hub's own (a subscriber callback must not call it). A
  // detached hub has nothing to drain and returns true.
  bool sync(std::chrono::milliseconds timeout);

  uint64_t delivered() const { return delivered_.load(); }
  size_t subscribers() const;

 private:
  EventHub() = default;
  void unsubscribe(uint64_t id);
  void run(UniqueFd epoll_fd, std::chrono::milliseconds poll_interval);

  std::unique_ptr<datapath::EventReader> reader_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // sync(): a request bumps requested_ and writes wake_fd_; the thread reads the value before
  // it drains the ring and publishes it as drained_ afterwards.
  UniqueFd wake_fd_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t requested_ = 0, drained_ = 0;
  std::atomic<uint64_t> delivered_{0};
  // Held while callbacks run, so unsubscribe() returns only once its callback has finished.
  mutable std::mutex mu_;
  std::map<uint64_t, Callback> subs_;
  uint64_t next_id_ = 1;
};

}  // namespace cilium::monitor
